"""How much the frequency correlations depend on what is counted (stage 06, notebook 06).

:func:`mode_sensitivity`: Spearman ρ of each count mode's caption count
(:mod:`~iconicity_utils.correlates.modes`) with each outcome, per model, on every reference and
with the ambiguous titles left out (``caption_ambiguity`` above a threshold: most of their
captions carry neither the creator nor a context word).  :func:`caption_samples`: the matched
captions sampled per reference (or those only an alias matched), one row each, so that a reader
can judge what was counted.
:func:`normalisation_sensitivity`: the ``title`` count under both normalisations
(``correlates.frequency.normalise``), over the corpus's first captions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from iconicity_utils.core.io import read_table
from iconicity_utils.correlates.corpus import list_shards
from iconicity_utils.correlates.counting import count_table
from iconicity_utils.correlates.glm import ordered_models
from iconicity_utils.correlates.modes import COUNT_MODES
from iconicity_utils.correlates.scan import open_batches
from iconicity_utils.correlates.stats import as_floats, spearman_ci

__all__ = ["MODE_FEATURES", "mode_sensitivity", "caption_samples", "normalisation_sensitivity"]

#: the covariate column of each count mode
MODE_FEATURES = {m: "caption_count" if m == "title" else f"caption_count_{m}" for m in COUNT_MODES}
SENSITIVITY_COLUMNS = ["outcome", "model", "mode", "references", "n", "rho", "p", "ci_low", "ci_high"]


def _rows(c, part, outcome: str, model: str, subset: str) -> list[dict]:
    rows = []
    for mode, feature in MODE_FEATURES.items():
        if feature not in part.columns:
            continue
        rho, p, lo, hi, n = spearman_ci(
            as_floats(part[feature]), as_floats(part[outcome]), c.n_bootstrap, c.bootstrap_seed, c.ci_level
        )
        rows.append({"outcome": outcome, "model": model, "mode": mode, "references": subset, "n": n,
                     "rho": rho, "p": p, "ci_low": lo, "ci_high": hi})  # fmt: skip
    return rows


def mode_sensitivity(cfg, data, max_ambiguity: float = 0.5):
    """ρ of every count mode with every outcome, per model: all references, and the unambiguous ones.

    Args:
        data: the analysis table (:attr:`CorrelatesResult.data`: one row per model x reference).
        max_ambiguity: references whose ``caption_ambiguity`` exceeds it are left out of the
            ``unambiguous`` rows (a reference without matches has no ambiguity and stays).
    """
    c = cfg.correlates
    amb = (
        as_floats(data["caption_ambiguity"])
        if "caption_ambiguity" in data.columns
        else np.full(len(data), np.nan)
    )
    clear = data[~(amb > max_ambiguity)]
    rows = []
    for outcome in c.outcomes:
        for model in ordered_models(data["model"], cfg.models):
            rows += _rows(c, data[data["model"] == model], outcome, model, "all")
            rows += _rows(
                c, clear[clear["model"] == model], outcome, model, f"ambiguity <= {max_ambiguity:g}"
            )
    table = pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)
    table.attrs["left_out"] = sorted(set(data.loc[amb > max_ambiguity, "slug"]))
    return table


def caption_samples(counts, slugs=None, column: str = "caption_samples"):
    """The sampled captions of the counts table, one row each (``slug``, ``label_clean``, counts, ``caption``).

    ``column``: ``caption_samples`` (captions holding the title) or ``alias_samples`` (captions
    only an alias matched: the aliases' precision).

    Raises:
        KeyError: the counts table has no ``column`` (``alias_samples`` needs the ``aliases`` mode).
    """
    if column not in counts.columns:
        raise KeyError(
            f"the counts table has no {column!r} column (alias_samples needs 'aliases' in "
            "correlates.frequency.count_modes)"
        )
    count = "caption_count_aliases" if column == "alias_samples" else "caption_count"
    keep = ["slug", "label_clean", "caption_count", count, "caption_ambiguity", column]
    part = counts[[k for k in dict.fromkeys(keep) if k in counts.columns]]
    if slugs is not None:
        part = part[part["slug"].isin(list(slugs))]
    out = part.explode(column).rename(columns={column: "caption"})
    return out.dropna(subset=["caption"]).reset_index(drop=True)


def _first_captions(cfg, limit: int):
    """The caption column of the corpus's first ``limit`` rows (shard by shard, batch by batch: no
    more of a shard is read than the limit needs), and the rows the corpus has."""
    f = cfg.correlates.frequency
    column = f.caption_column
    parts, total, have = [], 0, 0
    for path in list_shards(cfg):
        meta = pq.ParquetFile(path).metadata
        total += meta.num_rows
        if have >= limit:
            continue
        size = max(1, min(f.batch_rows, limit - have))
        for batch in open_batches(path, column, range(meta.num_row_groups), size):
            parts.append(batch.slice(0, limit - have))
            have += len(parts[-1])
            if have >= limit:
                break
    return pa.chunked_array(parts or [pa.array([], pa.string())]).combine_chunks(), total


def normalisation_sensitivity(cfg, max_captions: int = 2_000_000):
    """The ``title`` count of every reference with punctuation kept (``exact``) and turned into
    spaces (``punctuation``), over the first ``max_captions`` captions of the corpus (all of a small one).

    Returns one row per reference: ``slug``, ``label_clean``, ``caption_count_exact``,
    ``caption_count_punctuation`` and ``ratio`` (punctuation / exact; NaN, with ``note``, when exact
    is 0); ``attrs`` says how many captions were read of how many.
    """
    f = cfg.correlates.frequency
    refs = read_table(cfg.references_table)
    captions, total = _first_captions(cfg, max_captions)
    titles = list(refs["label_clean"])
    exact = np.array(count_table(captions, titles, f.matcher, f.batch_rows, "exact")[0], dtype=float)
    punct = np.array(count_table(captions, titles, f.matcher, f.batch_rows, "punctuation")[0], dtype=float)
    out = refs[["slug", "label_clean"]].copy()
    out["caption_count_exact"] = exact.astype(int)
    out["caption_count_punctuation"] = punct.astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = np.where(exact > 0, punct / exact, np.nan)
    out["note"] = np.where(exact > 0, "", "no caption holds the title under exact normalisation")
    out.attrs["captions_read"] = len(captions)
    out.attrs["captions_in_corpus"] = total
    return out
