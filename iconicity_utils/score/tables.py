"""Score tables: per-reference aggregation, model tables with bootstrap CIs, re-thresholding and
threshold sweeps from stored similarities, and the small tables the notebooks show.

Everything here works on the per-image table that the scoring engine writes
(``scores_per_image.parquet``): no image is decoded and no encoder runs, so a researcher can
re-aggregate or re-threshold a run in milliseconds (docs/method.md §3.5).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from iconicity_utils.core.constants import TAU_CRA
from iconicity_utils.metrics.realization import cell_mode_agreement, crt, vi_over_recognised
from iconicity_utils.metrics.recognition import check_comparison

__all__ = [
    "PER_REFERENCE",
    "PER_MODEL",
    "PER_REFERENCE_COLUMNS",
    "MODEL_METRICS",
    "aggregate_references",
    "with_skipped_counts",
    "bootstrap_ci",
    "bh_adjust",
    "model_table",
    "rescore",
    "threshold_sweep",
    "cell_mode_comparison",
    "comparison_choices",
    "model_table_wide",
]

#: the per-reference table's file name (one row per scored (model, variant, reference))
PER_REFERENCE = "scores_per_reference.parquet"
#: the per-model table's file name (per (model, variant, kind) and metric, with a bootstrap CI)
PER_MODEL = "scores_per_model.parquet"

#: model-level metrics: mean over references of each per-reference column
MODEL_METRICS = ("cra", "vi_mean", "crt", "vr_all", "consistency")

#: the per-reference table's columns, in order
PER_REFERENCE_COLUMNS = [
    "model", "variant", "slug", "kind", "n_images", "n_skipped", "n_recognised", "cra", "vi_mean", "crt",
    "vr_all", "vr_mean_all", "consistency", "cra_tau", "vr_tau", "comparison", "grid",
    "vr_cells_mode", "vr_pool", "cra_encoder", "vr_encoder",
]  # fmt: skip

#: per-image columns copied onto each reference row (one value per group)
_GROUP_MODES = (
    "kind", "cra_tau", "vr_tau", "comparison", "grid", "vr_cells_mode", "vr_pool", "cra_encoder", "vr_encoder",
)  # fmt: skip


def aggregate_references(per_image, consistency_df=None, skipped=None):
    """Per (model, variant, reference): n, CRA, VI over recognised images, CRT, consistency, ...

    ``n_images`` counts the scored images; ``n_skipped`` the generated images of the group that
    were not scored (from the ``skipped`` table, :func:`with_skipped_counts`; ``<NA>`` without it).
    ``vi_mean`` is NaN when no image is recognised; ``crt`` = mean(pass x VI) is then 0.
    """
    import pandas as pd

    if per_image is None or len(per_image) == 0:
        return with_skipped_counts(pd.DataFrame(columns=PER_REFERENCE_COLUMNS), skipped)
    out = []
    for (model, variant, slug), g in per_image.groupby(["model", "variant", "slug"], sort=True):
        p = g["cra_pass"].to_numpy(bool)
        vi = g["vi"].to_numpy(float)
        first = g.iloc[0]
        out.append(
            {
                "model": model,
                "variant": variant,
                "slug": slug,
                "n_images": len(g),
                "n_skipped": pd.NA,
                "n_recognised": int(p.sum()),
                "cra": float(p.mean()),
                "vi_mean": vi_over_recognised(p, vi),
                "crt": crt(p, vi),
                "vr_all": float(g["vr"].mean()),
                "vr_mean_all": float(g["vr_mean"].mean()),
                "consistency": float("nan"),
                **{col: first[col] for col in _GROUP_MODES},
            }
        )
    df = pd.DataFrame(out, columns=PER_REFERENCE_COLUMNS)
    if consistency_df is not None and len(consistency_df):
        df = df.drop(columns="consistency").merge(
            consistency_df[["model", "variant", "slug", "consistency"]],
            on=["model", "variant", "slug"],
            how="left",
        )[PER_REFERENCE_COLUMNS]
    return with_skipped_counts(df, skipped)


def with_skipped_counts(per_reference, skipped):
    """``per_reference`` with ``n_skipped``: its generated images in the ``skipped`` table
    (``role == "generated"``), 0 when none; ``<NA>`` when ``skipped`` is None (not known)."""
    df = per_reference.copy()
    keys = ["model", "variant", "slug"]
    if skipped is None:
        df["n_skipped"] = df.get("n_skipped", None)
        df["n_skipped"] = df["n_skipped"].astype("Int64")
        return df
    gen = skipped[skipped["role"] == "generated"]
    counts = gen.groupby(keys).size() if len(gen) else None
    df["n_skipped"] = [
        int(counts.get(tuple(k), 0)) if counts is not None else 0 for k in df[keys].itertuples(index=False)
    ]
    df["n_skipped"] = df["n_skipped"].astype("Int64")
    return df


def bh_adjust(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of one family (``scipy.stats.false_discovery_control``);
    NaN (no test) stays NaN and is not counted in the family.  Stages 05 and 06 adjust with it."""
    from scipy import stats

    p = np.asarray(p, dtype="float64")
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def bootstrap_ci(
    values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95, index=None
) -> tuple[float, float, float]:
    """Mean of ``values`` (NaNs ignored) and its percentile bootstrap CI over the items.

    The resamples are ``default_rng(seed).integers(0, n, (n_bootstrap, n))``, the draws of
    ``scipy.stats.bootstrap(..., method="percentile")``, and on data without NaN the interval is
    scipy's to the last bit (tested).  We keep this small function rather than call scipy because
    references with an undefined value (NaN, e.g. ``vi_mean`` when nothing is recognised) are left
    out of each resample's mean, and a resample with no defined value is dropped; scipy's
    percentile interval turns any NaN resample into a NaN interval and refuses a single value.

    Args:
        values: one value per reference (NaN = undefined, left out of each resample's mean).
        n_bootstrap: resamples.
        seed: RNG seed (``numpy.random.default_rng``).
        level: CI level.
        index: optional ``(n_bootstrap, n)`` resample indices (shared across metrics).

    Returns:
        ``(mean, low, high)``; NaNs when no value is defined.
    """
    v = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(v)
    if not defined.any():
        return float("nan"), float("nan"), float("nan")
    if index is None:
        index = np.random.default_rng(seed).integers(0, len(v), size=(n_bootstrap, len(v)))
    sample = v[index]
    with warnings.catch_warnings():  # a resample with no defined value has no mean: dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(sample, axis=1)
    means = means[~np.isnan(means)]
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha]) if means.size else (np.nan, np.nan)
    return float(np.nanmean(v)), float(low), float(high)


