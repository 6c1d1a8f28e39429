"""The figures of notebook 08: ROC curves, AUROC per edit, VR against k, the limits, an edit gallery.

Each function returns a matplotlib figure; the notebook saves it with
:func:`~iconicity_utils.core.plotting.save_figure`, which stamps the stand-in label.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from iconicity_utils.core.images import open_rgb
from iconicity_utils.validate.analysis import COMPARISONS, ENCODER_FREE, comparison_sides, oriented, roc_curve
from iconicity_utils.validate.measure import MEASURES

__all__ = ["plot_roc", "plot_auroc_by_edit", "plot_calibration", "plot_limits", "plot_edit_gallery"]


def _measures(scores: pd.DataFrame) -> list[str]:
    return [m for m in MEASURES if m in scores.columns and scores[m].notna().any()]


def plot_roc(scores: pd.DataFrame, auroc: pd.DataFrame):
    """ROC curves of every measure, one panel per comparison (all edits)."""
    fig, axes = plt.subplots(1, len(COMPARISONS), figsize=(11, 4.6))
    for ax, comparison in zip(axes, COMPARISONS, strict=True):
        _, pos, neg = comparison_sides(scores, comparison)[0]
        for measure in _measures(scores):
            values = oriented(scores[measure], measure)
            fpr, tpr = roc_curve(values[pos.to_numpy()], values[neg.to_numpy()])
            row = auroc[
                (auroc["comparison"] == comparison)
                & (auroc["subset"] == "all")
                & (auroc["measure"] == measure)
            ]
            style = "-" if measure in ENCODER_FREE else "--"
            ax.plot(fpr, tpr, style, label=f"{MEASURES[measure][0]} ({row['auroc'].iloc[0]:.2f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set(title=comparison.replace("_", " "), xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize=7, loc="lower right", title="AUROC", title_fontsize=7)
    fig.tight_layout()
    return fig


def plot_auroc_by_edit(auroc: pd.DataFrame, comparison: str = "replication_vs_transformation"):
    """AUROC per edit (rows) and measure (columns) for one comparison."""
    table = auroc[auroc["comparison"] == comparison].pivot(index="subset", columns="measure", values="auroc")
    table = table.reindex(columns=[m for m in MEASURES if m in table.columns])
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(table) + 1.6))
    im = ax.imshow(table.to_numpy(dtype=float), vmin=0, vmax=1, cmap="RdBu", aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=30, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index)
    for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
        ax.text(j, i, "" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_title(f"AUROC per edit: {comparison.replace('_', ' ')}")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def plot_calibration(calibration: pd.DataFrame, n_cells: int = 16):
    """VR (and its mean-of-maxima form) against k, the cells replaced, with the expected line."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for measure in ("vr", "vr_mean"):
        rows = calibration[calibration["measure"] == measure].sort_values("k")
        if rows.empty:
            continue
        ax.errorbar(rows["k"], rows["mean"], yerr=[rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]],
                    marker="o", capsize=3, label=MEASURES[measure][0])  # fmt: skip
    k = np.arange(n_cells + 1)
    ax.plot(k, (n_cells - k) / n_cells, color="grey", ls=":", label="expected VR: (K − k) / K")
    ax.set(
        xlabel="k: cells replaced by another image's",
        ylabel="mean over sources (95 % CI)",
        ylim=(-0.05, 1.05),
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_limits(limits: pd.DataFrame):
    """Can a measure tell a cell shuffle, or a shift, from the exact copy? (AUROC, copy vs the edit)"""
    table = limits.pivot(index="measure", columns="edit_id", values="auroc_vs_copy")
    table = table.reindex([m for m in MEASURES if m in table.index])
    fig, ax = plt.subplots(figsize=(7.5, 4))
    table.plot.bar(ax=ax, width=0.8)
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set(ylim=(0, 1.05), ylabel="AUROC, copy vs the edit", xlabel="",
           title="0.5: the measure cannot tell the edit from a copy")  # fmt: skip
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    return fig


def plot_edit_gallery(scores: pd.DataFrame, resolve, source: str | None = None, n_cols: int = 8):
    """One source's edits (the middle strength of each), each with its family, VR and pHash distance."""
    source = source or scores["source"].iloc[0]
    rows = scores[scores["source"] == source]
    by_edit = rows.groupby("edit", sort=False)
    rows = rows[by_edit.cumcount() == by_edit["edit"].transform("size") // 2]
    n_rows = int(np.ceil((len(rows) + 1) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols, 1.9 * n_rows))
    axes = np.atleast_1d(axes).ravel()
    axes[0].imshow(open_rgb(resolve(rows["source_path"].iloc[0])))
    axes[0].set_title(f"source\n{source}", fontsize=6)
    for ax, row in zip(axes[1:], rows.itertuples(), strict=False):
        ax.imshow(open_rgb(resolve(row.path)))
        ax.set_title(
            f"{row.edit_id} ({row.family[:5]})\nVR {row.vr:.2f} · pHash {row.phash_dist:.0f}", fontsize=6
        )
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig
