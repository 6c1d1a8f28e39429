"""Figure style and saving.  A figure made by stand-in models says so on its face.

All figures use the non-interactive ``agg`` backend when saved from scripts, one seaborn style,
and :func:`save_figure`, which stamps :data:`~iconicity_utils.core.constants.STANDIN_LABEL` across the
figure whenever the config uses a random-weight stand-in or synthetic reference images.
"""

from __future__ import annotations

from pathlib import Path

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.core.io import atomic_path

__all__ = ["set_style", "save_figure", "stamp_standin"]


def set_style() -> None:
    """The one style every figure uses."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def stamp_standin(fig) -> None:
    """Write the stand-in label across the top of ``fig`` and as a diagonal watermark."""
    fig.text(
        0.5,
        0.995,
        f"⚠ {STANDIN_LABEL}",
        ha="center",
        va="top",
        fontsize=9,
        color="#b00020",
        fontweight="bold",
        bbox={"facecolor": "white", "edgecolor": "#b00020", "boxstyle": "round,pad=0.2", "alpha": 0.9},
    )
    fig.text(
        0.5,
        0.5,
        "STAND-IN",
        ha="center",
        va="center",
        fontsize=48,
        color="#b00020",
        alpha=0.12,
        rotation=30,
        zorder=0,
    )


def save_figure(fig, path: str | Path, cfg=None, standin: bool | None = None) -> Path:
    """Save ``fig`` (PNG, 150 dpi) atomically; stamp the stand-in label when it applies.

    A stand-in figure carries the label twice: drawn on its face (:func:`stamp_standin`), and as
    the PNG text chunk ``iconicity:standin``, so a copied file still says what it is.

    Args:
        fig: a matplotlib figure.
        path: where to write it.
        cfg: the study config; decides whether the figure is stand-in output.
        standin: force the label on or off (default: derived from ``cfg``).
    """
    if standin is None:
        standin = cfg is not None and cfg.is_standin
    if standin and not getattr(fig, "_iconicity_stamped", False):
        stamp_standin(fig)
        fig._iconicity_stamped = True  # saving twice must not draw the label twice
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    metadata = {"iconicity:standin": STANDIN_LABEL} if standin and fmt == "png" else None
    with atomic_path(path, suffix=f".tmp{path.suffix}") as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight", format=fmt, metadata=metadata)
    return path
