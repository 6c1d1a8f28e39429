"""Interactive exploration of score tables with ipywidgets (notebook 07, also served with Voilà).

Pick a model, a prompt variant and a reference; see the reference images beside the generated
images, each with its best CLIP similarity s_i, pass/fail and VR, and a toggle that overlays the
4x4 grid (reused cells pink, independent cells green, as in the paper's framework figure).  Sliders
for τ_CRA (static, dynamic) and τ_reuse update CRA, VI and CRT for the selected reference and the
model-level summary.  An overview places every reference by recognition (CRA) and realization (VI);
clicking a point opens it in the gallery.  Prompt variants (stage 05) sit side by side, and a
feature picker plots CRA against any stage 06 feature.

Three layers, so the numbers can be tested without a browser:

- **loading** (:func:`load_results`): any results folder: a demo run, a real run, or the output of
  :func:`~iconicity_utils.score.scoring.score_folders` (image paths relative to the project root or
  absolute);
- **recomputation** (pure functions, no widget, no image, no encoder): :func:`recompute` re-applies
  thresholds with :func:`~iconicity_utils.score.tables.rescore` (which aggregates with
  :func:`~iconicity_utils.score.tables.aggregate_references`) and summarises models with
  :func:`~iconicity_utils.score.tables.model_table`, exactly as stages 03-04 do;
  :func:`reference_metrics`, :func:`model_summary`, :func:`reference_list`,
  :func:`overview_points`, :func:`variant_table`, :func:`feature_frame` and :func:`reused_cells`
  read the results;
- **rendering**: HTML strings (:func:`gallery_html`, :func:`metrics_html`, ...) and the widgets of
  :class:`Explorer`.

Under papermill (``INTERACTIVE = False``, as ``run_all.sh`` runs it) the explorer builds its
widgets for one reference and shows a static snapshot; nothing waits for input.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from iconicity_utils.core.constants import STANDIN_LABEL, TAU_CRA, TAU_REUSE
from iconicity_utils.core.images import grid_boxes
from iconicity_utils.metrics.realization import rank_correlation
from iconicity_utils.metrics.recognition import passes
from iconicity_utils.registry import PROJECT_ROOT
from iconicity_utils.score import tables as score_tables
from iconicity_utils.score.figures import INDEPENDENT, REUSED
from iconicity_utils.score.scoring import PER_IMAGE, PER_MODEL, PER_REFERENCE

__all__ = [
    "FEATURES",
    "VARIANT_ORDER",
    "SORT_KEYS",
    "Results",
    "Thresholds",
    "Recomputed",
    "load_results",
    "query_parameters",
    "stored_thresholds",
    "recompute",
    "reference_metrics",
    "model_summary",
    "reference_list",
    "overview_points",
    "variant_table",
    "numeric_feature_columns",
    "feature_frame",
    "feature_figure",
    "reused_cells",
    "thumbnail",
    "gallery_html",
    "metrics_html",
    "summary_html",
    "variants_html",
    "Explorer",
]

#: stage 06's per-reference feature table, in the results folder (key ``slug``)
FEATURES = "reference_features.parquet"
#: prompt variants in display order (stage 05); other values follow, sorted
VARIANT_ORDER = ("title", "synonym", "literal")
#: sort choices of the reference list: label -> per-reference column
SORT_KEYS = {"CRA": "cra", "VR": "vr_all", "CRT": "crt", "title": "title"}
#: the per-image columns the explorer needs
REQUIRED = (
    "model", "variant", "slug", "kind", "index", "path", "cra_sim", "cra_tau", "vr_cells", "vr_tau",
    "comparison", "vr", "vi", "vr_mean",
)  # fmt: skip
#: the per-image columns kept for display and for re-aggregation (the rest are dropped at load:
#: :func:`score_tables.aggregate_references` reads each group's first row, so narrow is fast)
KEEP = (
    *REQUIRED, "prompt", "ref_paths", "cra_ref", "cra_pass", "grid", "vr_cells_mode", "vr_pool",
    "cra_encoder", "vr_encoder",
)  # fmt: skip
#: the columns re-thresholding reads (score_tables.rescore and aggregate_references); the others
#: are display-only and are joined back by row for the rows shown
SCORING_COLUMNS = (
    "model", "variant", "slug", "kind", "index", "cra_sim", "cra_tau", "cra_pass", "vr_cells", "vr_tau",
    "comparison", "vr", "vi", "vr_mean", "grid", "vr_cells_mode", "vr_pool", "cra_encoder", "vr_encoder",
)  # fmt: skip
#: summary metrics shown per model and kind
SUMMARY_METRICS = ("cra", "vi_mean", "crt", "vr_all")
LABELS = {"cra": "CRA", "vi_mean": "VI", "crt": "CRT", "vr_all": "VR"}
KIND_COLORS = {"static": "#1f77b4", "dynamic": "#ff7f0e"}
SELECTED_COLOR = "#d62728"


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


class Resolver:
    """Stored image path -> file: through ``cfg.absolute`` when a config is given, else as stored
    (a relative path that does not exist from the current folder is tried from the project root,
    so a notebook running in ``notebooks/`` finds ``data/...``)."""

    def __init__(self, cfg=None):
        self.cfg = cfg

    def __call__(self, stored) -> Path:
        p = Path(str(stored))
        if p.is_absolute():
            return p
        if self.cfg is not None:
            return self.cfg.absolute(p)
        return p if p.exists() else PROJECT_ROOT / p


@dataclass
class Results:
    """The score tables of one results folder, ready to explore."""

    per_image: Any
    per_reference: Any | None
    per_model: Any | None
    features: Any | None
    folder: Path
    titles: dict[str, str]
    resolve: Resolver
    cfg: Any | None = None
    n_bootstrap: int = 1000
    seed: int = 0
    is_standin: bool = False

    @property
    def features_path(self) -> Path:
        return self.folder / FEATURES

    @property
    def models(self) -> list[str]:
        return sorted(set(self.per_image["model"]))

    def variants(self, model: str) -> list[str]:
        return order_variants(set(self.per_image.loc[self.per_image["model"] == model, "variant"]))

    def consistency(self):
        """The stored per-reference consistency (needs the encoder: never recomputed), or None."""
        pr = self.per_reference
        if pr is None or "consistency" not in pr.columns:
            return None
        return pr[["model", "variant", "slug", "consistency"]]


def _variant_key(variant: str) -> tuple[int, int, str]:
    base, _, k = str(variant).partition("-")
    group = VARIANT_ORDER.index(base) if base in VARIANT_ORDER else len(VARIANT_ORDER)
    return group, int(k) if k.isdigit() else 1, str(variant)


def order_variants(variants) -> list[str]:
    """Variants in :data:`VARIANT_ORDER` (stage 05's ``synonym-2``, ``synonym-3``, ... after
    ``synonym``), then any other value, sorted."""
    return sorted(set(variants), key=_variant_key)


def _folder(path, cfg) -> Path:
    if path is None:
        if cfg is None:
            raise ValueError("give a study config or a results folder")
        return cfg.results_dir
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return PROJECT_ROOT / p


def _titles(per_image, cfg) -> dict[str, str]:
    """slug -> title: the references table's ``label`` when the config has one, else the prompt of
    the ``title`` variant (the folder scorer stores the CSV label there), else the slug."""
    titles: dict[str, str] = {}
    if cfg is not None and Path(cfg.references_table).is_file():
        from iconicity_utils.core.io import read_table

        refs = read_table(cfg.references_table)
        if {"slug", "label"} <= set(refs.columns):
            titles.update(zip(refs["slug"].astype(str), refs["label"].astype(str), strict=True))
    if "prompt" in per_image.columns:
        rows = per_image.sort_values("variant", key=lambda s: s != "title", kind="stable")
        for slug, prompt in zip(rows["slug"], rows["prompt"], strict=True):
            if slug not in titles and isinstance(prompt, str) and prompt:
                titles[slug] = prompt
    for slug in per_image["slug"]:
        titles.setdefault(slug, str(slug))
    return titles


def load_results(config=None, results=None) -> Results:
    """The score tables of a results folder.

    Args:
        config: a study config (object or path) or None.  With a config, stored image paths are
            resolved with ``cfg.absolute`` and titles come from its references table.
        results: the folder holding ``scores_per_image.parquet`` (default: the config's results
            folder); e.g. the ``out_dir`` of :func:`~iconicity_utils.score.scoring.score_folders`.

    Raises:
        FileNotFoundError: no per-image table in the folder (says how to make one).
        ValueError: the per-image table lacks a column the explorer needs.
    """
    from iconicity_utils.core.io import read_table

    cfg = config
    if config is not None and not hasattr(config, "thresholds"):
        from iconicity_utils.config import load_config
        from iconicity_utils.config.notebook import resolve_config_path

        cfg = load_config(resolve_config_path(config))
    folder = _folder(results, cfg)
    path = folder / PER_IMAGE
    if not path.is_file():
        raise FileNotFoundError(
            f"no score tables to explore: {path} not found.  Score a study with notebooks 03-04 "
            "(./run_all.sh --config ...), or your own folders with "
            "iconicity_utils.score.scoring.score_folders(..., out_dir=FOLDER)."
        )
    per_image = read_table(path)
    lacking = [c for c in REQUIRED if c not in per_image.columns]
    if lacking:
        raise ValueError(f"{path}: the per-image table lacks columns {lacking}")
    if per_image.empty:
        raise ValueError(f"{path}: the per-image table has no rows: nothing was scored")
    standin = "note" in per_image.columns and bool((per_image["note"] == STANDIN_LABEL).any())
    per_image = _fast(per_image[[c for c in KEEP if c in per_image.columns]])
    # float32 arrays once, so every re-threshold stacks them without converting lists
    per_image["vr_cells"] = [np.asarray(c, dtype=np.float32) for c in per_image["vr_cells"]]
    if "cra_pass" not in per_image.columns:
        per_image["cra_pass"] = False  # rescore decides it from cra_sim
    per_image = per_image.sort_values(["model", "variant", "slug", "index"], kind="stable").reset_index(
        drop=True
    )
    per_reference = _fast(read_table(folder / PER_REFERENCE)) if (folder / PER_REFERENCE).is_file() else None
    per_model = _fast(read_table(folder / PER_MODEL)) if (folder / PER_MODEL).is_file() else None
    features = _fast(read_table(folder / FEATURES)) if (folder / FEATURES).is_file() else None
    n_bootstrap, seed = 1000, 0
    if per_model is not None and len(per_model) and {"n_bootstrap", "seed"} <= set(per_model.columns):
        n_bootstrap, seed = int(per_model["n_bootstrap"].iloc[0]), int(per_model["seed"].iloc[0])
    elif cfg is not None:
        n_bootstrap, seed = cfg.realization.n_bootstrap, cfg.realization.bootstrap_seed
    return Results(
        per_image=per_image,
        per_reference=per_reference,
        per_model=per_model,
        features=features,
        folder=folder,
        titles=_titles(per_image, cfg),
        resolve=Resolver(cfg),
        cfg=cfg,
        n_bootstrap=n_bootstrap,
        seed=seed,
        is_standin=standin,
    )


def _fast(df):
    """A plain copy for many small group operations: no ``attrs`` (pandas deep-copies them on every
    slice; the provenance stays in the files) and text columns as Python objects (faster to index
    one row at a time than Arrow-backed strings)."""
    df = df.copy()
    df.attrs = {}
    for col in df.columns:
        if (
            df[col].dtype != object
            and df[col].dtype.kind in "OSUT"
            or str(df[col].dtype) in ("str", "string")
        ):
            df[col] = df[col].astype(object)
    return df


def query_parameters(config, results=None, query: str | None = None) -> tuple[Any, Any]:
    """``config`` and ``results`` overridden by the page's query string when served by Voilà.

    Voilà hands the kernel the page's query string (``QUERY_STRING``), so
    ``http://host:8866/?config=configs/paper.yaml&results=scores/`` explores another run without
    editing the notebook.  Outside Voilà (JupyterLab, papermill) the values are returned unchanged.
    """
    query = os.environ.get("QUERY_STRING", "") if query is None else query
    values = parse_qs(query or "")
    config = values.get("config", [config])[-1]
    results = values.get("results", [results])[-1]
    return config, results


# --------------------------------------------------------------------------------------------
# Recomputation: pure functions over the stored similarities (stage 03-04 formulas)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """τ_CRA for static and dynamic references, and τ_reuse."""

    static: float = TAU_CRA["static"]
    dynamic: float = TAU_CRA["dynamic"]
    reuse: float = TAU_REUSE


def _mode(values, default: float) -> float:
    import pandas as pd

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
    import pandas as pd

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


def _group(df, model: str, variant: str | None = None, slug: str | None = None):
    mask = df["model"] == model
    if variant is not None:
        mask &= df["variant"] == variant
    if slug is not None:
        mask &= df["slug"] == slug
    return df[mask]


def reference_metrics(per_reference, model: str, variant: str, slug: str) -> dict[str, Any] | None:
    """The per-reference row of (model, variant, slug) as a dict, or None when it was not scored."""
    g = _group(per_reference, model, variant, slug)
    return None if g.empty else g.iloc[0].to_dict()


def model_summary(per_model, model: str, variant: str, metrics: Sequence[str] = SUMMARY_METRICS):
    """The model-level rows of (model, variant): ``kind, metric, mean, ci_low, ci_high, n_refs``,
    static first, metrics in the order given (a slice of :func:`score_tables.model_table`)."""
    g = _group(per_model, model, variant)
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
    g = _group(per_reference, model, variant).copy()
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
    g = _group(per_reference, model, variant)
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
    g = _group(per_reference, model, None, slug)
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
    """Stage 06's short label of each feature column (``correlates.FEATURE_LABELS``), if present."""
    try:
        from iconicity_utils.correlates.correlates import FEATURE_LABELS
    except (ImportError, AttributeError):
        return {}
    return dict(FEATURE_LABELS)


