r"""Stage 04, Realization: Visual Reuse (VR), Visual Independence (VI), CRT and consistency, as pure
maths on cell embeddings (docs/method.md §3.3-3.4).

Every image is split into a ``rows x cols`` grid (default :data:`~iconicity_utils.core.constants.GRID`,
4x4, K = 16 cells; see :func:`iconicity_utils.core.images.grid_boxes`).  With the DINO encoder
:math:`g` and the reference cell bank :math:`\{R_{j,m}\}` (all cells of all reference images,
any position):

.. math::

    m_{ik} = \max_{j,m} \cos(g(P_{i,k}), g(R_{j,m})), \qquad
    r_{ik} = [\, m_{ik} > \tau_{reuse} \,], \qquad
    \mathrm{VR}_i = \frac{1}{K}\sum_k r_{ik}, \qquad \mathrm{VI}_i = 1 - \mathrm{VR}_i

with :math:`\tau_{reuse}` = :data:`~iconicity_utils.core.constants.TAU_REUSE`.  The authors' script reports only the continuous summaries of
the :math:`m_{ik}`, ``vr_mean``, ``vr_max`` and ``vr_p90`` (linear-interpolated 90th percentile,
as ``torch.quantile``); we report those *and* the thresholded fraction ``vr`` that their README
describes, and keep the raw :math:`m_{ik}` so any threshold can be re-applied without recompute.

**Cell modes** (named, recorded with every result; the scoring engine computes the embeddings):

- ``cells="crop"`` (default, faithful): each cell is cropped and embedded as its own image with
  the encoder's own preprocessing (timm: ``resolve_data_config`` + ``create_transform``).
- ``cells="tokens"`` (fast, ours): one forward pass per image (resized, not cropped, to the input
  size); patch tokens are average-pooled into the grid.  About 14x less compute, and a
  *different measurement*: :math:`\tau_{reuse}` is not calibrated for it.

**Pooling** (timm encoders): ``pool="mean_all"`` (default; the mean of every token that
``forward_features`` returns, CLS and registers included, as the authors' script) or ``"cls"``.

**CRT** per (model, variant, reference): :math:`\mathrm{CRT} = \frac{1}{n}\sum_i
\mathrm{pass}_i \cdot \mathrm{VI}_i` (= CRA x mean VI over recognised images whenever one is
recognised; 0 when none is).

**Consistency** (*our own extension*, standing in for the undefined "CRC"; docs/method.md §3.6):
the mean pairwise CLIP cosine among a reference's n generations.

This module only computes: cell embeddings or per-cell maxima in, scores out.  Images are cut and
embedded by the scoring front doors (:mod:`iconicity_utils.score`) through one cached engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iconicity_utils.core.constants import TAU_REUSE
from iconicity_utils.metrics.recognition import check_comparison, passes

__all__ = [
    "cell_maxima",
    "vr_stats",
    "crt",
    "vi_over_recognised",
    "consistency",
    "rank_correlation",
    "cell_mode_agreement",
    "VisualReuseResult",
    "visual_reuse",
]


def _normalised(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    norms = np.linalg.norm(a, axis=-1)
    if a.size and not np.all(np.abs(norms - 1.0) < 1e-3):
        raise ValueError(f"{what}: embeddings must be L2-normalised (found norms up to {norms.max():.4f})")
    return a


def cell_maxima(generated_cells: np.ndarray, reference_cells: np.ndarray) -> np.ndarray:
    """:math:`m_{ik}`: each generated cell's max cosine to any reference cell at any position.

    Args:
        generated_cells: ``(n, K, D)`` (or ``(K, D)`` for one image), L2-normalised.
        reference_cells: the bank, ``(M, D)`` or ``(R, K, D)`` (flattened over images and cells).

    Returns:
        ``(n, K)`` float32 (or ``(K,)`` for one image).
    """
    g = _normalised(generated_cells, "generated cells")
    r = _normalised(reference_cells, "reference cells").reshape(-1, g.shape[-1])
    if r.shape[0] == 0:
        raise ValueError("the reference cell bank is empty")
    return (g @ r.T).max(axis=-1)


def vr_stats(m: np.ndarray, tau: float = TAU_REUSE, comparison: str = ">") -> dict[str, np.ndarray]:
    """VR and its summaries from the per-cell maxima ``m`` (``(n, K)``).

    Returns:
        ``vr`` (fraction of cells with ``m > tau``), ``vi = 1 - vr``, ``vr_mean``, ``vr_max`` and
        ``vr_p90`` (linear-interpolated 90th percentile), each ``(n,)``.
    """
    m = np.atleast_2d(np.asarray(m, dtype=np.float32))
    vr = passes(m, tau, comparison).mean(axis=1)
    return {
        "vr": vr,
        "vi": 1.0 - vr,
        "vr_mean": m.mean(axis=1),
        "vr_max": m.max(axis=1),
        "vr_p90": np.percentile(m, 90, axis=1, method="linear").astype(np.float32),
    }


def crt(cra_pass: np.ndarray, vi: np.ndarray) -> float:
    """CRT of one (model, variant, reference): :math:`\\frac{1}{n}\\sum_i pass_i \\cdot VI_i`; NaN if n = 0."""
    p = np.asarray(cra_pass, dtype=bool)
    v = np.asarray(vi, dtype=np.float64)
    if p.shape != v.shape:
        raise ValueError(f"cra_pass and vi differ in shape: {p.shape} vs {v.shape}")
    return float((p * v).mean()) if p.size else float("nan")


def vi_over_recognised(cra_pass: np.ndarray, vi: np.ndarray) -> float:
    """Mean VI over the recognised images; NaN when none is recognised."""
    p = np.asarray(cra_pass, dtype=bool)
    v = np.asarray(vi, dtype=np.float64)
    return float(v[p].mean()) if p.any() else float("nan")


def consistency(embeddings: np.ndarray) -> float:
    """*Ours*: mean pairwise cosine among one reference's generations (i < j); NaN for n < 2."""
    e = _normalised(embeddings, "generation embeddings")
    n = e.shape[0]
    if n < 2:
        return float("nan")
    s = e @ e.T
    iu = np.triu_indices(n, k=1)
    return float(s[iu].astype(np.float64).mean())


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    ra, rb = rankdata(a), rankdata(b)
    if a.size < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def cell_mode_agreement(
    m_crop: np.ndarray, m_tokens: np.ndarray, tau: float = TAU_REUSE, comparison: str = ">"
) -> dict[str, float]:
    """Compare ``cells="crop"`` and ``cells="tokens"`` on the same images.

    Args:
        m_crop: ``(n, K)`` per-cell maxima from crop mode.
        m_tokens: ``(n, K)`` from tokens mode, same images and cell order.

    Returns:
        ``spearman_vr`` (image-level VR), ``spearman_vr_mean`` (image-level mean of the m_ik),
        ``spearman_cells`` (cell-level m_ik), ``decision_agreement`` (fraction of cells with the same
        reused/independent decision), ``cohen_kappa`` of those decisions, and both modes' mean VR.
    """
    a = np.atleast_2d(np.asarray(m_crop, dtype=np.float32))
    b = np.atleast_2d(np.asarray(m_tokens, dtype=np.float32))
    if a.shape != b.shape:
        raise ValueError(f"crop and tokens maxima differ in shape: {a.shape} vs {b.shape}")
    da, db = passes(a, tau, comparison), passes(b, tau, comparison)
    agree = float((da == db).mean())
    pa, pb = da.mean(), db.mean()
    chance = pa * pb + (1 - pa) * (1 - pb)
    kappa = float((agree - chance) / (1 - chance)) if chance < 1 else float("nan")
    return {
        "n_images": int(a.shape[0]),
        "spearman_vr": rank_correlation(da.mean(axis=1), db.mean(axis=1)),
        "spearman_vr_mean": rank_correlation(a.mean(axis=1), b.mean(axis=1)),
        "spearman_cells": rank_correlation(a, b),
        "decision_agreement": agree,
        "cohen_kappa": kappa,
        "vr_crop_mean": float(da.mean()),
        "vr_tokens_mean": float(db.mean()),
    }


