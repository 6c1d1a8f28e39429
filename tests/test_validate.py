"""Stage 08, validation: the properties that hold for any encoder, on hand-made cases.

- the edits are deterministic, keep the size, and refuse strengths out of range;
- ``replace`` keeps 16 - k grid cells pixel for pixel and puts another image's cells in the others;
- through the scoring engine, VR of a k-replaced image is (16 - k) / 16 (see
  :func:`test_vr_of_k_replaced_cells_through_the_engine` for exactly what is proven);
- the exact copy gets VR 1 and pHash distance 0 with the demo's random-weight encoders, and a
  cell shuffle VR 1 (the limit the notebook measures);
- the AUROC equals ``sklearn.metrics.roc_auc_score`` (and scipy's Mann-Whitney U) on the stored scores;
- a rebuild makes nothing again and removes stale images; the tables carry the stand-in label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import mannwhitneyu

from iconicity_utils.core.constants import STANDIN_LABEL, TAU_REUSE
from iconicity_utils.core.images import grid_boxes
from iconicity_utils.registry.encoders import Encoder
from iconicity_utils.registry.specs import EncoderSpec
from iconicity_utils.validate import analysis
from iconicity_utils.validate.dataset import build_edits
from iconicity_utils.validate.edits import EDITS, apply_edit, replace_order
from iconicity_utils.validate.front_door import TABLES, load_validation, validate
from iconicity_utils.validate.measure import measure_edits

SIZE = 128
GRID = (4, 4)


def blocks(seed: int, size: int = SIZE, block: int = 4) -> Image.Image:
    """Random colours in ``block``-pixel squares: every 32-pixel cell holds its own 8x8 random pattern."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(size // block, size // block, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST)


# -- the edits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EDITS))
def test_edits_are_deterministic_and_keep_the_size(name):
    image, other = blocks(0), blocks(1)
    for strength in EDITS[name].strengths[:2]:
        a = apply_edit(name, image, strength, other=other, seed=3)
        b = apply_edit(name, image, strength, other=other, seed=3)
        assert a.size == image.size and a.mode == "RGB"
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_strengths_out_of_range_and_a_missing_other_are_refused():
    with pytest.raises(ValueError, match="crop"):
        apply_edit("crop", blocks(0), 0.3)  # a replication crop removes at most 20 %
    with pytest.raises(ValueError, match="rotate"):
        apply_edit("rotate", blocks(0), 15)
    with pytest.raises(ValueError, match="other"):
        apply_edit("replace", blocks(0), 4)
    with pytest.raises(ValueError, match="unknown edit"):
        apply_edit("sepia", blocks(0), 1)


def test_copy_is_exact_and_shuffle_moves_every_chosen_cell():
    image = blocks(0)
    assert np.array_equal(np.asarray(apply_edit("copy", image, 0)), np.asarray(image))
    shuffled = np.asarray(apply_edit("shuffle", image, 1.0, seed=1))
    src = np.asarray(image)
    boxes = grid_boxes(SIZE, SIZE, GRID)
    cells = [src[t:b, le:r] for le, t, r, b in boxes]
    out_cells = [shuffled[t:b, le:r] for le, t, r, b in boxes]
    assert all(not np.array_equal(a, b) for a, b in zip(cells, out_cells, strict=True))
    assert sorted(c.tobytes() for c in cells) == sorted(c.tobytes() for c in out_cells)  # same cells


@pytest.mark.parametrize("k", [0, 1, 5, 16])
def test_replace_keeps_the_other_cells_pixel_for_pixel(k):
    image, other = blocks(0), blocks(1)
    out = np.asarray(apply_edit("replace", image, k, other=other, seed=7))
    replaced = set(replace_order(16, 7)[:k].tolist())
    for i, (le, t, r, b) in enumerate(grid_boxes(SIZE, SIZE, GRID)):
        want = np.asarray(other if i in replaced else image)[t:b, le:r]
        assert np.array_equal(out[t:b, le:r], want), f"cell {i}"


