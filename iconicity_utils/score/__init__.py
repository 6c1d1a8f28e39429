"""Stages 03-04, scoring: CRA (recognition), VR/VI (realization), CRT and the baselines of generated images.

Front doors (:mod:`~iconicity_utils.score.front_doors`): :func:`score` a whole study,
:func:`score_folders` folders in the authors' layout, :func:`score_images` a few images against one
reference; each returns a :class:`ScoreResult`.  Behind them:

- :mod:`~iconicity_utils.score.engine`: the engine (:func:`~iconicity_utils.score.engine.score_work`):
  check, embed what the cache lacks, score each (model, variant, reference) group;
- :mod:`~iconicity_utils.score.inputs`: the input check, the bad-input policy, reference sets;
- :mod:`~iconicity_utils.score.features`: decode once and embed in batches (the feature engine);
- :mod:`~iconicity_utils.score.store`: the on-disk feature cache (shards of ``.npy`` files);
- :mod:`~iconicity_utils.score.writer`: the per-image table, its columns and streaming writer;
- :mod:`~iconicity_utils.score.tables`: per-reference and per-model tables, re-thresholding;
- :mod:`~iconicity_utils.score.figures`: the figures of notebooks 03-04;
- :mod:`~iconicity_utils.score.result`, :mod:`~iconicity_utils.score.errors`: what a run returns
  and raises; :mod:`~iconicity_utils.score.cli`: ``python -m iconicity_utils score``.
"""

from iconicity_utils.score.errors import BadInputError, ScoringInputError
from iconicity_utils.score.front_doors import score, score_folders, score_images
from iconicity_utils.score.result import ScoreResult

__all__ = ["score", "score_folders", "score_images", "ScoreResult", "ScoringInputError", "BadInputError"]
