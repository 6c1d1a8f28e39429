r"""Stage 03, Recognition: the Cultural Reference Alignment (CRA), as pure maths on embeddings.

For one reference with images :math:`R_1..R_m` and a model's generations :math:`I_1..I_n`, with
the CLIP image encoder :math:`f` (L2-normalised embeddings; docs/method.md §3.2):

.. math::

    s_{ij} = \cos(f(I_i), f(R_j)), \qquad s_i = \max_j s_{ij}, \qquad
    \mathrm{pass}_i = [\, s_i > \tau \,], \qquad \mathrm{CRA} = \frac{1}{n} \sum_i \mathrm{pass}_i

- ``kind="static"`` references use **one** image; ``"dynamic"`` ones take the max over all their
  (pHash-deduplicated) stills.
- :math:`\tau` defaults to :data:`~iconicity_utils.core.constants.TAU_CRA` of the kind (0.70 static,
  0.75 dynamic: the authors' script defaults).
- ``comparison=">"`` (default) follows the paper's figure; ``">="`` is the authors' released
  script.  Similarities are float32, and the threshold is compared **at float32 precision**
  (``np.float32(tau)``), so a similarity that equals :math:`\tau` in float32 is a tie: it fails
  under ``">"`` and passes under ``">="``.

Every image keeps its row (also those that fail), so the denominator ``n`` is never lost.

This module only computes: embeddings in, scores out, in the functional style of torchmetrics.
Images are embedded by the scoring front doors (:func:`iconicity_utils.score.score`,
:func:`~iconicity_utils.score.score_folders`, :func:`~iconicity_utils.score.score_images`),
which all run through one cached feature engine.

Example:
    >>> import numpy as np
    >>> from iconicity_utils.metrics.recognition import recognition
    >>> gen = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> ref = np.array([[1.0, 0.0]], dtype=np.float32)
    >>> recognition(gen, ref, kind="static").cra
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iconicity_utils.core.constants import COMPARISONS, KINDS, TAU_CRA

__all__ = [
    "RecognitionResult",
    "check_comparison",
    "check_kind",
    "passes",
    "similarity_matrix",
    "best_match",
    "cra",
    "recognition",
]


def check_comparison(comparison: str) -> None:
    """Raise ``ValueError`` for a comparison that is not one of :data:`~iconicity_utils.core.constants.COMPARISONS`."""
    if comparison not in COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r}; expected one of {COMPARISONS}")


def check_kind(kind: str) -> None:
    """Raise ``ValueError`` for a reference kind that is not one of :data:`~iconicity_utils.core.constants.KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"unknown reference kind {kind!r}; expected one of {KINDS}")


def passes(values, tau: float, comparison: str = ">") -> np.ndarray:
    """``values > tau`` (or ``>=``), compared at float32 precision.

    Args:
        values: similarities (any shape).
        tau: the threshold.
        comparison: ``">"`` (paper figure, default) or ``">="`` (authors' script).
    """
    check_comparison(comparison)
    v = np.asarray(values, dtype=np.float32)
    t = np.float32(tau)
    return v > t if comparison == ">" else v >= t


def _as_embeddings(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{what}: expected a non-empty (N, D) embedding matrix, got shape {a.shape}")
    norms = np.linalg.norm(a, axis=1)
    if not np.all(np.abs(norms - 1.0) < 1e-3):
        bad = int(np.argmax(np.abs(norms - 1.0)))
        raise ValueError(f"{what}: row {bad} has norm {norms[bad]:.4f}; embeddings must be L2-normalised")
    return a


def similarity_matrix(generated: np.ndarray, references: np.ndarray) -> np.ndarray:
    """:math:`s_{ij}` = cosine of L2-normalised embeddings: ``(n, D) x (m, D) -> (n, m)`` float32."""
    g = _as_embeddings(generated, "generated embeddings")
    r = _as_embeddings(references, "reference embeddings")
    if g.shape[1] != r.shape[1]:
        raise ValueError(f"embedding widths differ: generated {g.shape[1]} vs reference {r.shape[1]}")
    return g @ r.T


def best_match(similarities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:math:`s_i = \\max_j s_{ij}` and the index of the best reference, per generated image."""
    s = np.asarray(similarities, dtype=np.float32)
    return s.max(axis=1), s.argmax(axis=1)


def cra(best_similarities, tau: float, comparison: str = ">") -> float:
    """CRA = the fraction of images whose best similarity :math:`s_i` passes ``tau``; NaN for no images."""
    s = np.asarray(best_similarities)
    return float(passes(s, tau, comparison).mean()) if s.size else float("nan")


@dataclass
class RecognitionResult:
    """CRA of one set of generations against one reference, with everything needed to re-threshold."""

    kind: str
    tau: float
    comparison: str
    similarities: np.ndarray  # (n, m): s_ij
    cra_sim: np.ndarray  # (n,): s_i
    cra_ref: np.ndarray  # (n,): argmax_j
    cra_pass: np.ndarray  # (n,): bool

    @property
    def cra(self) -> float:
        return float(self.cra_pass.mean()) if self.cra_pass.size else float("nan")

    @property
    def n_images(self) -> int:
        return int(self.cra_pass.size)

    def modes(self) -> dict[str, Any]:
        """The named choices behind this result."""
        return {"kind": self.kind, "cra_tau": self.tau, "cra_comparison": self.comparison}


def recognition(
    generated: np.ndarray,
    references: np.ndarray,
    *,
    kind: str,
    tau: float | None = None,
    comparison: str = ">",
) -> RecognitionResult:
    """Recognition (CRA) of generated images against one reference, from embeddings.

    Args:
        generated: ``(n, D)`` L2-normalised embeddings of the generated images.
        references: ``(m, D)`` embeddings of the reference images; exactly one row for a static
            reference.
        kind: ``"static"`` or ``"dynamic"``.
        tau: threshold; default :data:`~iconicity_utils.core.constants.TAU_CRA` of ``kind``.
        comparison: ``">"`` (paper figure, default) or ``">="`` (authors' script).

    Raises:
        ValueError: a static reference with more than one image, an unknown kind or comparison,
            or embeddings that are not L2-normalised.
    """
    check_kind(kind)
    check_comparison(comparison)
    tau = TAU_CRA[kind] if tau is None else float(tau)
    n_ref = np.asarray(references).shape[0]
    if kind == "static" and n_ref != 1:
        raise ValueError(f"a static reference uses exactly one image, got {n_ref}; or say kind='dynamic'")
    sims = similarity_matrix(generated, references)
    s, arg = best_match(sims)
    return RecognitionResult(kind, tau, comparison, sims, s, arg, passes(s, tau, comparison))
