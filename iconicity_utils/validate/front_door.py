"""Stage 08's front door: :func:`validate` builds the edits, scores them, analyses and writes the tables.

Outputs, per config (``cfg.results_dir``): ``validation_edits.parquet`` (the edit table),
``validation_scores.parquet`` (every measure on every pair), ``validation_auroc.parquet``,
``validation_calibration.parquet`` (VR against k) and ``validation_limits.parquet``; the images
under ``<data>/validation/``.  Every table carries its provenance, and the stand-in label on
every row of a stand-in run (:func:`~iconicity_utils.core.io.write_table`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from iconicity_utils.core.io import read_table, write_table
from iconicity_utils.validate.analysis import (
    AUROC_TABLE,
    CALIBRATION_TABLE,
    LIMITS_TABLE,
    auroc_table,
    calibration_table,
    limits_table,
)
from iconicity_utils.validate.dataset import EDITS_TABLE, build_edits
from iconicity_utils.validate.measure import SCORES_TABLE, measure_edits

__all__ = ["TABLES", "ValidationResult", "validate", "load_validation"]

#: table name -> file, in the results folder
TABLES = {
    "edits": EDITS_TABLE,
    "scores": SCORES_TABLE,
    "auroc": AUROC_TABLE,
    "calibration": CALIBRATION_TABLE,
    "limits": LIMITS_TABLE,
}


@dataclass
class ValidationResult:
    """The tables of one validation run, the seconds each step took, and where they were written."""

    edits: pd.DataFrame
    scores: pd.DataFrame
    auroc: pd.DataFrame
    calibration: pd.DataFrame
    limits: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        """What ran, in one paragraph."""
        fam = self.edits.groupby("family").size().to_dict()
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())
        return (
            f"{self.edits['source'].nunique()} sources, {len(self.edits)} edit images "
            f"({', '.join(f'{k} {v}' for k, v in fam.items())}); "
            f"{self.edits.attrs.get('made', 0)} images made this run; {steps}"
        )


def validate(
    cfg, *, write: bool = True, encoders: dict[str, Any] | None = None, cache_dir=None
) -> ValidationResult:
    """Run stage 08 for a study config: the edits, every measure on every pair, the analysis.

    A rerun makes only the images whose parameters changed, embeds only what the feature cache
    lacks, and rewrites the tables whole (no duplicate rows).

    Args:
        cfg: the study config (its ``validation`` section; encoders and thresholds as for scoring).
        write: write the tables to ``cfg.results_dir``.
        encoders: already loaded encoders by registry name (default: load those the config names).
        cache_dir: the feature cache (default: the config's ``paths.cache``).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    edits = build_edits(cfg)
    timings["edits"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = measure_edits(cfg, edits, encoders=encoders, cache_dir=cache_dir)
    timings["scoring"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = ValidationResult(edits, scores, auroc_table(scores, cfg), calibration_table(scores, cfg),
                              limits_table(scores), timings)  # fmt: skip
    timings["analysis"] = time.perf_counter() - t0
    if write:
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        for name, file in TABLES.items():
            result.paths[name] = write_table(getattr(result, name), cfg.results_dir / file, cfg)
    return result


def load_validation(results_dir: str | Path) -> dict[str, pd.DataFrame] | None:
    """The validation tables of a results folder by name (:data:`TABLES`), or None when absent."""
    folder = Path(results_dir)
    if not all((folder / f).is_file() for f in TABLES.values()):
        return None
    return {name: read_table(folder / f) for name, f in TABLES.items()}
