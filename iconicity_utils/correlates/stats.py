"""Stage 06's statistics: Spearman ρ with bootstrap CIs and Benjamini-Hochberg (and the GLM, re-exported).

- :func:`spearman_table` (``correlates_spearman.parquet``): Spearman ρ of each covariate with each
  outcome (CRA; CRT and mean VR as secondary outcomes), per model and per kind (``static``,
  ``dynamic`` and ``all``), on the references where both are defined; scipy's p-value,
  Benjamini-Hochberg-adjusted within ``correlates.bh_family``; a percentile bootstrap CI over
  references (resamples with an undefined ρ are left out).
- :func:`glm_table` (``correlates_glm.parquet``): the binomial GLM, in
  :mod:`~iconicity_utils.correlates.glm` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from iconicity_utils.config.analysis import CORRELATE_OUTCOMES
from iconicity_utils.correlates.glm import GLM_TABLE, glm_table, ordered_models, vif
from iconicity_utils.score.tables import bh_adjust

__all__ = [
    "OUTCOME_LABELS",
    "SPEARMAN_TABLE",
    "GLM_TABLE",
    "as_floats",
    "spearman_ci",
    "count_mode_of",
    "spearman_table",
    "vif",
    "glm_table",
]

SPEARMAN_TABLE = "correlates_spearman.parquet"
OUTCOME_LABELS = {"cra": "CRA", "crt": "CRT", "vr_all": "VR (all images)"}
assert set(OUTCOME_LABELS) == set(CORRELATE_OUTCOMES)
#: the kinds a statistic is computed for: each kind, and both together
SCOPES = ("static", "dynamic", "all")


def as_floats(series) -> np.ndarray:
    """A column as float64 numpy (NA and non-numbers become NaN)."""
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


# --------------------------------------------------------------------------------------------
# Spearman with bootstrap CIs and BH
# --------------------------------------------------------------------------------------------


def spearman_ci(
    x, y, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float, float, int]:
    """Spearman ρ of paired values, scipy's p-value and a percentile bootstrap CI.

    Pairs with a NaN are left out.  The resamples are ``default_rng(seed).integers(0, n,
    (n_bootstrap, n))``, those of ``scipy.stats.bootstrap(..., paired=True, method="percentile")``,
    and the interval is scipy's (tested); a resample whose x or y is constant has no ρ and is
    left out (scipy would return NaN for the whole interval).

    Returns:
        ``(rho, p, ci_low, ci_high, n)``; NaNs when n < 3 or x or y is constant.
    """
    from scipy import stats

    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = int(x.size)
    nan = float("nan")
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return nan, nan, nan, nan, n
    res = stats.spearmanr(x, y)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
    rx = stats.rankdata(x[idx], axis=1)
    ry = stats.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho_b = (rx * ry).sum(axis=1) / den
    rho_b = rho_b[np.isfinite(rho_b)]
    alpha = (1 - level) / 2
    low, high = np.quantile(rho_b, [alpha, 1 - alpha]) if rho_b.size else (nan, nan)
    return float(res.statistic), float(res.pvalue), float(low), float(high), n


SPEARMAN_COLUMNS = [
    "outcome", "model", "variant", "kind", "feature", "count_mode", "n", "rho", "p", "p_bh", "ci_low", "ci_high",
    "n_bootstrap", "seed", "ci_level", "bh_family", "bh_family_size", "note",
]  # fmt: skip


def count_mode_of(feature: str) -> str:
    """The count mode a covariate counts (``title``, ``title_creator``, ..., ``exact``), or ``""``."""
    base = feature.removesuffix("_log10")
    if base == "caption_count":
        return "title"
    if base == "exact_caption_count":
        return "exact"
    return base.removeprefix("caption_count_") if base.startswith("caption_count_") else ""


def _undefined_note(x: np.ndarray, y: np.ndarray, n: int, outcome: str, feat: str) -> str:
    """Why a ρ is undefined: too few references, or a constant outcome or covariate."""
    ok = ~(np.isnan(x) | np.isnan(y))
    if n < 3:
        return "fewer than 3 references"
    if np.all(y[ok] == y[ok][0]):
        return f"{OUTCOME_LABELS[outcome]} is constant"
    return f"{feat} is constant"


def _spearman_rows(c, part, outcome: str, model: str, scope: str, feats: list[str]) -> list[dict[str, Any]]:
    """One row per covariate: ρ of the covariate with ``outcome`` over ``part``."""
    y = as_floats(part[outcome])
    rows = []
    for feat in feats:
        x = as_floats(part[feat])
        rho, p, lo, hi, n = spearman_ci(x, y, c.n_bootstrap, c.bootstrap_seed, c.ci_level)
        note = _undefined_note(x, y, n, outcome, feat) if np.isnan(rho) else ""
        rows.append(
            {
                "outcome": outcome, "model": model, "variant": c.variant, "kind": scope, "feature": feat,
                "count_mode": count_mode_of(feat), "n": n, "rho": rho, "p": p, "ci_low": lo, "ci_high": hi, "n_bootstrap": c.n_bootstrap,
                "seed": c.bootstrap_seed, "ci_level": c.ci_level, "bh_family": c.bh_family, "note": note,
            }
        )  # fmt: skip
    return rows


def spearman_table(cfg, data, features: Sequence[str] | None = None):
    """Spearman ρ of every covariate with every outcome, per model and kind (``static``, ``dynamic``, ``all``).

    ``features`` (the covariate columns) defaults to ``correlates.spearman_features``; columns the
    table lacks (e.g. page views when they are off, counts for ``source: none``) are left out.
    ``p_bh`` is Benjamini-Hochberg-adjusted over ``correlates.bh_family`` (every ρ of one outcome,
    or all; ``bh_family_size`` says how many): every count mode's ρ is in the family, so choosing a
    mode after the fact is paid for.  ``count_mode`` names the mode a caption count counts.
    """
    c = cfg.correlates
    wanted = list(features) if features is not None else list(c.spearman_features)
    feats = [f for f in wanted if f in data.columns and not data[f].isna().all()]
    rows = []
    for outcome in c.outcomes:
        for model in ordered_models(data["model"], cfg.models):
            for scope in SCOPES:
                part = data[data["model"] == model]
                if scope != "all":
                    part = part[part["kind"] == scope]
                if not part.empty:
                    rows += _spearman_rows(c, part, outcome, model, scope, feats)
    table = pd.DataFrame(
        rows, columns=[col for col in SPEARMAN_COLUMNS if col not in ("p_bh", "bh_family_size")]
    )
    table["p_bh"] = np.nan
    table["bh_family_size"] = 0
    if len(table):
        groups = (
            [np.arange(len(table))] if c.bh_family == "all" else table.groupby("outcome").indices.values()
        )
        for idx in groups:
            table.loc[table.index[idx], "p_bh"] = bh_adjust(table["p"].to_numpy()[idx])
            table.loc[table.index[idx], "bh_family_size"] = len(idx)
    table.attrs["left_out"] = [f for f in wanted if f not in feats]
    return table[SPEARMAN_COLUMNS]
