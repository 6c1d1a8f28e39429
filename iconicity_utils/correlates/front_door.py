"""Stage 06 end to end (:func:`run`): counts, covariates, the scores joined with them, the statistics.

:func:`run` writes ``reference_features.parquet`` (the covariates), ``correlates_spearman.parquet``
and ``correlates_glm.parquet`` to the results folder and returns a :class:`CorrelatesResult`.
:func:`analysis_table` joins the per-reference scores of stages 03-04 (``correlates.variant``) with
the covariates: one row per model x reference, the input of every statistic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iconicity_utils.config.analysis import CORRELATE_OUTCOMES
from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.correlates.covariates import (
    FrequencyCounts,
    build_covariates,
    correlates_section,
    covariates_table_path,
    frequency_counts,
)
from iconicity_utils.correlates.stats import GLM_TABLE, SPEARMAN_TABLE, glm_table, spearman_table
from iconicity_utils.score.tables import PER_REFERENCE

__all__ = ["analysis_table", "CorrelatesResult", "run"]


def analysis_table(cfg, covariates=None, scores=None):
    """Per-reference scores of ``correlates.variant`` joined with the covariates (one row per model x reference).

    Raises:
        ValueError: the scores have no row for the configured variant (the message lists those they have).
    """
    covariates = covariates if covariates is not None else read_table(covariates_table_path(cfg))
    scores = scores if scores is not None else read_table(cfg.results_dir / PER_REFERENCE)
    variant = cfg.correlates.variant
    have = sorted(set(scores["variant"]))
    part = scores[scores["variant"] == variant]
    if part.empty:
        raise ValueError(
            f"no per-reference scores for variant {variant!r} (correlates.variant); the scores have {have}"
        )
    keep = ["model", "variant", "slug", "kind", "n_images", "n_recognised", *CORRELATE_OUTCOMES]
    covs = covariates.drop(columns=[c for c in ("kind", "note") if c in covariates.columns])
    data = part[keep].merge(covs, on="slug", how="inner", validate="many_to_one")
    data.attrs = {}
    return data.reset_index(drop=True)


@dataclass
class CorrelatesResult:
    """Everything stage 06 computed, and where it was written.

    ``features`` is the covariates table (notebook 06 reads it by that name).
    """

    frequency: FrequencyCounts
    features: Any
    data: Any
    spearman: Any
    glm: Any
    paths: dict[str, Path]
    seconds: float

    def summary(self) -> str:
        n_refs = self.data["slug"].nunique() if len(self.data) else 0
        return (
            f"{len(self.features)} references with features, {n_refs} scored "
            f"({', '.join(dict.fromkeys(self.data['model']))}); {len(self.spearman)} Spearman rows, "
            f"{len(self.glm)} GLM rows; {self.seconds:.1f} s"
        )


def run(
    cfg,
    frequency: FrequencyCounts | None = None,
    *,
    workers: int | None = None,
    log: Callable[[str], None] = print,
) -> CorrelatesResult:
    """Stage 06 end to end: counts, covariates, the joined table, Spearman and GLM tables (all written).

    Args:
        cfg: the study config.
        frequency: caption counts already read (default:
            :func:`~iconicity_utils.correlates.covariates.frequency_counts`).
        workers: caption-scan processes (default: ``correlates.frequency.workers``).
    """
    t0 = time.perf_counter()
    freq = frequency if frequency is not None else frequency_counts(cfg, workers=workers, log=log)
    covariates = build_covariates(cfg, freq, log=log)
    data = analysis_table(cfg, covariates)
    spearman = spearman_table(cfg, data)
    glm = glm_table(cfg, data)
    section = correlates_section(cfg)
    paths = {
        "features": covariates_table_path(cfg),
        "spearman": write_table(spearman, cfg.results_dir / SPEARMAN_TABLE, cfg, correlates=section),
        "glm": write_table(
            glm,
            cfg.results_dir / GLM_TABLE,
            cfg,
            correlates=section,
            skipped_count_modes=glm.attrs.get("skipped_count_modes", []),
        ),
    }
    return CorrelatesResult(freq, covariates, data, spearman, glm, paths, time.perf_counter() - t0)