def feature_frame(per_reference, features, model: str, variant: str, column: str):
    """CRA of each reference of (model, variant) beside one stage 06 feature (rows with both)."""
    if column not in numeric_feature_columns(features):
        raise ValueError(f"{column!r} is not a numeric column of the feature table")
    g = _group(per_reference, model, variant)[["slug", "kind", "cra"]]
    merged = g.merge(features[["slug", column]], on="slug", how="inner")
    return merged[merged[column].notna()].reset_index(drop=True)


def feature_figure(frame, column: str, title: str = ""):
    """CRA against a feature, one point per reference (a matplotlib Figure, not drawn by pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 3.6), dpi=90)
    ax = fig.add_subplot()
    for kind, g in frame.groupby("kind", sort=True):
        ax.scatter(g[column], g["cra"], label=kind, color=KIND_COLORS.get(kind), alpha=0.75)
    rho = rank_correlation(frame[column].to_numpy(float), frame["cra"].to_numpy(float))
    ax.set(xlabel=column, ylabel="CRA", ylim=(-0.05, 1.05))
    rho_text = f"{rho:.2f}" if np.isfinite(rho) else "undefined (one side is constant)"
    ax.set_title(f"{title}  (n = {len(frame)}, Spearman ρ = {rho_text})", fontsize=9)
    if len(frame):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def reused_cells(row) -> np.ndarray:
    """Which grid cells of one generated image are reused: its stored per-cell maxima against its
    τ_reuse and comparison (as :func:`~iconicity_utils.score.figures.plot_gallery`); their mean
    is the image's VR."""
    return passes(np.asarray(row["vr_cells"], dtype=np.float32), row["vr_tau"], row["comparison"])