# -- through the engine, with a pixel-space encoder ------------------------------------------------


class PixelNet:
    """A deterministic encoder in pixel space: the 8x8 RGB thumbnail, centred (mean removed)."""

    def __call__(self, x):
        flat = x.flatten(1)
        return flat - flat.mean(dim=1, keepdim=True)

    def to(self, device):
        return self

    def eval(self):
        return self


def pixel_transform(image):
    import torch

    small = np.asarray(image.convert("RGB").resize((8, 8), Image.Resampling.BOX), dtype=np.float32)
    return torch.from_numpy(small).permute(2, 0, 1) / 255.0


def pixel_encoders(cfg) -> dict[str, Encoder]:
    e = cfg.encoders
    names = {e.recognition, e.realization, e.copy_detection} - {None}
    return {
        n: Encoder(
            spec=EncoderSpec(name=n, backend="sscd", source="pixel"),
            model=PixelNet(),
            transform=pixel_transform,
            device="cpu",
            info={
                "encoder": n,
                "backend": "sscd",
                "source": "pixel",
                "weights": None,
                "revision": None,
                "revision_source": None,
                "locked": False,
                "dtype": "float32",
                "device": "cpu",
                "standin": False,
                "fingerprint": f"pixel-8x8-{n}",
            },
        )  # fmt: skip
        for n in names
    }


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory):
    from study_configs import write_study_config

    folder = tmp_path_factory.mktemp("validate-pixel")
    ks = [0, 1, 4, 8, 12, 15, 16]
    cfg = write_study_config(
        folder, "validate-pixel",
        validation={"edits": ["copy", "replace", "shuffle", "jpeg"], "image_size": SIZE, "max_references": 0,
                    "strengths": {"replace": ks, "jpeg": [50]}, "n_bootstrap": 50},
    )  # fmt: skip
    sources = {f"blocks-{i}": ("test", blocks(10 + i)) for i in range(3)}
    edits = build_edits(cfg, sources=sources)
    scores = measure_edits(cfg, edits, encoders=pixel_encoders(cfg), cache_dir=folder / "cache")
    return cfg, sources, scores


def test_vr_of_k_replaced_cells_through_the_engine(pixel_run):
    """A grid-aligned replacement of k cells by foreign content, the kept cells copied exactly,
    gives VR = (16 - k) / 16.

    What is proven, and for which encoder:

    - for **any** deterministic encoder in ``cells="crop"`` mode: the 16 - k kept cells are
      pixel-identical to the source's cells at the same grid boxes (the test above), so each embeds
      exactly as a source cell, its maximum cosine is 1 > τ_reuse and it counts as reused;
    - the foreign cells count as not reused only if the encoder puts them below τ_reuse against
      every source cell.  A random encoder does not guarantee that, so here it holds *by
      construction*: the encoder is a centred 8x8 pixel thumbnail, and the foreign cells are
      independent random block patterns, whose cosines to every source cell are checked below
      τ_reuse before VR is;
    - with both, the engine (``score_folders``, the study's scoring path) gives exactly
      (16 - k) / 16, and the exact copy VR 1 and pHash distance 0.
    """
    cfg, sources, scores = pixel_run
    names = list(sources)
    for source, other in zip(names, names[1:] + names[:1], strict=True):
        src_cells = np.stack([pixel_transform(c).flatten().numpy() for c in _cells(sources[source][1])])
        oth_cells = np.stack([pixel_transform(c).flatten().numpy() for c in _cells(sources[other][1])])
        src_cells, oth_cells = _unit(src_cells), _unit(oth_cells)
        assert (oth_cells @ src_cells.T).max() < TAU_REUSE  # the premise, checked
    series = scores[scores["edit"] == "replace"]
    assert len(series) == 3 * 7
    np.testing.assert_allclose(series["vr"], (16 - series["strength"]) / 16, atol=1e-7)
    copies = scores[scores["edit"] == "copy"]
    assert (copies["vr"] == 1.0).all() and (copies["phash_dist"] == 0).all()
    np.testing.assert_allclose(copies["ssim"], 1.0)


