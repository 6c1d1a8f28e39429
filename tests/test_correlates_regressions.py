"""Stage 06 regressions found in review, one test each (every one failed before its fix): fewer count modes, BH over count modes in the GLM, the weak-alias
evidence, alias-only caption samples, a count already a predictor, the demo's expectations, the
first captions read batch by batch, alias cells that are NA."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from correlates_fixtures import make_references, make_scores, references_frame, study_config, write_shards
from test_correlates_glm import PREDS, overdispersed_data

from iconicity_utils.correlates import caption_samples, normalisation_sensitivity, scan
from iconicity_utils.correlates import glm as cglm
from iconicity_utils.correlates.counting import count_modes
from iconicity_utils.correlates.covariates import build_covariates, frequency_counts
from iconicity_utils.correlates.front_door import run
from iconicity_utils.correlates.modes import build_spec

QUIET = {"log": lambda _m: None}

#: title, creator, year, aliases, weak
WORKS = [
    ("Face/Off", "John Woo", 1997, ["Face Off"], [True]),
    ("Star Wars", "George Lucas", 1977, ["A New Hope"], [True]),
    ("Mona Lisa", "Leonardo da Vinci", 1503, ["La Gioconda"], [False]),
]
#: product captions with a weak alias and a kind word: not the work (the reviewer's four, and more)
NOT_THE_WORK = [
    "face off hockey poster", "vintage face off print", "A New Hope church poster", "a new hope still life",
    "face off scene at the rink",
]  # fmt: skip
#: a weak alias with the creator's surname or the year: the work
THE_WORK = ["Face Off (1997) trailer", "John Woo's Face Off", "A New Hope (1977)", "Lucas: A New Hope poster"]
TITLED = ["Mona Lisa (La Gioconda) print", "Star Wars poster"]
ALIAS_ONLY_STRONG = ["La Gioconda, oil on poplar", "la gioconda mug"]


def _spec(k=5):
    return build_spec(
        *zip(*[w[:3] for w in WORKS], strict=True), k, [w[3] for w in WORKS], [w[4] for w in WORKS]
    )


def test_a_weak_alias_needs_the_creator_or_the_year_not_a_kind_word():
    spec = _spec()
    got = count_modes(NOT_THE_WORK + THE_WORK + TITLED + ALIAS_ONLY_STRONG, spec)
    title = [int(got.counts[spec.title_pid[i]]) for i in range(len(WORKS))]
    assert title == [0, 1, 1]
    assert got.modes[:, 3].tolist() == [2, 1 + 2, 1 + 2]  # Face/Off: the two of THE_WORK only
    for caption in NOT_THE_WORK:
        assert count_modes([caption], spec).modes[:, 3].tolist() == [0, 0, 0], caption


def test_alias_samples_hold_the_captions_only_an_alias_matched():
    spec = _spec(k=5)
    captions = NOT_THE_WORK + THE_WORK + TITLED + ALIAS_ONLY_STRONG
    one = count_modes(captions, spec)
    many = count_modes(captions, spec, batch_rows=3)
    assert one.alias_samples == many.alias_samples  # deterministic, whatever the batches
    by_ref = {r: sorted(t for r2, _k, t in one.alias_samples if r2 == r) for r in range(len(WORKS))}
    assert by_ref == {
        0: sorted(THE_WORK[:2]),
        1: sorted(THE_WORK[2:]),
        2: sorted(ALIAS_ONLY_STRONG),  # not the caption with title and alias: that is the title's
    }
    small = count_modes(captions, _spec(k=1))
    assert sorted(r for r, _k, _t in small.alias_samples) == [0, 1, 2]


def test_the_scan_and_the_features_table_carry_alias_samples(tmp_path):
    cfg = study_config(tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False})
    make_references(cfg)
    write_shards(cfg.data_dir / "corpus", [["La Gioconda, oil on poplar", "Face Off (1997) trailer"],
                                            ["face off hockey poster", "Mona Lisa print"]])  # fmt: skip
    freq = frequency_counts(cfg, workers=1, **QUIET)
    counts = freq.table.set_index("slug")
    assert list(counts.loc["mona_lisa", "alias_samples"]) == ["La Gioconda, oil on poplar"]
    assert list(counts.loc["face_off", "alias_samples"]) == ["Face Off (1997) trailer"]
    assert list(counts.loc["mona_lisa", "caption_samples"]) == ["Mona Lisa print"]
    features = build_covariates(cfg, freq, write=False, **QUIET).set_index("slug")
    assert list(features.loc["face_off", "alias_samples"]) == ["Face Off (1997) trailer"]
    rows = caption_samples(freq.scan.counts, ["face_off"], column="alias_samples")
    assert list(rows["caption"]) == ["Face Off (1997) trailer"] and rows["caption_count_aliases"].iloc[0] == 1


def test_fewer_count_modes_run_through_features_spearman_and_glm(tmp_path):
    modes = ["title", "title_creator", "title_context"]
    cfg = study_config(tmp_path, frequency={"count_modes": modes})
    make_references(cfg, references_frame().drop(columns="aliases"))  # the fix aliases.py names
    make_scores(cfg)
    freq = frequency_counts(cfg, **QUIET)
    assert "caption_count_aliases" not in freq.table.columns and "alias_samples" not in freq.table.columns
    assert {"caption_count_title_creator", "caption_count_title_context"} <= set(freq.table.columns)
    result = run(cfg, freq, **QUIET)
    assert "caption_count_aliases" not in result.features.columns
    assert "caption_count_aliases" in result.spearman.attrs["left_out"]
    assert set(result.spearman["count_mode"]) - {""} <= {"title", "title_creator", "title_context", "exact"}
    assert set(result.glm["count_mode"]) <= set(modes)
    assert result.glm.attrs["skipped_count_modes"] == []  # a mode not configured is no mode to skip


def test_glm_p_values_are_bh_adjusted_over_the_count_modes(tmp_path):
    from statsmodels.stats.multitest import multipletests

    cfg = study_config(tmp_path, glm={"predictors": PREDS, "per_kind": False, "collinearity": "report"})
    data = overdispersed_data()
    rng = np.random.default_rng(3)
    for mode in ("aliases", "title_context", "title_creator"):
        data[f"caption_count_{mode}_log10"] = data["caption_count_log10"] + rng.normal(0, 0.8, len(data))
    table = cglm.glm_table(cfg, data)
    assert set(table["count_mode"]) == {"title", "aliases", "title_context", "title_creator"}
    assert set(table["bh_family"]) == {"count modes of one fit, model, kind, errors and term"}
    count = table[
        table["term"].str.startswith("caption_count") & (table.fit == "per_model") & (table.model == "m1")
    ]
    assert len(count) == 4 and set(count["bh_family_size"]) == {4}
    assert np.allclose(count["p_adjusted"], multipletests(count["p"], method="fdr_bh")[1])
    year = table[(table.term == "year") & (table.fit == "pooled")]
    assert len(year) == 4 and np.allclose(year["p_adjusted"], multipletests(year["p"], method="fdr_bh")[1])
    assert (table["p_adjusted"] >= table["p"] - 1e-12).all()


def test_a_count_already_among_the_predictors_is_not_fitted_twice(tmp_path):
    preds = [*PREDS, "caption_count_aliases_log10"]
    cfg = study_config(tmp_path, glm={"predictors": preds, "per_kind": False, "collinearity": "report"})
    data = overdispersed_data()
    data["caption_count_aliases_log10"] = data["caption_count_log10"] + np.random.default_rng(4).normal(
        0, 1, len(data)
    )
    table = cglm.glm_table(cfg, data)
    assert "aliases" not in set(table["count_mode"])
    assert any("'aliases'" in n and "already" in n for n in table.attrs["skipped_count_modes"])
    title = table[(table.fit == "per_model") & (table.model == "m1")]
    assert {"caption_count_log10", "caption_count_aliases_log10"} <= set(title["term"])


def _fake_demo(cfg, expected: dict) -> None:
    from iconicity_utils.demo import caption_corpus

    path = caption_corpus.demo_expected_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"expected": expected}))


def test_compare_expected_counts_a_missing_count_as_no_match_and_checks_the_normalisation(tmp_path):
    from iconicity_utils.demo.caption_corpus import compare_expected

    cfg = study_config(tmp_path)
    _fake_demo(cfg, {"a": {"caption_count": 3, "exact_caption_count": 1},
                     "b": {"caption_count": 2, "exact_caption_count": 0}})  # fmt: skip
    counts = pd.DataFrame({"slug": ["a", "b"], "label_clean": ["A", "B"],
                           "caption_count": pd.array([3, pd.NA], dtype="Int64"),
                           "exact_caption_count": pd.array([1, 0], dtype="Int64"),
                           "normalisation": "nfkc-lower-quotes-whitespace-trim/1"})  # fmt: skip
    check = compare_expected(cfg, counts)
    assert check["match"].tolist() == [True, False] and check["match"].dtype == bool
    assert not check["match"].all()
    loose = counts.assign(caption_count=pd.array([3, 2], dtype="Int64"),
                          normalisation="nfkc-lower-quotes-whitespace-trim/1+punctuation-to-space/1")  # fmt: skip
    with pytest.raises(ValueError, match="'normalisation'.*punctuation"):
        compare_expected(cfg, loose)


def test_the_first_captions_are_read_batch_by_batch(tmp_path, monkeypatch):
    cfg = study_config(tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False,
                                            "batch_rows": 2})  # fmt: skip
    make_references(cfg)
    shard = ["Face/Off poster", "face off", "Mona Lisa", "Mona Lisa again", "mona lisa", "x"]
    write_shards(cfg.data_dir / "corpus", [shard, ["Mona Lisa"]])

    def no_whole_read(*_a, **_k):
        raise AssertionError("a whole shard was read")

    monkeypatch.setattr(pq.ParquetFile, "read", no_whole_read)
    table = normalisation_sensitivity(cfg, max_captions=3).set_index("slug")
    assert table.attrs["captions_read"] == 3 and table.attrs["captions_in_corpus"] == 7
    assert table.loc["mona_lisa", "caption_count_exact"] == 1  # only the first three captions
    assert tuple(table.loc["face_off", ["caption_count_exact", "caption_count_punctuation"]]) == (1, 2)
    assert table.loc["guernica", "note"] == "no caption holds the title under exact normalisation"


def test_an_na_alias_cell_means_no_aliases(tmp_path):
    cfg = study_config(tmp_path, frequency={"shards": "corpus/part_*.parquet", "synthetic_corpus": False})
    refs = references_frame().assign(creator=None)
    refs["aliases"] = refs["aliases"].astype(object)
    for i, value in ((0, pd.NA), (1, None), (2, float("nan"))):
        refs.at[i, "aliases"] = value
    make_references(cfg, refs)
    spec = scan.count_spec(cfg, refs)
    assert not np.isin(spec.alias_ref, [0, 1, 2]).any() and spec.alias_ref.size > 0
    write_shards(cfg.data_dir / "corpus", [["La Gioconda", "Mona Lisa", "Face Off (1997)"]])
    counts = scan.count_captions(cfg, workers=1, **QUIET).counts.set_index("slug")
    assert counts.loc["mona_lisa", "caption_count_aliases"] == 1  # its aliases were NA: the title only
    assert counts.loc["face_off", "caption_count_aliases"] == 1
