"""Stage 06's binomial GLM of recognised images out of n, with errors that say what they assume.

:func:`glm_table` (``correlates_glm.parquet``): statsmodels' binomial GLM of ``n_recognised`` out
of ``n_images`` with standardised predictors (z-scores over the rows of the fit).  Fits (column
``fit``):

- ``per_model``: one per model, with ``kind_static`` when ``correlates.glm.kind_effect``;
- ``pooled``: every model at once, with ``model_<id>`` indicators against the first model;
- ``per_kind``: one per model and kind (``correlates.glm.per_kind``; column ``kind``), since year
  and kind are confounded (paintings are old, films are not);
- ``combined_per_model`` and ``combined_pooled`` (``correlates.glm.collinearity: combine``): the
  popularity predictors (``correlates.glm.popularity``: caption counts, sitelinks, page views are
  collinear) replaced by one score, ``popularity``, the mean of their z-scores.

Errors (column ``errors``): ``quasi`` scales the binomial variance by Pearson χ² / residual df
(overdispersion: references differ by more than binomial noise); ``cluster`` is the sandwich
clustered by reference (the pooled fit repeats each reference once per model); ``model`` is the
plain binomial (scale 1).  With ``correlates.glm.per_count_mode`` every fit is repeated once per
count mode (column ``count_mode``), ``caption_count_log10`` replaced by that mode's count; a mode
whose count is already a predictor is not fitted (``attrs["skipped_count_modes"]`` says so).
``p_adjusted`` is Benjamini-Hochberg over the count modes of one coefficient (``bh_family``): the
same fit, model, kind, errors and term (the count term one term whichever mode), so that choosing
a mode after the fact is paid for.  ``dispersion`` (Pearson χ² / df) is reported for every fit.  Separation
(fitted probabilities of 0 or 1: coefficients that run off) is detected and named in
``separation`` and ``note``; no Firth correction is made.  Every row has the variance inflation
factor of its term.  A fit that cannot be made says why in ``note``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from iconicity_utils.score.tables import bh_adjust

__all__ = [
    "GLM_TABLE",
    "GLM_COLUMNS",
    "ERROR_LABELS",
    "POPULARITY_TERM",
    "TITLE_COUNT",
    "vif",
    "ordered_models",
    "glm_fit",
    "glm_table",
]

GLM_TABLE = "correlates_glm.parquet"
#: what each ``errors`` value means (the table's ``errors`` column holds the key)
ERROR_LABELS = {
    "model": "binomial, scale fixed at 1",
    "quasi": "quasi-binomial: scale = Pearson chi2 / residual df",
    "cluster": "cluster-robust sandwich, clustered by reference",
}
#: the term that replaces the popularity predictors in the ``combined_*`` fits
POPULARITY_TERM = "popularity"
#: the caption-count predictor of the ``title`` mode; each other count mode's fits replace it
TITLE_COUNT = "caption_count_log10"
#: fitted probabilities this close to 0 or 1, where the data are all-or-none, mean separation
_SEPARATION_EPS = 1e-6

GLM_COLUMNS = [
    "fit", "count_mode", "model", "kind", "variant", "term", "coef", "se", "z", "p", "p_adjusted", "ci_low",
    "ci_high", "errors", "bh_family", "bh_family_size",
    "dispersion", "separation", "vif", "predictor_mean", "predictor_sd", "n_refs", "n_rows", "n_images",
    "n_recognised", "converged", "ci_level", "note",
]  # fmt: skip


def _as_floats(series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy()


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
        frame[p] = _as_floats(frame[p])
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


def _design(complete, kept: list[str], dummies: dict[str, Any], combine: Sequence[str]):
    """``(design, means, sds)``: the constant, the standardised predictors and the varying dummies.

    The predictors in ``combine`` (two or more of them kept) become one column,
    :data:`POPULARITY_TERM`, the mean of their z-scores, standing where the first of them stood.
    """
    means = {p: float(complete[p].mean()) for p in kept}
    sds = {p: float(complete[p].std(ddof=1)) for p in kept}
    z = {p: (complete[p] - means[p]) / sds[p] for p in kept}
    joined = [p for p in kept if p in combine]
    design = pd.DataFrame({"const": np.ones(len(complete))}, index=complete.index)
    for p in kept:
        if len(joined) < 2 or p not in joined:
            design[p] = z[p]
        elif p == joined[0]:
            design[POPULARITY_TERM] = sum(z[q] for q in joined) / len(joined)
    for name, column in dummies.items():
        values = column.loc[complete.index].astype("float64")
        if values.nunique() > 1:
            design[name] = values
    return design, means, sds


def _fit_options(errors: str, groups, plain) -> dict[str, Any]:
    """statsmodels ``GLM.fit`` keywords for an error type (see :data:`ERROR_LABELS`), given the plain fit.

    The quasi-binomial scale is the plain fit's Pearson chi2 / residual df, passed as a number:
    statsmodels' own ``scale="X2"`` ignores the number of trials of a two-column binomial outcome
    (statsmodels 0.15: 4.16 / 12 = 0.35 instead of 4.16 on the test's data).
    """
    if errors == "quasi":
        return {"scale": float(plain.pearson_chi2 / plain.df_resid)}
    if errors == "cluster":
        codes = pd.factorize(pd.Series(np.asarray(groups)))[0]
        return {"cov_type": "cluster", "cov_kwds": {"groups": codes}}
    return {}


def _separated(res, succ: np.ndarray, trials: np.ndarray, caught: list[str]) -> bool:
    """Fitted probabilities of 0 or 1 where the data are all-or-none, or statsmodels' warning."""
    mu = np.asarray(res.mu, dtype="float64")
    edge = ((mu < _SEPARATION_EPS) & (succ == 0)) | ((mu > 1 - _SEPARATION_EPS) & (succ == trials))
    return bool(edge.any()) or any("Separation" in w for w in caught)


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


def _empty_rows(
    base: dict, terms: list[str], means: dict, sds: dict, notes: list[str]
) -> list[dict[str, Any]]:
    return [
        {**base, "term": t, "converged": False, "note": "; ".join(notes),
         "predictor_mean": means.get(t, np.nan), "predictor_sd": sds.get(t, np.nan)}
        for t in terms
    ]  # fmt: skip


def _run_fit(design, succ, trials, errors: str, groups):
    """``(result or None, warnings as text, failure reason)``: one statsmodels binomial GLM."""
    import statsmodels.api as sm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = sm.GLM(np.column_stack([succ, trials - succ]), design, family=sm.families.Binomial())
            res = plain = model.fit()
            if errors != "model" and plain.df_resid > 0:
                res = model.fit(**_fit_options(errors, groups, plain))
        except (np.linalg.LinAlgError, ValueError) as exc:
            return None, [], f"fit failed: {type(exc).__name__}: {exc}"
    texts = sorted(
        {f"{type(w.message).__name__}: {w.message}" for w in caught if issubclass(w.category, Warning)}
    )
    return res, texts, ""


def glm_fit(
    part,
    predictors: Sequence[str],
    dummies: dict[str, Any],
    level: float,
    errors: str = "model",
    combine: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One binomial GLM of ``n_recognised`` out of ``n_images``; one row per term.

    Args:
        errors: ``"model"``, ``"quasi"`` or ``"cluster"`` (by ``slug``), see :data:`ERROR_LABELS`.
        combine: predictors replaced by their mean z-score, :data:`POPULARITY_TERM`.
    """
    notes: list[str] = []
    complete, kept = _usable_rows(part, predictors, notes)
    design, means, sds = _design(complete, kept, dummies, combine)
    succ = complete["n_recognised"].to_numpy(dtype="float64")
    trials = complete["n_images"].to_numpy(dtype="float64")
    base = {
        "n_refs": int(complete["slug"].nunique()) if len(complete) else 0, "n_rows": len(complete),
        "n_images": int(trials.sum()), "n_recognised": int(succ.sum()), "ci_level": level, "errors": errors,
    }  # fmt: skip
    if POPULARITY_TERM in design.columns:
        notes.append(f"{POPULARITY_TERM}: mean z-score of {', '.join(p for p in kept if p in combine)}")
    terms = list(design.columns)
    if len(complete) <= len(terms):
        return _empty_rows(
            base, terms, means, sds, [*notes, f"{len(complete)} rows for {len(terms)} terms: not estimable"]
        )
    if succ.sum() == 0 or succ.sum() == trials.sum():
        what = "no image recognised" if succ.sum() == 0 else "every image recognised"
        return _empty_rows(base, terms, means, sds, [*notes, f"outcome constant: {what}"])
    res, caught, failed = _run_fit(design, succ, trials, errors, complete["slug"])
    if res is None:
        return _empty_rows(base, terms, means, sds, [*notes, failed])
    with np.errstate(over="ignore", under="ignore"):  # the fitted values of a separated fit run off
        base["dispersion"] = float(res.pearson_chi2 / res.df_resid) if res.df_resid > 0 else np.nan
        base["separation"] = _separated(res, succ, trials, caught)
        if base["separation"]:
            notes.append(
                "separation: fitted probabilities of 0 or 1; coefficients unbounded (no Firth correction)"
            )
        return _fitted_rows(res, design, base, means, sds, notes + caught, level)


def _fits(cfg, data, combine: Sequence[str], prefix: str, predictors: Sequence[str]) -> list[dict[str, Any]]:
    """The per-model, per-kind and pooled fits of one specification (``prefix`` names the fit)."""
    g = cfg.correlates.glm
    models = ordered_models(data["model"], cfg.models)
    kind = {"kind_static": (data["kind"] == "static").astype(int)} if g.kind_effect else {}
    rows = []
    for model in models:
        part = data[data["model"] == model]
        dummies = {k: v.loc[part.index] for k, v in kind.items()}
        for r in glm_fit(part, predictors, dummies, g.ci_level, g.errors, combine):
            rows.append({"fit": f"{prefix}per_model", "model": model, "kind": "all", **r})
        for k in ("static", "dynamic") if g.per_kind and not prefix else ():
            sub = part[part["kind"] == k]
            for r in glm_fit(sub, predictors, {}, g.ci_level, g.errors, combine) if len(sub) else ():
                rows.append({"fit": "per_kind", "model": model, "kind": k, **r})
    if len(models) > 1:
        dummies = {f"model_{m}": (data["model"] == m).astype(int) for m in models[1:]}
        for r in glm_fit(data, predictors, {**kind, **dummies}, g.ci_level, g.pooled_errors, combine):
            rows.append({"fit": f"{prefix}pooled", "model": "pooled", "kind": "all", **r})
    return rows


def ordered_models(values, preferred: Sequence[str]) -> list[str]:
    """The distinct ``values``, those of ``preferred`` first in its order, then the others sorted."""
    present = list(dict.fromkeys(values))
    return [m for m in preferred if m in present] + sorted(m for m in present if m not in preferred)


def _count_mode_predictors(cfg, data) -> tuple[dict[str, list[str]], list[str]]:
    """The predictors of each count mode's fits: ``caption_count_log10`` (the ``title`` mode) replaced
    by ``caption_count_<mode>_log10`` for every other mode the data have (``glm.per_count_mode``).
    Without ``caption_count_log10`` among the predictors there is one set, of no count mode (``""``).
    Also the notes on modes left out: a mode whose count is already a predictor would enter twice."""
    g = cfg.correlates.glm
    base = list(g.predictors)
    if TITLE_COUNT not in base:
        return {"": base}, []
    out, notes = {"title": base}, []
    for mode in cfg.correlates.frequency.count_modes if g.per_count_mode else ():
        column = f"caption_count_{mode}_log10"
        if mode == "title":
            continue
        if column in base:
            notes.append(f"count mode {mode!r} not fitted: {column} is already in correlates.glm.predictors")
        elif column not in data.columns or data[column].isna().all():
            notes.append(f"count mode {mode!r} not fitted: the data have no {column}")
        else:
            out[mode] = [column if p == TITLE_COUNT else p for p in base]
    return out, notes


def _add_bh(table) -> None:
    """``p_adjusted``: Benjamini-Hochberg over the count modes of one (fit, model, kind, errors,
    term) - the same coefficient fitted with each mode's count (the count term itself counts as one
    term whichever mode); named in ``bh_family``, its size in ``bh_family_size``."""
    role = table["term"].where(~table["term"].str.match(r"^caption_count_.*_log10$"), TITLE_COUNT)
    table["bh_family"] = "count modes of one fit, model, kind, errors and term"
    table["p_adjusted"] = np.nan
    table["bh_family_size"] = 0
    keys = [table[c].astype(str) for c in ("fit", "model", "kind", "errors")] + [role]
    p = table["p"].to_numpy(dtype=float)
    for idx in table.groupby(keys, sort=False).indices.values():
        # a fit that could not be made has no p (NaN), and is no test of the family
        table.loc[table.index[idx], "p_adjusted"] = bh_adjust(p[idx])
        table.loc[table.index[idx], "bh_family_size"] = int(np.count_nonzero(~np.isnan(p[idx])))


def _swapped(names: Sequence[str], predictors: Sequence[str], base: Sequence[str]) -> list[str]:
    """``names`` with the base count predictor replaced as in ``predictors``."""
    new = [p for p in predictors if p not in base]
    return [new[0] if n == TITLE_COUNT and new else n for n in names]


def glm_table(cfg, data):
    """Binomial GLMs of recognised images out of n: per model, per kind, pooled; and with popularity combined.

    Predictors are ``correlates.glm.predictors``, each standardised over the rows of its fit
    (``predictor_mean`` and ``predictor_sd`` undo it).  Errors: ``correlates.glm.errors`` for the
    per-model and per-kind fits, ``correlates.glm.pooled_errors`` for the pooled ones (named in
    ``errors``).  With ``correlates.glm.collinearity: combine`` the ``combined_*`` fits repeat the
    per-model and pooled fits with the popularity predictors replaced by one score.  Rows with a
    missing predictor are left out, and ``note`` says how many.
    """
    g = cfg.correlates.glm
    rows = []
    modes, skipped = _count_mode_predictors(cfg, data)
    for mode, predictors in modes.items():
        fits = _fits(cfg, data, (), "", predictors)
        present = [p for p in _swapped(g.popularity, predictors, g.predictors) if p in predictors]
        if g.collinearity == "combine" and len(present) >= 2:
            fits += _fits(cfg, data, present, "combined_", predictors)
        rows += [{**r, "count_mode": mode} for r in fits]
    table = pd.DataFrame(rows)
    if "separation" in table.columns:
        table["separation"] = table["separation"].astype("boolean")
    table["variant"] = cfg.correlates.variant
    for col in GLM_COLUMNS:
        if col not in table.columns:
            table[col] = np.nan
    if len(table):
        _add_bh(table)
    table.attrs["skipped_count_modes"] = skipped
    return table[GLM_COLUMNS]
