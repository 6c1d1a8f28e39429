"""The leak check of stage 05 (docs/method.md §5.2): a variant must not give the title away.

:func:`leak_words` lists the words a variant of a title must not contain (its distinctive words
and the creator's name); :func:`find_leaks` finds them in a prompt, through WordNet base forms.
"""

from __future__ import annotations

from collections.abc import Sequence

from iconicity_utils.perturb.words import (
    FUNCTION_WORDS,
    base_forms,
    creator_words,
    fold,
    spelling_variant,
    tokens,
)

__all__ = ["leak_words", "find_leaks"]


def leak_words(
    title: str,
    creator: str | None,
    *,
    mode: str = "rare",
    max_zipf: float = 5.0,
) -> list[str]:
    """The words a variant of ``title`` must not contain (folded to lower case without accents).

    - the title's **distinctive words**: with ``mode="rare"``, its content words (not function
      words, at least two letters) whose wordfreq Zipf frequency in English is below
      ``max_zipf`` (5.0 is 100 occurrences per million words: *starry* 3.2 and *scream* 4.1 are
      distinctive, *night* 5.6 is not), with ``mode="content"`` every content word; numbers always;
    - the **creator's name** words of :func:`~iconicity_utils.perturb.words.creator_words`: the
      surname and distinctive given names, never function words, particles or epithets.
    """
    from wordfreq import zipf_frequency

    if mode not in ("rare", "content"):
        raise ValueError(f"unknown leak word rule {mode!r}; expected 'rare' or 'content'")
    out = []
    for word in tokens(title):
        w = fold(word)
        if w.isdigit():
            keep = True
        else:
            content = w not in FUNCTION_WORDS and len(w) > 1
            keep = content and (mode == "content" or zipf_frequency(w, "en") < max_zipf)
        if keep and w not in out:
            out.append(w)
    return out + [w for w in creator_words(creator) if w not in out]


def find_leaks(prompt: str, words: Sequence[str], wn) -> list[str]:
    """The leak ``words`` that ``prompt`` contains, sorted: words compared after folding to lower
    case without accents, through their WordNet base forms in every part of speech (``kissing``
    leaks *kiss*, ``Nights`` leaks *night*), and as spelling variants
    (:func:`~iconicity_utils.perturb.words.spelling_variant`: *Gipsy* leaks *gypsy*,
    *Embassadors* leaks *ambassadors*, *Warfares* leaks *wars*)."""
    targets: dict[str, str] = {}
    for word in words:
        for form in base_forms(word, wn):
            targets.setdefault(form, word)
    hits = set()
    for token in tokens(prompt):
        for form in base_forms(token, wn):
            if form in targets:
                hits.add(targets[form])
            elif not form.isdigit():
                hits.update(w for t, w in targets.items() if not t.isdigit() and spelling_variant(form, t))
    return sorted(hits)
