"""The figure of stage 02: a gallery of generated images."""

from __future__ import annotations

from typing import TYPE_CHECKING

from iconicity_utils.core.constants import BASE_VARIANT
from iconicity_utils.core.images import open_rgb

if TYPE_CHECKING:
    import pandas as pd

    from iconicity_utils.config import StudyConfig

__all__ = ["gallery_figure"]


def gallery_figure(cfg: StudyConfig, manifest: pd.DataFrame, n_refs: int = 6, variant: str = BASE_VARIANT):
    """A grid of generated images: one row per (model, index), one column per reference.

    Args:
        cfg: the study config (resolves the manifest's paths).
        manifest: the generation manifest.
        n_refs: how many references (the first ``n_refs`` slugs in sorted order).
        variant: which prompt variant to show.
    """
    import matplotlib.pyplot as plt

    rows = manifest[manifest["variant"] == variant]
    if rows.empty:
        raise ValueError(f"the manifest has no images of variant {variant!r}")
    slugs = sorted(rows["slug"].unique())[:n_refs]
    rows = rows[rows["slug"].isin(slugs)]
    lines = sorted({(m, int(i)) for m, i in rows[["model", "index"]].itertuples(index=False)})
    fig, axes = plt.subplots(
        len(lines), len(slugs), figsize=(1.6 * len(slugs) + 1, 1.6 * len(lines) + 0.8), squeeze=False
    )
    by_key = {(r.model, int(r.index), r.slug): r for r in rows.itertuples(index=False)}
    for i, (model, index) in enumerate(lines):
        for j, slug in enumerate(slugs):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            row = by_key.get((model, index, slug))
            if row is not None:
                ax.imshow(open_rgb(cfg.absolute(row.path)), interpolation="nearest")
            if i == 0:
                prompt = rows.loc[rows["slug"] == slug, "prompt"].iloc[0]
                ax.set_title(prompt if len(prompt) <= 18 else prompt[:17] + "…", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{model}\n#{index}", fontsize=7)
    fig.suptitle(f"Generated images, variant {variant!r}", y=0.95, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
