r"""Stage 03, Recognition: the Cultural Reference Alignment (CRA).

For one reference with images :math:`R_1..R_m` and a model's generations :math:`I_1..I_n`, with
the CLIP image encoder :math:`f` (L2-normalised embeddings):

.. math::

    s_{ij} = \cos(f(I_i), f(R_j)), \qquad s_i = \max_j s_{ij}, \qquad
    \mathrm{pass}_i = [\, s_i > \tau \,], \qquad \mathrm{CRA} = \frac{1}{n} \sum_i \mathrm{pass}_i

- ``kind="static"`` references use **one** image (the first file in sorted order); ``"dynamic"``
  ones take the max over all their (pHash-deduplicated) stills.
- :math:`\tau` = 0.70 for static and 0.75 for dynamic references (the authors' script defaults).
- ``comparison=">"`` (default) follows the paper's figure; ``">="`` is the authors' released
  script.  Similarities are float32, and the threshold is compared **at float32 precision**
  (``np.float32(tau)``), so a similarity that equals :math:`\tau` in float32 is a tie: it fails
  under ``">"`` and passes under ``">="``.

Every image keeps its row (also those that fail), so the denominator ``n`` is never lost.

Front doors: :func:`recognition` (images or embeddings in, a :class:`RecognitionResult` out) and
:func:`cra` (just the number).  Whole studies are scored by :func:`iconicity_utils.scoring.score`.

Example:
    >>> import numpy as np
    >>> from iconicity_utils.recognition import recognition
    >>> gen = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> ref = np.array([[1.0, 0.0]], dtype=np.float32)
    >>> recognition(gen, ref, kind="static").cra
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COMPARISONS",
    "KINDS",
    "DEFAULT_TAU",
    "RecognitionResult",
    "passes",
    "similarity_matrix",
    "best_match",
    "cra_from_similarities",
    "reference_files",
    "recognition",
    "cra",
]

#: the two named threshold comparisons: the paper's figure (">") and the released script (">=")
COMPARISONS = (">", ">=")
KINDS = ("static", "dynamic")
#: the authors' script defaults (``IC_TAU_STATIC_DEFAULT``, ``IC_TAU_DYNAMIC_DEFAULT``)
DEFAULT_TAU = {"static": 0.70, "dynamic": 0.75}


def _check_comparison(comparison: str) -> None:
    if comparison not in COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r}; expected one of {COMPARISONS}")


def passes(values, tau: float, comparison: str = ">") -> np.ndarray:
    """``values > tau`` (or ``>=``), compared at float32 precision.

    Args:
        values: similarities (any shape).
        tau: the threshold.
        comparison: ``">"`` (paper figure, default) or ``">="`` (authors' script).
    """
    _check_comparison(comparison)
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


def cra_from_similarities(s: np.ndarray, tau: float, comparison: str = ">") -> float:
    """CRA = the fraction of images whose best similarity passes ``tau``; NaN for no images."""
    s = np.asarray(s)
    return float(passes(s, tau, comparison).mean()) if s.size else float("nan")


def reference_files(folder: str | Path, kind: str) -> list[Path]:
    """The reference images scoring uses: static -> the first file in sorted order; dynamic -> all.

    Raises:
        FileNotFoundError: the folder has no image (names the folder).
    """
    from iconicity_utils.images import list_images

    if kind not in KINDS:
        raise ValueError(f"unknown reference kind {kind!r}; expected one of {KINDS}")
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"no reference image in {folder} (kind {kind})")
    return files[:1] if kind == "static" else files


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
    encoder: dict[str, Any] = field(default_factory=dict)

    @property
    def cra(self) -> float:
        return float(self.cra_pass.mean()) if self.cra_pass.size else float("nan")

    @property
    def n_images(self) -> int:
        return int(self.cra_pass.size)

    def modes(self) -> dict[str, Any]:
        """The named choices behind this result (recorded with every score)."""
        return {
            "kind": self.kind,
            "cra_tau": self.tau,
            "cra_comparison": self.comparison,
            "cra_encoder": self.encoder.get("encoder"),
        }


def _resolve_images(x, kind: str | None, what: str) -> list:
    """A folder -> its reference files (by kind) or its images; a path/PIL list -> itself."""
    from iconicity_utils.images import list_images

    if isinstance(x, str | Path):
        if kind is None:
            files = list_images(x)
            if not files:
                raise FileNotFoundError(f"{what}: no image in {x}")
            return files
        return reference_files(x, kind)
    return list(x)


def _embed(x, kind: str | None, what: str, encoder, batch_size: int) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if encoder is None:
        raise ValueError(f"{what} are images: pass encoder= (an Encoder or a registry name)")
    from iconicity_utils.encoders import embed_images

    images = _resolve_images(x, kind, what)
    if not images:
        raise ValueError(f"{what}: no images given")
    return embed_images(encoder, images, batch_size=batch_size)


def _load(encoder, registry, device):
    if isinstance(encoder, str):
        from iconicity_utils.encoders import load_encoder

        return load_encoder(encoder, registry, device=device)
    return encoder


def recognition(
    generated: np.ndarray | Sequence[Any] | str | Path,
    references: np.ndarray | Sequence[Any] | str | Path,
    *,
    kind: str,
    encoder: Any = None,
    tau: float | None = None,
    comparison: str = ">",
    batch_size: int = 32,
    registry=None,
    device: str = "cpu",
) -> RecognitionResult:
    """Recognition (CRA) of generated images against one reference.

    Args:
        generated: ``(n, D)`` L2-normalised embeddings, image paths / PIL images, or a folder.
        references: embeddings, images, or the reference folder (static: its first file in sorted
            order; dynamic: all its files).  A static reference given as embeddings or a list must
            hold exactly one image.
        kind: ``"static"`` or ``"dynamic"``.
        encoder: an :class:`~iconicity_utils.encoders.Encoder` or a registry name (images only).
        tau: threshold; default 0.70 (static) / 0.75 (dynamic).
        comparison: ``">"`` (paper figure, default) or ``">="`` (authors' script).
        batch_size: images per forward pass.
        registry: registry used to load ``encoder`` by name.
        device: device to load ``encoder`` on by name.

    Raises:
        ValueError: a static reference with more than one image, an unknown kind/comparison, or
            embeddings that are not L2-normalised.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown reference kind {kind!r}; expected one of {KINDS}")
    _check_comparison(comparison)
    tau = DEFAULT_TAU[kind] if tau is None else float(tau)
    encoder = _load(encoder, registry, device)
    ref = _embed(references, kind, "references", encoder, batch_size)
    if kind == "static" and np.asarray(ref).shape[0] != 1:
        raise ValueError(
            f"a static reference uses exactly one image, got {np.asarray(ref).shape[0]}; "
            "pass its folder (the first file is used) or kind='dynamic'"
        )
    gen = _embed(generated, None, "generated images", encoder, batch_size)
    sims = similarity_matrix(gen, ref)
    s, arg = best_match(sims)
    return RecognitionResult(
        kind=kind,
        tau=tau,
        comparison=comparison,
        similarities=sims,
        cra_sim=s,
        cra_ref=arg,
        cra_pass=passes(s, tau, comparison),
        encoder=dict(getattr(encoder, "info", {}) or {}),
    )


def cra(generated, references, **kwargs) -> float:
    """The CRA number alone; arguments as :func:`recognition`."""
    return recognition(generated, references, **kwargs).cra
