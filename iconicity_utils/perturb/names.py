"""Does a literal description name someone?  The named-someone check of stage 05 (docs/method.md §5.1).

:func:`named_words` finds, offline, the words of a description that name a person, a character, a
deity or another individual: the names of the reference's ``named_subjects`` (stage 01), WordNet's
names of persons, and capitalised words WordNet does not know; :func:`subject_labels` reads the
``named_subjects`` cells.  No spaCy model is needed: WordNet (:mod:`~iconicity_utils.perturb.wordnet`)
is the lexicon, capitals the cue.
"""

from __future__ import annotations

import re
from typing import Any

from iconicity_utils.perturb.words import FUNCTION_WORDS, NAME_EPITHETS, NAME_PARTICLES, cell_items, fold

__all__ = ["PERSON_TYPES", "subject_labels", "is_common_word", "is_individual_name", "named_words"]

#: a word of a description with its position: letters with inner apostrophes or hyphens
_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
#: an item of ``named_subjects``: ``label (Qid: type)``
_SUBJECT = re.compile(r"^(.*?)\s*(?:\(Q\d+(?::\s*([^)]*))?\))?$")
#: types of a named subject (the last word of its stage 01 type) that make it someone: its common
#: name words (*Rose*, *Death*) count too, when written with a capital
PERSON_TYPES = frozenset(
    ("human", "person", "character", "deity", "god", "goddess", "saint", "angel", "personification",
     "figure", "hero", "heroine", "prophet", "apostle", "king", "queen", "emperor", "monarch")
)  # fmt: skip
#: ``'s`` of a possessive
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)


def _subjects(value: Any) -> list[tuple[str, str]]:
    """``(label, type)`` of each item of a ``named_subjects`` cell (:func:`~iconicity_utils.perturb.words.cell_items`)."""
    out = []
    for item in cell_items(value):
        m = _SUBJECT.match(item)
        label, kind = (m.group(1), m.group(2) or "") if m else (item, "")
        if label.strip():
            out.append((label.strip(), kind.strip()))
    return out


def subject_labels(value: Any) -> list[str]:
    """The labels of a ``named_subjects`` cell: ``"Jesus (Q302: human)"`` ->
    ``Jesus``; a list, an array or a ``;``-separated string; None or NaN -> []."""
    return [label for label, _ in _subjects(value)]


def is_common_word(word: str, wn) -> bool:
    """Whether WordNet knows ``word`` as a common (lower-case) word in some part of speech:
    *moon*, *liberty*, *jack* are; *Jesus*, *Venus*, *Marianne* are not."""
    w = fold(word)
    for pos in ("n", "v", "a", "r"):
        base = wn.morphy(w, pos)
        if base is None:
            continue
        for synset in wn.synsets(base, pos):
            if any(lemma.name().lower() == base and lemma.name().islower() for lemma in synset.lemmas()):
                return True
    return False


def _known(word: str, wn) -> bool:
    """Whether WordNet has the word at all (any case, any part of speech)."""
    w = fold(word)
    return any(wn.morphy(w, pos) for pos in ("n", "v", "a", "r"))


def is_individual_name(word: str, wn, *, capital: bool) -> bool:
    """Whether WordNet's most frequent noun sense of the word is a named individual (an instance:
    *Jesus*, *Venus*, *Paris*, *Moon*) and the word is used as its name: it has no common
    lower-case sense (not *Moon*), or it is written with a capital and that sense is a person
    (*Napoleon*, not *napoleon* the pastry)."""
    synsets = wn.synsets(fold(word), "n")
    if not synsets or not synsets[0].instance_hypernyms():
        return False
    if not is_common_word(word, wn):
        return True
    return capital and synsets[0].lexname() == "noun.person"


def _subject_words(named_subjects: Any, wn) -> tuple[set[str], set[str]]:
    """``(names, capitalised)``: the name words of the named subjects that are no common word (folded),
    and the common ones of subjects that are someone (:data:`PERSON_TYPES`: *Rose* of Rose DeWitt
    Bukater, a fictional character; not *Moon*, a natural satellite)."""
    skip = FUNCTION_WORDS | NAME_PARTICLES | NAME_EPITHETS
    names: set[str] = set()
    capitalised: set[str] = set()
    for label, kind in _subjects(named_subjects):
        someone = bool(kind.split()) and fold(kind.split()[-1]) in PERSON_TYPES
        for word in _WORD.findall(label):
            w = fold(_POSSESSIVE.sub("", word))
            if len(w) < 2 or w in skip:
                continue
            if not is_common_word(w, wn):
                names.add(w)
            elif someone:
                capitalised.add(w)
    return names, capitalised


def _is_name(word: str, capital: bool, subjects: tuple[set[str], set[str]], wn) -> bool:
    w = fold(word)
    if w in subjects[0] or (capital and w in subjects[1]):
        return True
    if is_individual_name(w, wn, capital=capital):
        return True
    return capital and not _known(w, wn)


def named_words(prompt: str, named_subjects: Any, wn) -> list[str]:
    """The words of ``prompt`` that name someone, as written, in order.

    A word names someone (a person, a character, a deity, or another named individual such as a
    place) when, folded and without a possessive ``'s``:

    1. it is a word of a label of the reference's ``named_subjects`` that is no common English
       word (:func:`is_common_word`: *Marianne*, *Corleone*; not *Moon*), in any case, or a common
       one (*Rose*) of a subject that is someone (:data:`PERSON_TYPES`) written with a capital;
    2. it names an individual in WordNet (:func:`is_individual_name`: *Jesus*, *Venus*, *Paris*,
       *Napoleon* with a capital; not *the Moon*, *a napoleon*);
    3. it is written with a capital and WordNet does not know it (*Skywalker*, *Kanagawa*);
    4. it is written with a capital next to a word named by 1-3, with only spaces (and name
       particles) between: *Jack* in *Jack Dawson*, *Titanic* in *RMS Titanic*.

    Function words, name particles and epithets are never names.  Known misses: a name that is
    also a common word, alone, of no named subject (*Rose*, *Death* as a character).
    """
    skip = FUNCTION_WORDS | NAME_PARTICLES | NAME_EPITHETS
    subjects = _subject_words(named_subjects, wn)
    matches = list(_WORD.finditer(prompt))
    words = [(_POSSESSIVE.sub("", m.group()), m.group()[:1].isupper()) for m in matches]
    gaps = [prompt[a.end() : b.start()] for a, b in zip(matches, matches[1:], strict=False)]
    named = [
        fold(w) not in skip and len(w) > 1 and _is_name(w, capital, subjects, wn) for w, capital in words
    ]
    _extend_runs(words, gaps, named, skip)
    out: list[str] = []
    for (word, _), hit in zip(words, named, strict=True):
        if hit and word not in out:
            out.append(word)
    return out


def _extend_runs(words: list[tuple[str, bool]], gaps: list[str], named: list[bool], skip: frozenset) -> None:
    """Rule 4: a capitalised word joined by spaces (and particles) to a name is one."""
    changed = True
    while changed:
        changed = False
        for i, (word, capital) in enumerate(words):
            if named[i] or not capital or fold(word) in skip:
                continue
            for step in (-1, 1):
                j = i + step
                while 0 <= j < len(words) and fold(words[j][0]) in NAME_PARTICLES:
                    j += step
                lo, hi = min(i, j), max(i, j)
                if 0 <= j < len(words) and named[j] and not "".join(gaps[lo:hi]).strip():
                    named[i] = changed = True
                    break
