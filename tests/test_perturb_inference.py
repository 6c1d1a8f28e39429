"""Stage 05's inference, noise floor, coverage and controls arm (issue 17), against independent
computations: brute-force sign enumeration written here, statsmodels' BH, scipy's permutation test."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import perturbation_fixtures as pf
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from iconicity_utils.core.constants import RESEED_INDEX_OFFSET
from iconicity_utils.generate.units import unit_seed
from iconicity_utils.perturb import controls as ct
from iconicity_utils.perturb import coverage as cv
from iconicity_utils.perturb import inference as inf
from iconicity_utils.perturb import noise_floor as nf


def brute_sign_flip(d) -> float:
    """Two-sided p of mean(d) = 0 over every sign vector, by itertools."""
    d = list(map(float, d))
    observed = abs(sum(d) / len(d))
    hits = total = 0
    for signs in itertools.product((1, -1), repeat=len(d)):
        total += 1
        hits += abs(sum(s * x for s, x in zip(signs, d, strict=True)) / len(d)) >= observed - 1e-12
    return hits / total


# --------------------------------------------------------------------------------------------
# The tests themselves
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "d",
    [
        [0.5, 0.25, 0.25, 0.5, 0.75, 0.25],
        [-0.1, 0.0, 0.0, 0.3, -0.2, 0.1, 0.0, 0.4],  # zeros kept, ties in |d|
        [1.0, -1.0, 0.5, -0.5, 0.25, 0.0, 0.75],
        list(np.random.default_rng(1).normal(0.3, 1.0, 11)),
    ],
)
def test_sign_flip_matches_brute_force(d):
    p, method = inf.sign_flip_test(d)
    assert p == pytest.approx(brute_sign_flip(d)) and "exact" in method


def test_sign_flip_monte_carlo_is_close_to_exact_and_never_zero():
    d = list(np.random.default_rng(7).normal(0.4, 1.0, 12))
    p, method = inf.sign_flip_test(d, exact_max=8, n_permutations=20000, seed=3)
    assert "Monte Carlo" in method and p == pytest.approx(brute_sign_flip(d), abs=0.01)
    p_far, _ = inf.sign_flip_test([1.0] * 40, n_permutations=999)
    assert p_far == pytest.approx(1 / 1000)  # (0 + 1) / (999 + 1): never 0


def test_min_pairs_six_is_where_p_below_005_becomes_reachable():
    # every change positive is the most extreme sample possible: its p is the smallest reachable
    p5, p6 = inf.sign_flip_test([0.1] * 5)[0], inf.sign_flip_test([0.1] * 6)[0]
    assert p5 == pytest.approx(0.0625) and p5 > 0.05
    assert p6 == pytest.approx(0.03125) and p6 < 0.05
    assert inf.smallest_p(5) == 0.0625 and inf.smallest_p(6) == 0.03125
    assert inf.InferenceSettings().min_pairs == 6
    assert inf.sign_flip_test([0.0, 0.0, 0.0])[0] == 1.0  # nothing moved


def test_two_sample_test_matches_scipy_permutation_test():
    x, y = [0.9, 0.7, 1.0, 0.6, 0.8], [0.2, 0.5, 0.1, 0.4, 0.6, 0.3]
    ref = stats.permutation_test(
        (x, y),
        lambda a, b: abs(np.mean(a) - np.mean(b)),
        permutation_type="independent",
        alternative="greater",
        n_resamples=np.inf,
    )  # fmt: skip  (two-sided as |difference|, the test's definition)
    p, method = inf.two_sample_test(x, y)
    assert p == pytest.approx(ref.pvalue) and "exact (462 splits)" in method  # C(11, 5)
    with pytest.raises(ValueError, match="two non-empty groups"):
        inf.two_sample_test([], y)


# --------------------------------------------------------------------------------------------
# The paired table
# --------------------------------------------------------------------------------------------


def _pairs(changes: dict, title: float = 0.5) -> pd.DataFrame:
    """A pairs table from ``{(model, variant, kind): [cra change per reference]}``; VR and CRT
    move as CRA does, halved."""
    rows = []
    for (model, variant, kind), ds in changes.items():
        for i, d in enumerate(ds):
            row = {"model": model, "variant": variant, "kind": kind, "slug": f"{kind}{i}", "in_comparison": True,
                   "leak": False, "reuse_title": True, "reuse_variant": d >= 0}  # fmt: skip
            for metric, scale in (("cra", 1.0), ("vr_all", 0.5), ("crt", 0.5)):
                row.update({f"{metric}_title": title, f"{metric}_variant": title + scale * d,
                            f"{metric}_change": scale * d})  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)


def test_paired_table_tests_reasons_and_bh_family():
    drop = [-0.5, -0.25, -0.5, -0.75, -0.5, 0.0, -0.25, -0.5]  # judged: a clear, consistent drop
    pairs = _pairs({("m", "literal", "static"): drop, ("m", "synonym", "static"): [0.25, -0.25, 0.0, 0.25],
                    ("m", "synonym", "dynamic"): [0.0] * 7, ("m", "literal", "dynamic"): [0.25, -0.25, 0.5, 0.0, -0.25, 0.25]})  # fmt: skip
    out = inf.paired_changes(pairs, inf.InferenceSettings(n_bootstrap=200))
    row = out.set_index(["variant", "kind", "metric"])
    lit = row.loc[("literal", "static", "cra")]
    assert lit["mean_change"] == pytest.approx(np.mean(drop)) and lit["p"] == pytest.approx(
        brute_sign_flip(drop)
    )
    assert lit["p"] < 0.05 and lit["ci_high"] < 0 and lit["reason"] == ""
    small = row.loc[("synonym", "static", "cra")]  # n = 4 < 6: the mean, no interval or test
    assert small["mean_change"] == pytest.approx(0.0625)
    assert np.isnan(small["p"]) and np.isnan(small["ci_low"]) and np.isnan(small["p_adjusted"])
    assert "n = 4 < perturbation.min_pairs = 6" in small["reason"]
    zeros = row.loc[("synonym", "dynamic", "cra")]
    assert zeros["p"] == 1.0 and "every change is zero" in zeros["reason"]
    for _, g in out.groupby("metric"):  # the family: one metric over models x variants x kinds
        ok = g["p"].notna().to_numpy()
        assert g["p_adjusted"].to_numpy()[ok] == pytest.approx(multipletests(g["p"][ok], method="fdr_bh")[1])
    assert out["reason"].astype(bool).sum() >= 2 and not out.loc[out["p"].isna(), "reason"].eq("").any()


def test_noise_floor_reads_each_change_against_the_reseeded_title():
    reseed = [0.0, 0.25, -0.25, 0.0, 0.0, 0.25, -0.25, 0.0]  # seeds alone: small, both ways
    drop = [-0.5, -0.5, -0.75, -0.5, -0.25, -0.5, -0.5, -0.75]  # judged beyond the floor
    like = [0.25, 0.0, -0.25, 0.0, 0.25, 0.0, -0.25, 0.0]  # judged within it
    pairs = _pairs({("m", "title-reseed", "static"): reseed, ("m", "literal", "static"): drop,
                    ("m", "synonym", "static"): like, ("m", "literal", "dynamic"): [0.1] * 6})  # fmt: skip
    s = inf.InferenceSettings(n_bootstrap=200)
    out = nf.add_noise_floor(inf.paired_changes(pairs, s), pairs, s).set_index(["variant", "kind", "metric"])
    lit, syn = out.loc[("literal", "static", "cra")], out.loc[("synonym", "static", "cra")]
    floor = out.loc[("title-reseed", "static", "cra")]
    assert lit["floor_mean_change"] == pytest.approx(np.mean(reseed)) == floor["mean_change"]
    assert lit["floor_mean_abs_change"] == pytest.approx(np.mean(np.abs(reseed)))
    assert (lit["floor_ci_low"], lit["floor_ci_high"]) == (floor["ci_low"], floor["ci_high"])
    diff = np.array(drop) - np.array(reseed)  # the variant minus the re-seeded title, reference by reference
    assert lit["n_vs_floor"] == 8 and lit["mean_vs_floor"] == pytest.approx(diff.mean())
    assert lit["p_vs_floor"] == pytest.approx(brute_sign_flip(diff))
    assert bool(lit["beyond_floor"]) is True and bool(syn["beyond_floor"]) is False
    assert "noise floor" in floor["floor_reason"] and pd.isna(floor["beyond_floor"])
    assert "no title-reseed arm" in out.loc[("literal", "dynamic", "cra"), "floor_reason"]
    cra = out.xs("cra", level="metric")
    ok = cra["p_vs_floor"].notna().to_numpy()
    assert cra["p_vs_floor_adjusted"].to_numpy()[ok] == pytest.approx(
        multipletests(cra["p_vs_floor"][ok], method="fdr_bh")[1]
    )


def test_persistence_floor_is_the_reseeded_titles_share():
    persistence = pd.DataFrame(
        {"model": "m", "kind": "static", "variant": ["title-reseed", "literal"], "n_pairs": [9, 8], "n_title_reuse": [8, 8],
         "n_still_reuse": [6, 2], "share": [0.75, 0.25], "ci_low": [0.4, 0.07], "ci_high": [0.93, 0.6]}
    )  # fmt: skip
    out = nf.add_persistence_floor(persistence).set_index("variant")
    assert out.loc["literal", "floor_share"] == 0.75 and out.loc["literal", "floor_n_title_reuse"] == 8
    assert (
        np.isnan(out.loc["title-reseed", "floor_share"])
        and "noise floor" in out.loc["title-reseed", "floor_reason"]
    )


def test_reseed_seeds_differ_from_the_titles_in_both_modes():
    for i in range(3):
        assert unit_seed("title-reseed", "x", i, "index", 7) == 7 + RESEED_INDEX_OFFSET + i
        assert unit_seed("synonym", "x", i, "index", 7) == unit_seed("title", "x", i, "index", 7) == 7 + i
        assert unit_seed("title-reseed", "x", i, "hash") != unit_seed("title", "x", i, "hash")
    index_titles = {unit_seed("title", "x", i, "index") for i in range(1000)}
    assert not index_titles & {unit_seed("title-reseed", "x", i, "index") for i in range(1000)}


# --------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------


def test_coverage_gives_every_reference_and_variant_a_status():
    refs = pd.DataFrame({"slug": ["a", "b", "c", "d"], "kind": ["static", "static", "dynamic", "static"],
                         "sitelinks": [200, 50, 120, 30], "year": [1889, 1950, 1997, 1700]})  # fmt: skip
    prompts = pd.DataFrame(
        {"slug": ["a", "a", "a", "b", "b", "b", "c", "c", "c"],
         "variant": ["title", "synonym", "literal"] * 3,
         "status": ["ok", "missing", "ok", "ok", "ok", "ok", "ok", "ok", "missing"],
         "reason": ["", "no candidate keeps the meaning", "", "", "", "", "", "", "no depicts, genre or subject"],
         "leak": [False, False, True, False, False, False, False, False, False],
         "leak_words": [[], [], ["starry"], [], [], [], [], [], []],
         "in_comparison": [True, False, False, True, True, True, True, True, False]}
    )  # fmt: skip
    pairs = pd.DataFrame({"model": "m", "slug": ["b", "b", "c"], "variant": ["synonym", "literal", "title"]})
    status = cv.reference_status(prompts, pairs, refs, ["m"]).set_index(["slug", "variant"])["status"]
    assert status.to_dict() == {
        ("a", "synonym"): "missing: no synonym", ("a", "literal"): "leak",
        ("b", "synonym"): "in_comparison", ("b", "literal"): "in_comparison",
        ("c", "synonym"): "no images", ("c", "literal"): "missing: no description",
        ("d", "synonym"): "not selected", ("d", "literal"): "not selected",
    }  # fmt: skip
    full = cv.reference_status(prompts, pairs, refs, ["m"])
    counts = cv.status_counts(full).set_index(["variant", "kind"])
    assert counts.loc[("synonym", "static"), ["n_references", "n_in_comparison", "n_missing_no_synonym",
                                               "n_not_selected"]].tolist() == [3, 1, 1, 1]  # fmt: skip
    table = cv.coverage_counts(full)
    assert table["n_references"].sum() == 8 and set(table["status"]) == set(cv.STATUSES)
    title_cra = pd.DataFrame({"model": "m", "slug": ["a", "b", "c", "d"], "cra": [1.0, 0.5, 0.25, np.nan]})
    sel = cv.selection_table(full, refs, title_cra).set_index(["variant", "kind", "included"])
    left_out = sel.loc[("synonym", "static", False)]  # a (200, 1889, 1.0) and d (30, 1700, NaN)
    assert (left_out["n"], left_out["sitelinks_median"], left_out["year_median"]) == (2, 115.0, 1794.5)
    assert left_out["title_cra_mean"] == 1.0
    empty = sel.loc[("synonym", "dynamic", True)]
    assert empty["n"] == 0 and np.isnan(empty["sitelinks_median"]) and "no reference" in empty["reason"]


# --------------------------------------------------------------------------------------------
# Controls
# --------------------------------------------------------------------------------------------


def test_controls_table_missing_names_the_file_and_the_fix(tmp_path):
    from study_configs import write_study_config

    cfg = write_study_config(tmp_path, "no-controls", perturbation={"controls": True})
    with pytest.raises(FileNotFoundError, match=r"controls\.parquet.*collection\.controls: true"):
        ct.read_controls(cfg, ["mona_lisa"])


def _per_ref(values: dict) -> pd.DataFrame:
    rows = [{"model": "m", "variant": v, "slug": s, "kind": "static", "cra": x, "vr_all": x / 2, "crt": x / 4}
            for (v, s), x in values.items()]  # fmt: skip
    return pd.DataFrame(rows)


def test_controls_comparison_matched_and_two_sample():
    iconic = {f"i{k}": x for k, x in enumerate([1.0, 0.75, 1.0, 0.5, 0.75, 1.0, 0.25])}
    control = {f"c{k}": x for k, x in enumerate([0.25, 0.0, 0.5, 0.0, 0.25, 0.0, 0.25])}
    controls = pd.DataFrame({"slug": list(control), "control_for": list(iconic)})
    values = {("literal", s): x for s, x in iconic.items()} | {
        ("control-literal", s): x for s, x in control.items()
    }
    prompts = pd.DataFrame([{"slug": s, "variant": v, "in_comparison": True} for v, s in values])
    out = ct.compare_controls(_per_ref(values), prompts, controls, inf.InferenceSettings()).set_index(
        "metric"
    )
    cra = out.loc["cra"]
    d = np.array(list(iconic.values())) - np.array(list(control.values()))
    assert (cra["n_iconic"], cra["n_control"], cra["n_matched"]) == (7, 7, 7)
    assert cra["difference"] == pytest.approx(d.mean()) and cra["p"] == pytest.approx(brute_sign_flip(d))
    assert (
        "matched pairs" in cra["test"] and cra["p"] < 0.05
    )  # judged: descriptions of iconic works do better
    unmatched = controls.assign(control_for="elsewhere")  # no control of any of these references
    two = (
        ct.compare_controls(_per_ref(values), prompts, unmatched, inf.InferenceSettings())
        .set_index("metric")
        .loc["cra"]
    )
    ref = stats.permutation_test((list(iconic.values()), list(control.values())),
                                 lambda a, b: abs(np.mean(a) - np.mean(b)), permutation_type="independent",
                                 alternative="greater", n_resamples=np.inf)  # fmt: skip
    assert two["n_matched"] == 0 and "two-sample" in two["test"] and two["p"] == pytest.approx(ref.pvalue)
    few = prompts[~prompts["slug"].isin(["c0", "c1", "c2"])]  # 4 controls left: no test
    short = (
        ct.compare_controls(_per_ref(values), few, controls, inf.InferenceSettings())
        .set_index("metric")
        .loc["cra"]
    )
    assert np.isnan(short["p"]) and "min_pairs = 6" in short["reason"] and short["n_control"] == 4
    assert short["difference"] == pytest.approx(
        np.mean(list(iconic.values())) - np.mean([0.0, 0.25, 0.0, 0.25])
    )


def test_controls_difference_is_the_matched_mean_that_is_tested():
    """An iconic reference without a control, and one with two: the reported difference is the
    mean over matched references of (iconic - mean of its controls), the quantity the test tests."""
    iconic = {f"i{k}": x for k, x in enumerate([1.0, 0.75, 1.0, 0.5, 0.75, 1.0, 0.25, 0.0])}
    control = {f"c{k}": x for k, x in enumerate([0.25, 0.0, 0.5, 0.0, 0.25, 0.0, 0.25, 1.0])}
    owner = [f"i{k}" for k in range(7)] + ["i0"]  # c7 is i0's second control; i7 has none
    controls = pd.DataFrame({"slug": list(control), "control_for": owner})
    values = {("literal", s): x for s, x in iconic.items()} | {
        ("control-literal", s): x for s, x in control.items()
    }
    prompts = pd.DataFrame([{"slug": s, "variant": v, "in_comparison": True} for v, s in values])
    cra = (
        ct.compare_controls(_per_ref(values), prompts, controls, inf.InferenceSettings())
        .set_index("metric")
        .loc["cra"]
    )
    mine = {f"i{k}": [control[f"c{k}"]] for k in range(7)}
    mine["i0"].append(control["c7"])
    d = np.array([iconic[i] - np.mean(c) for i, c in mine.items()])  # by hand: 0.375, 0.75, 0.5, ...
    assert (cra["n_iconic"], cra["n_control"], cra["n_matched"]) == (8, 8, 7)
    assert cra["difference"] == pytest.approx(d.mean())
    assert cra["mean_iconic"] == pytest.approx(np.mean([iconic[i] for i in mine]))
    assert cra["mean_iconic"] - cra["mean_control"] == pytest.approx(cra["difference"])
    assert cra["p"] == pytest.approx(brute_sign_flip(d))
    assert cra["bh_family"] == ct.CONTROLS_BH_FAMILY


def test_control_prompts_from_wikidata_and_from_a_csv(tmp_path, demo_cfg):
    from study_configs import write_study_config

    cfg = write_study_config(tmp_path, "controls", perturbation={"controls": True})
    pf.make_controls(cfg)
    wn = pf.load_wn(demo_cfg)
    rows = ct.control_prompts(cfg, ["the_starry_night", "mona_lisa"], wn).set_index("slug")
    assert set(rows["variant"]) == {"control-literal"}
    # judged: the harbour's description shows a boat and the sea and names neither title nor painter
    harbour = rows.loc["harbour_at_dusk"]
    assert (
        harbour["prompt"] == "A landscape painting depicting a boat and a sea." and harbour["in_comparison"]
    )
    merchant = rows.loc["portrait_of_a_merchant"]  # "portrait" is a word of its own title: a leak
    assert merchant["leak_words"] == ["portrait"] and not merchant["in_comparison"]
    only_mona = ct.control_prompts(cfg, ["mona_lisa"], wn)
    assert only_mona["slug"].tolist() == ["portrait_of_a_merchant"]
    csv = tmp_path / "literal.csv"
    csv.write_text(
        "slug,prompt\nmona_lisa,a woman smiling\nharbour_at_dusk,boats in a small harbour at dusk\n"
    )
    from_csv = cfg.with_overrides(perturbation={"literal_source": "csv", "literal_csv": str(csv)})
    rows = ct.control_prompts(from_csv, ["the_starry_night", "mona_lisa"], wn, ["mona_lisa"]).set_index(
        "slug"
    )
    assert rows.loc["harbour_at_dusk", "prompt"] == "boats in a small harbour at dusk"
    assert rows.loc["portrait_of_a_merchant", "status"] == "missing"  # no row in the CSV
