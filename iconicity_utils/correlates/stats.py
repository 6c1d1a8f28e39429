"""Stage 06's statistics: Spearman ρ with bootstrap CIs and Benjamini-Hochberg, and a binomial GLM.

- :func:`spearman_table` (``correlates_spearman.parquet``): Spearman ρ of each covariate with each
  outcome (CRA; CRT and mean VR as secondary outcomes), per model and per kind (``static``,
  ``dynamic`` and ``all``), on the references where both are defined; scipy's p-value,
  Benjamini-Hochberg-adjusted within ``correlates.bh_family``; a percentile bootstrap CI over
  references (resamples with an undefined ρ are left out).
- :func:`glm_table` (``correlates_glm.parquet``): a binomial GLM (statsmodels) of recognised
  images out of ``n_images``, with standardised predictors (z-scores over the references in the
  fit), one fit per model and a pooled fit with model effects; coefficients with Wald CIs, n and
  the variance inflation factor of every predictor.  A fit that cannot be made (every image
  recognised, too few references, a constant predictor) says why in ``note``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from iconicity_utils.config.sections import CORRELATE_OUTCOMES

__all__ = [
    "OUTCOME_LABELS",
    "SPEARMAN_TABLE",
    "GLM_TABLE",
    "as_floats",
    "spearman_ci",
    "bh_adjust",
    "spearman_table",
    "vif",
    "glm_table",
]

SPEARMAN_TABLE = "correlates_spearman.parquet"
GLM_TABLE = "correlates_glm.parquet"
OUTCOME_LABELS = {"cra": "CRA", "crt": "CRT", "vr_all": "VR (all images)"}
assert set(OUTCOME_LABELS) == set(CORRELATE_OUTCOMES)
#: the kinds a statistic is computed for: each kind, and both together
SCOPES = ("static", "dynamic", "all")


def as_floats(series) -> np.ndarray:
    """A column as float64 numpy (NA and non-numbers become NaN)."""
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


def _ordered(values, preferred: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(values))
    return [m for m in preferred if m in present] + sorted(m for m in present if m not in preferred)


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


def bh_adjust(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``); NaN stays NaN."""
    from scipy import stats

    p = np.asarray(p, dtype="float64")
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


SPEARMAN_COLUMNS = [
    "outcome", "model", "variant", "kind", "feature", "n", "rho", "p", "p_bh", "ci_low", "ci_high",
    "n_bootstrap", "seed", "ci_level", "bh_family", "note",
]  # fmt: skip


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
                "n": n, "rho": rho, "p": p, "ci_low": lo, "ci_high": hi, "n_bootstrap": c.n_bootstrap,
                "seed": c.bootstrap_seed, "ci_level": c.ci_level, "bh_family": c.bh_family, "note": note,
            }
        )  # fmt: skip
    return rows


def spearman_table(cfg, data, features: Sequence[str] | None = None):
    """Spearman ρ of every covariate with every outcome, per model and kind (``static``, ``dynamic``, ``all``).

    ``features`` (the covariate columns) defaults to ``correlates.spearman_features``; columns the
    table lacks (e.g. page views when they are off, counts for ``source: none``) are left out.
    ``p_bh`` is Benjamini-Hochberg-adjusted over ``correlates.bh_family`` (every ρ of one outcome,
    or all).
    """
    c = cfg.correlates
    wanted = list(features) if features is not None else list(c.spearman_features)
    feats = [f for f in wanted if f in data.columns and not data[f].isna().all()]
    rows = []
    for outcome in c.outcomes:
        for model in _ordered(data["model"], cfg.models):
            for scope in SCOPES:
                part = data[data["model"] == model]
                if scope != "all":
                    part = part[part["kind"] == scope]
                if not part.empty:
                    rows += _spearman_rows(c, part, outcome, model, scope, feats)
    table = pd.DataFrame(rows, columns=[col for col in SPEARMAN_COLUMNS if col != "p_bh"])
    table["p_bh"] = np.nan
    if len(table):
        groups = (
            [np.arange(len(table))] if c.bh_family == "all" else table.groupby("outcome").indices.values()
        )
        for idx in groups:
            table.loc[table.index[idx], "p_bh"] = bh_adjust(table["p"].to_numpy()[idx])
    table.attrs["left_out"] = [f for f in wanted if f not in feats]
    return table[SPEARMAN_COLUMNS]


# --------------------------------------------------------------------------------------------
# Binomial GLM with VIFs
# --------------------------------------------------------------------------------------------


def vif(design, columns: Sequence[str]) -> dict[str, float]:
    """Variance inflation factors of ``columns`` of a design DataFrame (which holds the constant).

    statsmodels' ``variance_inflation_factor``: ``1 / (1 - R²)`` of each column regressed on all
    the others.
    """
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    values = design.to_numpy(dtype="float64")
    names = list(design.columns)
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for col in columns:
            out[col] = float(variance_inflation_factor(values, names.index(col)))
    return out


GLM_COLUMNS = [
    "fit", "model", "variant", "term", "coef", "se", "z", "p", "ci_low", "ci_high", "vif",
    "predictor_mean", "predictor_sd", "n_refs", "n_rows", "n_images", "n_recognised", "converged",
    "ci_level", "note",
]  # fmt: skip


