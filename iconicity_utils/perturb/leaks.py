"""The leak check of stage 05 (docs/method.md §5.2): a variant must not give the title away.

:func:`leak_words` lists the words a variant of a title must not contain (its distinctive words
and the creator's name); :func:`find_leaks` finds them in a prompt, through WordNet base forms and
spelling variants of its words, and in the words CLIP's tokenizer reads
(:mod:`~iconicity_utils.perturb.clip_bpe`).  :func:`flag_rows` sets the flags of prompts-table rows
(missing, leaking, naming someone, in the comparison) by one rule, for the iconic references'
rows (:mod:`~iconicity_utils.perturb.prompts`) and the controls' (:mod:`~iconicity_utils.perturb.controls`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import BASE_VARIANT, RESEED_VARIANT
from iconicity_utils.perturb.clip_bpe import bpe_contains, clip_words
from iconicity_utils.perturb.words import (
    FUNCTION_WORDS,
    base_forms,
    creator_words,
    fold,
    spelling_variant,
    tokens,
)

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = ["LEAK_MATCHES", "leak_words", "find_leaks", "flag_rows"]

#: how leak words are matched (``perturbation.leak_match``): ``words`` (word forms and spelling
#: variants) or ``words+clip_bpe`` (and the words CLIP's BPE tokenizer reads)
LEAK_MATCHES = ("words+clip_bpe", "words")


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


def find_leaks(
    prompt: str, words: Sequence[str], wn, *, match: str = "words+clip_bpe", max_zipf: float = 5.0
) -> list[str]:
    """The leak ``words`` that ``prompt`` contains, sorted.

    - **word forms** (both ``match`` rules): the prompt's words (:func:`~iconicity_utils.perturb.words.tokens`)
      compared after folding to lower case without accents, through their WordNet base forms in every
      part of speech (``kissing`` leaks *kiss*, ``Nights`` leaks *night*), and as spelling variants
      (:func:`~iconicity_utils.perturb.words.spelling_variant`: *Gipsy* leaks *gypsy*, *Embassadors*
      leaks *ambassadors*, *Warfares* and *StarWars* leak *wars*), the prompt's word or base form
      matching only when it is not common itself (wordfreq Zipf below ``max_zipf``, the cut-off
      of :func:`leak_words`): *stars* (base form *star*) does not leak *starry*, as *Star* does not
      leak *Star Wars*;
    - **CLIP BPE** (``match="words+clip_bpe"``): the words CLIP's tokenizer reads
      (:func:`~iconicity_utils.perturb.clip_bpe.clip_words`), by
      :func:`~iconicity_utils.perturb.clip_bpe.bpe_contains`: a leak word of one BPE token as a
      whole word, one of several tokens also inside a word (*theguernicapainting* leaks *guernica*).
    """
    if match not in LEAK_MATCHES:
        raise ValueError(f"unknown leak match rule {match!r}; expected one of {list(LEAK_MATCHES)}")
    targets: dict[str, str] = {}
    for word in words:
        for form in base_forms(word, wn):
            targets.setdefault(form, word)
    from wordfreq import zipf_frequency

    hits = set()
    for token in tokens(prompt):
        for form in base_forms(token, wn):
            if form in targets:
                hits.add(targets[form])
            elif not form.isdigit() and zipf_frequency(form, "en") < max_zipf:
                hits.update(w for t, w in targets.items() if not t.isdigit() and spelling_variant(form, t))
    if match == "words+clip_bpe":
        read = clip_words(prompt)
        hits.update(w for w in words if bpe_contains(read, w))
    return sorted(hits)


def flag_rows(df: pd.DataFrame, creators: Mapping[str, Any], cfg: StudyConfig, wn) -> pd.DataFrame:
    """The flags of prompts-table rows (``slug, variant, title, prompt`` [, ``named_words``, ``standin``]):
    ``status`` (``ok``, or ``missing`` without a prompt), ``standin``, ``leak_words`` and ``leak``
    (:func:`leak_words` of the row's title and its slug's creator in ``creators``, found by
    :func:`find_leaks`; a title and its re-seeded copy are not checked), ``named_words`` and
    ``named`` (as :func:`~iconicity_utils.perturb.literal.literal_rows` found them; none elsewhere),
    and ``in_comparison``: ok, and neither leaking nor naming someone unless ``exclude_leaks`` /
    ``exclude_named`` is off.  Returns ``df`` with the flags set."""
    p = cfg.perturbation
    df["status"] = np.where(df["prompt"].isna(), "missing", "ok")
    df["standin"] = df["standin"].eq(True) if "standin" in df else False
    df["leak_words"] = [
        [] if variant in (BASE_VARIANT, RESEED_VARIANT) or status != "ok"
        else find_leaks(prompt, leak_words(title, creators[slug], mode=p.leak_words, max_zipf=p.leak_max_zipf),
                        wn, match=p.leak_match, max_zipf=p.leak_max_zipf)
        for slug, variant, title, prompt, status in zip(
            df["slug"], df["variant"], df["title"], df["prompt"], df["status"], strict=True
        )
    ]  # fmt: skip
    df["leak"] = [bool(w) for w in df["leak_words"]]
    df["named_words"] = [w if isinstance(w, list) else [] for w in df.get("named_words", [None] * len(df))]
    df["named"] = [bool(w) for w in df["named_words"]]
    df["in_comparison"] = (
        (df["status"] == "ok") & ~(df["leak"] & p.exclude_leaks) & ~(df["named"] & p.exclude_named)
    )
    return df
