"""The earlier import path of scoring (``iconicity_utils.score.scoring``), kept while callers move.

Everything here is defined elsewhere in :mod:`iconicity_utils.score`; new code imports the front
doors from :mod:`iconicity_utils.score` and the rest from the module that owns it (named below).
"""

from __future__ import annotations

from iconicity_utils.score.cli import main
from iconicity_utils.score.engine import score_work
from iconicity_utils.score.errors import BadInputError, ScoringInputError
from iconicity_utils.score.front_doors import norm_slug, score, score_folders, score_images
from iconicity_utils.score.inputs import SKIPPED, SKIPPED_COLUMNS, WORK_COLUMNS, ReferenceSet, reference_files
from iconicity_utils.score.result import ScoreResult
from iconicity_utils.score.tables import PER_MODEL, PER_REFERENCE
from iconicity_utils.score.writer import PER_IMAGE

__all__ = [
    "PER_IMAGE",
    "PER_REFERENCE",
    "PER_MODEL",
    "SKIPPED",
    "SKIPPED_COLUMNS",
    "WORK_COLUMNS",
    "BadInputError",
    "ReferenceSet",
    "ScoreResult",
    "ScoringInputError",
    "reference_files",
    "norm_slug",
    "score_work",
    "score",
    "score_folders",
    "score_images",
    "main",
]
