"""Realization as pure maths: VR/VI and its summaries, CRT, consistency and the cell-mode comparison,
each against an independent numpy computation.  The grid is tested with the image helpers
(tests/test_images.py); copies through real encoders are scored through the front doors
(tests/test_scoring.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iconicity_utils.core.constants import TAU_REUSE
from iconicity_utils.metrics.realization import (
    cell_maxima,
    cell_mode_agreement,
    consistency,
    crt,
    rank_correlation,
    vi_over_recognised,
    visual_reuse,
    vr_stats,
)


def unit(rng, *shape):
    a = rng.normal(size=shape).astype(np.float32)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


# -- formulas vs numpy ---------------------------------------------------------------------------


def test_cell_maxima_are_any_cell_any_position_maxima():
    rng = np.random.default_rng(1)
    gen, ref = unit(rng, 3, 16, 6), unit(rng, 2, 16, 6)
    want = np.zeros((3, 16))
    for i in range(3):
        for k in range(16):
            want[i, k] = max(float(gen[i, k] @ ref[j, m]) for j in range(2) for m in range(16))
    np.testing.assert_allclose(cell_maxima(gen, ref), want, atol=1e-6)
    np.testing.assert_allclose(cell_maxima(gen[0], ref.reshape(32, 6)), want[0], atol=1e-6)


def test_vr_statistics_against_numpy_and_torch_quantile():
    rng = np.random.default_rng(2)
    m = rng.uniform(0.2, 0.95, size=(5, 16)).astype(np.float32)
    m[0, :4] = np.float32(0.6)  # ties at tau
    st = vr_stats(m, tau=0.6, comparison=">")
    st_ge = vr_stats(m, tau=0.6, comparison=">=")
    for i in range(5):
        row = [float(v) for v in m[i]]
        above = sum(v > np.float32(0.6) for v in row)
        assert st["vr"][i] == pytest.approx(above / 16)
        assert st["vi"][i] == pytest.approx(1 - above / 16)
        assert st["vr_mean"][i] == pytest.approx(sum(row) / 16, abs=1e-6)
        assert st["vr_max"][i] == pytest.approx(max(row))
        srt = sorted(row)
        pos = 0.9 * 15
        lo = int(pos)
        p90 = srt[lo] + (pos - lo) * (srt[lo + 1] - srt[lo])
        assert st["vr_p90"][i] == pytest.approx(p90, abs=1e-6)
        assert st["vr_p90"][i] == pytest.approx(float(torch.quantile(torch.from_numpy(m[i]), 0.9)), abs=1e-6)
    assert st_ge["vr"][0] - st["vr"][0] == pytest.approx(4 / 16)  # the four ties


def test_crt_and_vi_over_recognised_against_hand_formulas():
    p = np.array([True, False, True, True])
    vi = np.array([0.25, 1.0, 0.5, 0.0])
    assert crt(p, vi) == pytest.approx((0.25 + 0.5 + 0.0) / 4)  # (b): mean of pass * VI
    cra = p.mean()
    assert crt(p, vi) == pytest.approx(cra * vi_over_recognised(p, vi))  # = (a) when one is recognised
    assert vi_over_recognised(p, vi) == pytest.approx(0.75 / 3)
    none = np.zeros(4, dtype=bool)
    assert crt(none, vi) == 0.0 and np.isnan(vi_over_recognised(none, vi))
    with pytest.raises(ValueError, match="shape"):
        crt(p, vi[:3])


def test_consistency_is_the_mean_pairwise_cosine():
    rng = np.random.default_rng(3)
    e = unit(rng, 5, 8)
    pairs = [float(e[i] @ e[j]) for i in range(5) for j in range(i + 1, 5)]
    assert consistency(e) == pytest.approx(sum(pairs) / 10, abs=1e-6)
    assert np.isnan(consistency(e[:1]))
    assert consistency(np.repeat(e[:1], 3, axis=0)) == pytest.approx(1.0)


def test_cell_mode_agreement_against_hand_counts():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(4)
    a = rng.uniform(0.3, 0.9, size=(6, 16)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, size=a.shape), 0, 1).astype(np.float32)
    out = cell_mode_agreement(a, b, tau=0.6)
    da, db = a > np.float32(0.6), b > np.float32(0.6)
    assert out["decision_agreement"] == pytest.approx(
        sum(x == y for x, y in zip(da.ravel(), db.ravel(), strict=True)) / 96
    )
    assert out["spearman_cells"] == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic)
    assert out["spearman_vr_mean"] == pytest.approx(spearmanr(a.mean(1), b.mean(1)).statistic)
    assert out["spearman_vr"] == pytest.approx(spearmanr(da.mean(1), db.mean(1)).statistic)
    po, pa, pb = out["decision_agreement"], da.mean(), db.mean()
    pe = pa * pb + (1 - pa) * (1 - pb)
    assert out["cohen_kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert np.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))


def test_visual_reuse_on_cell_embeddings():
    rng = np.random.default_rng(5)
    ref = unit(rng, 1, 16, 8)
    copy = ref.copy()
    permuted = ref[:, rng.permutation(16)]
    other = unit(rng, 1, 16, 8)
    res = visual_reuse(np.concatenate([copy, permuted, other]), ref)
    assert res.tau == TAU_REUSE and res.comparison == ">"
    np.testing.assert_allclose(res.m[:2], 1.0, atol=1e-6)  # a copy, and a copy with its cells moved
    assert res.vr[:2].tolist() == [1.0, 1.0] and res.vi[:2].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(res.reused, res.m > np.float32(TAU_REUSE))
    np.testing.assert_allclose(res.m[2], cell_maxima(other[0], ref.reshape(16, 8)), atol=1e-6)
    with pytest.raises(ValueError, match="comparison"):
        visual_reuse(copy, ref, comparison="=>")
    with pytest.raises(ValueError, match="L2-normalised"):
        visual_reuse(copy * 2, ref)
