"""Every measure on every pair of stage 08, through the scoring engine.

The validation set is laid out as the authors' folders (:mod:`~iconicity_utils.validate.dataset`),
so :func:`~iconicity_utils.score.score_folders` scores it as it scores a user's folders: each
source is a static reference, its edits the generated images of one model.  The engine decides
everything as for the study (encoders, ``cells``, ``pool``, thresholds, the baselines) and caches
features by content, so a rerun embeds nothing.  Only ``realization.k_gen`` is raised to the
number of edits per source, so that every edit is scored.

The scores table is the edit table joined with :data:`MEASURES` (and the per-cell maxima
``vr_cells``), one row per edit.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from iconicity_utils.score import score_folders
from iconicity_utils.validate.dataset import SCORED_MODEL, validation_dir

__all__ = ["MEASURES", "SCORES_TABLE", "measure_edits"]

#: the scores table, in the results folder
SCORES_TABLE = "validation_scores.parquet"
#: measure -> (label, True when a higher value means closer to the source).  ``cra_sim`` is CRA's
#: similarity s_i (for a static reference, the global CLIP cosine: it equals ``clip_cos``).
MEASURES: dict[str, tuple[str, bool]] = {
    "vr": ("VR (thresholded)", True),
    "vr_mean": ("VR (mean of cell maxima)", True),
    "cra_sim": ("CRA similarity", True),
    "clip_cos": ("CLIP cosine", True),
    "dino_cos": ("DINO cosine", True),
    "sscd_cos": ("SSCD cosine", True),
    "phash_dist": ("pHash distance", False),
    "ssim": ("SSIM", True),
}
#: per-image columns kept beside the measures: the raw cell maxima and what decided them
KEPT = (
    "vr_cells",
    "vr_tau",
    "comparison",
    "vr_cells_mode",
    "vr_pool",
    "cra_encoder",
    "vr_encoder",
    "sscd_encoder",
)


def measure_edits(
    cfg, edits: pd.DataFrame, *, encoders: dict[str, Any] | None = None, cache_dir=None
) -> pd.DataFrame:
    """Score every edit against its source; the edit table with :data:`MEASURES` joined.

    Args:
        cfg: the study config (its encoders, thresholds and realization settings decide).
        edits: the edit table of :func:`~iconicity_utils.validate.dataset.build_edits`.
        encoders: already loaded encoders by registry name (default: load those the config names).
        cache_dir: the feature cache (default: the config's ``paths.cache``).

    Raises:
        RuntimeError: an edit was not scored (its image was skipped as unreadable).
    """
    root = validation_dir(cfg)
    per_source = int(edits.groupby("source").size().max())
    scoring = cfg.with_overrides(realization={"k_gen": max(per_source, cfg.realization.k_gen)})
    result = score_folders(
        root / "sources",
        root / "edits",
        root / "sources.csv",
        kind="static",
        config=scoring,
        models=[SCORED_MODEL],
        dedup=False,
        cache_dir=cache_dir if cache_dir is not None else cfg.path("cache"),
        encoders=encoders,
    )
    per_image = result.per_image
    cols = [c for c in (*MEASURES, *KEPT) if c in per_image.columns]
    scored = per_image[["path", *cols]].rename(columns={"path": "_abs"})
    table = edits.assign(_abs=[cfg.absolute(p).as_posix() for p in edits["path"]])
    joined = table.merge(scored, on="_abs", how="left", validate="one_to_one")
    missing = joined.loc[joined["vr"].isna(), "path"].tolist()
    if missing:
        raise RuntimeError(
            f"{len(missing)} edits were not scored, e.g. {missing[:3]}: {result.skipped_summary()}"
        )
    joined["phash_dist"] = joined["phash_dist"].astype("float64")
    return joined.drop(columns="_abs")
