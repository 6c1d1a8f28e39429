"""Stage 05, prompt perturbation (:mod:`iconicity_utils.perturb.perturbation`): the config section, the
paired statistics against scipy, and the stage end to end on a hand-made study (in process, its
figures, and as notebook 05)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import perturbation_fixtures as pf
import pytest
from scipy import stats

from iconicity_utils.config import ConfigError, load_config
from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.core.io import read_table
from iconicity_utils.perturb import figures as figs
from iconicity_utils.perturb import perturbation as pt
from iconicity_utils.perturb import prompts as pv
from iconicity_utils.perturb.inference import InferenceSettings, paired_changes

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wn(demo_cfg):
    """WordNet as the project's set-up provides it (nltk's copy, else the project copy)."""
    return pf.load_wn(demo_cfg)


@pytest.fixture(scope="module")
def study(tmp_path_factory, standins):
    """A hand-made study: four references with labels and images, the noise floor and two matched
    controls (outputs in a tmp folder)."""
    return pf.make_study(tmp_path_factory.mktemp("perturbation-study"), arms=True)


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ({"variants": ["synonym", "literal"]}, "perturbation.variants", "must include 'title'"),
        ({"variants": ["title", "synonym", "synonym"]}, "perturbation.variants", "duplicate"),
        ({"variants": ["title", "paraphrase"]}, "perturbation.variants[1]", "expected one of"),
        ({"literal_source": "captioner"}, "perturbation.captioner", "needs a captioner id"),
        ({"literal_source": "csv"}, "perturbation.literal_csv", "needs a CSV file"),
        ({"literal_source": "llm"}, "perturbation.literal_source", "expected one of"),
        ({"slugs": ["a"], "max_references": 2}, "perturbation.max_references", "either slugs or"),
        ({"n_synonyms": 0}, "perturbation.n_synonyms", "outside"),
        ({"reuse_min_vr": 1.5}, "perturbation.reuse_min_vr", "outside"),
        ({"colour": "red"}, "perturbation.colour", "unknown key"),
        ({"controls": True, "variants": ["title", "synonym"]}, "perturbation.controls", "add 'literal'"),
        ({"min_pairs": 0}, "perturbation.min_pairs", "outside"),
    ],
)
def test_bad_perturbation_config_names_the_key(tmp_path, section, key, problem):
    import yaml

    data = yaml.safe_load((REPO_ROOT / "configs" / "demo.yaml").read_text())
    data["perturbation"].update(section)
    data["paths"]["root"] = str(REPO_ROOT)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert problem in str(info.value) and str(path) in str(info.value)


# --------------------------------------------------------------------------------------------
# Paired statistics against direct scipy computations
# --------------------------------------------------------------------------------------------


def test_paired_changes_match_scipy_bootstrap_and_brute_force_signs():
    from test_perturb_inference import brute_sign_flip

    pairs = pf.pairs_table()
    out = paired_changes(pairs, InferenceSettings(n_bootstrap=2000, bootstrap_seed=5))
    assert len(out) == 2 * 2 * 2 * 3
    for row in out.itertuples(index=False):
        g = pairs[(pairs.model == row.model) & (pairs.variant == row.variant) & (pairs.kind == row.kind)]
        use = g[g.in_comparison]
        d = (use[f"{row.metric}_variant"] - use[f"{row.metric}_title"]).to_numpy()
        assert (row.n_pairs, row.n_excluded, row.n_nonzero) == (len(use), 1, np.count_nonzero(d))
        assert row.mean_change == pytest.approx(d.mean())
        assert row.mean_title == pytest.approx(use[f"{row.metric}_title"].mean())
        if len(d) < 6:  # the dynamic groups: 5 pairs in the comparison, below min_pairs
            assert np.isnan(row.p) and np.isnan(row.ci_low) and "min_pairs" in row.reason
            continue
        assert row.p == pytest.approx(brute_sign_flip(d))
        ci = stats.bootstrap(
            (d,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(5)
        )
        assert (row.ci_low, row.ci_high) == pytest.approx(
            (ci.confidence_interval.low, ci.confidence_interval.high)
        )


def test_persistence_share_and_wilson_interval():
    pairs = pf.pairs_table()
    out = pt.persistence_table(pairs, "mean_vr", 0.5)
    z = stats.norm.ppf(0.975)
    for row in out.itertuples(index=False):
        g = pairs[(pairs.model == row.model) & (pairs.variant == row.variant) & (pairs.kind == row.kind)]
        base = g[g.in_comparison & g.reuse_title]
        n, k = len(base), int(base.reuse_variant.sum())
        assert (row.n_title_reuse, row.n_still_reuse, row.n_pairs) == (n, k, int(g.in_comparison.sum()))
        if n == 0:
            assert np.isnan(row.share)
            continue
        centre, half = (k + z * z / 2) / (n + z * z), z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        assert row.share == pytest.approx(k / n)
        assert (row.ci_low, row.ci_high) == pytest.approx((centre - half, centre + half))


def test_pair_table_from_hand_made_scores(study):
    cfg = study.with_overrides(perturbation={"n_images": 2, "reuse_rule": "mean_vr", "reuse_min_vr": 0.5})
    per_image = pf.per_image_rows(
        {
            ("tiny-sd-a", "mona_lisa", "static", "title", "Mona Lisa"): [
                (True, 1.0),
                (True, 0.5),
                (False, 0.0),
            ],
            ("tiny-sd-a", "mona_lisa", "static", "literal", "a woman"): [
                (True, 0.25),
                (False, 0.0),
                (True, 1.0),
            ],
            ("tiny-sd-a", "mona_lisa", "static", "literal", "an older prompt"): [(True, 1.0)],
            ("tiny-sd-b", "mona_lisa", "static", "title", "Mona Lisa"): [(True, 1.0)],  # not a model of cfg
        }
    )
    prompts = pf.prompts_rows(
        [("mona_lisa", "static", "title", "Mona Lisa", False, 1.0), ("mona_lisa", "static", "literal", "a woman", False, 0.4)]
    )  # fmt: skip
    (row,) = pt.pair_table(per_image, prompts, cfg).to_dict("records")
    # only the current prompt and the first n_images = 2 indices count, for the title as for the variant
    assert (row["n_title"], row["n_variant"]) == (2, 2)
    assert (row["cra_title"], row["cra_variant"], row["cra_change"]) == (1.0, 0.5, -0.5)
    assert (row["vr_all_title"], row["vr_all_variant"]) == (0.75, 0.125)
    assert row["crt_title"] == pytest.approx((0.0 + 0.5) / 2) and row["crt_variant"] == pytest.approx(
        0.75 / 2
    )
    assert (row["reuse_title"], row["reuse_variant"]) == (True, False)  # mean VR 0.75 vs 0.125
    assert row["text_distance"] == pytest.approx(0.6)
    any_image = cfg.with_overrides(perturbation={"reuse_rule": "any_image", "reuse_min_vr": 0.2})
    assert pt.pair_table(per_image, prompts, any_image)["reuse_variant"].item()  # 0.25 >= 0.2
    with pytest.raises(
        ValueError, match=r"without title images for \(model, slug\) \[\('tiny-sd-a', 'mona_lisa'\)\]"
    ):
        pt.pair_table(per_image[per_image.variant != "title"], prompts, cfg)


def test_leak_sensitivity_lets_leaking_variants_in(study):
    """A synonym that keeps a rare title word is a leak: left out by default, let in by the
    sensitivity read; a variant that names someone stays out in both (exclude_named)."""
    cfg = study.with_overrides(perturbation={"n_images": 2, "controls": False})
    per_image = pf.per_image_rows(
        {
            ("tiny-sd-a", "mona_lisa", "static", "title", "Mona Lisa"): [(True, 1.0), (True, 1.0)],
            ("tiny-sd-a", "mona_lisa", "static", "synonym", "Mona Lisa Painting"): [
                (True, 0.5),
                (False, 0.0),
            ],
            ("tiny-sd-a", "mona_lisa", "static", "literal", "Lisa Gherardini"): [(False, 0.0), (False, 0.0)],
        }
    )
    prompts = pf.prompts_rows(
        [("mona_lisa", "static", "title", "Mona Lisa", False, 1.0),
         ("mona_lisa", "static", "synonym", "Mona Lisa Painting", True, 0.9),
         ("mona_lisa", "static", "literal", "Lisa Gherardini", False, 0.3)]
    )  # fmt: skip
    prompts["named"] = prompts["variant"] == "literal"
    prompts["leak_words"] = [["mona", "lisa"] if leak else [] for leak in prompts["leak"]]
    prompts["reason"] = ""
    prompts.loc[prompts["named"], "in_comparison"] = False
    refs = pf.references_table(["mona_lisa"])
    # the same answer whether the prompts table was built with exclude_leaks true or false
    built_without_exclusion = prompts.assign(in_comparison=~prompts["named"])
    for table in (prompts, built_without_exclusion):
        out = pt.leak_sensitivity(cfg, per_image, table, references=refs)
        assert list(out.columns) == pt.LEAK_SENSITIVITY_COLUMNS
        cra = out[(out["metric"] == "cra") & (out["model"] == "tiny-sd-a")].set_index(["leaks", "variant"])
        assert cra.loc[("left out", "synonym"), "n_pairs"] == 0
        assert cra.loc[("let in", "synonym"), "n_pairs"] == 1
        assert cra.loc[("let in", "synonym"), "mean_change"] == pytest.approx(0.5 - 1.0)  # CRA 1/2 vs 2/2
        assert cra.loc[("left out", "literal"), "n_pairs"] == cra.loc[("let in", "literal"), "n_pairs"] == 0
        assert "title-reseed" not in set(out["variant"])


# --------------------------------------------------------------------------------------------
# The stage end to end: prompts -> generation -> scoring -> comparison -> figures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage(study, wn):
    from iconicity_utils.score import score

    prompts = pv.build_prompts(study, wordnet=wn)
    first = pt.generate_variants(study, prompts, in_process=True, progress=False)
    again = pt.generate_variants(study, prompts, in_process=True, progress=False)
    result = score(study)
    return {"prompts": prompts, "first": first, "again": again, "scores": result,
            "comparison": pt.compare(study, result.per_image, prompts)}  # fmt: skip


@pytest.mark.slow
def test_variants_are_generated_scored_and_compared(study, stage):
    prompts, comparison = stage["prompts"], stage["comparison"]
    usable = int((prompts["status"] == "ok").sum())  # leaking prompts are generated too
    assert stage["first"].total == usable and stage["first"].failed == 0
    assert stage["again"].done == 0 and stage["again"].skipped == usable  # reruns add nothing
    manifest = read_table(study.generations_manifest)
    assert len(manifest) == usable and not manifest.duplicated(["model", "variant", "slug", "index"]).any()
    per_image = read_table(study.results_dir / "scores_per_image.parquet")
    assert sorted(set(per_image["variant"])) == [
        "control-literal",
        "literal",
        "synonym",
        "title",
        "title-reseed",
    ]
    counts = per_image.groupby("variant")["slug"].nunique().to_dict()
    assert counts["title"] == counts["title-reseed"] == 4  # the noise floor: every title, new seeds
    assert counts["control-literal"] == 2  # both hand-made controls, scored against their own images
    assert counts["synonym"] == 1  # issue 17: only "The Boy of Man"; Starry Night and Titanic get none
    assert (
        counts["literal"] == 2
    )  # Starry Night and Mona Lisa; Titanic and The Son of Man have no labels to show
    pairs = comparison.pairs
    assert len(pairs) == usable - 4 - 2  # every usable variant row paired with its title; controls are not
    assert "control-literal" not in set(pairs["variant"])
    paired = comparison.paired
    for col in ("mean_change", "p", "p_adjusted", "floor_mean_change", "p_vs_floor"):
        assert not paired.loc[paired[col].isna(), "reason" if col.startswith(("mean", "p")) and "floor" not in col
                              else "floor_reason"].eq("").any(), col  # fmt: skip
    assert (paired["n_references"] == 1 + 2 * (paired["kind"] == "static")).all()  # 3 static, 1 dynamic
    status = comparison.status  # one model x 4 references x 3 variants (title-reseed, synonym, literal)
    assert len(status) == 12 and comparison.coverage["n_references"].sum() == 12
    by_key = status.set_index(["slug", "variant"])["status"]
    assert by_key[("titanic", "literal")] == "missing: no description"  # Wikidata names only RMS Titanic
    assert by_key[("the_son_of_man", "synonym")] == "in_comparison"
    assert by_key[("mona_lisa", "synonym")] == "missing: no synonym"
    assert list(prompts.set_index("slug").loc["portrait_of_a_merchant", "leak_words"]) == ["portrait"]
    ctrl = comparison.controls  # 2 controls: far below min_pairs, so no test, and the row says why
    assert ctrl["p"].isna().all() and ctrl["reason"].str.contains("min_pairs").all()
    written = {
        pt.PAIRS_TABLE: pairs,
        pt.PAIRED_TABLE: paired,
        pt.PERSISTENCE_TABLE: comparison.persistence,
        pt.STATUS_TABLE: status,
        pt.COVERAGE_TABLE: comparison.coverage,
        pt.SELECTION_TABLE: comparison.selection,
        pt.CONTROLS_TABLE: ctrl,
    }
    for name, df in written.items():
        table = read_table(study.results_dir / name)
        assert (table["note"] == STANDIN_LABEL).all() and len(table) == len(df) > 0
    again = pt.compare(study)  # from the tables on disk, and rewritten, not appended
    assert len(read_table(study.results_dir / pt.PAIRS_TABLE)) == len(again.pairs) == len(pairs)


@pytest.mark.slow
def test_figures_are_drawn_and_labelled(study, stage):
    from PIL import Image

    comparison, per_image = stage["comparison"], stage["scores"].per_image
    figures = {
        "05_paired_dots.png": figs.plot_paired_dots(comparison.pairs),
        "05_persistence.png": figs.plot_persistence(comparison.persistence),
        "05_vr_change.png": figs.plot_vr_change_vs_text_distance(comparison.pairs),
        "05_triptychs.png": figs.plot_triptychs(study, comparison.pairs, per_image, stage["prompts"], n=2),
        "05_changes_vs_floor.png": figs.plot_changes_vs_floor(comparison.paired),
        "05_selection.png": figs.plot_selection(
            comparison.status, read_table(study.references_table), pt.title_metrics(per_image, study)
        ),
    }
    for name, fig in figures.items():
        path = figs.save_figure(fig, name, study)
        assert path == study.figures_dir / name
        with Image.open(path) as im:
            assert im.info.get("iconicity:standin") == STANDIN_LABEL, name


@pytest.mark.slow
def test_notebook_05_runs_on_a_study(study, stage, tmp_path):
    import nbformat
    import papermill as pm

    out = tmp_path / "05.ipynb"
    pm.execute_notebook(
        str(REPO_ROOT / "notebooks" / "05_perturbation.ipynb"),
        str(out),
        parameters={"config": study.source, "SHOW_OTHER_SOURCES": False, "TRIPTYCHS": 2},
        cwd=str(REPO_ROOT),
        kernel_name="python3",
        progress_bar=False,
    )
    text = "\n".join(
        o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])
    )
    assert "0 generated" in text  # the variants of the in-process run are on disk already
    assert "0 encoder forward passes" in text
    for name in (
        "05_paired_dots.png",
        "05_persistence.png",
        "05_vr_change_vs_text_distance.png",
        "05_triptychs.png",
        "05_changes_vs_floor.png",
        "05_selection.png",
    ):
        assert (study.figures_dir / name).stat().st_size > 5000, name