# --------------------------------------------------------------------------------------------
# Rendering: HTML strings
# --------------------------------------------------------------------------------------------

STYLE = """<style>
.ic-header, .ic-gallery, .ic-metrics, .ic-summary, .ic-variants {font-family: sans-serif; font-size: 12px}
.ic-row {display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start}
.ic-card {margin: 0; width: var(--ic-w); border: 1px solid #ddd; padding: 3px; background: #fff}
.ic-card.ic-fail {background: #f6f6f6}
.ic-card figcaption {line-height: 1.35; margin-top: 2px}
.ic-thumb {position: relative; width: 100%; line-height: 0}
.ic-thumb img {width: 100%; height: auto; display: block}
.ic-thumb img.ic-pixel {image-rendering: pixelated}
.ic-cell {position: absolute; box-sizing: border-box; border: 1px solid rgba(255,255,255,0.85)}
.ic-reused {background: rgba(__REUSED__,0.45)}
.ic-independent {background: rgba(__INDEPENDENT__,0.45)}
.ic-pass {color: #1a7f37; font-weight: bold}
.ic-failtxt {color: #b42318; font-weight: bold}
.ic-missing {width: 100%; aspect-ratio: 1; background: #eee; color: #666; line-height: 1.3;
  font-size: 10px; overflow-wrap: anywhere; padding: 4px; box-sizing: border-box}
.ic-metrics b {font-size: 14px}
.ic-metric {margin-right: 14px; white-space: nowrap}
.ic-table {border-collapse: collapse}
.ic-table td, .ic-table th {border: 1px solid #ddd; padding: 2px 6px}
.ic-label {color: #666}
.ic-standin {color: #b42318; font-weight: bold}
</style>""".replace("__REUSED__", ",".join(map(str, REUSED))).replace(
    "__INDEPENDENT__", ",".join(map(str, INDEPENDENT))
)


def _fmt(v, digits: int = 3) -> str:
    v = float(v)
    return "—" if np.isnan(v) else f"{v:.{digits}f}"


def _val(v) -> str:
    """A number written exactly into a data attribute (``nan`` when undefined)."""
    v = float(v)
    return "nan" if np.isnan(v) else format(v, ".17g")


@dataclass(frozen=True)
class Thumb:
    data_url: str
    width: int
    height: int
    pixel: bool  # small image shown enlarged: keep pixels crisp


@functools.lru_cache(maxsize=1024)
def _thumbnail(path: str, mtime: float, px: int) -> Thumb:
    from PIL import Image

    from iconicity_utils.core.images import open_rgb

    im = open_rgb(path)
    w, h = im.size
    buf = io.BytesIO()
    if max(w, h) > px:  # downscale once; JPEG keeps the HTML small
        im = im.copy()
        im.thumbnail((px, px), Image.Resampling.LANCZOS)
        im.save(buf, format="JPEG", quality=85)
        mime = "image/jpeg"
    else:
        im.save(buf, format="PNG")
        mime = "image/png"
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return Thumb(f"data:{mime};base64,{data}", w, h, pixel=max(w, h) < px)


def thumbnail(path: str | Path, px: int = 192) -> Thumb | None:
    """A display copy of an image (its original size kept for the grid), or None if unreadable."""
    try:
        p = Path(path)
        return _thumbnail(str(p), p.stat().st_mtime, px)
    except (OSError, ValueError):
        return None


def _grid(row) -> tuple[int, int]:
    rows, cols = (int(v) for v in str(row.get("grid", "4x4")).split("x"))
    return rows, cols