def _usable_rows(part, predictors: Sequence[str], notes: list[str]):
    """``(complete rows, predictors kept)``: predictors with values, rows with every one, no constant."""
    usable = []
    for p in predictors:
        if p not in part.columns or part[p].isna().all():
            notes.append(f"{p}: no values, left out")
        else:
            usable.append(p)
    frame = part.copy()
    for p in usable:
        frame[p] = as_floats(frame[p])
    complete = frame.dropna(subset=usable) if usable else frame
    if len(complete) < len(frame):
        notes.append(f"{len(frame) - len(complete)} row(s) with a missing predictor left out")
    kept = []
    for p in usable:
        if complete[p].nunique() < 2:
            notes.append(f"{p}: constant, left out")
        else:
            kept.append(p)
    return complete, kept


def _design(complete, kept: list[str], dummies: dict[str, Any]):
    """``(design, means, sds)``: the constant, the standardised predictors and the varying dummies."""
    means = {p: float(complete[p].mean()) for p in kept}
    sds = {p: float(complete[p].std(ddof=1)) for p in kept}
    design = pd.DataFrame({"const": np.ones(len(complete))}, index=complete.index)
    for p in kept:
        design[p] = (complete[p] - means[p]) / sds[p]
    for name, column in dummies.items():
        values = column.loc[complete.index].astype("float64")
        if values.nunique() > 1:
            design[name] = values
    return design, means, sds


def _fitted_rows(res, design, base: dict, means: dict, sds: dict, notes: list[str], level: float):
    """One row per term of a fitted GLM: coefficient, SE, z, p, Wald CI, VIF."""
    terms = list(design.columns)
    ci = res.conf_int(alpha=1 - level)
    vifs = vif(design, [t for t in terms if t != "const"]) if len(terms) > 2 else {t: 1.0 for t in terms[1:]}
    return [
        {
            **base, "term": t, "coef": float(res.params[t]), "se": float(res.bse[t]), "z": float(res.tvalues[t]),
            "p": float(res.pvalues[t]), "ci_low": float(ci.loc[t, 0]), "ci_high": float(ci.loc[t, 1]),
            "vif": vifs.get(t, np.nan), "predictor_mean": means.get(t, np.nan), "predictor_sd": sds.get(t, np.nan),
            "converged": bool(res.converged), "note": "; ".join(notes),
        }
        for t in terms
    ]  # fmt: skip


def _glm_fit(part, predictors: Sequence[str], dummies: dict[str, Any], level: float) -> list[dict[str, Any]]:
    """One binomial GLM of ``n_recognised`` out of ``n_images``; one row per term."""
    import statsmodels.api as sm

    notes: list[str] = []
    complete, kept = _usable_rows(part, predictors, notes)
    design, means, sds = _design(complete, kept, dummies)
    succ = complete["n_recognised"].to_numpy(dtype="float64")
    trials = complete["n_images"].to_numpy(dtype="float64")
    base = {
        "n_refs": int(complete["slug"].nunique()) if len(complete) else 0,
        "n_rows": len(complete),
        "n_images": int(trials.sum()),
        "n_recognised": int(succ.sum()),
        "ci_level": level,
    }
    terms = list(design.columns)

    def empty(reason: str) -> list[dict[str, Any]]:
        return [
            {**base, "term": t, "converged": False, "note": "; ".join([*notes, reason]),
             "predictor_mean": means.get(t, np.nan), "predictor_sd": sds.get(t, np.nan)}
            for t in terms
        ]  # fmt: skip

    if len(complete) <= len(terms):
        return empty(f"{len(complete)} rows for {len(terms)} terms: not estimable")
    if succ.sum() == 0 or succ.sum() == trials.sum():
        return empty(
            "outcome constant: " + ("no image recognised" if succ.sum() == 0 else "every image recognised")
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            endog = np.column_stack([succ, trials - succ])
            res = sm.GLM(endog, design, family=sm.families.Binomial()).fit()
        except (np.linalg.LinAlgError, ValueError) as exc:
            return empty(f"fit failed: {type(exc).__name__}: {exc}")
    notes += sorted(
        {f"{type(w.message).__name__}: {w.message}" for w in caught if issubclass(w.category, Warning)}
    )
    return _fitted_rows(res, design, base, means, sds, notes, level)


def glm_table(cfg, data):
    """Binomial GLMs of recognised images out of n: one per model, and one pooled with model effects.

    Predictors are ``correlates.glm.predictors``, each standardised over the rows of its fit
    (``predictor_mean`` and ``predictor_sd`` undo it); ``kind_static`` (1 for static references)
    joins when ``correlates.glm.kind_effect`` is set; the pooled fit adds ``model_<id>`` indicators
    against the first model.  Rows with a missing predictor are left out, and ``note`` says how many.
    """
    g = cfg.correlates.glm
    models = _ordered(data["model"], cfg.models)
    rows = []
    kind = {"kind_static": (data["kind"] == "static").astype(int)} if g.kind_effect else {}
    for model in models:
        part = data[data["model"] == model]
        for r in _glm_fit(part, g.predictors, {k: v.loc[part.index] for k, v in kind.items()}, g.ci_level):
            rows.append({"fit": "per_model", "model": model, "variant": cfg.correlates.variant, **r})
    if len(models) > 1:
        dummies = {f"model_{m}": (data["model"] == m).astype(int) for m in models[1:]}
        for r in _glm_fit(data, g.predictors, {**kind, **dummies}, g.ci_level):
            rows.append({"fit": "pooled", "model": "pooled", "variant": cfg.correlates.variant, **r})
    table = pd.DataFrame(rows)
    for col in GLM_COLUMNS:
        if col not in table.columns:
            table[col] = np.nan
    return table[GLM_COLUMNS]