def model_table(per_reference, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95):
    """Model-level means over references, split by kind, with bootstrap CIs (long format).

    One row per (model, variant, kind, metric): ``mean``, ``ci_low``, ``ci_high``, ``n_refs``
    (references where the metric is defined), ``n_bootstrap``, ``seed``.  Each group draws its
    resamples from ``default_rng(seed)``, shared by its metrics (a paired bootstrap).
    """
    import pandas as pd

    cols = [
        "model",
        "variant",
        "kind",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "n_refs",
        "n_bootstrap",
        "seed",
    ]
    out = []
    if per_reference is None or len(per_reference) == 0:
        return pd.DataFrame(columns=cols)
    for (model, variant, kind), g in per_reference.groupby(["model", "variant", "kind"], sort=True):
        index = np.random.default_rng(seed).integers(0, len(g), size=(n_bootstrap, len(g)))
        for metric in MODEL_METRICS:
            v = g[metric].to_numpy(dtype=np.float64)
            mean, low, high = bootstrap_ci(v, n_bootstrap, seed, level, index=index)
            out.append(
                {
                    "model": model,
                    "variant": variant,
                    "kind": kind,
                    "metric": metric,
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "n_refs": int((~np.isnan(v)).sum()),
                    "n_bootstrap": n_bootstrap,
                    "seed": seed,
                }
            )
    return pd.DataFrame(out, columns=cols)


