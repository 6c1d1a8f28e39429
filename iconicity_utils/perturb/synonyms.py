"""Synonym variants of a title, through Princeton WordNet 3.0 (docs/method.md §5.1).

:func:`synonym_variants` replaces content words of a title by lemmas of their most frequent
WordNet sense *within the part of speech the title's grammar gives them*
(:mod:`~iconicity_utils.perturb.grammar`), inflected like the original by ``lemminflect``; rare
words and spelling variants of the original are dropped, and the rest are ranked by the meaning
they keep (:mod:`~iconicity_utils.perturb.meaning`).  :func:`meaning_ranker` builds the ranker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from iconicity_utils.perturb.grammar import WordTag, title_parts_of_speech
from iconicity_utils.perturb.meaning import meaning_encoder
from iconicity_utils.perturb.words import TOKEN, creator_words, fold, spelling_variant

__all__ = ["SynonymVariant", "Ranker", "meaning_ranker", "synonym_variants"]

#: WordNet's parts of speech for each grammar tag (adjective satellites count as adjectives)
_WN_POS = {"NOUN": ("n",), "VERB": ("v",), "ADJ": ("a", "s")}

#: scores ``(title, candidate prompts)`` -> meaning kept (cosine), or None without an encoder
Ranker = Callable[[str, Sequence[str]], list[float]]


def meaning_ranker(name: str | None) -> Ranker | None:
    """The ranker of a named encoder (``perturbation.meaning_encoder``); None for ``none``."""
    encoder = meaning_encoder(name)
    return None if encoder is None else encoder.cosines


def _cased_like(original: str, replacement: str) -> str:
    """``replacement`` capitalised like ``original`` (every word when the original is capitalised)."""
    words = replacement.split()
    if original[:1].isupper():
        words = [w[:1].upper() + w[1:] for w in words]
    return " ".join(words)


@dataclass
class SynonymVariant:
    """One synonym variant of a title: the prompt (None when missing), how it was made, or why not,
    and the meaning kept (cosine to the title; NaN without an encoder)."""

    prompt: str | None
    method: str
    reason: str = ""
    meaning: float = float("nan")


@dataclass
class _Choice:
    """What happens to one word of the title."""

    word: str
    candidates: list[str] = field(default_factory=list)  # inflected replacements, best first
    sense: str = ""
    kept: str = ""  # why the word is kept ("" when it has candidates)
    proper: bool = False


def _inflect(lemma: str, tag: str) -> str | None:
    """``lemma`` (WordNet's, with spaces) in the form ``tag`` (lemminflect; the head word inflects)."""
    from lemminflect import getInflection

    if tag in ("NN", "JJ", "VB", ""):
        return lemma
    words = lemma.split()
    head = len(words) - 1 if tag == "NNS" else 0
    forms = getInflection(words[head], tag=tag)
    if not forms:
        return None
    words[head] = forms[0]
    return " ".join(words)


def _senses(wn, t: WordTag) -> list:
    """The most frequent WordNet senses of the word's lemma within its part of speech: those with
    the highest tag count (``Lemma.count()``), in WordNet's order (several when counts tie).

    (Pooling every sense and letting the meaning encoder pick was tried: it gains *The Sorcerer
    of Oz* but brings *Urine Lilies* and *The Heap of the Medusa*; the encoder is not a sense
    disambiguator.)"""
    senses = [s for p in _WN_POS[t.pos] for s in wn.synsets(t.lemma, p)]
    senses = [s for s in senses if any(fold(lem.name()) == t.lemma for lem in s.lemmas())]
    if not senses:
        return []

    def count(s):
        return max(lem.count() for lem in s.lemmas() if fold(lem.name()) == t.lemma)

    top = max(count(s) for s in senses)
    return [s for s in senses if count(s) == top] if top > 0 else senses[:1]  # no counts: WordNet's first


def _dominant_pos(wn, word: str) -> str | None:
    """The part of speech in which a (one-word) lemma has the highest total tag count; None if unknown."""
    totals: dict[str, int] = {}
    for s in wn.synsets(word):
        pos = "ADJ" if s.pos() in ("a", "s") else {"n": "NOUN", "v": "VERB", "r": "ADV"}[s.pos()]
        n = sum(lem.count() for lem in s.lemmas() if fold(lem.name()) == word)
        totals[pos] = totals.get(pos, 0) + n
    return max(totals, key=totals.get) if totals and max(totals.values()) > 0 else None


def _why_not(wn, text: str, t: WordTag, min_zipf: float) -> str:
    """Why a candidate lemma is dropped ("" when it is kept)."""
    from wordfreq import zipf_frequency

    if (" " in text or "-" in text) and not (" " in t.lemma or "-" in t.lemma):
        return "a phrase for one word"
    if spelling_variant(text, t.lemma) or spelling_variant(text, t.word):
        return "spelling variant"
    if zipf_frequency(text, "en") < min_zipf:
        return f"rare (Zipf {zipf_frequency(text, 'en'):.1f})"
    dominant = _dominant_pos(wn, text)
    if dominant is not None and dominant != t.pos:
        return f"mostly {dominant.lower()}"
    return ""


def _filter(wn, lemmas, t: WordTag, min_zipf: float) -> tuple[list[str], list[str]]:
    """Candidate lemma names (lower case in WordNet, kept by :func:`_why_not`), by tag count,
    and the notes on those dropped."""
    from wordfreq import zipf_frequency

    best: dict[str, int] = {}
    dropped = []
    for lemma in lemmas:
        text = lemma.name().replace("_", " ")
        if lemma.name()[:1].isupper() or fold(text) in best or fold(text) in (t.lemma, fold(t.word)):
            continue
        why = _why_not(wn, text, t, min_zipf)
        if why:
            dropped.append(f"{text}: {why}")
        else:
            best[fold(text)] = max(best.get(fold(text), 0), lemma.count())
    ranked = sorted(best, key=lambda k: (-best[k], -zipf_frequency(k, "en"), k))
    return ranked, list(dict.fromkeys(dropped))


def _choose(wn, t: WordTag, names: Sequence[str], min_zipf: float, max_senses: int) -> _Choice:
    """The replacements of one title word, best first by tag count (or why it is kept)."""
    if t.pos == "keep":
        capitalised = [lem.name() for s in wn.synsets(fold(t.word)) for lem in s.lemmas()]
        proper = (
            t.why == "not in the lexicon"
            and t.word[:1].isupper()
            and any(n.lower() == fold(t.word) and n[:1].isupper() for n in capitalised)
        )
        return _Choice(t.word, kept=f"proper name ({t.why})" if proper else t.why, proper=proper)
    if fold(t.word) in names:
        return _Choice(t.word, kept="proper name (in the creator's name)", proper=True)
    n_senses = sum(len(wn.synsets(t.lemma, p)) for p in _WN_POS[t.pos])
    if n_senses > max_senses:
        return _Choice(t.word, kept=f"{n_senses} WordNet senses as {t.pos.lower()}: too many to pick one")
    senses = _senses(wn, t)
    if not senses:
        return _Choice(t.word, kept=f"not in WordNet as {t.pos.lower()}")
    names_ = ", ".join(s.name() for s in senses)
    mine = [lem for s in senses for lem in s.lemmas() if fold(lem.name()) == t.lemma]
    if all(lem.name()[:1].isupper() for lem in mine):
        return _Choice(t.word, sense=names_, kept=f"proper name ({names_})", proper=True)
    ranked, dropped = _filter(wn, (lem for s in senses for lem in s.lemmas()), t, min_zipf)
    how = f"{t.pos.lower()}, {t.why}: {names_}"
    inflected = [x for x in (_inflect(c, t.tag) for c in ranked) if x and fold(x) != fold(t.word)]
    if not inflected:
        note = f"; dropped {', '.join(dropped)}" if dropped else ""
        return _Choice(t.word, sense=names_, kept=f"no usable lemma in {names_}{note}")
    return _Choice(t.word, candidates=inflected, sense=how)


def _by_meaning(title: str, pieces: list, choices: list[_Choice], ranker: Ranker, min_cosine: float) -> None:
    """Re-rank each word's candidates by the meaning the title keeps with that word alone replaced,
    dropping those below ``min_cosine``."""
    for i, c in enumerate(choices):
        if not c.candidates:
            continue
        texts = [_render(pieces, choices, {i: cand}) for cand in c.candidates]
        scores = ranker(title, texts)
        kept = sorted(
            (s, k, cand)
            for k, (s, cand) in enumerate(zip(scores, c.candidates, strict=True))
            if s >= min_cosine
        )
        order = sorted(kept, key=lambda x: (-x[0], x[1]))
        if not order:
            c.kept = f"no candidate keeps the meaning (cosine < {min_cosine}: {', '.join(c.candidates)})"
            c.candidates = []
        else:
            c.candidates = [cand for _, _, cand in order]


def _render(pieces: list, choices: list[_Choice], picks: dict[int, str], drop_proper: bool = False) -> str:
    """The title with word i replaced by ``picks[i]`` (capitalised like it)."""
    text = ""
    for piece in pieces:
        if isinstance(piece, str):
            text += piece
        elif piece in picks:
            text += _cased_like(choices[piece].word, picks[piece])
        elif not (drop_proper and choices[piece].proper):
            text += choices[piece].word
    return re.sub(r"\s+", " ", text).strip()


def _split(title: str) -> tuple[list, list[str]]:
    """The title as text between words and word indices, and its words."""
    pieces: list = []
    words: list[str] = []
    pos = 0
    for match in TOKEN.finditer(title):
        pieces += [title[pos : match.start()], len(words)]
        words.append(match.group())
        pos = match.end()
    return pieces + [title[pos:]], words


def _variant(title, pieces, choices, k, drop, ranker, min_cosine) -> SynonymVariant:
    """The k-th variant: each word's k-th candidate; with a ranker, replacements that cost the most
    meaning are undone until the whole variant keeps ``min_cosine``."""
    picks = {i: c.candidates[min(k, len(c.candidates)) - 1] for i, c in enumerate(choices) if c.candidates}
    meaning = float("nan")
    while picks and ranker is not None:
        meaning = ranker(title, [_render(pieces, choices, picks, drop)])[0]
        if meaning >= min_cosine:
            break
        alone = {i: ranker(title, [_render(pieces, choices, {i: w}, drop)])[0] for i, w in picks.items()}
        del picks[min(alone, key=alone.get)]
    notes = []
    for i, c in enumerate(choices):
        if i in picks:
            notes.append(f"{c.word}→{_cased_like(c.word, picks[i])} ({c.sense})")
        elif c.candidates:
            notes.append(f"{c.word} kept (the whole variant would keep too little meaning)")
        else:
            notes.append(f"{c.word} {'dropped' if drop and c.proper else 'kept'} ({c.kept})")
    method = "; ".join(notes)
    if not picks:
        why = "no content word of the title has a synonym that keeps its meaning, is common and is not a spelling variant"
        return SynonymVariant(None, method, why, meaning)
    return SynonymVariant(_render(pieces, choices, picks, drop), method, "", meaning)


def synonym_variants(
    title: str,
    wn,
    *,
    n: int = 1,
    proper_names: str = "keep",
    creator: str | None = None,
    ranker: Ranker | None = None,
    min_zipf: float = 3.0,
    min_cosine: float = 0.65,
    max_senses: int = 20,
) -> list[SynonymVariant]:
    """``n`` synonym variants of a title (docs/method.md §5.1).

    Rules, word by word (words are runs of letters; numbers and punctuation are kept as written):

    - each word's **part of speech** comes from the title's grammar and the ``lemminflect``
      lexicon (:func:`~iconicity_utils.perturb.grammar.title_parts_of_speech`); function words,
      numbers and number words, adverbs, words of two letters or fewer are kept;
    - its **senses** are the most frequent WordNet senses of its lemma *within that part of
      speech* (the highest tag count, ``Lemma.count()``; those tied are pooled; with no count at all,
      WordNet's first); a word with more than ``max_senses`` senses there is kept (*go*, *play*: the
      title alone cannot pick one);
    - a **proper name** (a word of the creator's name, or a lemma capitalised in WordNet) is kept
      or dropped (``proper_names``);
    - the **candidates** are the senses' other lemmas that are lower case in WordNet (never an
      adjective cluster's: its words are related, not synonyms), less phrases for a one-word original (*female parent*),
      spelling variants of the word (same stem, prefix, or near spelling), words with a wordfreq
      Zipf frequency below ``min_zipf``, and words mostly used as another part of speech
      (*infinite* for *space*, *dark* for *night*, by WordNet tag counts),
      **inflected** like the word by ``lemminflect`` (plural, participle);
    - with a ``ranker`` (:func:`meaning_ranker`), candidates are ranked by the cosine of the title
      with that word replaced, those below ``min_cosine`` dropped; the whole variant must keep
      ``min_cosine`` too (the replacements that cost most are undone first); without one, by tag
      count, then Zipf frequency, then name;
    - the k-th variant uses each word's k-th candidate (its last if fewer); a variant equal to the
      title or to an earlier variant, or with no word changed, is missing, with the reason.

    Returns:
        ``n`` :class:`SynonymVariant`, in order (``synonym``, ``synonym-2``, ...).
    """
    if proper_names not in ("keep", "drop"):
        raise ValueError(f"unknown proper_names rule {proper_names!r}; expected 'keep' or 'drop'")
    names = creator_words(creator)
    pieces, words = _split(title)
    choices = [_choose(wn, t, names, min_zipf, max_senses) for t in title_parts_of_speech(words)]
    if ranker is not None:
        _by_meaning(title, pieces, choices, ranker, min_cosine)
    out: list[SynonymVariant] = []
    seen = {title}
    for k in range(1, n + 1):
        v = _variant(title, pieces, choices, k, proper_names == "drop", ranker, min_cosine)
        if v.prompt is not None and v.prompt in seen:
            why = "the title" if v.prompt == title else "an earlier synonym variant"
            v = SynonymVariant(None, v.method, f"no further synonym: it would repeat {why}", v.meaning)
        seen.add(v.prompt or title)
        out.append(v)
    return out
