"""Score tables without any encoder: the bootstrap against scipy, Benjamini-Hochberg against
statsmodels, and the notebooks' small tables against hand computations.  (Aggregation, re-thresholding and sweeps on a scored study are tested
in tests/test_scoring.py, where the study is scored once.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap

from iconicity_utils.score import tables as score_tables


def test_bootstrap_ci_is_scipys_percentile_interval_on_defined_data():
    rng = np.random.default_rng(7)
    v = rng.beta(2, 5, size=40)
    mean, low, high = score_tables.bootstrap_ci(v, n_bootstrap=5000, seed=1)
    ref = bootstrap(
        (v,), np.mean, n_resamples=5000, method="percentile", rng=np.random.default_rng(1)
    ).confidence_interval
    assert mean == pytest.approx(v.mean())
    assert (low, high) == pytest.approx((ref.low, ref.high), abs=1e-12)  # the same draws, the same interval
    assert score_tables.bootstrap_ci(v, 200, seed=3) == score_tables.bootstrap_ci(v, 200, seed=3)
    assert score_tables.bootstrap_ci(v, 200, seed=3) != score_tables.bootstrap_ci(v, 200, seed=4)


def test_bootstrap_ci_leaves_undefined_values_out():
    with_nan = np.array([0.2, np.nan, 0.4])
    mean, low, high = score_tables.bootstrap_ci(with_nan, 500, seed=0)
    assert mean == pytest.approx(0.3) and 0.2 - 1e-12 <= low <= high <= 0.4 + 1e-12
    index = np.random.default_rng(0).integers(0, 3, size=(500, 3))  # the resamples, by hand
    means = [np.mean([x for x in with_nan[row] if not np.isnan(x)]) for row in index if (row != 1).any()]
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert np.isnan(score_tables.bootstrap_ci(np.array([np.nan, np.nan]), 100)).all()


def test_bh_matches_statsmodels_and_keeps_nan():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, np.nan, 0.03, 0.2, 0.002, 0.5, np.nan])
    got = score_tables.bh_adjust(p)
    ok = ~np.isnan(p)
    assert np.isnan(got[~ok]).all()
    assert got[ok] == pytest.approx(multipletests(p[ok], method="fdr_bh")[1])


def test_bh_matches_statsmodels_on_another_family():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.001, 0.04, 0.03, np.nan, 0.2, 0.012, 0.5, 0.049])
    ok = ~np.isnan(p)
    expected = multipletests(p[ok], method="fdr_bh")[1]
    got = score_tables.bh_adjust(p)
    assert np.isnan(got[3]) and np.allclose(got[ok], expected)
    assert score_tables.bootstrap_ci(np.array([0.5]), 100) == (0.5, 0.5, 0.5)


def _per_image():
    """Two models x one static and one dynamic reference, 2 images each, with known similarities."""
    rows = []
    for model in ("a", "b"):
        for slug, kind, tau, sims in (
            ("s", "static", 0.70, [0.70, 0.80]),
            ("d", "dynamic", 0.75, [0.72, 0.76]),
        ):
            for i, sim in enumerate(sims):
                rows.append(
                    {"model": model, "variant": "title", "slug": slug, "kind": kind, "index": i,
                     "cra_sim": sim, "cra_tau": tau, "cra_pass": sim > np.float32(tau), "vr": 0.25,
                     "vr_mean": 0.5, "vi": 0.75, "vr_tau": 0.6, "vr_cells": [0.5] * 16, "comparison": ">",
                     "grid": "4x4", "vr_cells_mode": "crop", "vr_pool": "mean_all", "cra_encoder": "c",
                     "vr_encoder": "d"}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_comparison_choices_by_hand():
    per_image = _per_image()
    per_reference = score_tables.aggregate_references(per_image)
    table, changed = score_tables.comparison_choices(per_image, per_reference, tau_cra_dynamic_alt=0.70)
    # >: static passes 0.80 only (0.70 ties), dynamic passes 0.76 only; >= adds the static tie
    assert table.loc[("a", "static")].tolist() == [0.5, 1.0, 0.5]
    # tau_dynamic 0.70: both dynamic images pass
    assert table.loc[("b", "dynamic")].tolist() == [0.5, 0.5, 1.0]
    assert changed == 2  # the static tie, for both models
    assert list(table.columns) == ["CRA (this run)", "CRA (>=)", "CRA (tau_dynamic=0.70)"]


def test_model_table_wide_formats_mean_and_interval():
    per_reference = score_tables.aggregate_references(_per_image())
    per_model = score_tables.model_table(per_reference, n_bootstrap=50)
    wide = score_tables.model_table_wide(per_model, digits=2)
    row = per_model[
        (per_model.model == "a") & (per_model.kind == "static") & (per_model.metric == "cra")
    ].iloc[0]
    assert (
        wide.loc[("a", "title", "static"), "cra"]
        == f"{row['mean']:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"
    )
    assert set(wide.columns) == set(score_tables.MODEL_METRICS)
