"""Synonym variants of a title, through Princeton WordNet 3.0 (docs/method.md §5.1).

:func:`synonym_variants` replaces each content word of a title by a lemma of its most frequent
WordNet sense (tag counts), ranked by tag count, then wordfreq frequency, then name; function
words, numbers and proper names are kept (or proper names dropped).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from iconicity_utils.perturb.words import FUNCTION_WORDS, TOKEN, creator_words, fold, plural

__all__ = ["SynonymVariant", "synonym_variants"]


def _cased_like(original: str, replacement: str) -> str:
    """``replacement`` (WordNet's ``young_woman``) with spaces, capitalised like ``original``."""
    words = replacement.replace("_", " ").split()
    if original[:1].isupper():
        words = [w[:1].upper() + w[1:] for w in words]
    return " ".join(words)


@dataclass
class SynonymVariant:
    """One synonym variant of a title: the prompt (None when missing), how it was made, or why not."""

    prompt: str | None
    method: str
    reason: str = ""


@dataclass
class _Choice:
    """What happens to one word of the title."""

    word: str
    candidates: list[str] = field(default_factory=list)  # replacements, best first
    sense: str = ""
    kept: str = ""  # why the word is kept ("" when it has candidates)
    proper: bool = False
    plural: bool = False


def _matching_lemmas(synset, word: str):
    return [lemma for lemma in synset.lemmas() if fold(lemma.name()) == word]


def _senses(wn, word: str) -> tuple[list[Any], str, bool]:
    """WordNet senses of ``word`` in its own form, or of its singular (plural nouns)."""
    surface = [s for s in wn.synsets(word) if _matching_lemmas(s, word)]
    if surface:
        return surface, word, False
    base = wn.morphy(word, "n")
    if base and base != word and plural(base) == word:
        senses = [s for s in wn.synsets(base, "n") if _matching_lemmas(s, base)]
        if senses:
            return senses, base, True
    return [], word, False


def _rank(lemmas: Iterable[Any], exclude: str) -> list[str]:
    """Candidate lemma names: lower case in WordNet, not the word itself; by tag count, Zipf, name."""
    from wordfreq import zipf_frequency

    best: dict[str, tuple[int, float, str]] = {}
    for lemma in lemmas:
        name = lemma.name()
        text = name.replace("_", " ")
        folded = fold(text)
        if name[:1].isupper() or folded == exclude or exclude in folded.split():
            continue
        key = (-lemma.count(), -zipf_frequency(text, "en"), folded)
        if folded not in best or key < best[folded]:
            best[folded] = key
    return [name for name, _ in sorted(best.items(), key=lambda item: item[1])]


def _choose(wn, word: str, names: Sequence[str]) -> _Choice:
    """The replacements of one title word, best first (or why it is kept)."""
    w = fold(word)
    if w.isdigit():
        return _Choice(word, kept="number")
    if not w.isalpha():
        return _Choice(word, kept="not a plain word (apostrophe)")
    if w in FUNCTION_WORDS:
        return _Choice(word, kept="function word")
    if len(w) == 1:
        return _Choice(word, kept="single letter")
    if w in names:
        return _Choice(word, kept="proper name (in the creator's name)", proper=True)
    senses, lemma, plural = _senses(wn, w)
    if not senses:
        inflected = wn.synsets(w)
        why = f"inflected form of {inflected[0].lemmas()[0].name()!r}" if inflected else "not in WordNet"
        return _Choice(word, kept=why)
    # the most frequent sense: the highest SemCor tag count of this word's lemma; ties keep
    # WordNet's order (nouns, verbs, adjectives, adverbs; senses by frequency within each)
    sense = max(senses, key=lambda s: max(lem.count() for lem in _matching_lemmas(s, lemma)))
    mine = _matching_lemmas(sense, lemma)
    if all(lem.name()[:1].isupper() for lem in mine):
        return _Choice(word, sense=sense.name(), kept=f"proper name ({sense.name()})", proper=True)
    candidates = _rank(sense.lemmas(), lemma)
    how = sense.name()
    if not candidates and sense.pos() in ("a", "s"):  # the adjective's cluster (similar-to synsets)
        candidates = _rank((lem for s in sense.similar_tos() for lem in s.lemmas()), lemma)
        how = f"similar to {sense.name()}"
    if not candidates:
        return _Choice(word, sense=sense.name(), kept=f"no other lemma in {sense.name()}")
    return _Choice(word, candidates=candidates, sense=how, plural=plural)


def synonym_variants(
    title: str,
    wn,
    *,
    n: int = 1,
    proper_names: str = "keep",
    creator: str | None = None,
) -> list[SynonymVariant]:
    """``n`` synonym variants of a title (docs/method.md §5).

    Rules, word by word (words are runs of letters; numbers and punctuation are kept as written):

    - **function words** (:data:`FUNCTION_WORDS`), single letters and numbers are kept;
    - a word's **senses** are the WordNet synsets with a lemma equal to the word; a plural noun
      with none uses its singular's noun senses and its replacements are pluralised;
    - the **most frequent sense** is the one whose lemma for the word has the highest tag count
      (WordNet's ``cntlist``, ``Lemma.count()``); ties keep WordNet's order;
    - a **proper name** is a word of the creator's name, or a word whose lemma in its most frequent
      sense is capitalised in WordNet (Venus, Olympia, American); ``proper_names`` keeps it or drops it;
    - the **replacements** are that sense's other lemmas that are lower case in WordNet (an
      adjective with none takes its cluster's, the synsets it is similar to), ranked by tag
      count, then wordfreq Zipf frequency, then alphabetically; the k-th variant uses each word's
      k-th replacement (its last if it has fewer), written with spaces and the word's capitalisation;
    - **at least one word must change**; a variant equal to the title or to an earlier variant
      is missing, with the reason.  Words WordNet does not know are kept (nothing is invented).

    Args:
        title: the bare title.
        wn: the WordNet reader (:func:`load_wordnet`).
        n: how many variants.
        proper_names: ``"keep"`` or ``"drop"``.
        creator: the creator's name(s), ``;``-separated.

    Returns:
        ``n`` :class:`SynonymVariant`, in order (``synonym``, ``synonym-2``, ...).
    """
    if proper_names not in ("keep", "drop"):
        raise ValueError(f"unknown proper_names rule {proper_names!r}; expected 'keep' or 'drop'")
    names = creator_words(creator)
    pieces, choices, pos = [], [], 0
    for match in TOKEN.finditer(title):
        pieces.append(title[pos : match.start()])
        choices.append(_choose(wn, match.group(), names))
        pieces.append(len(choices) - 1)
        pos = match.end()
    pieces.append(title[pos:])
    out: list[SynonymVariant] = []
    seen = {title}
    for k in range(1, n + 1):
        text, notes = "", []
        for piece in pieces:
            if isinstance(piece, str):
                text += piece
                continue
            c = choices[piece]
            if c.candidates:
                pick = c.candidates[min(k, len(c.candidates)) - 1]
                word = _cased_like(c.word, plural(pick.replace("_", " ")) if c.plural else pick)
                text += word
                notes.append(f"{c.word}→{word} ({c.sense})")
            elif c.proper and proper_names == "drop":
                notes.append(f"{c.word} dropped ({c.kept})")
            else:
                text += c.word
                notes.append(f"{c.word} kept ({c.kept})")
        prompt = re.sub(r"\s+", " ", text).strip()
        method = "; ".join(notes)
        if not any(c.candidates for c in choices):
            out.append(SynonymVariant(None, method, "no word of the title has a WordNet synonym"))
        elif prompt in seen:
            why = "the title" if prompt == title else "an earlier synonym variant"
            out.append(SynonymVariant(None, method, f"no further synonym: it would repeat {why}"))
        else:
            seen.add(prompt)
            out.append(SynonymVariant(prompt, method))
    return out