def _image_html(thumb: Thumb | None, path, reused: np.ndarray | None, grid: tuple[int, int]) -> str:
    if thumb is None:
        return f'<div class="ic-missing">image not found:<br>{html.escape(str(path))}</div>'
    cells = ""
    if reused is not None:
        parts = []
        boxes = grid_boxes(thumb.width, thumb.height, grid)
        for (x0, y0, x1, y1), flag in zip(boxes, reused, strict=True):
            style = (
                f"left:{100 * x0 / thumb.width:.4f}%;top:{100 * y0 / thumb.height:.4f}%;"
                f"width:{100 * (x1 - x0) / thumb.width:.4f}%;height:{100 * (y1 - y0) / thumb.height:.4f}%"
            )
            parts.append(
                f'<div class="ic-cell {"ic-reused" if flag else "ic-independent"}" style="{style}"></div>'
            )
        cells = "".join(parts)
    cls = ' class="ic-pixel"' if thumb.pixel else ""
    return f'<div class="ic-thumb"><img{cls} src="{thumb.data_url}" alt="">{cells}</div>'


def generated_card(row, resolve, overlay: bool, px: int) -> str:
    """One generated image with s_i, pass/fail, VR and (``overlay``) its reused / independent cells."""
    reused = reused_cells(row)
    grid = _grid(row)
    if len(reused) != grid[0] * grid[1]:
        raise ValueError(f"{len(reused)} cell maxima for a {grid[0]}x{grid[1]} grid ({row['path']})")
    ok = bool(row["cra_pass"])
    n_reused = int(reused.sum())
    image = _image_html(thumbnail(resolve(row["path"]), px), row["path"], reused if overlay else None, grid)
    verdict = (
        '<span class="ic-pass">✓ recognised</span>'
        if ok
        else '<span class="ic-failtxt">✗ not recognised</span>'
    )
    # the comparison as it came out: "s > τ" when recognised, "s ≤ τ" when not (">=": "≥" / "<")
    cmp = {(">", True): "&gt;", (">", False): "≤", (">=", True): "≥", (">=", False): "&lt;"}[
        (str(row["comparison"]), ok)
    ]
    refs = row.get("ref_paths")
    match = ""
    if refs is not None and len(refs) > 1 and isinstance(row.get("cra_ref"), str):
        match = f"<br><span class='ic-label'>best match: {html.escape(Path(row['cra_ref']).name)}</span>"
    return (
        f'<figure class="ic-card ic-gen{"" if ok else " ic-fail"}" data-index="{int(row["index"])}" '
        f'data-sim="{_val(row["cra_sim"])}" data-pass="{int(ok)}" data-vr="{_val(row["vr"])}" '
        f'data-reused="{n_reused}" data-cells="{len(reused)}" style="--ic-w:{px}px">{image}'
        f"<figcaption>#{int(row['index'])} · s<sub>i</sub> = {float(row['cra_sim']):.3f} "
        f"{cmp} τ {float(row['cra_tau']):.3f}<br>{verdict}<br>"
        f"VR = {float(row['vr']):.3f} ({n_reused}/{len(reused)} reused) · VI = {float(row['vi']):.3f}"
        f"{match}</figcaption></figure>"
    )


