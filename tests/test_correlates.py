"""Stage 06 correlates: features (wordfreq, homonyms, page views, counts), Spearman, BH, the GLM, notebook 06."""

from __future__ import annotations

import json
import socket
import urllib.parse

import numpy as np
import pandas as pd
import pytest
from collection_http import Reply, ScriptedServer
from correlates_fixtures import (
    MODELS,
    glm_design,
    make_references,
    make_study,
    references_frame,
    study_config,
)
from scipy import stats

from iconicity_utils.config import ConfigError
from iconicity_utils.core.http import RequestFailed
from iconicity_utils.core.io import read_table
from iconicity_utils.correlates import covariates, front_door, pageviews
from iconicity_utils.correlates import stats as cstats

# ---- textual uniqueness -------------------------------------------------------------------------


def test_zipf_of_known_words():
    # wordfreq 3.1.1 (docs/offline-recipes.md §6.3): painting 4.60, starry 3.15; the 7.73, night 5.61
    assert covariates.zipf_stats("painting") == (4.60, 4.60, 1)
    mean, low, n = covariates.zipf_stats("The Starry Night")
    assert n == 3 and low == 3.15 and mean == pytest.approx((7.73 + 3.15 + 5.61) / 3)
    assert covariates.zipf_stats("Face/Off") == pytest.approx(((5.45 + 5.93) / 2, 5.45, 2))
    assert covariates.zipf_stats("Qwxzzyq")[:2] == (0.0, 0.0)  # a word wordfreq does not know
    mean, low, n = covariates.zipf_stats("...")
    assert n == 0 and np.isnan(mean) and np.isnan(low)


def test_homonyms_from_the_references_table_are_other_items(tmp_path):
    cfg = study_config(tmp_path)
    refs = make_references(cfg)
    values, prov = covariates.homonym_counts(cfg, refs)
    assert list(values) == [n - 1 for n in refs["label_homonyms"]]
    assert "label_homonyms - 1" in prov["source"]


@pytest.mark.slow
def test_the_ambiguity_query_on_the_local_store(tmp_path):
    """``ambiguity: query`` counts, on the stage 01 endpoint (oxigraph over the demo snapshot), the
    other items whose English label is the title; the snapshot holds homonyms for it."""
    cfg = study_config(tmp_path, ambiguity="query")
    refs = references_frame()
    # a label with a disambiguator: its own label is not the title, so nothing is subtracted
    refs.loc[refs["slug"] == "psycho", "label"] = "Psycho (1960 film)"
    extra = pd.DataFrame(
        [{"slug": "metropolis", "qid": "Q151599", "kind": "dynamic", "label": "Metropolis", "label_clean": "Metropolis",
          "sitelinks": 70, "year": 1927, "label_homonyms": 2}]
    )  # fmt: skip
    refs = pd.concat([refs, extra], ignore_index=True)
    make_references(cfg, refs)
    values, prov = covariates.homonym_counts(cfg, refs)
    got = dict(zip(refs["slug"], values, strict=True))
    assert got["titanic"] == 2  # the 1953 and 1943 films
    assert got["psycho"] == 2  # the 1960 film (labelled "Psycho" in the store) and the 1998 one
    assert got["metropolis"] == 1  # the city
    assert got["the_kiss"] == 1  # Rodin's sculpture beside Klimt's painting
    assert got["olympia_q737062"] == 1 and got["olympia_q1415219"] == 1  # each other
    assert got["mona_lisa"] == 0 and got["star_wars"] == 0
    assert prov["endpoint_info"]["oxigraph"].startswith("oxigraph")


# ---- page views: online only, cached, offline from the cache or a clear error -------------------