# --------------------------------------------------------------------------------------------
# Re-thresholding from stored similarities (no encoder)
# --------------------------------------------------------------------------------------------


def _cells_matrix(per_image) -> np.ndarray:
    return np.stack([np.asarray(c, dtype=np.float32) for c in per_image["vr_cells"]])


def rescore(
    per_image,
    *,
    tau_cra_static: float | None = None,
    tau_cra_dynamic: float | None = None,
    tau_reuse: float | None = None,
    comparison: str | None = None,
    consistency_df=None,
):
    """Re-apply thresholds to a per-image table from its stored ``cra_sim`` and ``vr_cells``.

    No image is decoded and no encoder runs.  Arguments left ``None`` keep the table's values.

    Returns:
        ``(per_image, per_reference)`` recomputed.
    """
    df = per_image.copy()
    if comparison is not None:
        check_comparison(comparison)
        df["comparison"] = comparison
    static = df["kind"] == "static"
    if tau_cra_static is not None:
        df.loc[static, "cra_tau"] = float(tau_cra_static)
    if tau_cra_dynamic is not None:
        df.loc[~static, "cra_tau"] = float(tau_cra_dynamic)
    if tau_reuse is not None:
        df["vr_tau"] = float(tau_reuse)
    cmp = df["comparison"].to_numpy()
    sim = df["cra_sim"].to_numpy(np.float32)
    ctau = df["cra_tau"].to_numpy(np.float32)
    df["cra_pass"] = np.where(cmp == ">", sim > ctau, sim >= ctau)
    m = _cells_matrix(df)
    vtau = df["vr_tau"].to_numpy(np.float32)[:, None]
    reused = np.where((cmp == ">")[:, None], m > vtau, m >= vtau)
    df["vr"] = reused.mean(axis=1)
    df["vi"] = 1.0 - df["vr"]
    return df, aggregate_references(df, consistency_df)