def reference_card(path, resolve, px: int, caption: str) -> str:
    thumb = thumbnail(resolve(path), px)
    return (
        f'<figure class="ic-card ic-ref" style="--ic-w:{px}px">{_image_html(thumb, path, None, (4, 4))}'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def gallery_html(
    rows, resolve, *, overlay: bool = False, px: int = 160, max_refs: int = 8, title: str = ""
) -> str:
    """The reference image(s) beside the generated images of one (model, variant, reference).

    Every generated card carries its numbers as data attributes (``data-sim``, ``data-pass``,
    ``data-vr``, ``data-reused``) and, with ``overlay``, one ``.ic-cell`` per grid cell
    (``.ic-reused`` pink, ``.ic-independent`` green).
    """
    if len(rows) == 0:
        return f'{STYLE}<div class="ic-gallery">nothing scored for this selection</div>'
    first = rows.iloc[0]
    refs = list(first["ref_paths"]) if "ref_paths" in rows.columns else [first.get("cra_ref")]
    shown = refs[:max_refs]
    ref_cards = "".join(
        reference_card(
            p, resolve, px, f"reference {i + 1}/{len(refs)} ({first['kind']}): {Path(str(p)).name}"
        )
        for i, p in enumerate(shown)
    )
    more = (
        f'<div class="ic-label">+{len(refs) - len(shown)} more reference images</div>'
        if len(refs) > len(shown)
        else ""
    )
    gens = "".join(generated_card(r, resolve, overlay, px) for _, r in rows.iterrows())
    attrs = (
        f'data-model="{html.escape(str(first["model"]))}" data-variant="{html.escape(str(first["variant"]))}" '
        f'data-slug="{html.escape(str(first["slug"]))}" data-overlay="{int(overlay)}"'
    )
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    prompt = first.get("prompt")
    prompt_html = (
        f'<div class="ic-label">prompt: “{html.escape(str(prompt))}”</div>' if isinstance(prompt, str) else ""
    )
    return (
        f'{STYLE}<div class="ic-gallery" {attrs}>{head}{prompt_html}'
        f'<div class="ic-label">reference</div><div class="ic-row ic-refs">{ref_cards}{more}</div>'
        f'<div class="ic-label">generated ({len(rows)} images)</div><div class="ic-row ic-gens">{gens}</div></div>'
    )


def metrics_html(metrics: dict[str, Any] | None, thresholds: Thresholds, title: str = "") -> str:
    """CRA, VI, CRT and VR of the selected reference, each with its exact value as ``data-value``."""
    if metrics is None:
        return f'{STYLE}<div class="ic-metrics">no reference selected</div>'
    kind = str(metrics["kind"])
    tau = thresholds.static if kind == "static" else thresholds.dynamic
    attrs = (
        f'data-model="{html.escape(str(metrics["model"]))}" data-variant="{html.escape(str(metrics["variant"]))}" '
        f'data-slug="{html.escape(str(metrics["slug"]))}" data-kind="{kind}" '
        f'data-tau-cra="{tau:.3f}" data-tau-reuse="{thresholds.reuse:.3f}"'
    )
    n, k = int(metrics["n_images"]), int(metrics["n_recognised"])
    spans = [
        ("cra", "CRA", metrics["cra"], f"({k}/{n} recognised)"),
        ("vi_mean", "VI", metrics["vi_mean"], "(over recognised)" if k else "(none recognised)"),
        ("crt", "CRT", metrics["crt"], ""),
        ("vr_all", "VR", metrics["vr_all"], "(all images)"),
    ]
    body = " ".join(
        f'<span class="ic-metric" data-metric="{key}" data-value="{_val(v)}">{label} <b>{_fmt(v)}</b> '
        f'<span class="ic-label">{note}</span></span>'
        for key, label, v, note in spans
    )
    head = f"<div><b>{html.escape(title)}</b> <span class='ic-label'>({kind}; τ_CRA {tau:.3f}, τ_reuse {thresholds.reuse:.3f})</span></div>"
    return f'{STYLE}<div class="ic-metrics" {attrs}>{head}{body}</div>'


def summary_html(summary, model: str, variant: str) -> str:
    """The model-level summary (:func:`model_summary`): mean over references [bootstrap 95 % CI]."""
    metrics = [m for m in SUMMARY_METRICS if m in set(summary["metric"])]
    head = "".join(f"<th>{LABELS[m]}</th>" for m in metrics)
    rows = []
    for kind, g in summary.groupby("kind", sort=False):
        cells = []
        by_metric = g.set_index("metric")
        for m in metrics:
            if m not in by_metric.index:
                cells.append("<td></td>")
                continue
            r = by_metric.loc[m]
            cells.append(
                f'<td class="ic-sum" data-kind="{kind}" data-metric="{m}" data-value="{_val(r["mean"])}">'
                f'{_fmt(r["mean"])} <span class="ic-label">[{_fmt(r["ci_low"], 2)}, {_fmt(r["ci_high"], 2)}]</span></td>'
            )
        n = int(g["n_refs"].max())
        rows.append(f"<tr><th>{kind} (n = {n})</th>{''.join(cells)}</tr>")
    return (
        f'{STYLE}<div class="ic-summary"><div><b>{html.escape(model)}</b> · {html.escape(variant)}: '
        "mean over references [bootstrap 95 % CI]</div>"
        f'<table class="ic-table"><tr><th></th>{head}</tr>{"".join(rows)}</table></div>'
    )


def variants_html(
    per_image,
    per_reference,
    model: str,
    slug: str,
    resolve,
    *,
    overlay: bool = False,
    px: int = 96,
    max_images: int = 4,
) -> str:
    """Prompt variants of one (model, reference) side by side (title | synonym | literal | ...)."""
    table = variant_table(per_reference, model, slug)
    if len(table) < 2:
        only = ", ".join(f"'{v}'" for v in table["variant"]) or "none"
        return (
            f'{STYLE}<div class="ic-variants" data-n="{len(table)}"><p><b>no variants scored</b> for this '
            f"model and reference (only {only}).  Stage 05 (notebook 05) adds the prompt variants "
            "<i>synonym</i> and <i>literal</i> to the same score tables.</p></div>"
        )
    cols = []
    for r in table.itertuples():
        rows = _group(per_image, model, r.variant, slug).sort_values("index")
        prompt = rows["prompt"].iloc[0] if "prompt" in rows.columns and len(rows) else ""
        cards = "".join(generated_card(x, resolve, overlay, px) for _, x in rows.head(max_images).iterrows())
        nums = (
            f'<div class="ic-metric" data-metric="cra" data-value="{_val(r.cra)}">CRA <b>{_fmt(r.cra)}</b></div>'
            f'<div class="ic-metric" data-metric="vi_mean" data-value="{_val(r.vi_mean)}">VI <b>{_fmt(r.vi_mean)}</b></div>'
            f'<div class="ic-metric" data-metric="crt" data-value="{_val(r.crt)}">CRT <b>{_fmt(r.crt)}</b></div>'
        )
        cols.append(
            f'<td class="ic-variant" data-variant="{html.escape(r.variant)}" style="vertical-align:top">'
            f"<b>{html.escape(r.variant)}</b><div class='ic-label'>“{html.escape(str(prompt))}”</div>{nums}"
            f'<div class="ic-row">{cards}</div></td>'
        )
    return f'{STYLE}<div class="ic-variants" data-n="{len(table)}"><table class="ic-table"><tr>{"".join(cols)}</tr></table></div>'


# --------------------------------------------------------------------------------------------
# Widgets
# --------------------------------------------------------------------------------------------


class Explorer:
    """The widget app over one results folder (see the module docstring).

    ``Explorer.load(cfg)`` reads the config's results; ``Explorer.load(cfg, "scores/")`` a folder.
    ``ex.widget`` is the app; ``ex.show(interactive)`` displays it, or a static snapshot.
    ``ex.set_thresholds(...)`` and ``ex.select(...)`` drive it from code, as the sliders and lists
    do; ``ex.timings`` holds the seconds of each update.
    """

    TABS = ("Gallery", "Overview", "Variants", "Features")

    def __init__(self, results: Results, *, thumb_px: int = 160, bins: int = 20):
        self.results = results
        self.thumb_px = thumb_px
        self.bins = bins
        self.run_thresholds = stored_thresholds(results.per_image)
        self.timings: list[float] = []
        self._cache: dict[tuple, Recomputed] = {}
        self._summaries: dict[tuple, str] = {}
        self._parts: dict[str, dict] = {}  # model -> recompute()'s cache of re-thresholded kinds
        self._consistency = results.consistency()
        pi = results.per_image
        self._scoring = pi[[c for c in SCORING_COLUMNS if c in pi.columns]]
        self._display = pi[[c for c in pi.columns if c not in SCORING_COLUMNS]]
        self._busy = False
        self._only: list[str] | None = None
        self._dirty: set[str] = set()
        self._points: list = []
        self._build_selection()
        self._build_controls()
        self._build_panes()
        self._tag_widgets()
        self._build_layout()
        self._wire_observers()
        self.update("all")

    def _build_selection(self) -> None:
        """The model and variant pickers, the search and sort, and the reference list."""
        import ipywidgets as W

        models = self.results.models
        self.model = W.Dropdown(options=models, value=models[0], description="model")
        self.variant = W.Dropdown(options=self.results.variants(models[0]), description="variant")
        self.search = W.Text(placeholder="search titles", description="search", continuous_update=True)
        self.sort = W.Dropdown(options=list(SORT_KEYS), value="CRA", description="sort by")
        self.reference = W.Select(options=[], rows=14, description="", layout=W.Layout(width="420px"))
        self.point_note = W.HTML()
        self.show_all = W.Button(description="show all references", layout=W.Layout(display="none"))

    def _build_controls(self) -> None:
        """The threshold sliders (at the run's thresholds), the reset button and the overlay box."""
        import ipywidgets as W

        t = self.run_thresholds
        kinds = set(self.results.per_image["kind"])
        slider = functools.partial(
            W.FloatSlider, min=0.0, max=1.0, step=0.001, readout_format=".3f", continuous_update=False,
            style={"description_width": "120px"}, layout=W.Layout(width="460px"),
        )  # fmt: skip
        self.tau_static = slider(value=t.static, description="τ_CRA static", disabled="static" not in kinds)
        self.tau_dynamic = slider(
            value=t.dynamic, description="τ_CRA dynamic", disabled="dynamic" not in kinds
        )
        self.tau_reuse = slider(value=t.reuse, description="τ_reuse")
        self.reset = W.Button(description="reset to the run's thresholds", layout=W.Layout(width="240px"))
        self.overlay = W.Checkbox(
            value=False,
            description="grid overlay: reused pink, independent green",
            indent=False,
            layout=W.Layout(width="auto"),
        )

    def _build_panes(self) -> None:
        """The output widgets: metrics, summary, status, and the contents of the tabs."""
        import ipywidgets as W

        self.metrics = W.HTML()
        self.summary = W.HTML()
        self.status = W.HTML()
        self.gallery = W.HTML()
        self.overview = W.GridBox(layout=self._grid_layout())
        self.variants = W.HTML()
        columns = numeric_feature_columns(self.results.features)
        labels = feature_labels() if columns else {}
        self.feature = W.Dropdown(
            options=[(f"{labels[c]} ({c})" if c in labels else c, c) for c in columns],
            description="feature",
            style={"description_width": "60px"},
            layout=W.Layout(width="520px"),
        )
        self.feature_plot = W.Image(format="png", layout=W.Layout(width="504px"))
        self.feature_note = W.HTML()

    def _tag_widgets(self) -> None:
        """Add the CSS classes that the stylesheet and the browser tests address."""
        for w, cls in [
            (self.model, "ic-model"), (self.variant, "ic-variant-pick"), (self.search, "ic-search"),
            (self.sort, "ic-sort"), (self.reference, "ic-reference"), (self.tau_static, "ic-tau-static"),
            (self.tau_dynamic, "ic-tau-dynamic"), (self.tau_reuse, "ic-tau-reuse"), (self.overlay, "ic-overlay"),
            (self.reset, "ic-reset"), (self.show_all, "ic-show-all"), (self.overview, "ic-overview"),
            (self.status, "ic-status"), (self.feature, "ic-feature"),
        ]:  # fmt: skip
            w.add_class(cls)

    def _build_layout(self) -> None:
        """Arrange the widgets into the tabs and the app, ``self.widget``."""
        import ipywidgets as W

        overview_box = W.VBox(
            [
                W.HTML(
                    "<div class='ic-label'>One point per reference of the selected model and variant: "
                    "CRA (recognition) left to right, 0 to 1; VI over recognised images (realization) "
                    "bottom to top, 0 to 1; the row under the plot holds references with nothing "
                    "recognised.  Blue static, orange dynamic, red the selected reference; a number "
                    "counts references at one point.  Click a point to open it in the gallery.</div>"
                ),
                self.overview,
            ]
        )
        features_box = W.VBox([self.feature, self.feature_note, self.feature_plot])
        self.tabs = W.Tab(children=[self.gallery, overview_box, self.variants, features_box])
        self.tabs.titles = self.TABS
        self.tabs.add_class("ic-tabs")
        header = W.HTML(self._header_html())
        left = W.VBox(
            [self.model, self.variant, self.search, self.sort, self.reference, self.point_note, self.show_all]
        )
        right = W.VBox(
            [self.tau_static, self.tau_dynamic, self.tau_reuse, W.HBox([self.reset, self.overlay]),
             self.metrics, self.summary, self.status]
        )  # fmt: skip
        self.widget = W.VBox([header, W.HBox([left, right]), self.tabs])
        self.widget.add_class("ic-explorer")

    def _wire_observers(self) -> None:
        """Connect each widget to its handler."""
        self.model.observe(self._on_model, "value")
        self.variant.observe(self._on_selection, "value")
        self.reference.observe(self._on_reference, "value")
        self.search.observe(self._on_list, "value")
        self.sort.observe(self._on_list, "value")
        for s in (self.tau_static, self.tau_dynamic, self.tau_reuse):
            s.observe(self._on_thresholds, "value")
        self.overlay.observe(self._on_overlay, "value")
        self.reset.on_click(self._on_reset)
        self.show_all.on_click(self._on_show_all)
        self.tabs.observe(self._on_tab, "selected_index")
        self.feature.observe(self._on_feature, "value")

    @classmethod
    def load(cls, config=None, results=None, **kwargs) -> Explorer:
        """An explorer over ``results`` (default: the config's results folder)."""
        return cls(load_results(config, results), **kwargs)

    # -- state ---------------------------------------------------------------------------------
    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            float(self.tau_static.value), float(self.tau_dynamic.value), float(self.tau_reuse.value)
        )

    @property
    def current(self) -> Recomputed:
        """The selected model's tables (all its variants) at the current thresholds (cached)."""
        key = (self.model.value, self.thresholds)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
                self._summaries.clear()
            r = self.results
            rows = self._scoring[self._scoring["model"] == self.model.value]  # narrow: faster to group
            parts = self._parts.setdefault(self.model.value, {})
            if len(parts) > 64:
                parts.clear()
            self._cache[key] = recompute(
                rows,
                self.thresholds,
                consistency=self._consistency,
                n_bootstrap=r.n_bootstrap,
                seed=r.seed,
                cache=parts,
            )
        return self._cache[key]

    def _shown(self, rows):
        """Re-thresholded rows with their display columns (path, prompt, references) joined back."""
        return rows.join(self._display.loc[rows.index])

    @property
    def slug(self) -> str | None:
        return self.reference.value

    def title(self, slug: str | None) -> str:
        return self.results.titles.get(slug, slug) if slug else ""

    def selected_rows(self):
        """The generated images of the selected (model, variant, reference) at the current thresholds."""
        rows = _group(self.current.per_image, self.model.value, self.variant.value, self.slug)
        return self._shown(rows.sort_values("index", kind="stable"))

    def table(self):
        """Per-reference scores of the selected model and variant at the current thresholds."""
        return reference_list(
            self.current.per_reference,
            self.model.value,
            self.variant.value,
            self.results.titles,
            sort=self.sort.value,
        )

    def describe(self) -> str:
        r = self.results
        n = r.per_image.groupby(["model", "variant"]).size()
        parts = [f"{m} · {v}: {k} images" for (m, v), k in n.items()]
        feats = (
            f"{len(numeric_feature_columns(r.features))} numeric features"
            if r.features is not None
            else "none"
        )
        t = self.run_thresholds
        return (
            f"results: {r.folder}\n"
            f"scored: {'; '.join(parts)}; {r.per_image['slug'].nunique()} references\n"
            f"run thresholds: τ_CRA static {t.static:g}, dynamic {t.dynamic:g}; τ_reuse {t.reuse:g}\n"
            f"stage 06 features ({FEATURES}): {feats}"
        )

    # -- driving it from code (what the widgets do) ---------------------------------------------
    def set_thresholds(
        self, static: float | None = None, dynamic: float | None = None, reuse: float | None = None
    ):
        """Move the sliders (one update for all of them)."""
        self._busy = True
        try:
            for s, v in ((self.tau_static, static), (self.tau_dynamic, dynamic), (self.tau_reuse, reuse)):
                if v is not None:
                    s.value = float(v)
        finally:
            self._busy = False
        self.update("thresholds")

    def select(self, model: str | None = None, variant: str | None = None, slug: str | None = None):
        """Select a model, variant and/or reference (clearing the search to show the reference).

        Raises:
            KeyError: the reference is not scored for the selected model and variant.
        """
        if model is not None:
            self.model.value = model
        if variant is not None:
            self.variant.value = variant
        if slug is not None:
            self._busy = True
            try:
                self._only = None
                self.search.value = ""
            finally:
                self._busy = False
            self.update("list", select=slug)
            if self.slug != slug:
                raise KeyError(f"{slug!r} is not scored for {self.model.value} · {self.variant.value}")

    # -- observers -------------------------------------------------------------------------------
    def _on_model(self, change):
        if self._busy:
            return
        self._busy = True
        try:
            variants = self.results.variants(self.model.value)
            keep = self.variant.value if self.variant.value in variants else variants[0]
            self.variant.options = variants
            self.variant.value = keep
        finally:
            self._busy = False
        self.update("selection")

    def _on_selection(self, change):
        if not self._busy:
            self.update("selection")

    def _on_list(self, change):
        if not self._busy:
            self.update("list")

    def _on_reference(self, change):
        if not self._busy and change["new"] is not None:
            self.update("reference")

    def _on_thresholds(self, change):
        if not self._busy:
            self.update("thresholds")

    def _on_overlay(self, change):
        self.update("overlay")

    def _on_reset(self, _button=None):
        t = self.run_thresholds
        self.set_thresholds(t.static, t.dynamic, t.reuse)

    def _on_show_all(self, _button=None):
        self._only = None
        self.update("list")

    def _on_tab(self, change):
        self._render_tabs()

    def _on_feature(self, change):
        if not self._busy:
            self._dirty.add("features")
            self._render_tabs()

    def _on_point(self, slugs: tuple[str, ...], _button=None):
        self._busy = True
        try:
            self._only = list(slugs) if len(slugs) > 1 else None
            self.search.value = ""
        finally:
            self._busy = False
        self.update("list", select=slugs[0])
        self.tabs.selected_index = 0

    # -- updates -----------------------------------------------------------------------------------
    def update(self, what: str = "all", select: str | None = None) -> float:
        """Recompute and redraw what ``what`` changed; returns (and records) the seconds it took.

        ``what``: ``all``, ``selection`` (model or variant), ``list`` (search, sort, a clicked
        point), ``thresholds``, ``reference`` or ``overlay``.
        """
        t0 = time.perf_counter()
        if what in ("all", "selection", "list", "thresholds"):
            self._refresh_list(select)
        if what != "overlay":
            self._render_numbers()
            self._dirty |= {"overview", "variants", "features"}
        else:
            self._dirty.add("variants")
        self._render_gallery()
        self._render_tabs()
        dt = time.perf_counter() - t0
        self.timings.append(dt)
        self.status.value = f"<span class='ic-label'>updated in {1000 * dt:.0f} ms</span>"
        return dt

    def _refresh_list(self, select: str | None = None):
        refs = reference_list(
            self.current.per_reference, self.model.value, self.variant.value, self.results.titles,
            search=self.search.value, sort=self.sort.value, only=self._only,
        )  # fmt: skip
        titles = refs["title"].tolist()
        dup = {t for t in titles if titles.count(t) > 1}
        options = [
            (
                f"{r.title}{f' ({r.slug})' if r.title in dup else ''} · {r.kind} · "
                f"CRA {r.cra:.2f} · VR {r.vr_all:.2f} · CRT {r.crt:.2f}",
                r.slug,
            )
            for r in refs.itertuples()
        ]
        want = select or self.reference.value
        slugs = refs["slug"].tolist()
        self._busy = True
        try:
            self.reference.options = options
            self.reference.value = want if want in slugs else (slugs[0] if slugs else None)
        finally:
            self._busy = False
        if self._only is not None:
            self.point_note.value = (
                f"<span class='ic-label'>{len(self._only)} references at the clicked point</span>"
            )
            self.show_all.layout.display = None
        else:
            self.point_note.value = (
                "" if slugs else "<span class='ic-label'>no reference matches the search</span>"
            )
            self.show_all.layout.display = "none"

    def _render_numbers(self):
        rec = self.current
        m = None
        if self.slug is not None:
            m = reference_metrics(rec.per_reference, self.model.value, self.variant.value, self.slug)
        self.metrics.value = metrics_html(m, self.thresholds, self.title(self.slug))
        key = (self.model.value, self.variant.value, self.thresholds)
        if key not in self._summaries:
            summary = model_summary(rec.per_model, self.model.value, self.variant.value)
            self._summaries[key] = summary_html(summary, self.model.value, self.variant.value)
        self.summary.value = self._summaries[key]

    def _render_gallery(self):
        if self.slug is None:
            self.gallery.value = f"{STYLE}<div class='ic-gallery'>no reference selected</div>"
            return
        self.gallery.value = gallery_html(
            self.selected_rows(), self.results.resolve, overlay=self.overlay.value, px=self.thumb_px,
            title=self.title(self.slug),
        )  # fmt: skip

    def _render_tabs(self):
        """Draw the visible tab if something it shows changed (the others wait until opened)."""
        name = self.TABS[self.tabs.selected_index or 0].lower()
        if name not in self._dirty:
            return
        self._dirty.discard(name)
        if name == "overview":
            self._render_overview()
        elif name == "variants":
            self._render_variants()
        elif name == "features":
            self._render_features()

    def _grid_layout(self):
        import ipywidgets as W

        n_rows, n_cols = self.bins + 3, self.bins + 1
        return W.Layout(
            grid_template_columns=f"repeat({n_cols}, 20px)",
            grid_template_rows=f"repeat({n_rows}, 20px)",
            border="1px solid #bbb",
            width=f"{20 * n_cols + 2}px",
        )

    def _render_overview(self):
        import ipywidgets as W

        pts = overview_points(self.current.per_reference, self.model.value, self.variant.value, self.bins)
        for b in self._points:
            b.close()
        self._points = []
        n = self.bins + 1
        axes = W.HTML(
            f"<svg width='{20 * n}' height='{20 * n}' style='display:block'>"
            f"<line x1='{10 * n}' y1='0' x2='{10 * n}' y2='{20 * n}' stroke='#ccc'/>"
            f"<line x1='0' y1='{10 * n}' x2='{20 * n}' y2='{10 * n}' stroke='#ccc'/>"
            "<text x='4' y='12' font-size='10' fill='#999'>not recognised</text>"
            f"<text x='{20 * n - 4}' y='12' font-size='10' fill='#999' text-anchor='end'>recognised, transformed</text>"
            f"<text x='{20 * n - 4}' y='{20 * n - 4}' font-size='10' fill='#999' text-anchor='end'>recognised, replicated</text>"
            "</svg>",
            layout=W.Layout(grid_area=f"1 / 1 / {n + 1} / {n + 1}"),
        )
        note = W.HTML(
            "<span style='font-size:10px;color:#999'>nothing recognised (no VI)</span>",
            layout=W.Layout(grid_area=f"{self.bins + 2} / 1 / {self.bins + 3} / {n + 1}"),
        )
        for (row, col), g in pts.groupby(["row", "col"], sort=True):
            slugs = tuple(g.sort_values(["cra", "slug"], ascending=[False, True])["slug"])
            kinds = set(g["kind"])
            color = SELECTED_COLOR if self.slug in slugs else KIND_COLORS.get(next(iter(kinds)), "#7f7f7f")
            if len(kinds) > 1 and self.slug not in slugs:
                color = "#7f7f7f"
            tip = "\n".join(
                f"{self.title(s)} ({s}): CRA {c:.2f}, VI {_fmt(v, 2)}"
                for s, c, v in zip(g["slug"], g["cra"], g["vi_mean"], strict=True)
            )
            b = W.Button(
                description=str(len(slugs)) if len(slugs) > 1 else "",
                tooltip=tip,
                layout=W.Layout(
                    grid_area=f"{row} / {col}", width="18px", height="18px", padding="0", margin="1px"
                ),
            )
            b.style.button_color = color
            b.style.font_size = "9px"
            b.add_class("ic-point")
            b.on_click(functools.partial(self._on_point, slugs))
            self._points.append(b)
        self.overview.children = [axes, note, *self._points]

    def _render_variants(self):
        if self.slug is None:
            self.variants.value = ""
            return
        rec = self.current
        rows = self._shown(rec.per_image[rec.per_image["slug"] == self.slug])
        self.variants.value = variants_html(
            rows, rec.per_reference, self.model.value, self.slug, self.results.resolve,
            overlay=self.overlay.value,
        )  # fmt: skip

    def _render_features(self):
        r = self.results
        if r.features is None:
            self.feature.layout.display = "none"
            self.feature_plot.layout.display = "none"
            self.feature_note.value = (
                f"<p><b>stage 06 features missing</b>: {html.escape(str(r.features_path))} not found. "
                "Notebook 06 (correlates) writes it: one row per reference (key <code>slug</code>) "
                "with numeric feature columns.</p>"
            )
            return
        if not self.feature.value:
            self.feature_plot.layout.display = "none"
            self.feature_note.value = f"<p>{html.escape(str(r.features_path))} has no numeric column.</p>"
            return
        frame = feature_frame(
            self.current.per_reference, r.features, self.model.value, self.variant.value, self.feature.value
        )
        title = f"{self.model.value} · {self.variant.value}"
        self.feature_plot.value = figure_png(feature_figure(frame, self.feature.value, title))
        self.feature_note.value = (
            f"<span class='ic-label'>CRA at the current thresholds against <b>{html.escape(self.feature.value)}</b> "
            f"({len(frame)} references with both; from {html.escape(str(r.features_path))})</span>"
        )

    # -- display -----------------------------------------------------------------------------------
    def _header_html(self) -> str:
        r = self.results
        standin = f"<div class='ic-standin'>*** {STANDIN_LABEL} ***</div>" if r.is_standin else ""
        return (
            f"{STYLE}<div class='ic-header'><b>Iconicity explorer</b> · results "
            f"<code>{html.escape(str(r.folder))}</code>{standin}</div>"
        )

    def snapshot_html(self) -> str:
        """A static HTML copy of the current view, the grid overlay drawn (what an executed
        notebook shows without a kernel)."""
        table = self.table()
        table_html = table.to_html(
            index=False, float_format=lambda v: f"{v:.3f}", classes="ic-table", border=0
        )
        gallery = variants = "<p>no reference selected</p>"
        if self.slug is not None:
            gallery = gallery_html(
                self.selected_rows(),
                self.results.resolve,
                overlay=True,
                px=self.thumb_px,
                title=self.title(self.slug),
            )
            rec = self.current
            rows = self._shown(rec.per_image[rec.per_image["slug"] == self.slug])
            variants = variants_html(
                rows, rec.per_reference, self.model.value, self.slug, self.results.resolve, overlay=True
            )
        return (
            f"{self._header_html()}"
            "<p class='ic-label'>Static snapshot (INTERACTIVE = False), grid overlay on.  For the "
            "sliders, open this notebook in JupyterLab with INTERACTIVE = True, or serve it with "
            "<code>voila notebooks/07_explorer.ipynb</code>.</p>"
            f"{self.metrics.value}{self.summary.value}{gallery}"
            f"<h4>Prompt variants</h4>{variants}"
            f"<h4>All references of {html.escape(self.model.value)} · {html.escape(self.variant.value)}</h4>"
            f"<div class='ic-summary'>{table_html}</div>"
        )

    def show(self, interactive: bool = True):
        """Display the app (``interactive``) or its static snapshot; never waits for input."""
        from IPython.display import HTML, display

        if interactive:
            display(self.widget)
        else:
            display(HTML(self.snapshot_html()))