def _cells(image):
    return [image.crop(b) for b in grid_boxes(image.width, image.height, GRID)]


def _unit(a):
    a = a - a.mean(axis=1, keepdims=True)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_calibration_table_follows_the_expected_line(pixel_run):
    cfg, _, scores = pixel_run
    cal = analysis.calibration_table(scores, cfg)
    vr = cal[cal["measure"] == "vr"]
    np.testing.assert_allclose(vr["mean"], vr["expected"], atol=1e-7)
    assert vr["k"].tolist() == [0, 1, 4, 8, 12, 15, 16]


def test_auroc_equals_the_textbook_statistic_on_the_stored_scores(pixel_run):
    cfg, _, scores = pixel_run
    table = analysis.auroc_table(scores, cfg)
    row = table[(table["comparison"] == "replication_vs_transformation") & (table["subset"] == "all")]
    _, pos, neg = analysis.comparison_sides(scores, "replication_vs_transformation")[0]
    for measure in ("vr", "vr_mean", "phash_dist", "ssim"):
        v = analysis.oriented(scores[measure], measure)
        p, n = v[pos.to_numpy()], v[neg.to_numpy()]
        u = mannwhitneyu(p, n, alternative="two-sided").statistic / (len(p) * len(n))
        got = row.loc[row["measure"] == measure, "auroc"].item()
        assert got == pytest.approx(u, abs=1e-12)
        brute = np.mean([(a > b) + 0.5 * (a == b) for a in p for b in n])
        assert got == pytest.approx(brute, abs=1e-12)


def test_auroc_equals_sklearn_roc_auc_score(pixel_run):
    metrics = pytest.importorskip("sklearn.metrics")
    cfg, _, scores = pixel_run
    for comparison in analysis.COMPARISONS:
        for _subset, pos, neg in analysis.comparison_sides(scores, comparison):
            for measure in ("vr", "vr_mean", "phash_dist", "ssim", "dino_cos"):
                v = analysis.oriented(scores[measure], measure)
                p, n = v[pos.to_numpy()], v[neg.to_numpy()]
                y = np.r_[np.ones(len(p)), np.zeros(len(n))]
                assert analysis.auroc(p, n) == pytest.approx(metrics.roc_auc_score(y, np.r_[p, n]), abs=1e-12)


def test_bootstrap_ci_over_sources_and_precision_at_recall():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 60), rng.normal(0, 1, 60)
    src = np.repeat(np.arange(6), 10)
    lo, hi = analysis.bootstrap_auroc(pos, neg, src, src, n_bootstrap=300, seed=1)
    assert lo < analysis.auroc(pos, neg) < hi
    assert (lo, hi) == analysis.bootstrap_auroc(pos, neg, src, src, n_bootstrap=300, seed=1)
    # one source only: every resample is the data itself
    one = np.zeros(60, dtype=int)
    lo1, hi1 = analysis.bootstrap_auroc(pos, neg, one, one, n_bootstrap=20)
    assert lo1 == pytest.approx(hi1) == pytest.approx(analysis.auroc(pos, neg))
    assert analysis.precision_at_recall([4, 3, 2, 1], [3.5, 0], 0.5) == (2 / 3, 3.0)
    assert analysis.precision_at_recall([4, 3, 2, 1], [3.5, 0], 1.0) == (0.8, 1.0)


# -- the stage, with the demo's stand-in encoders ------------------------------------------------


@pytest.fixture(scope="module")
def standin_run(tmp_path_factory, standins):
    from study_configs import write_study_config

    folder = tmp_path_factory.mktemp("validate-standin")
    cfg = write_study_config(
        folder, "validate-standin",
        validation={"skimage_sources": ["astronaut", "coffee"], "max_references": 0, "image_size": SIZE,
                    "edits": ["copy", "jpeg", "shuffle", "replace", "edges", "shift"],
                    "strengths": {"replace": [0, 8, 16]}, "n_bootstrap": 50},
    )  # fmt: skip
    return cfg, validate(cfg)


