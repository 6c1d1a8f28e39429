"""Stage 03-04 figures: the reuse overlay colours exactly the reused cells; every figure draws from
the score tables and saves with the stand-in label."""

from __future__ import annotations

import numpy as np
import pytest
import scoring_fixtures as sf
from PIL import Image

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.core.plotting import save_figure
from iconicity_utils.score import figures as F
from iconicity_utils.score import score


def test_reuse_overlay_tints_reused_cells_pink_and_the_rest_green():
    base = Image.new("RGB", (42, 38), (128, 128, 128))  # remainders: cells 10x9, last col 12, last row 11
    flags = [k % 3 == 0 for k in range(16)]
    out = np.asarray(F.reuse_overlay(base, flags, alpha=0.5)).astype(int)
    from iconicity_utils.core.images import grid_boxes

    for flag, (left, top, right, bottom) in zip(flags, grid_boxes(42, 38, (4, 4)), strict=True):
        centre = out[(top + bottom) // 2, (left + right) // 2]
        want = np.round(0.5 * 128 + 0.5 * np.array(F.REUSED if flag else F.INDEPENDENT))
        np.testing.assert_allclose(centre, want, atol=1)
    big = F.reuse_overlay(base, flags, scale=3)
    assert big.size == (126, 114)
    with pytest.raises(ValueError, match="4x4"):
        F.reuse_overlay(base, flags[:5])


@pytest.fixture(scope="module")
def scored(tmp_path_factory, standins):
    cfg = sf.study_config(tmp_path_factory.mktemp("figs"), scoring={"n_bootstrap": 200})
    sf.make_study(cfg)
    return cfg, score(cfg, write=False)


def test_every_figure_draws_and_saves_labelled(scored, tmp_path):
    cfg, res = scored
    figures = {
        "dist": F.plot_cra_distribution(res.per_image),
        "models": F.plot_model_scores(res.per_model),
        "scatter": F.plot_recognition_realization(res.per_reference),
        "sensitivity": F.plot_threshold_sensitivity(res.per_image, taus=[0.5, 0.6, 0.7, 0.8]),
        "gallery": F.plot_gallery(res.per_image, cfg.absolute, n=3),
        "baselines": F.plot_baseline_agreement(res.per_image),
    }
    for name, fig in figures.items():
        path = save_figure(fig, tmp_path / f"{name}.png", cfg)
        assert path.stat().st_size > 5000
        with Image.open(path) as im:  # the label travels in the file, and is drawn on its face
            assert im.text.get("iconicity:standin") == STANDIN_LABEL, name
            assert _label_pixels(im) > 50, name
    assert len(figures["gallery"].axes) == 6
    assert len(figures["models"].axes) == 2  # static and dynamic panels


def _label_pixels(im) -> int:
    """Pixels in the stand-in label's red (#b00020), give or take antialiasing."""
    rgb = np.asarray(im.convert("RGB")).astype(int)
    return int((np.abs(rgb - np.array([176, 0, 32])).sum(axis=-1) < 40).sum())


def test_a_real_model_figure_carries_no_label(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], color="C0")
    with Image.open(save_figure(fig, tmp_path / "plain.png", standin=False)) as im:
        assert "iconicity:standin" not in im.text and _label_pixels(im) == 0
    with Image.open(save_figure(fig, tmp_path / "stamped.png", standin=True)) as im:
        assert im.text["iconicity:standin"] == STANDIN_LABEL and _label_pixels(im) > 50


def test_gallery_rows_span_the_range_of_vr(scored):
    rows = F.gallery_rows(scored[1].per_image, n=3)
    vr = scored[1].per_image["vr"]
    assert len(rows) == 3 and rows["vr"].iloc[0] == vr.min() and rows["vr"].iloc[-1] == vr.max()
