"""Figures of stages 03-04, drawn from the score tables (save them with
:func:`iconicity_utils.core.plotting.save_figure`, which labels stand-in output).

- :func:`plot_cra_distribution`: the best CLIP similarity s_i of every generated image, with τ;
- :func:`plot_model_scores`: per-model CRA / VI / CRT with bootstrap 95 % CIs, static vs dynamic;
- :func:`plot_recognition_realization`: per reference, CRA against VI (recognition x realization);
- :func:`plot_threshold_sensitivity`: CRA, VR and CRT as τ / τ_reuse vary;
- :func:`plot_gallery`: generated images with reused (pink) and independent (green) cells, beside
  the reference they best match, as in the paper's framework figure;
- :func:`plot_baseline_agreement`: rank correlations between our scores and the baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from iconicity_utils.core.constants import GRID
from iconicity_utils.core.images import grid_boxes, open_rgb
from iconicity_utils.metrics.realization import rank_correlation
from iconicity_utils.metrics.recognition import passes
from iconicity_utils.score.tables import threshold_sweep

__all__ = [
    "REUSED",
    "INDEPENDENT",
    "reuse_overlay",
    "plot_cra_distribution",
    "plot_model_scores",
    "plot_recognition_realization",
    "plot_threshold_sensitivity",
    "plot_gallery",
    "gallery_rows",
    "plot_baseline_agreement",
]

REUSED = (236, 64, 160)  # pink, as the paper's "Reused" patches
INDEPENDENT = (46, 160, 67)  # green, "Independent"
METRIC_LABELS = {
    "cra": "CRA",
    "vi_mean": "VI (recognised)",
    "crt": "CRT",
    "vr_all": "VR",
    "consistency": "consistency",
}


def reuse_overlay(
    image, reused: Sequence[bool], grid: tuple[int, int] = GRID, alpha: float = 0.45, scale: int = 1
):
    """The image with each grid cell tinted pink (reused) or green (independent), cell borders drawn.

    Args:
        image: a PIL image.
        reused: ``rows*cols`` flags in row-major order (:func:`~iconicity_utils.core.images.grid_boxes`).
        grid: ``(rows, cols)``.
        alpha: tint strength.
        scale: integer upscaling (nearest neighbour) for display; the cells are those of the original.
    """
    from PIL import Image, ImageDraw

    base = image.convert("RGB")
    boxes = grid_boxes(base.width, base.height, grid)
    if len(reused) != len(boxes):
        raise ValueError(f"{len(reused)} flags for a {grid[0]}x{grid[1]} grid")
    if scale > 1:
        base = base.resize((base.width * scale, base.height * scale), Image.Resampling.NEAREST)
        boxes = [tuple(v * scale for v in box) for box in boxes]
    tint = Image.new("RGB", base.size)
    draw = ImageDraw.Draw(tint)
    for box, flag in zip(boxes, reused, strict=True):
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=REUSED if flag else INDEPENDENT)
    out = Image.blend(base, tint, alpha)
    edges = ImageDraw.Draw(out)
    for box in boxes:
        edges.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=(255, 255, 255))
    return out


def _plt():
    # no backend is forced: scripts without a display get matplotlib's headless default, and a
    # notebook keeps its inline backend, so figures show in the notebook as well as on disk
    import matplotlib.pyplot as plt

    return plt


def plot_cra_distribution(per_image, bins: int = 30):
    """Histogram of s_i per reference kind and model, with the kind's τ (dashed)."""
    plt = _plt()
    kinds = [k for k in ("static", "dynamic") if k in set(per_image["kind"])]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.6), squeeze=False)
    lo = float(min(per_image["cra_sim"].min(), per_image["cra_tau"].min())) - 0.02
    edges = np.linspace(lo, 1.0, bins + 1)
    for ax, kind in zip(axes[0], kinds, strict=True):
        d = per_image[per_image["kind"] == kind]
        for model, g in d.groupby("model", sort=True):
            ax.hist(g["cra_sim"], bins=edges, alpha=0.55, label=model)
        for tau in sorted(set(d["cra_tau"])):
            ax.axvline(tau, color="k", ls="--", lw=1)
            ax.text(tau, ax.get_ylim()[1] * 0.95, f" τ={tau:g}", va="top", fontsize=8)
        ax.set(
            title=f"{kind} references", xlabel="best CLIP image similarity $s_i$", ylabel="generated images"
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_model_scores(
    per_model, metrics: Sequence[str] = ("cra", "vi_mean", "crt"), variant: str | None = "title"
):
    """Per-model means with bootstrap 95 % CIs over references, one panel per reference kind."""
    plt = _plt()
    df = per_model[per_model["metric"].isin(metrics)]
    if variant is not None and variant in set(df["variant"]):
        df = df[df["variant"] == variant]
    kinds = [k for k in ("static", "dynamic") if k in set(df["kind"])]
    models = sorted(set(df["model"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.8), squeeze=False, sharey=True)
    width = 0.8 / max(1, len(models))
    for ax, kind in zip(axes[0], kinds, strict=True):
        for j, model in enumerate(models):
            g = df[(df["kind"] == kind) & (df["model"] == model)].set_index("metric").reindex(list(metrics))
            x = np.arange(len(metrics)) + (j - (len(models) - 1) / 2) * width
            err = np.vstack([g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]])
            ax.bar(x, g["mean"], width, yerr=np.nan_to_num(err), capsize=3, label=model)
        ax.set_xticks(np.arange(len(metrics)), [METRIC_LABELS.get(m, m) for m in metrics])
        n = int(df[df["kind"] == kind]["n_refs"].max()) if len(df[df["kind"] == kind]) else 0
        ax.set(title=f"{kind} references (n ≤ {n})", ylim=(0, 1.05), ylabel="mean over references")
        ax.legend(fontsize=8)
    fig.suptitle("error bars: bootstrap 95 % CI over references", fontsize=9, y=0.02, va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    return fig


def plot_recognition_realization(per_reference, variant: str | None = "title"):
    """One point per (model, reference): CRA (x) against VI over recognised images (y).

    References with no recognised image have no VI; they are drawn at the bottom edge as crosses.
    """
    plt = _plt()
    df = per_reference
    if variant is not None and variant in set(df["variant"]):
        df = df[df["variant"] == variant]
    fig, ax = plt.subplots(figsize=(5.8, 4.6))
    markers = {"static": "o", "dynamic": "s"}
    colors = dict(
        zip(sorted(set(df["model"])), plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False)
    )
    for (model, kind), g in df.groupby(["model", "kind"], sort=True):
        ok = g["vi_mean"].notna()
        ax.scatter(
            g.loc[ok, "cra"],
            g.loc[ok, "vi_mean"],
            marker=markers.get(kind, "o"),
            color=colors[model],
            alpha=0.75,
            label=f"{model} · {kind}",
        )
        ax.scatter(
            g.loc[~ok, "cra"], np.full((~ok).sum(), -0.04), marker="x", color=colors[model], alpha=0.75
        )
    ax.axhline(0.5, color="0.7", lw=0.8)
    ax.axvline(0.5, color="0.7", lw=0.8)
    for x, y, text in [
        (0.98, 0.98, "recognised,\ntransformed"),
        (0.98, 0.02, "recognised,\nreplicated"),
        (0.02, 0.98, "not recognised"),
    ]:
        ax.text(
            x,
            y,
            text,
            transform=ax.transAxes,
            ha="right" if x > 0.5 else "left",
            va="top" if y > 0.5 else "bottom",
            fontsize=8,
            color="0.4",
        )
    ax.set(
        xlim=(-0.05, 1.05),
        ylim=(-0.08, 1.05),
        xlabel="CRA (recognition)",
        ylabel="VI over recognised images (realization)",
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def plot_threshold_sensitivity(per_image, taus: Sequence[float] | None = None, variant: str | None = "title"):
    """CRA vs τ, VR vs τ_reuse and CRT vs τ, one line per (model, kind); dotted: the table's values."""
    plt = _plt()
    df = per_image
    if variant is not None and variant in set(df["variant"]):
        df = df[df["variant"] == variant]
    panels = [("cra", "tau_cra", "τ (CRA)"), ("vr", "tau_reuse", "τ_reuse"), ("crt", "tau_cra", "τ (CRA)")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    styles = {"static": "-", "dynamic": "--"}
    for ax, (metric, vary, xlabel) in zip(axes, panels, strict=True):
        sweep = threshold_sweep(df, taus, metric=metric, vary=vary)
        for (model, kind), g in sweep.groupby(["model", "kind"], sort=True):
            ax.plot(g["tau"], g["value"], styles.get(kind, "-"), label=f"{model} · {kind}")
        used = sorted(set(df["cra_tau"] if vary == "tau_cra" else df["vr_tau"]))
        for t in used:
            ax.axvline(t, color="k", ls=":", lw=1)
        ax.set(
            xlabel=xlabel,
            ylabel=METRIC_LABELS.get(metric, metric).split(" ")[0],
            ylim=(-0.03, 1.03),
            title=f"{METRIC_LABELS.get(metric, metric)} vs {xlabel}",
        )
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def gallery_rows(per_image, n: int = 4):
    """``n`` generated images spanning the range of VR (deterministic: evenly spaced in VR order)."""
    df = per_image.sort_values(["vr", "cra_sim", "model", "slug", "index"], kind="stable").reset_index(
        drop=True
    )
    if len(df) <= n:
        return df
    pick = np.unique(np.linspace(0, len(df) - 1, n).round().astype(int))
    return df.iloc[pick].reset_index(drop=True)


def plot_gallery(per_image, resolve: Callable[[str], Path] = Path, n: int = 4, rows=None):
    """Generated images with reused (pink) / independent (green) cells, beside the matched reference.

    Args:
        per_image: the per-image table (``vr_cells``, ``vr_tau``, ``comparison``, ``cra_ref``, ...).
        resolve: stored path -> file (e.g. ``cfg.absolute``).
        n: number of pairs (chosen by :func:`gallery_rows` unless ``rows`` is given).
        rows: the rows to show.
    """
    plt = _plt()
    rows = gallery_rows(per_image, n) if rows is None else rows
    fig, axes = plt.subplots(len(rows), 2, figsize=(6.4, 3.0 * len(rows)), squeeze=False)
    for (ax_gen, ax_ref), (_, row) in zip(axes, rows.iterrows(), strict=True):
        gen = open_rgb(resolve(row["path"]))
        g_rows, g_cols = (int(v) for v in str(row["grid"]).split("x"))
        reused = passes(np.asarray(row["vr_cells"]), row["vr_tau"], row["comparison"])
        scale = max(1, 256 // max(gen.size))
        ax_gen.imshow(reuse_overlay(gen, reused.tolist(), (g_rows, g_cols), scale=scale))
        ax_gen.set_title(
            f"{row['model']} · {row['slug']} #{row['index']}\nVR={row['vr']:.2f}  VI={row['vi']:.2f}  "
            f"s={row['cra_sim']:.2f} ({'recognised' if row['cra_pass'] else 'not recognised'})",
            fontsize=8,
        )
        ax_ref.imshow(open_rgb(resolve(row["cra_ref"])))
        ax_ref.set_title(f"reference ({row['kind']})\n{Path(str(row['cra_ref'])).name}", fontsize=8)
        for ax in (ax_gen, ax_ref):
            ax.set_xticks([])
            ax.set_yticks([])
    from matplotlib.patches import Patch

    fig.legend(
        handles=[
            Patch(color=np.array(REUSED) / 255, label="reused"),
            Patch(color=np.array(INDEPENDENT) / 255, label="independent"),
        ],
        loc="lower center",
        ncol=2,
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def plot_baseline_agreement(per_image):
    """Spearman correlations between our scores and the similarity baselines (per generated image).

    ``phash_dist`` is negated so that, for every column, higher means "closer to the reference".
    """
    plt = _plt()
    cols = {
        "VR": "vr",
        "vr_mean": "vr_mean",
        "CRA s_i": "cra_sim",
        "DINO cos": "dino_cos",
        "SSCD cos": "sscd_cos",
        "−pHash dist": "phash_dist",
        "SSIM": "ssim",
    }
    cols = {k: v for k, v in cols.items() if v in per_image.columns and per_image[v].notna().any()}
    data = {
        k: (-per_image[v] if v == "phash_dist" else per_image[v]).to_numpy(float) for k, v in cols.items()
    }
    names = list(data)
    mat = np.array([[rank_correlation(data[a], data[b]) for b in names] for a in names])
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(names), 0.6 + 0.65 * len(names)))
    im = ax.imshow(mat, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(mat[i, j]):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label="Spearman ρ")
    ax.set_title(f"rank agreement over {len(per_image)} generated images", fontsize=9)
    fig.tight_layout()
    return fig
