"""Recomputation and the tables of the explorer's tabs: pure functions, no widget, no image, no encoder.

:func:`recompute` re-applies thresholds to stored similarities with
:func:`~iconicity_utils.score.tables.rescore` (which aggregates with
:func:`~iconicity_utils.score.tables.aggregate_references`) and summarises models with
:func:`~iconicity_utils.score.tables.model_table`, exactly as stages 03-04 do.
:func:`reference_metrics`, :func:`model_summary`, :func:`reference_list`, :func:`overview_points`,
:func:`variant_table`, :func:`feature_frame` and :func:`reused_cells` read the results.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import TAU_CRA, TAU_REUSE
from iconicity_utils.correlates.covariates import COVARIATE_LABELS
from iconicity_utils.explore.data import order_variants
from iconicity_utils.metrics.recognition import passes
from iconicity_utils.score import tables as score_tables

__all__ = [
    "SORT_KEYS",
    "SUMMARY_METRICS",
    "Thresholds",
    "Recomputed",
    "stored_thresholds",
    "recompute",
    "group_rows",
    "reference_metrics",
    "model_summary",
    "reference_list",
    "overview_points",
    "variant_table",
    "numeric_feature_columns",
    "feature_labels",
    "feature_frame",
    "caption_samples_html",
    "reused_cells",
]

#: sort choices of the reference list: label -> per-reference column
SORT_KEYS = {"CRA": "cra", "VR": "vr_all", "CRT": "crt", "title": "title"}
#: summary metrics shown per model and kind
SUMMARY_METRICS = ("cra", "vi_mean", "crt", "vr_all")


@dataclass(frozen=True)
class Thresholds:
    """τ_CRA for static and dynamic references, and τ_reuse."""

    static: float = TAU_CRA["static"]
    dynamic: float = TAU_CRA["dynamic"]
    reuse: float = TAU_REUSE


def _mode(values, default: float) -> float:
    s = pd.Series(values, dtype="float64").dropna()
    return float(s.mode().iloc[0]) if len(s) else float(default)


def stored_thresholds(per_image) -> Thresholds:
    """The thresholds a table was scored with (per kind; a kind absent from it gets the paper's)."""
    kind = per_image["kind"]
    return Thresholds(
        static=_mode(per_image.loc[kind == "static", "cra_tau"], TAU_CRA["static"]),
        dynamic=_mode(per_image.loc[kind == "dynamic", "cra_tau"], TAU_CRA["dynamic"]),
        reuse=_mode(per_image["vr_tau"], TAU_REUSE),
    )


@dataclass
class Recomputed:
    """Tables re-thresholded from stored similarities."""

    thresholds: Thresholds
    per_image: Any
    per_reference: Any
    per_model: Any


def recompute(
    per_image,
    thresholds: Thresholds,
    *,
    consistency=None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    cache: dict | None = None,
) -> Recomputed:
    """Re-apply ``thresholds`` to per-image rows: CRA, VR/VI, CRT per reference and per model.

    The stage 03-04 formulas, called, not re-implemented: :func:`score_tables.rescore` re-decides
    ``cra_pass`` from ``cra_sim`` and ``vr`` from ``vr_cells`` (at float32, with each row's
    comparison) and aggregates with :func:`score_tables.aggregate_references`;
    :func:`score_tables.model_table` gives the model-level means with their bootstrap CIs.

    Static and dynamic references are re-thresholded separately (each depends only on its own
    τ_CRA and on τ_reuse), so with a ``cache`` a move of one τ_CRA re-aggregates only its kind.
    The tables are those of one :func:`score_tables.rescore` call on all rows (tested).

    Args:
        per_image: per-image rows (e.g. one model's).
        thresholds: the thresholds to apply.
        consistency: stored per-reference consistency (``model, variant, slug, consistency``).
        n_bootstrap, seed: the bootstrap of the model table (the run's, to reproduce it).
        cache: a dict kept by the caller for these rows (and only these): re-thresholded kinds
            by ``(kind, τ_CRA of the kind, τ_reuse)``.
    """
    images, refs = [], []
    for kind, rows in per_image.groupby("kind", sort=True):
        tau = thresholds.static if kind == "static" else thresholds.dynamic  # rescore: not static = dynamic
        key = (kind, float(tau), float(thresholds.reuse))
        part = cache.get(key) if cache is not None else None
        if part is None:
            part = score_tables.rescore(
                rows,
                tau_cra_static=thresholds.static,
                tau_cra_dynamic=thresholds.dynamic,
                tau_reuse=thresholds.reuse,
                consistency_df=consistency,
            )
            if cache is not None:
                cache[key] = part
        images.append(part[0])
        refs.append(part[1])
    if len(images) == 1:
        pi, pr = images[0], refs[0]
    else:  # the row order of one rescore call: per_image's, and references sorted by group
        pi = pd.concat(images).loc[per_image.index]
        pr = pd.concat(refs).sort_values(["model", "variant", "slug"], kind="stable").reset_index(drop=True)
    return Recomputed(thresholds, pi, pr, score_tables.model_table(pr, n_bootstrap, seed))


def group_rows(df, model: str, variant: str | None = None, slug: str | None = None):
    """The rows of one model (and variant, and reference, when given)."""
    mask = df["model"] == model
    if variant is not None:
        mask &= df["variant"] == variant
    if slug is not None:
        mask &= df["slug"] == slug
    return df[mask]


def reference_metrics(per_reference, model: str, variant: str, slug: str) -> dict[str, Any] | None:
    """The per-reference row of (model, variant, slug) as a dict, or None when it was not scored."""
    g = group_rows(per_reference, model, variant, slug)
    return None if g.empty else g.iloc[0].to_dict()


def model_summary(per_model, model: str, variant: str, metrics: Sequence[str] = SUMMARY_METRICS):
    """The model-level rows of (model, variant): ``kind, metric, mean, ci_low, ci_high, n_refs``,
    static first, metrics in the order given (a slice of :func:`score_tables.model_table`)."""
    g = group_rows(per_model, model, variant)
    g = g[g["metric"].isin(list(metrics))].copy()
    kinds = ["static", "dynamic", *sorted(set(g["kind"]) - {"static", "dynamic"})]
    g["_k"] = [kinds.index(k) for k in g["kind"]]
    g["_m"] = [list(metrics).index(m) for m in g["metric"]]
    g = g.sort_values(["_k", "_m"], kind="stable")
    return g[["kind", "metric", "mean", "ci_low", "ci_high", "n_refs"]].reset_index(drop=True)


def reference_list(
    per_reference,
    model: str,
    variant: str,
    titles: dict[str, str],
    search: str = "",
    sort: str = "CRA",
    only: Sequence[str] | None = None,
):
    """The references of (model, variant), filtered by a title search, sorted by CRA, VR or CRT
    (highest first, ties by title) or by title.

    Returns:
        DataFrame ``slug, title, kind, n_images, cra, vi_mean, crt, vr_all``.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort {sort!r}; expected one of {list(SORT_KEYS)}")
    g = group_rows(per_reference, model, variant).copy()
    g["title"] = [titles.get(s, s) for s in g["slug"]]
    if only is not None:
        g = g[g["slug"].isin(list(only))]
    needle = search.strip().lower()
    if needle:
        g = g[
            [needle in t.lower() or needle in s.lower() for t, s in zip(g["title"], g["slug"], strict=True)]
        ]
    key = SORT_KEYS[sort]
    if key == "title":
        g = g.sort_values(["title", "slug"], kind="stable")
    else:
        g = g.sort_values([key, "title", "slug"], ascending=[False, True, True], kind="stable")
    cols = ["slug", "title", "kind", "n_images", "cra", "vi_mean", "crt", "vr_all"]
    return g[cols].reset_index(drop=True)


def overview_points(per_reference, model: str, variant: str, bins: int = 20):
    """Grid positions of the recognition x realization overview, one row per reference.

    ``col`` = 1 + round(CRA * bins) (left to right), ``row`` = 1 + round((1 - VI) * bins) (VI = 1
    at the top); a reference with no recognised image has no VI and goes to the row below the
    plot (``row`` = bins + 3), as the crosses of the stage 04 figure.
    """
    g = group_rows(per_reference, model, variant)
    vi = g["vi_mean"].to_numpy(float)
    defined = ~np.isnan(vi)
    col = 1 + np.rint(g["cra"].to_numpy(float) * bins).astype(int)
    row = np.where(defined, 1 + np.rint((1 - np.nan_to_num(vi)) * bins), bins + 3).astype(int)
    return (
        g[["slug", "kind", "cra", "vi_mean", "crt"]]
        .assign(defined=defined, row=row, col=col)
        .reset_index(drop=True)
    )


def variant_table(per_reference, model: str, slug: str):
    """The variants of one (model, reference) side by side: one row per variant, in display order."""
    g = group_rows(per_reference, model, None, slug)
    order = order_variants(g["variant"])
    cols = ["variant", "n_images", "n_recognised", "cra", "vi_mean", "crt", "vr_all"]
    return g.set_index("variant").reindex(order).reset_index()[cols]


def numeric_feature_columns(features) -> list[str]:
    """The numeric columns of a stage 06 feature table (booleans and the key left out)."""
    if features is None:
        return []
    return [
        c
        for c in features.columns
        if c != "slug" and features[c].dtype.kind in "iuf" and features[c].notna().any()
    ]


def feature_labels() -> dict[str, str]:
    """Stage 06's short label of each covariate column (:data:`~iconicity_utils.correlates.covariates.COVARIATE_LABELS`)."""
    return dict(COVARIATE_LABELS)


def feature_frame(per_reference, features, model: str, variant: str, column: str):
    """CRA of each reference of (model, variant) beside one stage 06 feature (rows with both)."""
    if column not in numeric_feature_columns(features):
        raise ValueError(f"{column!r} is not a numeric column of the feature table")
    g = group_rows(per_reference, model, variant)[["slug", "kind", "cra"]]
    merged = g.merge(features[["slug", column]], on="slug", how="inner")
    return merged[merged[column].notna()].reset_index(drop=True)


def reused_cells(row) -> np.ndarray:
    """Which grid cells of one generated image are reused: its stored per-cell maxima against its
    τ_reuse and comparison (as :func:`~iconicity_utils.score.figures.plot_gallery`); their mean
    is the image's VR."""
    return passes(np.asarray(row["vr_cells"], dtype=np.float32), row["vr_tau"], row["comparison"])


def caption_samples_html(features, slug) -> str:
    """The matched captions stage 06 sampled for one reference (``caption_samples``), as HTML; ``""`` if none."""
    if features is None or slug is None or "caption_samples" not in features.columns:
        return ""
    rows = features[features["slug"] == slug]
    samples = rows["caption_samples"].iloc[0] if len(rows) else None
    if samples is None or len(samples) == 0:
        return ""
    items = "".join(f"<li>{html.escape(str(t))}</li>" for t in samples)
    return f"<div class='ic-label'>captions counted for this title (a sample):<ul>{items}</ul></div>"