def pageviews_server():
    entities = {
        "Q12418": {"sitelinks": {"enwiki": {"site": "enwiki", "title": "Mona Lisa"}}},
        "Q45585": {"sitelinks": {"enwiki": {"site": "enwiki", "title": "The Starry Night"}}},
        "Q1153": {"sitelinks": {}},  # no English article
    }
    body = {"entities": {q: entities.get(q, {"sitelinks": {"enwiki": {"title": f"Article {q}"}}}) for q in
                         references_frame()["qid"]}}  # fmt: skip
    monthly = {"items": [{"views": 1000}, {"views": 234}]}
    script = {"/w/api.php": [Reply(200, json.dumps(body).encode(), content_type="application/json")]}
    for q in references_frame()["qid"]:
        title = entities.get(q, {"sitelinks": {"enwiki": {"title": f"Article {q}"}}})["sitelinks"].get(
            "enwiki", {}
        )
        if not title:
            continue
        article = urllib.parse.quote(title["title"].replace(" ", "_"), safe="")
        path = f"/pv/en.wikipedia/all-access/user/{article}/monthly/2024010100/2024123100"
        if q == "Q45585":
            script[path] = [Reply(404, b'{"title": "Not found."}', content_type="application/json")]
        else:
            script[path] = [Reply(200, json.dumps(monthly).encode(), content_type="application/json")]
    return ScriptedServer(script)


def pv_config(tmp_path, server, mode):
    return study_config(
        tmp_path,
        pageviews={"mode": mode, "api": server.url("/pv"), "wikidata_api": server.url("/w/api.php")},
    )


def test_pageviews_online_then_offline_from_the_cache(tmp_path):
    with pageviews_server() as server:
        cfg = pv_config(tmp_path, server, "online")
        refs = make_references(cfg)
        views, prov = pageviews.fetch_pageviews(cfg, refs, sleep=lambda s: None, log=lambda m: None)
        got = dict(zip(refs["qid"], views, strict=True))
        assert got["Q12418"] == 1234 and got["Q44578"] == 1234
        assert pd.isna(got["Q45585"])  # the API knows no views (404): NA, not 0
        assert pd.isna(got["Q1153"])  # no English article
        assert prov["responses_fetched"] == 12 and prov["responses_cached"] == 0  # 1 sitelinks + 11 articles
        assert {s.headers.get("User-Agent") for s in server.seen} == {cfg.collection.http.user_agent}
        assert server.seen[0].query["sitefilter"] == ["enwiki"] and server.seen[0].query["props"] == [
            "sitelinks"
        ]
        n_requests = len(server.seen)
    assert len(list(cfg.path("cache", "http").glob("*.json"))) == 12  # every answer cached, the 404 too
    offline = pv_config(tmp_path, server, "cache")  # the server is stopped: nothing can be fetched
    views_again, prov_again = pageviews.fetch_pageviews(
        offline, refs, sleep=lambda s: None, log=lambda m: None
    )
    assert list(pd.array(views_again, dtype="Int64").fillna(-1)) == list(
        pd.array(views, dtype="Int64").fillna(-1)
    )
    assert prov_again["responses_cached"] == 12 and prov_again["responses_fetched"] == 0
    assert len(server.seen) == n_requests


def test_pageviews_offline_without_a_cache_fail_clearly(tmp_path):
    with pageviews_server() as server:
        cfg = pv_config(tmp_path, server, "cache")
    refs = make_references(cfg)
    with pytest.raises(
        pageviews.PageviewsUnavailable, match="mode is 'cache' and 1 response.*not cached.*mode 'online'"
    ):
        pageviews.fetch_pageviews(cfg, refs, sleep=lambda s: None, log=lambda m: None)
    assert server.seen == []  # nothing was asked


