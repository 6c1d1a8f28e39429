"""Realization: the grid, VR/VI and its summaries, CRT, consistency and the cell-mode comparison,
each against an independent numpy computation; exact and cell-permuted copies through real
stand-in encoders; DataLoader workers change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scoring_fixtures import noise, permuted, photo

from iconicity_utils.embeddings import FeatureSpec, FeatureStore, extract
from iconicity_utils.encoders import load_encoder
from iconicity_utils.realization import (
    cell_maxima,
    cell_mode_agreement,
    compare_cell_modes,
    consistency,
    crt,
    grid_boxes,
    rank_correlation,
    split_grid,
    vi_over_recognised,
    visual_reuse,
    vr_stats,
)
from iconicity_utils.registry import Registry


def unit(rng, *shape):
    a = rng.normal(size=shape).astype(np.float32)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


# -- grid --------------------------------------------------------------------------------------


def test_grid_remainder_goes_to_the_last_row_and_column():
    boxes = grid_boxes(90, 62, (4, 4))  # cell 22 x 15; last column 66..90, last row 45..62
    lefts = [0, 22, 44, 66]
    tops = [0, 15, 30, 45]
    want = [
        (lefts[c], tops[r], 90 if c == 3 else lefts[c] + 22, 62 if r == 3 else tops[r] + 15)
        for r in range(4)
        for c in range(4)
    ]
    assert boxes == want
    assert boxes[15] == (66, 45, 90, 62) and boxes[0] == (0, 0, 22, 15)
    for w, h, g in [(90, 62, (4, 4)), (17, 11, (3, 5)), (4, 4, (4, 4)), (100, 7, (1, 2))]:
        cover = np.zeros((h, w), dtype=int)
        for left, top, right, bottom in grid_boxes(w, h, g):
            cover[top:bottom, left:right] += 1
        assert (cover == 1).all(), (w, h, g)  # every pixel in exactly one cell
    with pytest.raises(ValueError, match="too small"):
        grid_boxes(3, 10, (4, 4))


def test_split_grid_crops_are_the_pixel_blocks():
    im = photo("astronaut", (90, 62))
    arr = np.asarray(im)
    cells = split_grid(im, (4, 4))
    assert len(cells) == 16
    for (left, top, right, bottom), cell in zip(grid_boxes(90, 62, (4, 4)), cells, strict=True):
        np.testing.assert_array_equal(np.asarray(cell), arr[top:bottom, left:right])


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


# -- through real stand-in encoders ---------------------------------------------------------------


@pytest.fixture(scope="module")
def encoders(standins):
    reg = Registry.load()
    return {n: load_encoder(n, reg) for n in ("tiny-dino", "tiny-clip", "tiny-sscd")}


@pytest.mark.parametrize(
    "name, cells",
    [("tiny-dino", "crop"), ("tiny-dino", "tokens"), ("tiny-clip", "crop"), ("tiny-sscd", "crop")],
)
def test_an_exact_copy_is_fully_reused(encoders, name, cells):
    ref = photo("astronaut", (90, 62))  # with grid remainders
    copy = ref.copy()
    res = visual_reuse([copy], [ref], encoder=encoders[name], cells=cells)
    np.testing.assert_allclose(res.m, 1.0, atol=1e-5)
    assert res.vr.tolist() == [1.0] and res.vi.tolist() == [0.0]
    assert crt(np.array([True]), res.vi) == 0.0
    assert res.modes()["vr_cells"] == cells


def test_a_cell_permuted_copy_is_fully_reused_in_crop_mode(encoders):
    ref = photo("chelsea", (96, 64))
    shuffled = permuted(ref, seed=5)
    res = visual_reuse([shuffled, noise((96, 64), 1)], [ref], encoder=encoders["tiny-dino"], cells="crop")
    np.testing.assert_allclose(res.m[0], 1.0, atol=1e-5)  # each cell matches its moved original
    assert res.vr[0] == 1.0
    assert res.m[1].max() < 0.999  # noise does not copy any cell


def test_pooling_modes_differ_and_are_recorded(encoders):
    ref, gen = photo("coffee", (64, 64)), photo("rocket", (64, 64))
    a = visual_reuse([gen], [ref], encoder=encoders["tiny-dino"], pool="mean_all")
    b = visual_reuse([gen], [ref], encoder=encoders["tiny-dino"], pool="cls")
    assert not np.allclose(a.m, b.m)
    assert (a.pool, b.pool) == ("mean_all", "cls")
    assert visual_reuse([gen], [ref], encoder=encoders["tiny-clip"]).pool == "native"


def test_compare_cell_modes_on_the_same_images(encoders):
    refs = [photo("coffee", (64, 64))]
    gens = [photo("coffee", (64, 64)), permuted(photo("coffee", (64, 64))), noise((64, 64), 2)]
    summary, crop, tokens = compare_cell_modes(gens, refs, encoder=encoders["tiny-dino"])
    assert crop.cells == "crop" and tokens.cells == "tokens" and summary["n_images"] == 3
    assert summary == cell_mode_agreement(crop.m, tokens.m, 0.60, ">")
    with pytest.raises(Exception, match="timm"):
        visual_reuse(gens, refs, encoder=encoders["tiny-clip"], cells="tokens")


def test_reference_folder_needs_a_kind(tmp_path):
    with pytest.raises(ValueError, match="kind="):
        visual_reuse(np.ones((1, 16, 2)) / np.sqrt(2), tmp_path)


def test_dataloader_workers_give_identical_features(encoders, tmp_path):
    paths = []
    for i, (name, size) in enumerate(
        [("astronaut", (90, 62)), ("coffee", (64, 64)), ("chelsea", (50, 77)), ("rocket", (64, 40))]
    ):
        p = tmp_path / f"{i}.png"
        photo(name, size).save(p)
        paths.append(p)
    specs = [
        FeatureSpec("cells-crop", "tiny-dino"),
        FeatureSpec("cells-tokens", "tiny-dino"),
        FeatureSpec("global", "tiny-clip", pool="mean_all"),
        FeatureSpec("phash"),
        FeatureSpec("gray", size=32),
    ]
    results = []
    for workers in (0, 2):
        stores = {s: FeatureStore(tmp_path / f"w{workers}" / s.key.replace("/", "_")) for s in specs}
        counts = extract(paths, specs, encoders, stores, batch_size=20, num_workers=workers)
        assert counts["images"] == 4
        results.append(stores)
    from iconicity_utils.embeddings import content_hash

    for s in specs:
        for p in paths:
            np.testing.assert_array_equal(
                results[0][s].get(content_hash(p)), results[1][s].get(content_hash(p))
            )
    assert results[0][specs[0]].get(content_hash(paths[0])).shape == (16, 32)
