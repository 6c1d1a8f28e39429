"""The other names of each work, for the ``aliases`` count mode (stage 06, docs/method.md §6.2).

Stage 01 writes ``aliases`` in the references table: per reference a list of English
``skos:altLabel`` and P1476 (original-language title) strings, cleaned, without the label itself.
:func:`reference_aliases` reads them (a clear error when the column is missing: the table predates
it, re-run stage 01) and marks each alias *weak* or not (:func:`alias_is_weak`), following
``correlates.frequency.alias_rule``:

- ``evidence_if_common`` (default): an alias is weak when its wordfreq Zipf frequency (English;
  for a phrase, wordfreq's combination of its words) is at least ``alias_common_zipf``, or when it
  is a part of the title (the title shortened: "Starry Night" of *The Starry Night*, "Scream" of
  *The Scream*, more generic than the title itself).  "Face Off" (Zipf 5.3) and "A New Hope" are
  common phrases that would flood the count; "La Gioconda" (1.8), "Amelie" (2.5) and "七人の侍"
  (0) are not;
- ``always``: no alias is weak; ``evidence``: every alias is weak.

A weak alias counts only in a caption that also holds the creator's surname or the work's year
(:func:`~iconicity_utils.correlates.modes.alias_hits`); a kind word (poster, print, still) is no
evidence for it, since product captions carry them ("vintage face off print").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import wordfreq

from iconicity_utils.correlates.normalise import normalise_texts

__all__ = ["ALIAS_RULES", "alias_is_weak", "reference_aliases"]

#: ``correlates.frequency.alias_rule``
ALIAS_RULES = ("evidence_if_common", "always", "evidence")


def alias_is_weak(
    alias: str,
    rule: str = ALIAS_RULES[0],
    common_zipf: float = 4.0,
    title: str | None = None,
    lang: str = "en",
) -> bool:
    """Does ``alias`` (of the work called ``title``) count only with evidence, under ``rule`` (:data:`ALIAS_RULES`)?"""
    if rule not in ALIAS_RULES:
        raise ValueError(
            f"unknown alias_rule {rule!r} (correlates.frequency.alias_rule); expected {list(ALIAS_RULES)}"
        )
    if rule == "always":
        return False
    if rule == "evidence":
        return True
    if title is not None:
        a, t = normalise_texts([alias, title])
        if a and re.search(r"(?<!\w)" + re.escape(a) + r"(?!\w)", t):
            return True
    return wordfreq.zipf_frequency(alias, lang) >= common_zipf


def _alias_list(value, slug: str, table) -> tuple[str, ...]:
    """One cell of ``aliases`` as a tuple of strings (None / pd.NA / NaN: no alias); a clear error otherwise."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{table}: row {slug!r}: 'aliases' must be a list of strings, got {value!r}")
    bad = [a for a in value if not isinstance(a, str)]
    if bad:
        raise TypeError(f"{table}: row {slug!r}: 'aliases' holds {bad[0]!r}, not a string")
    return tuple(a for a in value if a.strip())


def reference_aliases(cfg, refs) -> tuple[list[tuple[str, ...]], list[tuple[bool, ...]]]:
    """Per reference of ``refs`` (stage 01's table): its aliases, and per alias whether it is weak.

    Raises:
        KeyError: the references table has no ``aliases`` column (names the table and the fix).
        TypeError: a cell is not a list of strings (names the row and the value).
    """
    f = cfg.correlates.frequency
    table = cfg.references_table
    if "aliases" not in refs.columns:
        raise KeyError(
            f"{table} has no 'aliases' column, which the 'aliases' count mode needs "
            "(correlates.frequency.count_modes): the table predates it; re-run stage 01 "
            f"(python -m iconicity_utils collect --config {cfg.source}), or leave 'aliases' out of count_modes"
        )
    names = [_alias_list(v, s, table) for s, v in zip(refs["slug"], refs["aliases"], strict=True)]
    weak = [
        tuple(alias_is_weak(a, f.alias_rule, f.alias_common_zipf, title) for a in row)
        for row, title in zip(names, refs["label_clean"], strict=True)
    ]
    return names, weak
