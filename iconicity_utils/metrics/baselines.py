"""Similarity baselines from the memorisation literature, computed per generated image.

The paper claims its recognition/realization split separates replication from transformation
better than "existing similarity-based methods".  These are the methods stored next to CRA/VR in
the per-image table (one value per generated image; for a dynamic reference, the best match over
its stills, i.e. max similarity / min distance, as CRA does):

==============  ================================================  ===========  =====================
column          what                                              direction    literature threshold
==============  ================================================  ===========  =====================
``clip_cos``    global CLIP image cosine (= CRA's raw ``s_i``)    higher=closer
``dino_cos``    global DINO cosine (whole image, same pooling)    higher=closer
``sscd_cos``    SSCD copy-detection descriptor cosine             higher=closer 0.5 (Somepalli), 0.7
                                                                               (Wen), 0.75 (SSCD)
``phash_dist``  64-bit pHash Hamming distance                     lower=closer ``<= 18`` = duplicate
``ssim``        SSIM of greyscale thumbnails (``ssim_size``)      higher=closer
==============  ================================================  ===========  =====================
"""

from __future__ import annotations

import numpy as np

__all__ = ["BASELINES", "best_cosine", "phash_distance", "ssim", "best_ssim"]

#: column -> (description, True when higher means more similar)
BASELINES: dict[str, tuple[str, bool]] = {
    "clip_cos": ("global CLIP image cosine", True),
    "dino_cos": ("global DINO cosine", True),
    "sscd_cos": ("SSCD copy-detection cosine", True),
    "phash_dist": ("pHash Hamming distance (64 bits)", False),
    "ssim": ("SSIM of greyscale thumbnails", True),
}


def best_cosine(generated: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per generated image, the max cosine to any reference: ``(n, D) x (m, D) -> (n,)``."""
    g = np.asarray(generated, dtype=np.float32)
    r = np.asarray(references, dtype=np.float32)
    return (g @ r.T).max(axis=1)


def phash_distance(generated_bits: np.ndarray, reference_bits: np.ndarray) -> np.ndarray:
    """Per generated image, the min Hamming distance of its 64-bit pHash to any reference's.

    Args:
        generated_bits: ``(n, 64)`` 0/1 arrays (``imagehash.phash(img).hash.ravel()``).
        reference_bits: ``(m, 64)``.
    """
    g = np.asarray(generated_bits, dtype=bool)
    r = np.asarray(reference_bits, dtype=bool)
    return (g[:, None, :] != r[None, :, :]).sum(axis=-1).min(axis=1).astype(np.int64)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two equal-size uint8 greyscale images (``skimage``, data range 255, 7x7 window)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(a), np.asarray(b), data_range=255))


def best_ssim(generated: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per generated thumbnail ``(n, S, S)``, the max SSIM to any reference thumbnail ``(m, S, S)``."""
    return np.array([max(ssim(g, r) for r in references) for g in generated], dtype=np.float64)
