"""The explorer (notebook 07): recomputation against the stage 03-04 formulas, rendering, widgets,
any results folder, and the notebook under papermill.  The real-browser test is
test_explorer_browser.py."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import explorer_fixtures as ef
import numpy as np
import pandas as pd
import pytest

from iconicity_utils.core.images import grid_boxes
from iconicity_utils.explore import app, data, render, served, tables
from iconicity_utils.score import tables as score_tables

THRESHOLDS = [
    (0.70, 0.75, 0.60),  # the run's
    (0.80, 0.70, 0.50),
    (0.90, 0.90, 0.75),
    (0.5999, 0.999, 0.0),
    (1.0, 1.0, 1.0),
]


@pytest.fixture
def hand(tmp_path):
    folder, per_image = ef.hand_results(tmp_path)
    return folder, per_image


def _cards(gallery: str) -> dict[int, str]:
    """Generated cards of a gallery by index."""
    parts = gallery.split('<figure class="ic-card ic-gen')[1:]
    return {int(re.search(r'data-index="(\d+)"', p).group(1)): p for p in parts}


def _metric(html_text: str, metric: str) -> float:
    return float(re.search(rf'data-metric="{metric}" data-value="([^"]+)"', html_text).group(1))


# -- recomputation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("taus", THRESHOLDS)
def test_recompute_matches_the_formulas_by_hand(hand, taus):
    _, per_image = hand
    rec = tables.recompute(per_image, tables.Thresholds(*taus))
    want = ef.by_hand(per_image, *taus)
    got = rec.per_reference.set_index(["model", "variant", "slug"])
    assert len(got) == len(want)
    for key, w in want.items():
        for metric, value in w.items():
            assert got.loc[key, metric] == pytest.approx(value, abs=1e-12, nan_ok=True), (key, metric)
    # model level: the mean over references per kind, as score_tables.model_table
    for (model, variant, kind), g in rec.per_reference.groupby(["model", "variant", "kind"]):
        summary = tables.model_summary(rec.per_model, model, variant).set_index(["kind", "metric"])
        for metric in ("cra", "crt", "vr_all"):
            assert summary.loc[(kind, metric), "mean"] == pytest.approx(g[metric].mean(), abs=1e-12)
        vi = g["vi_mean"].to_numpy(float)
        expected = np.nanmean(vi) if (~np.isnan(vi)).any() else np.nan
        assert summary.loc[(kind, "vi_mean"), "mean"] == pytest.approx(expected, abs=1e-12, nan_ok=True)


@pytest.mark.parametrize("taus", THRESHOLDS)
def test_recompute_is_score_tables_rescore_and_model_table(hand, taus):
    _, per_image = hand
    rec = tables.recompute(per_image, tables.Thresholds(*taus), n_bootstrap=300, seed=3)
    pi, pr = score_tables.rescore(
        per_image, tau_cra_static=taus[0], tau_cra_dynamic=taus[1], tau_reuse=taus[2]
    )
    pd.testing.assert_frame_equal(rec.per_reference, pr)
    pd.testing.assert_frame_equal(rec.per_model, score_tables.model_table(pr, 300, 3))
    assert (rec.per_image["cra_pass"].to_numpy() == pi["cra_pass"].to_numpy()).all()


def test_a_cached_recompute_re_aggregates_only_the_moved_kind(hand):
    _, per_image = hand
    rows = per_image[per_image["model"] == "m1"]
    cache = {}
    seen = []
    for taus in [
        (0.70, 0.75, 0.60),
        (0.80, 0.75, 0.60),
        (0.80, 0.90, 0.60),
        (0.70, 0.75, 0.60),
        (0.7, 0.75, 0.5),
    ]:
        got = tables.recompute(rows, tables.Thresholds(*taus), cache=cache, n_bootstrap=100)
        want = tables.recompute(rows, tables.Thresholds(*taus), n_bootstrap=100)
        _, pr = score_tables.rescore(rows, tau_cra_static=taus[0], tau_cra_dynamic=taus[1], tau_reuse=taus[2])
        pd.testing.assert_frame_equal(got.per_reference, pr)
        pd.testing.assert_frame_equal(got.per_reference, want.per_reference)
        pd.testing.assert_frame_equal(got.per_model, want.per_model)
        pd.testing.assert_frame_equal(got.per_image, want.per_image)
        seen.append(len(cache))
    assert seen == [2, 3, 4, 4, 6]  # one new kind per τ_CRA move, both for τ_reuse, none to go back


def test_at_the_run_thresholds_the_stored_tables_come_back(hand):
    folder, _ = hand
    res = data.load_results(results=folder)
    t = tables.stored_thresholds(res.per_image)
    assert t == tables.Thresholds(0.70, 0.75, 0.60)
    rec = tables.recompute(res.per_image, t, consistency=res.consistency(), n_bootstrap=200, seed=0)
    stored_ref = pd.read_parquet(folder / "scores_per_reference.parquet")
    stored_model = pd.read_parquet(folder / "scores_per_model.parquet")
    cols = [
        "model",
        "variant",
        "slug",
        "n_images",
        "n_recognised",
        "cra",
        "vi_mean",
        "crt",
        "vr_all",
        "consistency",
    ]
    pd.testing.assert_frame_equal(rec.per_reference[cols], stored_ref[cols], check_dtype=False)
    pd.testing.assert_frame_equal(rec.per_model, stored_model, check_dtype=False)
    assert (res.n_bootstrap, res.seed) == (200, 0)  # read from the stored model table


def test_a_tie_at_tau_fails_strict_and_passes_inclusive(tmp_path):
    model, variant, slug, index = ef.TIE
    for comparison, passed in ((">", False), (">=", True)):
        per_image = ef.per_image_rows(
            tmp_path / comparison.replace(">", "gt").replace("=", "e"), comparison=comparison
        )
        rec = tables.recompute(per_image, tables.Thresholds(0.70, 0.75, 0.60))
        row = rec.per_image.set_index(["model", "variant", "slug", "index"]).loc[
            (model, variant, slug, index)
        ]
        assert np.float32(row["cra_sim"]) == np.float32(0.70)
        assert bool(row["cra_pass"]) is passed


def test_on_the_demo_results_the_stored_tables_come_back(repo_root):
    folder = repo_root / "results" / "demo"
    if not (folder / "scores_per_image.parquet").is_file():
        pytest.skip("no demo results (./run_all.sh writes them)")
    res = data.load_results("configs/demo.yaml")
    rec = tables.recompute(
        res.per_image,
        tables.stored_thresholds(res.per_image),
        consistency=res.consistency(),
        n_bootstrap=res.n_bootstrap,
        seed=res.seed,
    )
    cols = ["model", "variant", "slug", "cra", "vi_mean", "crt", "vr_all"]
    pd.testing.assert_frame_equal(
        rec.per_reference[cols].reset_index(drop=True),
        res.per_reference[cols].reset_index(drop=True),
        check_dtype=False,
    )
    cols = ["model", "variant", "kind", "metric", "mean", "ci_low", "ci_high", "n_refs"]
    pd.testing.assert_frame_equal(rec.per_model[cols], res.per_model[cols], check_dtype=False)


def test_reused_cells_are_the_stored_maxima_over_tau(hand):
    _, per_image = hand
    rec = tables.recompute(per_image, tables.Thresholds(0.7, 0.75, 0.55))
    for _, row in rec.per_image.iterrows():
        flags = tables.reused_cells(row)
        assert flags.shape == (16,)
        assert flags.mean() == pytest.approx(row["vr"])
        key = (row["model"], row["variant"], row["slug"], row["index"])
        if key == ef.EXACT:
            assert flags.all()


def test_reference_list_search_sort_and_restriction(hand):
    _, per_image = hand
    rec = tables.recompute(per_image, tables.Thresholds(0.8, 0.8, 0.6))
    titles = {slug: title for slug, (_k, title, _s) in ef.REFS.items()}
    for label, col in (("CRA", "cra"), ("VR", "vr_all"), ("CRT", "crt")):
        refs = tables.reference_list(rec.per_reference, "m1", "title", titles, sort=label)
        values = refs[col].to_numpy()
        assert (np.diff(values) <= 0).all(), label
    refs = tables.reference_list(rec.per_reference, "m1", "title", titles, sort="title")
    assert refs["title"].tolist() == sorted(titles.values())
    assert tables.reference_list(rec.per_reference, "m1", "title", titles, search="SEAL")[
        "slug"
    ].tolist() == ["seventh_seal"]
    assert tables.reference_list(rec.per_reference, "m1", "title", titles, search="starry_n")[
        "slug"
    ].tolist() == ["starry_night"]
    only = tables.reference_list(rec.per_reference, "m1", "title", titles, only=["the_scream"])
    assert only["slug"].tolist() == ["the_scream"]
    with pytest.raises(ValueError, match="unknown sort"):
        tables.reference_list(rec.per_reference, "m1", "title", titles, sort="size")


def test_overview_points_place_references_by_cra_and_vi(hand):
    _, per_image = hand
    rec = tables.recompute(per_image, tables.Thresholds(0.7, 0.75, 0.6))
    pts = tables.overview_points(rec.per_reference, "m1", "title", bins=20)
    assert len(pts) == len(ef.REFS)
    for p in pts.itertuples():
        assert p.col == 1 + round(p.cra * 20)
        assert p.row == 1 + round((1 - p.vi_mean) * 20)
    # nothing recognised: no VI, the row under the plot
    rec = tables.recompute(per_image, tables.Thresholds(1.0, 1.0, 0.6))
    pts = tables.overview_points(rec.per_reference, "m1", "title", bins=20)
    assert (pts["row"] == 23).all() and (~pts["defined"]).all() and (pts["col"] == 1).all()


# -- rendering -------------------------------------------------------------------------------------


def test_gallery_overlay_exact_copy_is_all_pink(hand):
    folder, _ = hand
    res = data.load_results(results=folder)
    rec = tables.recompute(res.per_image, tables.Thresholds(0.7, 0.75, 0.6))
    model, variant, slug, index = ef.EXACT
    rows = rec.per_image[
        (rec.per_image["model"] == model)
        & (rec.per_image["variant"] == variant)
        & (rec.per_image["slug"] == slug)
    ]
    on = _cards(render.gallery_html(rows, res.resolve, overlay=True))
    off = _cards(render.gallery_html(rows, res.resolve, overlay=False))
    assert on[index].count('class="ic-cell ic-reused"') == 16
    assert on[index].count("ic-independent") == 0
    assert 'data-reused="16"' in on[index] and 'data-pass="1"' in on[index]
    assert "ic-cell" not in off[index]
    for i, card in on.items():  # every other card: its stored flags, pink + green = 16
        row = rows[rows["index"] == i].iloc[0]
        n = int(tables.reused_cells(row).sum())
        assert card.count('class="ic-cell ic-reused"') == n
        assert card.count('class="ic-cell ic-independent"') == 16 - n
        assert f'data-sim="{format(row["cra_sim"], ".17g")}"' in card
        assert ("s<sub>i</sub> = " + f"{row['cra_sim']:.3f} " + ("&gt;" if row["cra_pass"] else "≤")) in card
    assert "image not found" not in "".join(on.values())


def test_overlay_cells_follow_grid_boxes_with_remainders(hand):
    folder, _ = hand
    res = data.load_results(results=folder)
    rows = res.per_image[res.per_image["slug"] == "the_scream"].head(1).copy()
    rows["path"] = [res.per_image.loc[res.per_image["slug"] == "the_scream", "ref_paths"].iloc[0][0]]  # 90x62
    card = render.gallery_html(rows, res.resolve, overlay=True)
    styles = re.findall(
        r'class="ic-cell [^"]+" style="left:([\d.]+)%;top:([\d.]+)%;width:([\d.]+)%;height:([\d.]+)%"', card
    )
    boxes = grid_boxes(90, 62, (4, 4))
    assert len(styles) == 16
    for (left, top, width, height), (x0, y0, x1, y1) in zip(styles, boxes, strict=True):
        assert float(left) == pytest.approx(100 * x0 / 90, abs=1e-4)
        assert float(top) == pytest.approx(100 * y0 / 62, abs=1e-4)
        assert float(width) == pytest.approx(100 * (x1 - x0) / 90, abs=1e-4)
        assert float(height) == pytest.approx(100 * (y1 - y0) / 62, abs=1e-4)


def test_missing_images_show_a_placeholder(hand):
    folder, _ = hand
    res = data.load_results(results=folder)
    rows = res.per_image.head(2).copy()
    rows["path"] = ["/nonexistent/a.png", "/nonexistent/b.png"]
    out = render.gallery_html(rows, res.resolve, overlay=True)
    assert out.count("image not found") == 2 and "/nonexistent/a.png" in out


def test_variants_side_by_side_and_none_scored(tmp_path):
    folder, per_image = ef.hand_results(tmp_path / "v", variants=("literal", "title", "synonym"))
    res = data.load_results(results=folder)
    assert res.variants("m1") == ["title", "synonym", "literal"]
    rec = tables.recompute(res.per_image, tables.Thresholds(0.7, 0.75, 0.6))
    table = tables.variant_table(rec.per_reference, "m1", "starry_night")
    assert table["variant"].tolist() == ["title", "synonym", "literal"]
    out = render.variants_html(rec.per_image, rec.per_reference, "m1", "starry_night", res.resolve)
    assert re.findall(r'class="ic-variant" data-variant="(\w+)"', out) == ["title", "synonym", "literal"]
    want = ef.by_hand(per_image, 0.7, 0.75, 0.6)
    cols = out.split('class="ic-variant"')[1:]
    for variant, col in zip(["title", "synonym", "literal"], cols, strict=True):
        assert _metric(col, "cra") == pytest.approx(want[("m1", variant, "starry_night")]["cra"])
        assert "a literal description of The Starry Night" in col if variant == "literal" else True
    folder1, _ = ef.hand_results(tmp_path / "one")
    res1 = data.load_results(results=folder1)
    rec1 = tables.recompute(res1.per_image, tables.Thresholds())
    out1 = render.variants_html(rec1.per_image, rec1.per_reference, "m1", "starry_night", res1.resolve)
    assert "no variants scored" in out1


def test_variant_order_follows_stage_05():
    got = data.order_variants(["literal", "synonym-3", "zeta", "synonym", "title", "synonym-2", "synonym-10"])
    assert got == ["title", "synonym", "synonym-2", "synonym-3", "synonym-10", "literal", "zeta"]


def test_feature_picker_contract(tmp_path):
    folder, _ = ef.hand_results(tmp_path, features=True)
    res = data.load_results(results=folder)
    assert tables.numeric_feature_columns(res.features) == ["sitelinks", "year", "uniqueness"]
    rec = tables.recompute(res.per_image, tables.Thresholds(0.8, 0.8, 0.6))
    frame = tables.feature_frame(rec.per_reference, res.features, "m1", "title", "year")
    assert sorted(frame["slug"]) == ["seventh_seal", "starry_night"]  # the_scream has no year
    cra = rec.per_reference.set_index(["model", "variant", "slug"])["cra"]
    for r in frame.itertuples():
        assert r.cra == cra[("m1", "title", r.slug)]
    with pytest.raises(ValueError, match="not a numeric column"):
        tables.feature_frame(rec.per_reference, res.features, "m1", "title", "label")
    png = render.figure_png(render.feature_figure(frame, "year", "m1"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# -- the widget app ---------------------------------------------------------------------------------


def test_explorer_sliders_update_reference_and_model_numbers(hand):
    folder, per_image = hand
    ex = app.Explorer.load(None, folder)
    assert ex.model.options == ("m1", "m2") and ex.variant.value == "title"
    ex.select(model="m1", slug="the_scream")
    for taus in THRESHOLDS[1:]:
        ex.tau_static.value, ex.tau_dynamic.value, ex.tau_reuse.value = taus  # three slider moves
        want = ef.by_hand(per_image, *taus)[("m1", "title", "the_scream")]
        for metric in ("cra", "vi_mean", "crt", "vr_all"):
            assert _metric(ex.metrics.value, metric) == pytest.approx(want[metric], abs=1e-12, nan_ok=True)
        assert f'data-tau-cra="{taus[0]:.3f}"' in ex.metrics.value
        rec = tables.recompute(
            ex.results.per_image[ex.results.per_image["model"] == "m1"], tables.Thresholds(*taus)
        )
        g = rec.per_reference[
            (rec.per_reference["variant"] == "title") & (rec.per_reference["kind"] == "static")
        ]
        cell = re.search(
            r'data-kind="static" data-metric="cra" data-value="([^"]+)"', ex.summary.value
        ).group(1)
        assert float(cell) == pytest.approx(g["cra"].mean(), abs=1e-12)
    assert ex.slug == "the_scream"  # a threshold move keeps the selection
    with pytest.raises(KeyError, match="not scored"):
        ex.select(slug="no_such_reference")
    ex._on_reset()
    assert ex.thresholds == tables.Thresholds(0.70, 0.75, 0.60)
    assert len(ex.timings) >= 10 and "updated in" in ex.status.value


def test_explorer_overlay_toggle_and_gallery(hand):
    folder, _ = hand
    ex = app.Explorer.load(None, folder)
    model, variant, slug, index = ef.EXACT
    ex.select(model=model, variant=variant, slug=slug)
    assert "ic-cell" not in _cards(ex.gallery.value)[index]
    ex.overlay.value = True
    card = _cards(ex.gallery.value)[index]
    assert card.count('class="ic-cell ic-reused"') == 16
    assert 'data-slug="starry_night"' in ex.gallery.value


def test_clicking_an_overview_point_opens_the_reference(hand):
    folder, _ = hand
    ex = app.Explorer.load(None, folder)
    ex.tabs.selected_index = 1  # the overview draws when shown
    points = [c for c in ex.overview.children if "ic-point" in c._dom_classes]
    assert points
    target = next(p for p in points if "(seventh_seal)" in p.tooltip)
    target.click()
    assert ex.slug == "seventh_seal"
    assert ex.tabs.selected_index == 0
    assert 'data-slug="seventh_seal"' in ex.gallery.value


def test_model_switch_search_and_tabs(tmp_path):
    folder, _ = ef.hand_results(tmp_path, features=True, variants=("title", "synonym"))
    ex = app.Explorer.load(None, folder)
    ex.select(slug="seventh_seal")
    ex.model.value = "m2"
    assert ex.slug == "seventh_seal" and 'data-model="m2"' in ex.metrics.value
    ex.search.value = "scream"
    assert [v for _, v in ex.reference.options] == ["the_scream"] and ex.slug == "the_scream"
    ex.search.value = "nothing like this"
    assert ex.reference.options == () and "no reference matches" in ex.point_note.value
    ex.search.value = ""
    ex.tabs.selected_index = 2
    assert ex.variants.value.count('class="ic-variant"') == 2
    ex.tabs.selected_index = 3
    assert [v for _, v in ex.feature.options] == ["sitelinks", "year", "uniqueness"]
    labels = tables.feature_labels()  # stage 06's labels name the columns they know
    if "sitelinks" in labels:
        assert ex.feature.options[0][0] == f"{labels['sitelinks']} (sitelinks)"
    assert ex.feature_plot.value[:4] == b"\x89PNG"
    ex.feature.value = "uniqueness"
    assert "uniqueness" in ex.feature_note.value


def test_features_missing_says_so(hand):
    folder, _ = hand
    ex = app.Explorer.load(None, folder)
    ex.tabs.selected_index = 3
    assert "stage 06 features missing" in ex.feature_note.value
    assert "reference_features.parquet" in ex.feature_note.value


def test_snapshot_and_table(hand):
    folder, _ = hand
    ex = app.Explorer.load(None, folder)
    snap = ex.snapshot_html()
    for part in (
        "ic-gallery",
        "ic-metrics",
        "ic-summary",
        "no variants scored",
        "voila notebooks/07_explorer.ipynb",
    ):
        assert part in snap
    n_images = len(ex.selected_rows())
    assert snap.count('class="ic-cell ') == 16 * n_images  # the overlay is drawn in the snapshot
    assert not ex.overlay.value  # without touching the app's own toggle
    table = ex.table()
    assert list(table["slug"]) and (np.diff(table["cra"]) <= 0).all()
    assert "results:" in ex.describe()


# -- any results folder ---------------------------------------------------------------------------


def test_paths_resolve_through_the_config_or_as_stored(tmp_path):
    root = tmp_path / "project"
    per_image = ef.per_image_rows(root, store=lambda p: Path(p).relative_to(root).as_posix())
    folder = tmp_path / "elsewhere"
    ef.write_results(folder, per_image)
    assert not Path(per_image["path"].iloc[0]).is_absolute()
    cfg = SimpleNamespace(
        thresholds=None,
        absolute=lambda stored: root / stored,
        references_table=root / "none.parquet",
        scoring=SimpleNamespace(n_bootstrap=100, bootstrap_seed=0),
        results_dir=folder,
    )
    res = data.load_results(cfg)  # the config's results folder
    assert res.folder == folder
    assert res.resolve(per_image["path"].iloc[0]) == root / per_image["path"].iloc[0]
    rows = res.per_image.head(3)
    assert "image not found" not in render.gallery_html(rows, res.resolve)
    res_plain = data.load_results(results=folder)  # no config: as stored (relative: not found here)
    assert "image not found" in render.gallery_html(rows, res_plain.resolve)
    absolute = tmp_path / "abs"
    folder2, per_image2 = ef.hand_results(absolute)
    assert Path(per_image2["path"].iloc[0]).is_absolute()
    res2 = data.load_results(results=folder2)
    assert "image not found" not in render.gallery_html(res2.per_image.head(3), res2.resolve)


def test_titles_come_from_the_prompt_of_the_title_variant(tmp_path):
    folder, _ = ef.hand_results(tmp_path, variants=("synonym", "title"))
    res = data.load_results(results=folder)
    assert res.titles["starry_night"] == "The Starry Night"


def test_load_errors_name_the_folder_and_the_way_out(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"scores_per_image.parquet not found.*score_folders"):
        data.load_results(results=tmp_path)
    pd.DataFrame({"model": ["m"], "slug": ["s"]}).to_parquet(tmp_path / "scores_per_image.parquet")
    with pytest.raises(ValueError, match="lacks columns"):
        data.load_results(results=tmp_path)
    _, per_image = ef.hand_results(tmp_path / "h")
    per_image.head(0).to_parquet(tmp_path / "scores_per_image.parquet")
    with pytest.raises(ValueError, match="no rows"):
        data.load_results(results=tmp_path)
    with pytest.raises(ValueError, match="config or a results folder"):
        data.load_results()


def test_query_parameters_from_voila(monkeypatch):
    assert served.query_parameters("configs/demo.yaml", None, "") == ("configs/demo.yaml", None)
    got = served.query_parameters(
        "configs/demo.yaml", None, "token=x&config=configs%2Fpaper.yaml&results=%2Ftmp%2Fs"
    )
    assert got == ("configs/paper.yaml", "/tmp/s")
    monkeypatch.setenv("QUERY_STRING", "results=scores")
    assert served.query_parameters("c.yaml", None) == ("c.yaml", "scores")
    monkeypatch.delenv("QUERY_STRING")
    assert served.query_parameters("c.yaml", "r") == ("c.yaml", "r")


@pytest.mark.slow
def test_folder_scorer_output_exact_copy_is_all_pink(tmp_path, standins, demo_cfg):
    """A user's folders scored with score_folders (absolute paths), explored without a config."""
    import scoring_fixtures as sf

    from iconicity_utils.score import score_folders

    refdir, gendir, prompts = sf.make_folders(tmp_path)
    cfg = demo_cfg.with_overrides(scoring={"n_bootstrap": 100})
    score_folders(
        refdir,
        gendir,
        prompts,
        kind="static",
        config=cfg,
        out_dir=tmp_path / "scores",
        cache_dir=tmp_path / "cache",
    )
    ex = app.Explorer.load(None, tmp_path / "scores")
    slug = "Starry_Night"  # folder name; img_000 is an exact copy of its first reference
    ex.select(model="model_a", slug=slug)
    ex.overlay.value = True
    card = _cards(ex.gallery.value)[0]
    assert card.count('class="ic-cell ic-reused"') == 16 and 'data-pass="1"' in card
    assert "image not found" not in ex.gallery.value


# -- the notebook ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("interactive", [False, True])
def test_notebook_07_builds_and_never_waits(hand, tmp_path, repo_root, interactive):
    import nbformat
    import papermill as pm

    folder, _ = hand
    out = tmp_path / f"07_{interactive}.ipynb"
    pm.execute_notebook(
        str(repo_root / "notebooks" / "07_explorer.ipynb"),
        str(out),
        parameters={"config": "configs/demo.yaml", "results": str(folder), "INTERACTIVE": interactive},
        cwd=str(repo_root),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=120,
    )
    outputs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    bundles = [o.get("data", {}) for o in outputs]
    widgets = [d for d in bundles if "application/vnd.jupyter.widget-view+json" in d]
    html_out = "".join(d.get("text/html", "") for d in bundles)
    if interactive:
        assert widgets
    else:
        assert not widgets
        assert 'class="ic-gallery"' in html_out and "Static snapshot" in html_out
    assert str(folder) in "".join(o.get("text", "") for o in outputs)
