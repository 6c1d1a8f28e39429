"""The metrics as pure maths, on embeddings you already have (no encoder, no file, no model).

- :mod:`~iconicity_utils.metrics.recognition`: s_i = max_j cos(I_i, R_j) and CRA, the share of a
  reference's images with s_i > τ (0.70 static, 0.75 dynamic);
- :mod:`~iconicity_utils.metrics.realization`: per-cell maxima on the 4×4 grid, VR_i (the share of
  reused cells, best cosine > 0.60), VI_i = 1 − VR_i and CRT = CRA × VI;
- :mod:`~iconicity_utils.metrics.baselines`: global cosines, pHash distance and SSIM.

Stages 03-04 (:mod:`iconicity_utils.score`) feed them through one cached engine.
"""

from iconicity_utils.metrics.realization import crt, visual_reuse
from iconicity_utils.metrics.recognition import cra, recognition

__all__ = ["cra", "crt", "recognition", "visual_reuse"]