@dataclass
class VisualReuseResult:
    """VR of a set of generations against one reference cell bank, with the raw per-cell maxima."""

    tau: float
    comparison: str
    m: np.ndarray  # (n, K) per-cell maxima m_ik

    @property
    def reused(self) -> np.ndarray:
        """``(n, K)`` bool: cell k of image i is reused (pink in the gallery)."""
        return passes(self.m, self.tau, self.comparison)

    @property
    def stats(self) -> dict[str, np.ndarray]:
        return vr_stats(self.m, self.tau, self.comparison)

    @property
    def vr(self) -> np.ndarray:
        return self.stats["vr"]

    @property
    def vi(self) -> np.ndarray:
        return self.stats["vi"]


def visual_reuse(
    generated_cells: np.ndarray,
    reference_cells: np.ndarray,
    *,
    tau: float = TAU_REUSE,
    comparison: str = ">",
) -> VisualReuseResult:
    """Visual Reuse of generated images against one reference, from cell embeddings.

    Args:
        generated_cells: ``(n, K, D)`` L2-normalised cell embeddings (``(K, D)`` for one image).
        reference_cells: the bank: ``(R, K, D)`` or ``(M, D)``, all cells of all reference images.
        tau: :math:`\\tau_{reuse}`; default :data:`~iconicity_utils.core.constants.TAU_REUSE`.
        comparison: ``">"`` (paper figure, default) or ``">="`` (authors' script).
    """
    check_comparison(comparison)
    m = np.atleast_2d(cell_maxima(generated_cells, reference_cells))
    return VisualReuseResult(float(tau), comparison, m)
