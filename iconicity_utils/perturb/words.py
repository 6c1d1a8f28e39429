"""Words of titles and prompts, shared by the synonym variants and the leak check (docs/method.md §5).

:data:`FUNCTION_WORDS` (kept by a synonym variant, never leak words), :data:`NAME_PARTICLES`,
and the word helpers: :func:`tokens` (runs of letters, or numbers), :func:`fold` (lower case
without accents), :func:`base_forms` (WordNet base forms), :func:`creator_words` and
:func:`spelling_variant` (two words that differ only in spelling, or share a stem).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np

__all__ = [
    "cell_items",
    "FUNCTION_WORDS",
    "NAME_PARTICLES",
    "TOKEN",
    "fold",
    "tokens",
    "base_forms",
    "NAME_EPITHETS",
    "creator_words",
    "spelling_variant",
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

#: epithets and titles in personal names, never creator words (*the Elder*, *the Younger*)
NAME_EPITHETS = frozenset(
    ("elder", "younger", "old", "young", "great", "jr", "sr", "junior", "senior", "saint", "st", "sir", "lord", "lady", "master")
)  # fmt: skip
#: a given name (not the surname) is a creator word only when rarer than this wordfreq Zipf frequency
GIVEN_NAME_MAX_ZIPF = 4.0

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
    """The words of the creator's name(s) (``;``-separated) that would give the work away.

    Function words, name particles (*van*, *da*), epithets (*the Elder*) and initials are never
    creator words.  Of what is left, the **surname** (the last word) always is; a given name is
    only when it is distinctive (wordfreq Zipf below :data:`GIVEN_NAME_MAX_ZIPF`: *Leonardo*,
    *Salvador* are; *Francis*, *Ford*, *Vincent* are not, so "a Ford car" does not leak Francis
    Ford Coppola).
    """
    from wordfreq import zipf_frequency

    if not isinstance(creator, str) or not creator.strip():
        return []
    out: list[str] = []
    for name in creator.split(";"):
        skip = FUNCTION_WORDS | NAME_PARTICLES | NAME_EPITHETS
        words = [fold(w) for w in tokens(name) if len(w) > 1 and fold(w) not in skip]
        for k, w in enumerate(words):
            surname = k == len(words) - 1
            if (surname or zipf_frequency(w, "en") < GIVEN_NAME_MAX_ZIPF) and w not in out:
                out.append(w)
    return out


def spelling_variant(a: str, b: str) -> bool:
    """Whether two words differ only in spelling or share a stem: the same Snowball stem, one a
    prefix or suffix of the other (at least three letters: *war* / *warfare*, *star* / *superstar*), or
    the same consonants in the same order (*gypsy* / *gipsy*, *ambassador* / *embassador*)."""
    from nltk.stem.snowball import SnowballStemmer

    a, b = fold(a).replace(" ", ""), fold(b).replace(" ", "")
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if len(short) >= 3 and (long.startswith(short) or long.endswith(short)):
        return True
    stem = SnowballStemmer("english").stem
    if stem(a) == stem(b):
        return True
    return len(short) >= 4 and len(_skeleton(a)) >= 3 and _skeleton(a) == _skeleton(b)


def _skeleton(word: str) -> str:
    """The consonants of a word, vowels and ``y`` left out: spellings that differ only in vowels
    share it (*gypsy* / *gipsy*: ``gps``; *ambassadors* / *embassadors*), near words do not
    (*scream* / *stream*, *night* / *light*)."""
    return re.sub(r"[aeiouy]", "", word)


def cell_items(value: Any) -> list[str]:
    """The distinct non-empty items of a table cell, stripped, in order: a list, tuple or array of
    strings, or a ``;``-separated string; None, NaN or pd.NA hold none (non-strings are skipped)."""
    if isinstance(value, str):
        items: list[Any] = value.split(";")
    elif isinstance(value, list | tuple | np.ndarray):
        items = list(value)
    else:  # None, NaN, pd.NA
        return []
    out: list[str] = []
    for v in items:
        if isinstance(v, str) and v.strip() and v.strip() not in out:
            out.append(v.strip())
    return out