def threshold_sweep(
    per_image, taus: Sequence[float] | None = None, *, metric: str = "cra", vary: str | None = None
):
    """Model-level means (over references) as one threshold varies: the sensitivity curves.

    Args:
        per_image: the per-image table.
        taus: thresholds to try (default 0.30..0.95 in steps of 0.025).
        metric: ``"cra"``, ``"vr"`` (mean VR over all images) or ``"crt"``.
        vary: ``"tau_cra"`` (the same value for static and dynamic) or ``"tau_reuse"``; default
            ``"tau_reuse"`` for ``vr`` and ``"tau_cra"`` otherwise.  The other threshold keeps
            the table's value.

    Returns:
        DataFrame ``model, variant, kind, tau, metric, vary, value``.
    """
    import pandas as pd

    if metric not in ("cra", "vr", "crt"):
        raise ValueError(f"unknown metric {metric!r}; expected 'cra', 'vr' or 'crt'")
    vary = vary or ("tau_reuse" if metric == "vr" else "tau_cra")
    if vary not in ("tau_cra", "tau_reuse"):
        raise ValueError(f"unknown vary {vary!r}; expected 'tau_cra' or 'tau_reuse'")
    taus = np.round(np.arange(0.30, 0.9501, 0.025), 4) if taus is None else np.asarray(taus, dtype=float)
    sim = per_image["cra_sim"].to_numpy(np.float32)
    m = _cells_matrix(per_image)
    cmp = per_image["comparison"].to_numpy()
    strict = cmp == ">"
    keys = per_image[["model", "variant", "kind", "slug"]].reset_index(drop=True)
    out = []
    for tau in taus:
        t = np.float32(tau)
        ctau = np.full(len(sim), t) if vary == "tau_cra" else per_image["cra_tau"].to_numpy(np.float32)
        vtau = (np.full(len(sim), t) if vary == "tau_reuse" else per_image["vr_tau"].to_numpy(np.float32))[
            :, None
        ]
        p = np.where(strict, sim > ctau, sim >= ctau)
        vr = np.where(strict[:, None], m > vtau, m >= vtau).mean(axis=1)
        value = {"cra": p.astype(float), "vr": vr, "crt": p * (1.0 - vr)}[metric]
        frame = keys.assign(value=value)
        per_ref = frame.groupby(["model", "variant", "kind", "slug"], sort=True)["value"].mean().reset_index()
        per_model = per_ref.groupby(["model", "variant", "kind"], sort=True)["value"].mean().reset_index()
        out.append(per_model.assign(tau=float(tau), metric=metric, vary=vary))
    cols = ["model", "variant", "kind", "tau", "metric", "vary", "value"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def cell_mode_comparison(crop, tokens, tau: float | None = None, comparison: str | None = None):
    """Compare the ``cells="crop"`` and ``cells="tokens"`` per-image tables of the same images.

    Args:
        crop, tokens: per-image tables (or :class:`ScoreResult`) scored with each cell mode.
        tau, comparison: the reuse threshold and comparison (default: the crop table's).

    Returns:
        ``(summary, per_image)``: :func:`~iconicity_utils.metrics.realization.cell_mode_agreement` over all
        images, and a table with ``vr_crop``, ``vr_tokens``, ``vr_mean_crop``, ``vr_mean_tokens``.
    """
    a = getattr(crop, "per_image", crop)
    b = getattr(tokens, "per_image", tokens)
    keys = ["model", "variant", "slug", "index"]
    if set(a["vr_cells_mode"]) != {"crop"} or set(b["vr_cells_mode"]) != {"tokens"}:
        raise ValueError("pass a crop-mode table first and a tokens-mode table second")
    merged = a[[*keys, "kind", "vr", "vr_mean", "vr_cells"]].merge(
        b[[*keys, "vr", "vr_mean", "vr_cells"]], on=keys, suffixes=("_crop", "_tokens"), validate="one_to_one"
    )
    if len(merged) != len(a) or len(merged) != len(b):
        raise ValueError(
            f"the two tables cover different images ({len(a)} vs {len(b)}, {len(merged)} shared)"
        )
    tau = float(a["vr_tau"].iloc[0]) if tau is None else tau
    comparison = str(a["comparison"].iloc[0]) if comparison is None else comparison
    summary = cell_mode_agreement(
        np.stack(merged["vr_cells_crop"]), np.stack(merged["vr_cells_tokens"]), tau, comparison
    )
    return summary, merged.drop(columns=["vr_cells_crop", "vr_cells_tokens"])


def comparison_choices(per_image, per_reference, tau_cra_dynamic_alt: float = TAU_CRA["static"]):
    """Mean CRA per (model, kind) under the named choices the paper leaves open.

    Columns: the run's own setting, ``>=`` instead of ``>`` (the released script), and the
    dynamic threshold ``tau_cra_dynamic_alt`` instead of the run's (default: the figure's single
    τ, which the released script uses for static references only; docs/method.md §3.2).
    Re-thresholded from the stored similarities (:func:`rescore`).

    Returns:
        ``(table, n_changed)``: the table, and how many images change their decision under ``>=``.
    """
    inclusive, inclusive_ref = rescore(per_image, comparison=">=")
    _, dyn_ref = rescore(per_image, tau_cra_dynamic=tau_cra_dynamic_alt)
    table = per_reference.groupby(["model", "kind"])["cra"].mean().rename("CRA (this run)").to_frame()
    table["CRA (>=)"] = inclusive_ref.groupby(["model", "kind"])["cra"].mean()
    table[f"CRA (tau_dynamic={tau_cra_dynamic_alt:.2f})"] = dyn_ref.groupby(["model", "kind"])["cra"].mean()
    return table, int((inclusive["cra_pass"] != per_image["cra_pass"]).sum())


def model_table_wide(per_model, digits: int = 3):
    """The model table as one row per (model, variant, kind) and one ``"mean [low, high]"`` column per metric."""
    fmt = f"{{:.{digits}f}} [{{:.{digits}f}}, {{:.{digits}f}}]"
    cells = [fmt.format(r.mean, r.ci_low, r.ci_high) for r in per_model.itertuples()]
    return per_model.assign(value=cells).pivot_table(
        index=["model", "variant", "kind"], columns="metric", values="value", aggfunc="first"
    )
