"""Recognition (CRA) as pure maths: the formulas against plain numpy loops, ties, static vs dynamic.
Exact copies through real encoders are scored through the front doors (tests/test_scoring.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iconicity_utils.core.constants import TAU_CRA
from iconicity_utils.metrics.recognition import cra, passes, recognition, similarity_matrix


def unit_rows(rng, n, d):
    a = rng.normal(size=(n, d)).astype(np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_cra_formulas_against_numpy_loops():
    rng = np.random.default_rng(0)
    gen, ref = unit_rows(rng, 7, 5), unit_rows(rng, 3, 5)
    tau = 0.2
    s_ij = [[sum(float(g[k]) * float(r[k]) for k in range(5)) for r in ref] for g in gen]
    s_i = [max(row) for row in s_ij]
    want_pass = [v > tau for v in s_i]
    res = recognition(gen, ref, kind="dynamic", tau=tau)
    np.testing.assert_allclose(res.similarities, np.array(s_ij), atol=1e-6)
    np.testing.assert_allclose(res.cra_sim, s_i, atol=1e-6)
    assert res.cra_ref.tolist() == [int(np.argmax(row)) for row in s_ij]
    assert res.cra_pass.tolist() == want_pass
    assert res.cra == pytest.approx(sum(want_pass) / 7)
    assert 0 < res.cra < 1  # the fixture exercises both outcomes
    assert res.n_images == 7
    assert cra(res.cra_sim, tau) == res.cra


def test_strict_vs_inclusive_comparison_at_a_tie():
    gen = np.array([[1.0, 0.0]], dtype=np.float32)
    ref = np.array([[0.6, 0.8]], dtype=np.float32)  # cos = 0.6 exactly at float32 precision
    assert similarity_matrix(gen, ref)[0, 0] == np.float32(0.6)
    strict = recognition(gen, ref, kind="static", tau=0.6, comparison=">")
    inclusive = recognition(gen, ref, kind="static", tau=0.6, comparison=">=")
    assert strict.cra == 0.0 and inclusive.cra == 1.0
    assert passes([0.6000001], 0.6, ">").item() is True  # just above the tie: both pass
    assert cra([0.59, 0.6, 0.61], 0.6, ">") == pytest.approx(1 / 3)
    assert cra([0.59, 0.6, 0.61], 0.6, ">=") == pytest.approx(2 / 3)
    assert np.isnan(cra([], 0.6))
    with pytest.raises(ValueError, match="comparison"):
        passes([0.5], 0.5, "=>")


def test_static_uses_one_image_dynamic_takes_the_max():
    gen = np.array([[1.0, 0.0]], dtype=np.float32)
    refs = np.array([[0.0, 1.0], [math.sqrt(0.5), math.sqrt(0.5)]], dtype=np.float32)
    with pytest.raises(ValueError, match="exactly one image"):
        recognition(gen, refs, kind="static")
    dyn = recognition(gen, refs, kind="dynamic", tau=0.5)
    assert dyn.cra_sim[0] == pytest.approx(math.sqrt(0.5)) and dyn.cra_ref[0] == 1 and dyn.cra == 1.0
    assert recognition(gen, refs[:1], kind="static", tau=0.5).cra == 0.0


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_default_threshold_is_the_kinds_constant(kind):
    gen = np.eye(2, dtype=np.float32)
    res = recognition(gen, gen[:1], kind=kind)
    assert res.tau == TAU_CRA[kind]
    assert res.modes() == {"kind": kind, "cra_tau": TAU_CRA[kind], "cra_comparison": ">"}
    assert res.cra_pass.tolist() == [True, False] and res.n_images == 2


def test_bad_inputs_are_named():
    good = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="L2-normalised"):
        recognition(good * 2, good, kind="dynamic")
    with pytest.raises(ValueError, match="unknown reference kind"):
        recognition(good, good, kind="moving")
    with pytest.raises(ValueError, match="widths differ"):
        similarity_matrix(good, np.ones((1, 3), dtype=np.float32) / np.sqrt(3))
    with pytest.raises(ValueError, match="non-empty"):
        recognition(np.zeros((0, 2), dtype=np.float32), good[:1], kind="static")
