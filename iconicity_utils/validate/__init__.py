"""Stage 08, validation: does Visual Reuse tell replication from transformation, and better than the baselines?

Known edits of real images (scikit-image's photographs, and optionally the study's references),
each labelled replication, transformation or independent with a strength, scored against their
source by every measure of the scoring engine; then AUROC with bootstrap CIs over sources,
precision at a fixed recall, VR against k replaced cells, and VR's limits (cell shuffles, shifts).

- :mod:`~iconicity_utils.validate.edits`: the edits, pure and deterministic (:data:`EDITS`);
- :mod:`~iconicity_utils.validate.dataset`: the sources, the edit images and the edit table;
- :mod:`~iconicity_utils.validate.measure`: every measure on every pair, through
  :func:`~iconicity_utils.score.score_folders`;
- :mod:`~iconicity_utils.validate.analysis`: AUROC, CIs, precision at recall, calibration, limits;
- :mod:`~iconicity_utils.validate.figures`: the figures of notebook 08;
- :mod:`~iconicity_utils.validate.front_door`: :func:`validate` (the stage) and :func:`load_validation`;
- :mod:`~iconicity_utils.validate.cli`: ``python -m iconicity_utils validate``.
"""

from iconicity_utils.validate.edits import EDITS, apply_edit
from iconicity_utils.validate.front_door import ValidationResult, load_validation, validate

__all__ = ["validate", "load_validation", "ValidationResult", "EDITS", "apply_edit"]
