"""Stage 06's GLM errors: quasi-binomial and clustered errors against statsmodels, on overdispersed data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from correlates_fixtures import glm_design, study_config

from iconicity_utils.correlates import covariates
from iconicity_utils.correlates import glm as cglm

PREDS = ["caption_count_log10", "sitelinks_log10", "year"]


def overdispersed_data(n: int = 80, seed: int = 11) -> pd.DataFrame:
    """Two models; per-reference beta-binomial outcomes (a random effect shared by both models)."""
    rng = np.random.default_rng(seed)
    freq = rng.normal(3, 1, n)
    pop = 0.7 * freq + rng.normal(0, 0.7, n)
    year = rng.integers(1500, 2020, n).astype(float)
    kind = np.where(np.arange(n) % 2 == 0, "static", "dynamic")
    ref_effect = rng.normal(0, 1.2, n)  # extra-binomial variation, the same reference in both models
    rows = []
    for m, model in enumerate(["m1", "m2"]):
        eta = -0.3 + 0.6 * (freq - 3) + 0.2 * (pop - 2) + 0.4 * m + ref_effect
        k = rng.binomial(12, 1 / (1 + np.exp(-eta)))
        for i in range(n):
            rows.append({"model": model, "slug": f"r{i}", "kind": kind[i], "n_images": 12, "n_recognised": int(k[i]),
                         "caption_count_log10": freq[i], "sitelinks_log10": pop[i], "year": year[i]})  # fmt: skip
    return pd.DataFrame(rows)


def test_quasi_and_clustered_errors_equal_statsmodels_and_exceed_the_binomial(tmp_path):
    import statsmodels.api as sm

    cfg = study_config(tmp_path, glm={"predictors": PREDS})
    data = overdispersed_data()
    table = cglm.glm_table(cfg, data)
    # per model: quasi-binomial, scale = Pearson chi2 / df
    part = data[data.model == "m1"]
    y, X = glm_design(part, PREDS, [("kind_static", part["kind"] == "static")])
    plain = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    # statsmodels' scale="X2" ignores the trials of a two-column outcome: the scale is given as a number
    quasi = sm.GLM(y, X, family=sm.families.Binomial()).fit(scale=plain.pearson_chi2 / plain.df_resid)
    weighted = sm.GLM(y[:, 0] / 12, X, family=sm.families.Binomial(), var_weights=np.full(len(y), 12.0))
    assert np.allclose(quasi.bse, weighted.fit(scale="X2").bse)  # the same, as proportions with weights
    got = table[(table.fit == "per_model") & (table.model == "m1")].set_index("term")
    assert (got["errors"] == "quasi").all()
    assert np.allclose(got["coef"], plain.params[got.index])
    assert np.allclose(got["se"], quasi.bse[got.index]) and np.allclose(got["p"], quasi.pvalues[got.index])
    dispersion = plain.pearson_chi2 / plain.df_resid
    assert got["dispersion"].iloc[0] == pytest.approx(dispersion) and dispersion > 2  # overdispersed
    assert (got["se"] > plain.bse[got.index] * 1.4).all()  # the binomial errors were too small
    # pooled: clustered by reference
    y, X = glm_design(
        data, PREDS, [("kind_static", data["kind"] == "static"), ("model_m2", data["model"] == "m2")]
    )
    groups = pd.factorize(data["slug"])[0]
    clus = sm.GLM(y, X, family=sm.families.Binomial()).fit(cov_type="cluster", cov_kwds={"groups": groups})
    pooled = table[table.fit == "pooled"].set_index("term")
    assert (pooled["errors"] == "cluster").all() and (pooled["n_refs"] == 80).all()
    assert np.allclose(pooled["se"], clus.bse[pooled.index])
    ci = clus.conf_int(0.05)
    assert np.allclose(pooled["ci_low"], ci.loc[pooled.index, 0])
    naive = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    assert pooled.loc["caption_count_log10", "se"] > 1.5 * naive.bse["caption_count_log10"]
    assert not table["separation"].any()


def test_per_kind_and_combined_popularity_fits(tmp_path):
    cfg = study_config(tmp_path, glm={"predictors": PREDS})
    data = overdispersed_data()
    table = cglm.glm_table(cfg, data)
    assert set(table["fit"]) == {"per_model", "per_kind", "pooled", "combined_per_model", "combined_pooled"}
    per_kind = table[(table.fit == "per_kind") & (table.model == "m1")]
    assert set(per_kind["kind"]) == {"static", "dynamic"} and "kind_static" not in set(per_kind["term"])
    assert (per_kind.groupby("kind")["n_rows"].first() == 40).all()
    comb = table[(table.fit == "combined_per_model") & (table.model == "m1")].set_index("term")
    assert list(comb.index) == ["const", "popularity", "year", "kind_static"]
    assert "popularity: mean z-score of caption_count_log10, sitelinks_log10" in comb["note"].iloc[0]
    assert comb.loc["popularity", "vif"] < 1.5  # the collinearity is gone
    full = table[(table.fit == "per_model") & (table.model == "m1")].set_index("term")
    assert full.loc["caption_count_log10", "vif"] > comb.loc["popularity", "vif"]


def test_separation_is_detected_and_named(tmp_path):
    cfg = study_config(tmp_path, glm={"predictors": ["caption_count_log10"], "per_kind": False})
    data = overdispersed_data(40)
    cut = data["caption_count_log10"] > 3
    data["n_recognised"] = np.where(cut, data["n_images"], 0)  # frequency decides completely
    data.loc[data.index[:2], "n_recognised"] = 6  # not every row: the outcome is not constant
    data.loc[data.index[:2], "caption_count_log10"] = 3.0
    table = cglm.glm_table(cfg, data)
    m1 = table[(table.fit == "per_model") & (table.model == "m1")]
    assert m1["separation"].all()
    assert m1["note"].str.contains("separation: fitted probabilities of 0 or 1").all()


def test_zipf_over_content_words():
    # wordfreq 3.1.1: son 5.28, man 5.82 (the 7.73 and of 7.40 are left out)
    mean, low, n = covariates.zipf_stats("The Son of Man", words="content")
    assert n == 4 and low == 5.28 and mean == pytest.approx((5.28 + 5.82) / 2)
    assert covariates.zipf_stats("The Son of Man", words="all")[0] == pytest.approx(6.5575)
    assert covariates.zipf_stats("Her", words="content") == (6.30, 6.30, 1)  # only function words: all
    assert covariates.zipf_phrase("The Son of Man") == 5.17 and np.isnan(covariates.zipf_phrase("..."))


def test_every_fit_is_repeated_per_count_mode(tmp_path):
    import statsmodels.api as sm

    cfg = study_config(tmp_path, glm={"predictors": PREDS, "per_kind": False, "collinearity": "report"})
    data = overdispersed_data()
    rng = np.random.default_rng(2)
    data["caption_count_aliases_log10"] = data["caption_count_log10"] + rng.normal(0, 0.5, len(data))
    data["caption_count_title_context_log10"] = np.nan  # a mode the data lack: no fits
    table = cglm.glm_table(cfg, data)
    assert set(table["count_mode"]) == {"title", "aliases"}
    part = data[data.model == "m2"]
    aliases = ["caption_count_aliases_log10", "sitelinks_log10", "year"]
    y, X = glm_design(part, aliases, [("kind_static", part["kind"] == "static")])
    want = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    got = table[
        (table.fit == "per_model") & (table.model == "m2") & (table.count_mode == "aliases")
    ].set_index("term")
    assert np.allclose(got["coef"], want.params[got.index])
    assert "caption_count_log10" not in got.index
    title = table[(table.fit == "per_model") & (table.model == "m2") & (table.count_mode == "title")]
    assert "caption_count_log10" in set(title["term"]) and not np.allclose(title["coef"], got["coef"])
    off = study_config(tmp_path, "c06off", glm={"predictors": PREDS, "per_count_mode": False})
    assert set(cglm.glm_table(off, data)["count_mode"]) == {"title"}


def test_the_spearman_table_names_the_count_mode_and_the_family(tmp_path):
    from scipy import stats as sps

    from iconicity_utils.correlates.stats import spearman_table

    cfg = study_config(tmp_path)
    data = overdispersed_data()
    data["cra"] = data["n_recognised"] / data["n_images"]
    data["crt"] = data["cra"] * 0.5
    data["vr_all"] = data["cra"]
    data["caption_count_aliases"] = data["caption_count_log10"] ** 2 + np.arange(len(data)) % 3
    data["caption_count"] = data["caption_count_log10"]
    table = spearman_table(cfg, data, ["caption_count", "caption_count_aliases", "sitelinks_log10"])
    modes = dict(zip(table["feature"], table["count_mode"], strict=False))
    assert modes == {"caption_count": "title", "caption_count_aliases": "aliases", "sitelinks_log10": ""}
    row = table[(table.outcome == "cra") & (table.model == "m1") & (table.kind == "all")
                & (table.feature == "caption_count_aliases")].iloc[0]  # fmt: skip
    part = data[data.model == "m1"]
    assert row["rho"] == pytest.approx(sps.spearmanr(part["caption_count_aliases"], part["cra"])[0])
    assert set(table["bh_family_size"]) == {int((table.outcome == "cra").sum())}  # bh_family: outcome