def test_pageviews_online_without_a_network_fail_clearly(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = study_config(
        tmp_path,
        pageviews={"mode": "online", "api": f"http://127.0.0.1:{port}/pv",
                   "wikidata_api": f"http://127.0.0.1:{port}/w/api.php"},
    )  # fmt: skip
    cfg = cfg.with_overrides(collection={"http": {"max_retries": 0, "timeout_s": 2.0}})
    refs = make_references(cfg)
    with pytest.raises(RequestFailed, match="connection failed"):
        pageviews.fetch_pageviews(cfg, refs, sleep=lambda s: None, log=lambda m: None)


def test_pageviews_off_is_nothing(tmp_path):
    cfg = study_config(tmp_path)
    assert pageviews.fetch_pageviews(cfg, make_references(cfg)) is None


# ---- the covariates table -----------------------------------------------------------------------


def test_the_covariates_table(tmp_path):
    cfg = study_config(tmp_path)
    make_study(cfg)
    features = covariates.build_covariates(cfg, log=lambda m: None)
    on_disk = read_table(covariates.covariates_table_path(cfg))
    assert on_disk["slug"].is_unique and len(on_disk) == 12
    numeric = ["caption_count", "caption_count_log10", "exact_caption_count", "exact_caption_count_log10",
               "zipf_mean", "zipf_min", "n_words", "homonyms", "sitelinks", "sitelinks_log10", "year"]  # fmt: skip
    assert {"slug", "kind", "label_clean", *numeric} <= set(on_disk.columns)
    assert "pageviews" not in on_disk.columns  # mode off
    for col in numeric:
        assert pd.api.types.is_numeric_dtype(on_disk[col]), col
    row = on_disk.set_index("slug").loc["mona_lisa"]
    assert row["caption_count_log10"] == pytest.approx(np.log10(1 + row["caption_count"]))
    assert row["sitelinks_log10"] == pytest.approx(np.log10(170)) and row["homonyms"] == 0
    assert on_disk.set_index("slug").loc["titanic", "homonyms"] == 2
    assert pd.isna(on_disk.set_index("slug").loc["olympia_q1415219", "year"])
    columns = on_disk.attrs["provenance"]["columns"]
    assert set(numeric) <= set(columns)
    freq = columns["caption_count"]
    assert freq["source"] == "scan" and freq["corpus"] == "test captions" and freq["rows_scanned"] == 20_000
    assert freq["scan_finished_utc"].endswith("Z") and "matcher" in freq
    assert columns["zipf_mean"]["version"] == "3.1.1"
    assert list(covariates.column_provenance(features)["column"])[:2] == [
        "caption_count",
        "caption_count_log10",
    ]
    assert set(covariates.COVARIATE_LABELS) >= set(numeric)


def test_counts_from_a_csv(tmp_path):
    cfg = study_config(
        tmp_path, frequency={"source": "csv", "counts_csv": "counts.csv", "synthetic_corpus": False}
    )
    make_references(cfg)
    pd.DataFrame({"title": ["MONA LISA", "Titanic", "Face/Off"], "caption_count": [120, 45, 3]}).to_csv(
        cfg.data_dir / "counts.csv", index=False
    )
    freq = covariates.frequency_counts(cfg)
    got = freq.table.set_index("slug")["caption_count"]
    assert got["mona_lisa"] == 120 and got["titanic"] == 45 and got["face_off"] == 3
    assert pd.isna(got["psycho"])  # not in the CSV: unknown, not zero
    assert freq.table["exact_caption_count"].isna().all()
    assert freq.provenance["source"] == "csv" and freq.provenance["references_without_count"] == 9
    pd.DataFrame({"slug": ["psycho"], "caption_count": [7], "exact_caption_count": [2]}).to_csv(
        cfg.data_dir / "counts.csv", index=False
    )
    by_slug = covariates.frequency_counts(cfg).table.set_index("slug")
    assert by_slug.loc["psycho", "caption_count"] == 7 and by_slug.loc["psycho", "exact_caption_count"] == 2
    pd.DataFrame({"name": ["x"], "n": [1]}).to_csv(cfg.data_dir / "counts.csv", index=False)
    with pytest.raises(ValueError, match="needs a 'slug' or 'title' column and 'caption_count'"):
        covariates.frequency_counts(cfg)


def test_the_analysis_table_uses_the_configured_variant(tmp_path):
    cfg = study_config(tmp_path)
    make_study(cfg)
    features = covariates.build_covariates(cfg, log=lambda m: None)
    data = front_door.analysis_table(cfg, features)
    assert set(data["variant"]) == {"title"} and len(data) == 24
    other = front_door.analysis_table(cfg.with_overrides(correlates={"variant": "synonym"}), features)
    assert set(other["variant"]) == {"synonym"}
    with pytest.raises(ValueError, match=r"variant 'literal'.*have \['synonym', 'title'\]"):
        front_door.analysis_table(cfg.with_overrides(correlates={"variant": "literal"}), features)


# ---- Spearman, bootstrap, BH --------------------------------------------------------------------


def test_spearman_matches_scipy_including_the_bootstrap_interval():
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    y = 0.5 * x + rng.normal(size=40)
    x[3], y[7] = np.nan, np.nan
    rho, p, low, high, n = cstats.spearman_ci(x, y, n_bootstrap=500, seed=11, level=0.9)
    ok = ~(np.isnan(x) | np.isnan(y))
    direct = stats.spearmanr(x[ok], y[ok])
    assert n == 38 and rho == pytest.approx(direct.statistic, abs=1e-12) and p == pytest.approx(direct.pvalue)
    boot = stats.bootstrap(
        (x[ok], y[ok]),
        lambda a, b: stats.spearmanr(a, b).statistic,
        paired=True,
        vectorized=False,
        n_resamples=500,
        confidence_level=0.9,
        method="percentile",
        rng=np.random.default_rng(11),
    )
    assert (low, high) == pytest.approx(
        (boot.confidence_interval.low, boot.confidence_interval.high), abs=1e-12
    )
    assert low < rho < high


def test_spearman_is_undefined_for_a_constant_or_a_tiny_sample():
    assert np.isnan(cstats.spearman_ci([1, 2, 3, 4], [1, 1, 1, 1])[0])
    assert np.isnan(cstats.spearman_ci([1, 2], [2, 1])[0])


def test_the_spearman_table_per_model_and_kind_with_bh_per_outcome(tmp_path):
    from statsmodels.stats.multitest import multipletests

    cfg = study_config(tmp_path)
    make_study(cfg)
    data = front_door.analysis_table(cfg, covariates.build_covariates(cfg, log=lambda m: None))
    table = cstats.spearman_table(cfg, data)
    features = [f for f in cfg.correlates.spearman_features if f != "pageviews"]
    assert table.attrs["left_out"] == ["pageviews"]
    assert len(table) == 3 * len(MODELS) * 3 * len(features)
    row = table[
        (table.outcome == "cra")
        & (table.model == "tiny-sd-a")
        & (table.kind == "all")
        & (table.feature == "sitelinks")
    ].iloc[0]
    part = data[data.model == "tiny-sd-a"]
    direct = stats.spearmanr(part["sitelinks"].astype(float), part["cra"])
    assert (
        row["n"] == 12
        and row["rho"] == pytest.approx(direct.statistic)
        and row["p"] == pytest.approx(direct.pvalue)
    )
    year = table[
        (table.outcome == "cra")
        & (table.model == "tiny-sd-a")
        & (table.kind == "dynamic")
        & (table.feature == "year")
    ]
    assert year["n"].iloc[0] == 5  # one dynamic reference has no year
    for outcome, group in table.groupby("outcome"):
        ok = group["p"].notna()
        assert np.allclose(group.loc[ok, "p_bh"], multipletests(group.loc[ok, "p"], method="fdr_bh")[1]), (
            outcome
        )
    everything = cstats.spearman_table(cfg.with_overrides(correlates={"bh_family": "all"}), data)
    ok = everything["p"].notna()
    assert np.allclose(everything.loc[ok, "p_bh"], multipletests(everything.loc[ok, "p"], method="fdr_bh")[1])


# ---- the binomial GLM ---------------------------------------------------------------------------


def glm_data():
    rng = np.random.default_rng(5)
    n = 60
    freq = rng.normal(3, 1, n)
    pop = 0.7 * freq + rng.normal(0, 0.7, n)  # correlated with frequency, as in the study
    year = rng.integers(1500, 2020, n).astype(float)
    kind = np.where(np.arange(n) % 2 == 0, "static", "dynamic")
    rows = []
    for m, model in enumerate(["m1", "m2"]):
        eta = -0.5 + 0.8 * (freq - 3) + 0.3 * (pop - 2) + 0.4 * m
        k = rng.binomial(12, 1 / (1 + np.exp(-eta)))
        for i in range(n):
            rows.append({"model": model, "slug": f"r{i}", "kind": kind[i], "n_images": 12, "n_recognised": int(k[i]),
                         "caption_count_log10": freq[i], "sitelinks_log10": pop[i], "year": year[i]})  # fmt: skip
    data = pd.DataFrame(rows)
    data.loc[data.slug == "r5", "year"] = np.nan  # one reference without a year
    return data


def glm_cfg(tmp_path, **glm):
    return study_config(
        tmp_path, glm={"predictors": ["caption_count_log10", "sitelinks_log10", "year"], **glm}
    )


def direct_glm(part, predictors, extra=()):
    import statsmodels.api as sm

    part = part.dropna(subset=predictors)
    y, X = glm_design(part, predictors, extra)
    return sm.GLM(y, X, family=sm.families.Binomial()).fit(), X


#: the plain binomial fits only (the honest errors are tested in tests/test_correlates_glm.py)
MODEL_BASED = {"errors": "model", "per_kind": False, "collinearity": "report"}


def test_the_glm_matches_a_direct_statsmodels_fit(tmp_path):
    cfg = glm_cfg(tmp_path, **MODEL_BASED)
    data = glm_data()
    table = cstats.glm_table(cfg, data)
    preds = ["caption_count_log10", "sitelinks_log10", "year"]
    part = data[data.model == "m1"]
    res, X = direct_glm(part, preds, [("kind_static", part["kind"] == "static")])
    got = table[(table.fit == "per_model") & (table.model == "m1")].set_index("term")
    assert list(got.index) == ["const", *preds, "kind_static"]
    assert np.allclose(got["coef"], res.params[got.index]) and np.allclose(got["se"], res.bse[got.index])
    ci = res.conf_int(0.05)
    assert np.allclose(got["ci_low"], ci.loc[got.index, 0]) and np.allclose(
        got["ci_high"], ci.loc[got.index, 1]
    )
    assert (got["n_rows"] == 59).all() and (got["n_refs"] == 59).all() and got["converged"].all()
    assert "1 row(s) with a missing predictor left out" in got["note"].iloc[0]
    assert got.loc["year", "predictor_mean"] == pytest.approx(part["year"].mean())
    # VIF: 1 / (1 - R²) of each column regressed on the others (with the constant)
    values = X.to_numpy()
    for j, name in enumerate(X.columns[1:], start=1):
        others = np.delete(values, j, axis=1)
        beta, *_ = np.linalg.lstsq(others, values[:, j], rcond=None)
        resid = values[:, j] - others @ beta
        r2 = 1 - resid.var() / values[:, j].var()
        assert got.loc[name, "vif"] == pytest.approx(1 / (1 - r2))
    assert got.loc["sitelinks_log10", "vif"] > 1.5  # frequency and popularity are correlated
    # the pooled fit has model effects and standardises over every row
    res_p, _ = direct_glm(
        data, preds, [("kind_static", data["kind"] == "static"), ("model_m2", data["model"] == "m2")]
    )
    pooled = table[table.fit == "pooled"].set_index("term")
    assert "model_m2" in pooled.index and np.allclose(pooled["coef"], res_p.params[pooled.index])
    assert (pooled["n_rows"] == 118).all() and (pooled["n_refs"] == 59).all()


def test_a_glm_that_cannot_be_fitted_says_why(tmp_path):
    cfg = glm_cfg(tmp_path, **MODEL_BASED)
    data = glm_data()
    data["n_recognised"] = data["n_images"]  # every image recognised, as on the stand-in demo
    table = cstats.glm_table(cfg, data)
    assert table["coef"].isna().all() and (~table["converged"]).all()
    assert table["note"].str.contains("every image recognised").all()
    data = glm_data()
    data["sitelinks_log10"] = 2.0  # a constant predictor is left out, and said so
    data["caption_count_log10"] = np.nan  # a feature not computed in this run
    table = cstats.glm_table(cfg, data)
    m1 = table[(table.model == "m1")]
    assert list(m1["term"]) == ["const", "year", "kind_static"]
    assert "caption_count_log10: no values, left out" in m1["note"].iloc[0]
    assert "sitelinks_log10: constant, left out" in m1["note"].iloc[0]


# ---- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ({"frequency": {"source": "csv"}}, "correlates.frequency.counts_csv", "needs a counts_csv"),
        ({"pageviews": {"mode": False}}, "correlates.pageviews.mode", "expected one of"),  # a bare YAML off
        ({"pageviews": {"start": "2024-01-01"}}, "correlates.pageviews.start", "YYYYMMDD"),
        ({"pageviews": {"start": "20250101", "end": "20240101"}}, "correlates.pageviews.end", "before start"),
        ({"glm": {"predictors": ["popularity"]}}, "correlates.glm.predictors[0]", "expected one of"),
        ({"outcomes": ["cra", "cra"]}, "correlates.outcomes", "duplicate"),
        ({"frequency": {"matcher": "regex"}}, "correlates.frequency.matcher", "expected one of"),
        ({"frequency": {"workers": 0}}, "correlates.frequency.workers", "outside"),
        ({"ci_level": 1.0}, "correlates.ci_level", "outside"),
        ({"frequency": {"shard": "a"}}, "correlates.frequency.shard", "unknown key"),
    ],
)
def test_bad_correlates_config_names_the_key(tmp_path, section, key, problem):
    with pytest.raises(ConfigError) as err:
        study_config(tmp_path, **section)
    assert err.value.key == key and problem in err.value.problem


