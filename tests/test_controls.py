"""Stage 01: matched non-iconic controls (iconicity_utils.collect.controls, docs/method.md §1.6).

The expected matches were worked out by hand from the rule (same class, a shared genre, at most
``controls_max_sitelinks``, static ones with P18, sitelinks descending then QID as text, each work
once, references in table order) before the code was run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from study_configs import write_study_config

from iconicity_utils.collect import collection as col
from iconicity_utils.collect.controls import (
    CONTROL_COLUMNS,
    ControlCandidate,
    control_slugs,
    match_controls,
    merge_candidates,
    parse_control_candidates,
)
from iconicity_utils.collect.queries import controls_query
from iconicity_utils.config.study import load_config
from iconicity_utils.core.io import read_table

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "data" / "snapshot" / "wikidata_demo.ttl"
PAINTING, FILM = "Q3305213", "Q11424"


def quiet(_msg: str) -> None:
    pass


# ---- the matching rule, by hand ----------------------------------------------------------------------


def cand(qid, sitelinks, classes, genres, label="t"):
    return ControlCandidate(qid, sitelinks, label, None, set(classes), set(genres))


REFS = [
    {"qid": "Q1", "slug": "a", "class_qid": PAINTING, "genres": {"Q100": "portrait"}},
    {
        "qid": "Q2",
        "slug": "b",
        "class_qid": PAINTING,
        "genres": {"Q100": "portrait", "Q200": "landscape art"},
    },
    {"qid": "Q3", "slug": "c", "class_qid": FILM, "genres": {"Q100": "portrait"}},
]
CANDS = merge_candidates(
    [
        [cand("Q11", 9, [PAINTING], ["Q100"]), cand("Q15", 9, [PAINTING], ["Q100"], label=None)],
        [cand("Q12", 9, [PAINTING], ["Q200"]), cand("Q13", 5, [PAINTING], ["Q100"])],
        [cand("Q14", 3, [FILM], ["Q100"]), cand("Q9", 9, [FILM], ["Q300"])],
    ]
)


def test_candidates_are_ordered_by_sitelinks_then_qid_as_text():
    assert [c.qid for c in CANDS] == ["Q11", "Q12", "Q15", "Q9", "Q13", "Q14"]


def test_one_control_each():
    got = [(r["slug"], c.qid, g) for r, c, g in match_controls(REFS, CANDS, 1)]
    # a: Q11 (9, portrait; Q15 is unlabelled); b: Q12 (9, landscape art; Q11 is used);
    # c: the film Q14 (Q9 is a film of another genre, the paintings are another class)
    assert got == [("a", "Q11", "portrait"), ("b", "Q12", "landscape art"), ("c", "Q14", "portrait")]


def test_two_controls_each_and_every_work_used_once():
    got = [(r["slug"], c.qid) for r, c, _ in match_controls(REFS, CANDS, 2)]
    assert got == [("a", "Q11"), ("a", "Q13"), ("b", "Q12"), ("c", "Q14")]


def test_a_reference_is_never_its_own_control_and_a_shared_genre_is_named_alphabetically():
    refs = [
        {"qid": "Q1", "slug": "a", "class_qid": PAINTING, "genres": {"Q100": "portrait", "Q200": "allegory"}}
    ]
    cands = [cand("Q1", 5, [PAINTING], ["Q100"]), cand("Q2", 4, [PAINTING], ["Q100", "Q200"])]
    assert [(c.qid, g) for _, c, g in match_controls(refs, cands, 1)] == [("Q2", "allegory")]


def test_control_slugs_never_repeat_a_reference_slug():
    slugs = control_slugs(
        ["Mona Lisa", "Olympia", "Olympia", "Quiet"], ["Q7", "Q8", "Q9", "Q10"], {"mona_lisa", "quiet_q10"}
    )
    assert slugs == ["mona_lisa_q7", "olympia_q8", "olympia_q9", "quiet"]
    with pytest.raises(ValueError, match="clash"):
        control_slugs(["x"], ["Q1"], {"x", "x_q1"})


def test_parse_drops_rows_above_the_cap_and_names_bad_rows():
    wd = "http://www.wikidata.org/entity/"
    rows = [
        {
            "item": {"type": "uri", "value": wd + "Q5"},
            "class": {"type": "uri", "value": wd + PAINTING},
            "sitelinks": {"type": "literal", "value": "12"},
        },
        {
            "item": {"type": "uri", "value": wd + "Q6"},
            "class": {"type": "uri", "value": wd + PAINTING},
            "sitelinks": {"type": "literal", "value": "10"},
            "label": {"type": "literal", "value": "x", "xml:lang": "en"},
        },
    ]
    data = {"head": {"vars": []}, "results": {"bindings": rows}}
    got = parse_control_candidates(data, "Q100", 10)
    assert [(c.qid, c.label, c.genres) for c in got] == [("Q6", "x", {"Q100"})]
    rows[1]["sitelinks"]["value"] = "ten"
    with pytest.raises(ValueError, match=r"controls_q1_q2_p000, row 1: \?sitelinks"):
        parse_control_candidates(data, "Q100", 10, "controls_q1_q2_p000")


def test_controls_query_text():
    q = controls_query([PAINTING], "Q134307", 10, 50, 100, True)
    assert "wdt:P136 wd:Q134307" in q and "FILTER(?sitelinks <= 10)" in q and "wdt:P18" in q
    assert "SERVICE" not in q and q.rstrip().endswith("LIMIT 50\nOFFSET 100")
    assert "wdt:P18" not in controls_query([FILM], "Q130232", 10, 50, 0, False)
    with pytest.raises(ValueError):
        controls_query([PAINTING], "Q1 } ?s ?p ?o {", 10, 50, 0, True)


# ---- the config keys --------------------------------------------------------------------------------


def test_the_cap_must_be_below_the_sitelinks_floor(tmp_path):
    with pytest.raises(Exception, match="controls_max_sitelinks"):
        write_study_config(tmp_path, "bad", collection={"controls": True, "controls_max_sitelinks": 30})
    with pytest.raises(Exception, match="controls_per_reference"):
        write_study_config(tmp_path, "bad2", collection={"controls": True, "controls_per_reference": 0})
    old = write_study_config(tmp_path, "old", collection={"controls": False, "controls_max_sitelinks": 40})
    assert old.collection.controls is False


def test_old_configs_load_with_controls_off(tmp_path):
    """A config written before the controls keys existed (its collection section without them) loads
    with controls off, and the paper config turns them on."""
    import yaml

    text = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    for key in ("controls", "controls_per_reference", "controls_max_sitelinks"):
        text["collection"].pop(key, None)
    text["perturbation"].pop("controls", None)
    text["paths"] = {**text.get("paths", {}), "root": str(REPO)}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(text))
    cfg = load_config(tmp_path / "old.yaml")
    assert (
        cfg.collection.controls,
        cfg.collection.controls_per_reference,
        cfg.collection.controls_max_sitelinks,
    ) == (False, 1, 10)
    assert load_config(REPO / "configs" / "paper.yaml").collection.controls is True


# ---- end to end on the local endpoint ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    cfg = write_study_config(
        root, "demo", collection={"snapshot": str(SNAPSHOT), "controls": True, "controls_per_reference": 2}
    )
    refs = col.collect_references(cfg, log=quiet)
    return cfg, refs, read_table(cfg.controls_table)


EXPECTED_TWO_EACH = [  # judged by hand from the snapshot, k = 2, cap 10
    ("Q900000101", "mona_lisa", "portrait"),
    ("Q900000102", "mona_lisa", "portrait"),
    ("Q900000103", "the_starry_night", "landscape art"),  # Q900000105 has 12 sitelinks
    ("Q900000104", "guernica", "history painting"),  # Girl with a Pearl Earring: Q900000106 has no P18
    ("Q900000201", "the_godfather", "drama film"),
    ("Q900000203", "the_godfather", "crime film"),
    ("Q900000204", "titanic", "drama film"),
    ("Q900000202", "star_wars", "science fiction film"),
]


def test_demo_controls_match_by_hand(demo):
    _, _, controls = demo
    got = list(zip(controls["qid"], controls["control_for"], controls["matched_genre"], strict=True))
    assert got == EXPECTED_TWO_EACH


def test_demo_controls_obey_every_rule(demo):
    cfg, refs, controls = demo
    assert list(controls.columns) == [*CONTROL_COLUMNS, "note"]
    by_slug = refs.set_index("slug")
    for row in controls.itertuples():
        ref = by_slug.loc[row.control_for]
        assert row.class_qid == ref["class_qid"] and row.kind == ref["kind"]
        assert row.matched_genre in ref["genre"] and row.matched_genre in row.genre
        assert row.sitelinks <= cfg.collection.controls_max_sitelinks
        assert row.kind == "dynamic" or row.image_file
        assert row.n_kept >= 1 and Path(cfg.absolute(row.reference_dir)).is_dir()
    assert controls["qid"].is_unique and not set(controls["qid"]) & set(refs["qid"])
    assert controls["control_for"].value_counts().max() <= 2
    assert not set(controls["slug"]) & set(refs["slug"]) and controls["slug"].is_unique
    for never in ("Q900000105", "Q900000205", "Q900000106"):  # above the cap, above the cap, no P18
        assert never not in set(controls["qid"])
    beyond = controls.set_index("qid").loc["Q900000202"]
    assert list(beyond["depicts_classes"]) == ["robot", "spacecraft"] and list(beyond["aliases"]) == [
        "Red Nebula"
    ]
    assert beyond["creator"] == "Carla Ventresca" and beyond["year"] == 1979
    assert (controls[controls["kind"] == "dynamic"]["n_kept"] == 4).all()  # stills drawn, dedup applied
    report = refs.attrs["report"]["controls"]
    assert report["n"] == len(controls) and "girl_with_a_pearl_earring" in report["references_short"]


def test_rerun_and_replay_rewrite_the_tables_whole(demo):
    cfg, _, controls = demo
    again = col.collect_references(cfg, use_saved_responses=True, log=quiet)
    replayed = read_table(cfg.controls_table)
    pd.testing.assert_frame_equal(replayed, controls)
    assert len(again) == 40 and len(read_table(cfg.references_table)) == 40


def test_turning_controls_off_removes_the_stale_tables(demo):
    cfg, _, _ = demo
    logs: list[str] = []
    col.collect_references(
        cfg.with_overrides(collection={"controls": False}), use_saved_responses=True, log=logs.append
    )
    assert not cfg.controls_table.exists() and not col.control_images_table_path(cfg).exists()
    assert any("stale" in line for line in logs)
    manifest = json.loads((sorted(cfg.path("data", "raw").glob("*/manifest.json"))[-1]).read_text())
    assert any("controls_q3305213_q134307" in f for f in manifest["files"])


def test_small_pages_give_the_same_controls(demo, tmp_path):
    """Paging stops after n * k labelled works per (class, genre): pages of 1 must not change the match."""
    _, _, controls = demo
    cfg = write_study_config(
        tmp_path,
        "paged",
        collection={"snapshot": str(SNAPSHOT), "controls": True, "controls_per_reference": 2, "page_size": 1},
    )
    refs = col.collect_references(cfg, log=quiet)
    paged = read_table(cfg.controls_table)
    cols = [c for c in CONTROL_COLUMNS if c != "reference_dir"]
    pd.testing.assert_frame_equal(paged[cols], controls[cols])
    assert refs.attrs["report"]["queries"] > 31


def test_paging_stops_once_enough_works_are_in(tmp_path):
    """One reference per kind, one control each: the first page of one work per (class, genre) is enough."""
    cfg = write_study_config(
        tmp_path,
        "early",
        collection={
            "snapshot": str(SNAPSHOT),
            "controls": True,
            "page_size": 1,
            "top_k_static": 1,
            "top_k_dynamic": 1,
        },
    )
    refs = col.collect_references(cfg, log=quiet)
    controls = read_table(cfg.controls_table)
    assert list(zip(controls["control_for"], controls["qid"], strict=True)) == [
        ("mona_lisa", "Q900000101"),  # portrait, 9 sitelinks
        ("the_godfather", "Q900000201"),  # drama film, 8 (the crime film has 3)
    ]
    run_dir = cfg.path("data", "raw", refs.attrs["report"]["raw_run"])
    names = json.loads((run_dir / "manifest.json").read_text())["files"]
    assert any(n.endswith("controls_q3305213_q134307_p000.json") for n in names)
    assert not any("controls_q3305213_q134307_p001" in n for n in names)


def test_paging_goes_on_past_labels_that_clean_to_nothing(tmp_path):
    """A work whose label cleans to nothing ('""') can never be a control, so it must not count
    towards the works needed: the next page is fetched and its work found."""
    from iconicity_utils.collect import querying
    from iconicity_utils.collect.parse import ENTITY

    def row(qid, label):
        return {"item": {"type": "uri", "value": ENTITY + qid}, "class": {"type": "uri", "value": ENTITY + "Q3305213"},
                "sitelinks": {"type": "literal", "value": "3"},
                "label": {"type": "literal", "value": label, "xml:lang": "en"}}  # fmt: skip

    class Client:
        asked: list[str] = []

        def select(self, name, query):
            self.asked.append(name)
            page = [[row("Q900000901", '""')], [row("Q900000902", "Quiet Harbour")]]
            return {"results": {"bindings": page[int(name[-3:])] if int(name[-3:]) < 2 else []}}

    cfg = write_study_config(tmp_path, "empty-label", collection={"controls": True, "page_size": 1})
    refs = [
        {
            "qid": "Q1",
            "slug": "a",
            "class_qid": "Q3305213",
            "kind": "static",
            "genres": {"Q134307": "portrait"},
        }
    ]
    client = Client()
    found = querying._control_candidates(client, cfg, refs, {"queries": 0})
    assert {c.qid for c in found} == {"Q900000901", "Q900000902"}
    assert client.asked[-1].endswith("_p001")
