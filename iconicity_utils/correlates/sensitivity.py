"""How much the frequency correlations depend on what is counted (stage 06, notebook 06).

:func:`mode_sensitivity`: Spearman ρ of each count mode's caption count
(:mod:`~iconicity_utils.correlates.modes`) with each outcome, per model, on every reference and
with the ambiguous titles left out (``caption_ambiguity`` above a threshold: most of their
captions carry neither the creator nor a context word).  :func:`caption_samples`: the matched
captions sampled per reference, one row each, so that a reader can judge what was counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iconicity_utils.correlates.glm import ordered_models
from iconicity_utils.correlates.modes import COUNT_MODES
from iconicity_utils.correlates.stats import as_floats, spearman_ci

__all__ = ["MODE_FEATURES", "mode_sensitivity", "caption_samples"]

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


def caption_samples(counts, slugs=None):
    """The sampled captions of the counts table, one row each (``slug``, ``label_clean``, counts, ``caption``)."""
    keep = ["slug", "label_clean", "caption_count", "caption_ambiguity", "caption_samples"]
    part = counts[[k for k in keep if k in counts.columns]]
    if slugs is not None:
        part = part[part["slug"].isin(list(slugs))]
    out = part.explode("caption_samples").rename(columns={"caption_samples": "caption"})
    return out.dropna(subset=["caption"]).reset_index(drop=True)