# ---- end to end ---------------------------------------------------------------------------------


def test_run_writes_every_table(tmp_path):
    cfg = study_config(tmp_path)
    make_study(cfg)
    result = front_door.run(cfg, log=lambda m: None)
    for name in (covariates.COVARIATES_TABLE, cstats.SPEARMAN_TABLE, cstats.GLM_TABLE):
        assert (cfg.results_dir / name).is_file(), name
    glm = read_table(cfg.results_dir / cstats.GLM_TABLE)
    assert glm["coef"].notna().any()  # the hand-made scores vary: the GLM is estimable
    spearman = read_table(cfg.results_dir / cstats.SPEARMAN_TABLE)
    assert spearman["rho"].notna().any() and spearman.attrs["provenance"]["correlates"]["variant"] == "title"
    assert "12 references with features" in result.summary()


@pytest.mark.slow
def test_notebook_06_runs_on_a_study(tmp_path):
    import nbformat
    import papermill as pm
    from study_configs import REPO_ROOT

    cfg = study_config(tmp_path)
    make_study(cfg)
    out = tmp_path / "06.ipynb"
    pm.execute_notebook(
        str(REPO_ROOT / "notebooks" / "06_correlates.ipynb"),
        str(out),
        parameters={"config": cfg.source},
        cwd=str(REPO_ROOT),
        kernel_name="python3",
        progress_bar=False,
    )
    text = "\n".join(
        str(o.get("text", "")) for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])
    )
    assert "12 of 12 references counted exactly as constructed" in text
    assert "shards read again: 0 | reused: 4" in text
    for name in (
        "06_rho_heatmap.png",
        "06_cra_vs_frequency.png",
        "06_cra_vs_year.png",
        "06_glm_coefficients.png",
    ):
        assert (cfg.figures_dir / name).stat().st_size > 5000, name
    assert len(read_table(covariates.covariates_table_path(cfg))) == 12
