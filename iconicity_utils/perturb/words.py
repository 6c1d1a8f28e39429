"""Words of titles and prompts, shared by the synonym variants and the leak check (docs/method.md §5).

:data:`FUNCTION_WORDS` (kept by a synonym variant, never leak words), :data:`NAME_PARTICLES`,
and the word helpers: :func:`tokens` (runs of letters, or numbers), :func:`fold` (lower case
without accents), :func:`base_forms` (WordNet base forms), :func:`creator_words`, :func:`plural`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = [
    "FUNCTION_WORDS",
    "NAME_PARTICLES",
    "TOKEN",
    "fold",
    "tokens",
    "base_forms",
    "creator_words",
    "plural",
]

#: English function words by class, space-separated (our list; docs/method.md §5)
_FUNCTION_WORD_CLASSES = {
    "determiners": "a an the this that these those my your his her its our their some any no every each "
    "all both either neither such what which whose another other",
    "prepositions": "about above across after against along amid among around as at before behind below "
    "beneath beside besides between beyond by despite down during except for from in inside into like "
    "near of off on onto out outside over past per since through throughout till to toward towards "
    "under underneath until up upon via with within without",
    "conjunctions": "and but or nor so yet if than then though although because while whereas whether "
    "when where how why once unless",
    "pronouns": "i me you he him she it we us they them myself yourself himself herself itself ourselves "
    "themselves who whom one",
    "auxiliaries, modals and particles": "am is are was were be been being have has had do does did will "
    "would shall should can could may might must not there here very too also just only o",
}
#: English function words: kept by the synonym variant, never leak words
FUNCTION_WORDS = frozenset(w for words in _FUNCTION_WORD_CLASSES.values() for w in words.split())
#: particles of personal names, not checked as creator words (``van`` in Vincent van Gogh)
NAME_PARTICLES = frozenset(
    ("van", "von", "der", "den", "de", "del", "della", "dei", "di", "da", "du", "la", "le", "ter", "ten", "y", "bin", "ibn", "al")
)  # fmt: skip

#: a word: a run of letters (with inner apostrophes), or of digits
TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+")


def fold(text: str) -> str:
    """Lower case without accents: ``Dalí`` -> ``dali``."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def tokens(text: str) -> list[str]:
    """The words of ``text`` (:data:`TOKEN`), as written."""
    return TOKEN.findall(text)


def base_forms(word: str, wn) -> set[str]:
    """The word (folded) and its WordNet base forms in every part of speech (``kissing`` -> kiss)."""
    w = fold(word)
    forms = {w}
    if w.isalpha():
        for pos in ("n", "v", "a", "r"):
            base = wn.morphy(w, pos)
            if base:
                forms.add(fold(base))
    return forms


def creator_words(creator: Any) -> list[str]:
    """Words of the creator's name(s) (``;``-separated), without name particles and initials."""
    if not isinstance(creator, str) or not creator.strip():
        return []
    out = []
    for word in tokens(creator):
        w = fold(word)
        if len(w) > 1 and w not in NAME_PARTICLES and w not in out:
            out.append(w)
    return out


def plural(noun: str) -> str:
    """English plural of a (possibly multi-word) noun: the last word takes -s, -es or -ies."""
    head, _, last = noun.rpartition(" ")
    if re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last
