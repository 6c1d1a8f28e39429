"""Recognition (CRA): the formulas against plain numpy loops, ties, static vs dynamic, exact copies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scoring_fixtures import noise, photo

from iconicity_utils.recognition import (
    DEFAULT_TAU,
    cra,
    cra_from_similarities,
    passes,
    recognition,
    reference_files,
    similarity_matrix,
)


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
    assert cra(gen, ref, kind="dynamic", tau=tau) == res.cra


def test_strict_vs_inclusive_comparison_at_a_tie():
    gen = np.array([[1.0, 0.0]], dtype=np.float32)
    ref = np.array([[0.6, 0.8]], dtype=np.float32)  # cos = 0.6 exactly at float32 precision
    assert similarity_matrix(gen, ref)[0, 0] == np.float32(0.6)
    strict = recognition(gen, ref, kind="static", tau=0.6, comparison=">")
    inclusive = recognition(gen, ref, kind="static", tau=0.6, comparison=">=")
    assert strict.cra == 0.0 and inclusive.cra == 1.0
    assert passes([0.6000001], 0.6, ">").item() is True  # just above the tie: both pass
    assert cra_from_similarities([0.59, 0.6, 0.61], 0.6, ">") == pytest.approx(1 / 3)
    assert cra_from_similarities([0.59, 0.6, 0.61], 0.6, ">=") == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="comparison"):
        passes([0.5], 0.5, "=>")


def test_static_uses_one_image_dynamic_takes_the_max(tmp_path):
    gen = np.array([[1.0, 0.0]], dtype=np.float32)
    refs = np.array([[0.0, 1.0], [math.sqrt(0.5), math.sqrt(0.5)]], dtype=np.float32)
    with pytest.raises(ValueError, match="exactly one image"):
        recognition(gen, refs, kind="static")
    dyn = recognition(gen, refs, kind="dynamic", tau=0.5)
    assert dyn.cra_sim[0] == pytest.approx(math.sqrt(0.5)) and dyn.cra_ref[0] == 1 and dyn.cra == 1.0
    assert recognition(gen, refs[:1], kind="static", tau=0.5).cra == 0.0
    # folders: static = first file in sorted order, dynamic = all files
    folder = tmp_path / "ref"
    folder.mkdir()
    photo("coffee", (40, 40)).save(folder / "b.png")
    photo("astronaut", (40, 40)).save(folder / "a.png")
    assert [p.name for p in reference_files(folder, "static")] == ["a.png"]
    assert [p.name for p in reference_files(folder, "dynamic")] == ["a.png", "b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        reference_files(tmp_path / "empty", "static")


def test_static_and_dynamic_folders_through_an_encoder(standins, tmp_path):
    folder = tmp_path / "ref"
    folder.mkdir()
    photo("astronaut", (48, 48)).save(folder / "a.png")
    photo("coffee", (48, 48)).save(folder / "b.png")
    gen = tmp_path / "gen.png"
    photo("coffee", (48, 48)).save(gen)  # a copy of the SECOND reference file
    static = recognition([gen], folder, kind="static", encoder="tiny-dino")
    dynamic = recognition([gen], folder, kind="dynamic", encoder="tiny-dino")
    assert static.similarities.shape == (1, 1) and static.cra_sim[0] < 0.999
    assert dynamic.similarities.shape == (1, 2) and dynamic.cra_sim[0] == pytest.approx(1.0, abs=1e-5)
    assert dynamic.cra_ref[0] == 1
    assert dynamic.modes() == {
        "kind": "dynamic",
        "cra_tau": 0.75,
        "cra_comparison": ">",
        "cra_encoder": "tiny-dino",
    }


@pytest.mark.parametrize("encoder", ["tiny-clip", "tiny-dino", "tiny-sscd"])
def test_an_exact_copy_is_recognised_by_any_encoder(standins, tmp_path, encoder):
    ref = tmp_path / "ref.png"
    photo("chelsea", (60, 44)).save(ref)
    copy = tmp_path / "copy.png"
    copy.write_bytes(ref.read_bytes())
    other = tmp_path / "noise.png"
    noise((60, 44), 0).save(other)
    for kind in ("static", "dynamic"):
        res = recognition([copy, copy], [ref], kind=kind, encoder=encoder)
        assert res.cra == 1.0
        np.testing.assert_allclose(res.cra_sim, 1.0, atol=1e-5)
        assert res.tau == DEFAULT_TAU[kind]
    assert recognition([other], [ref], kind="static", encoder=encoder).cra_sim[0] < 0.9999


def test_bad_inputs_are_named():
    good = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="L2-normalised"):
        recognition(good * 2, good, kind="dynamic")
    with pytest.raises(ValueError, match="unknown reference kind"):
        recognition(good, good, kind="moving")
    with pytest.raises(ValueError, match="widths differ"):
        similarity_matrix(good, np.ones((1, 3), dtype=np.float32) / np.sqrt(3))
    with pytest.raises(ValueError, match="pass encoder="):
        recognition(["a.png"], good[:1], kind="static")