def test_copy_and_shuffle_with_random_weights(standin_run):
    """Any encoder: the exact copy has VR 1 and pHash 0; a cell shuffle has VR 1 (VR's limit)."""
    _, result = standin_run
    s = result.scores
    copies = s[s["edit"] == "copy"]
    assert (copies["vr"] == 1.0).all() and (copies["phash_dist"] == 0).all()
    assert (s.loc[s["edit"] == "shuffle", "vr"] == 1.0).all()
    kept = s[(s["edit"] == "replace") & (s["strength"] == 0)]
    assert (kept["vr"] == 1.0).all()
    shuffle_vr = result.limits[
        (result.limits["limit"] == "cell shuffle") & (result.limits["measure"] == "vr")
    ]
    assert shuffle_vr["auroc_vs_copy"].item() == 0.5 and shuffle_vr["share_vr_full"].item() == 1.0


def test_tables_are_written_labelled_and_a_rerun_makes_nothing(standin_run):
    cfg, result = standin_run
    tables = load_validation(cfg.results_dir)
    assert set(tables) == set(TABLES)
    for name, df in tables.items():
        assert (df["note"] == STANDIN_LABEL).all(), name
        assert df.attrs["provenance"]["config"] == "validate-standin"
    assert len(tables["scores"]) == len(result.edits) == len(tables["edits"])
    again = validate(cfg)
    assert again.edits.attrs["made"] == 0
    pd.testing.assert_frame_equal(again.auroc, result.auroc)
    assert not again.scores.duplicated(["source", "edit_id"]).any()


def test_changed_strengths_remake_only_what_changed_and_drop_stale_images(standin_run):
    cfg, result = standin_run
    fewer = cfg.with_overrides(validation={"strengths": {"replace": [0, 8]}})
    edits = build_edits(fewer)
    assert edits.attrs["made"] == 0
    assert "replace-16" not in set(edits["edit_id"])
    root = cfg.data_dir / "validation" / "edits"
    assert not list(root.rglob("replace-16.png"))
    assert len(list(root.rglob("*.png"))) == len(edits)


def test_validation_config_is_checked(make_config):
    from iconicity_utils.core.schema import ConfigError

    with pytest.raises(ConfigError, match="validation"):
        make_config(validation={"edits": ["copy", "sepia"]})
    with pytest.raises(ValueError, match="multiple of the grid"):
        from iconicity_utils.validate.dataset import load_sources

        load_sources(make_config("odd", validation={"image_size": 130}))


def test_the_explorer_tab_pages_through_the_edits(standin_run, tmp_path):
    from iconicity_utils.explore.data import Resolver
    from iconicity_utils.explore.validation_tab import ValidationTab

    cfg, result = standin_run
    tab = ValidationTab(cfg.results_dir, Resolver(cfg), standin=True)
    tab.family.value = "transformation"
    tab.edit.value = "replace"
    assert tab.index.max == len(tab.rows()) - 1 == (result.scores["edit"] == "replace").sum() - 1
    tab.index.value = 1
    row = tab.rows().iloc[1]
    assert f"data-edit='{row['edit_id']}'" in tab.view.value and "image not found" not in tab.view.value
    empty = ValidationTab(tmp_path, Resolver(cfg))
    assert "no validation tables" in empty.view.value


def test_planned_images_counts_the_edit_table(standin_run, demo_cfg):
    from iconicity_utils.validate.dataset import planned_images

    cfg, result = standin_run
    assert planned_images(cfg, 0) == len(result.edits)
    assert planned_images(demo_cfg, 2) == 162  # 6 sources x (24 edits + 3 independent pairs)
    assert planned_images(demo_cfg, 0) == 4 * (24 + 3)
