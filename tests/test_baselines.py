"""Similarity baselines against their libraries and hand computations."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from scoring_fixtures import noise, photo
from skimage.metrics import structural_similarity

from iconicity_utils.core.constants import PHASH_MAX_DISTANCE
from iconicity_utils.core.images import gray_thumbnail, phash_bits
from iconicity_utils.metrics.baselines import BASELINES, best_cosine, best_ssim, phash_distance, ssim


def test_phash_distance_is_imagehash_hamming_min_over_references():
    gens = [photo("astronaut", (64, 64)), noise((64, 64), 0)]
    refs = [photo("coffee", (80, 50)), photo("astronaut", (128, 128))]
    got = phash_distance(np.stack([phash_bits(g) for g in gens]), np.stack([phash_bits(r) for r in refs]))
    want = [min(imagehash.phash(g) - imagehash.phash(r) for r in refs) for g in gens]
    assert got.tolist() == want
    assert got[0] <= PHASH_MAX_DISTANCE  # a resized copy is a pHash duplicate


def test_ssim_matches_skimage_and_a_copy_scores_one():
    a, b = photo("camera", (48, 48)), photo("coffee", (48, 48))
    ga, gb = gray_thumbnail(a, 48), gray_thumbnail(b, 48)
    assert ssim(ga, gb) == pytest.approx(structural_similarity(ga, gb, data_range=255))
    assert ssim(ga, ga) == pytest.approx(1.0)
    got = best_ssim(np.stack([ga, gb]), np.stack([gb, ga]))
    np.testing.assert_allclose(got, [1.0, 1.0])


def test_best_cosine_is_max_over_references():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(4, 3)).astype(np.float32)
    r = rng.normal(size=(2, 3)).astype(np.float32)
    want = [max(float(gi @ rj) for rj in r) for gi in g]
    np.testing.assert_allclose(best_cosine(g, r), want, atol=1e-6)
    assert set(BASELINES) == {"clip_cos", "dino_cos", "sscd_cos", "phash_dist", "ssim"}
