"""Stage 01, querying side: slugs, queries, parsing, raw responses, and the front door end to end.

The image side (folders, pHash dedup, synthetic stills, Commons, user stills) is tested in
``tests/test_reference_images.py``.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pandas as pd
import pyoxigraph as ox
import pytest
from collection_http import Reply, ScriptedServer
from study_configs import write_study_config

from iconicity_utils.collect import cli, sparql
from iconicity_utils.collect import collection as col
from iconicity_utils.collect.labels import assign_slugs, clean_label, slugify
from iconicity_utils.collect.parse import (
    build_references_table,
    commons_file_name,
    parse_candidates,
    parse_homonyms,
    parse_properties,
    parse_year,
)
from iconicity_utils.collect.queries import candidates_query, homonyms_query, properties_query
from iconicity_utils.collect.querying import query_references
from iconicity_utils.collect.recording import ReplayClient, SavedResponseError
from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.core.http import RequestFailed
from iconicity_utils.core.io import read_table
from iconicity_utils.demo import oxigraph

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "data" / "snapshot" / "wikidata_demo.ttl"
FIXTURES = REPO / "data" / "fixtures"
STATIC_CLASSES = ["Q3305213", "Q860861"]


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def quiet(_msg: str) -> None:
    pass


# ---- slugs and labels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "qid", "slug"),
    [
        ("The Starry Night", "Q45585", "the_starry_night"),
        ("Face/Off", "Q223596", "face_off"),
        ("...And Justice for All", "Q1756446", "and_justice_for_all"),
        ("Amélie", "Q484048", "amelie"),
        ("2001: A Space Odyssey", "Q103474", "2001_a_space_odyssey"),
        ("8½", "Q1", "81_2"),
        ("七人の侍", "Q189540", "q189540"),
        ("../../etc/passwd", "Q1", "etc_passwd"),
        ("..", "Q7", "q7"),
        (".hidden", "Q1", "hidden"),
        ("CON", "Q5", "con_q5"),
        ('"Quoted" {braces}\nnew line', "Q1", "quoted_braces_new_line"),
        ("", "Q99", "q99"),
    ],
)
def test_slugify_examples(label, qid, slug):
    assert slugify(label, qid) == slug


def test_shared_titles_get_qid_suffixes_on_every_member_and_stay_unique():
    labels = ["Olympia", "Olympia", "Mona Lisa", "olympia!"]
    qids = ["Q737062", "Q1415219", "Q12418", "Q5"]
    slugs = assign_slugs(labels, qids)
    assert slugs == ["olympia_q737062", "olympia_q1415219", "mona_lisa", "olympia_q5"]
    # independent of order: the same work always gets the same slug
    order = [3, 1, 2, 0]
    again = assign_slugs([labels[i] for i in order], [qids[i] for i in order])
    assert dict(zip([qids[i] for i in order], again, strict=True)) == dict(zip(qids, slugs, strict=True))


def test_duplicate_qids_cannot_be_slugged():
    with pytest.raises(ValueError, match="duplicate QIDs"):
        assign_slugs(["a", "b"], ["Q1", "Q1"])


@pytest.mark.parametrize(
    ("label", "clean"),
    [
        ("  The   Starry\nNight ", "The Starry Night"),
        ("Metropolis (1927 film)", "Metropolis"),
        ("The Scream (painting)", "The Scream"),
        ("“Untitled”", "Untitled"),
        ("Face/Off", "Face/Off"),
        ("...And Justice for All", "...And Justice for All"),
        ("Zero\u200bwidth", "Zero width"),
        ("Cafe\u0301", "Café"),
        (None, ""),
    ],
)
def test_clean_label(label, clean):
    assert clean_label(label) == clean


# ---- query construction ----------------------------------------------------------------------------


def all_queries(cfg) -> dict[str, str]:
    c = cfg.collection
    return {
        "candidates_static": candidates_query(c.static_classes + ["Q860861"], c.min_sitelinks, 100, 0, True),
        "candidates_dynamic": candidates_query(c.dynamic_classes, c.min_sitelinks, 7, 14, False),
        "properties": properties_query(["Q12418", "Q45585", "Q47703"], 100, 0),
        "homonyms": homonyms_query(["Olympia", 'He said "hi" } ?x', "new\nline", "Mona Lisa"]),
    }


@pytest.fixture(scope="module")
def snapshot_store():
    store = ox.Store()
    store.load(path=str(SNAPSHOT), format=ox.RdfFormat.TURTLE)
    return store


def test_every_query_parses_in_two_engines_and_runs_on_the_local_store(demo_cfg, snapshot_store):
    from rdflib.plugins.sparql import prepareQuery

    for name, query in all_queries(demo_cfg).items():
        assert "SERVICE" not in query.upper(), name
        used = set(re.findall(r"\b([a-z]+):[A-Za-z]", query.split("SELECT", 1)[1]))
        declared = set(re.findall(r"PREFIX ([a-z]+):", query))
        assert used <= declared, (name, used - declared)
        prepareQuery(query)  # a second, independent parser
        rows = list(snapshot_store.query(query))
        assert rows, f"{name} returned nothing on the snapshot"


def test_candidates_query_ranks_and_filters_on_the_store(demo_cfg, snapshot_store):
    query = candidates_query(["Q3305213"], 30, 100, 0, True)
    res = snapshot_store.query(query)
    data = json.loads(res.serialize(format=ox.QueryResultsFormat.JSON))
    cands = parse_candidates(data, "static", ["Q3305213"], 30)
    sitelinks = [c.sitelinks for c in cands]
    assert sitelinks == sorted(sitelinks, reverse=True) and min(sitelinks) >= 30
    qids = {c.qid for c in cands}
    assert "Q2990634" not in qids and "Q1219263" not in qids  # below the floor
    assert "Q1061035" not in qids  # no P18 image


def test_paging_is_stable_and_complete(snapshot_store):
    def page(limit, offset):
        data = json.loads(
            snapshot_store.query(candidates_query(["Q11424", "Q5398426"], 0, limit, offset, False)).serialize(
                format=ox.QueryResultsFormat.JSON
            )
        )
        return [c.qid for c in parse_candidates(data, "dynamic", ["Q11424", "Q5398426"], 0)]

    whole = page(1000, 0)
    paged = [q for k in range(0, len(whole), 4) for q in page(4, k)]
    assert paged == whole and len(whole) == len(set(whole))


@pytest.mark.parametrize(
    "call",
    [
        lambda: candidates_query(["Q1 } ?s ?p ?o {"], 30, 10, 0, True),
        lambda: candidates_query(["Q1"], -1, 10, 0, True),
        lambda: candidates_query(["Q1"], "30) || (1", 10, 0, True),
        lambda: candidates_query([], 30, 10, 0, True),
        lambda: properties_query(["wd:Q1"], 10, 0),
        lambda: homonyms_query([]),
    ],
)
def test_query_builders_validate_their_values(call):
    with pytest.raises(ValueError):
        call()


# ---- parsing real-format SPARQL-JSON --------------------------------------------------------------


def test_parse_candidates_real_format():
    cands = parse_candidates(fixture("collection_candidates_static.json"), "static", STATIC_CLASSES, 30)
    by_qid = {c.qid: c for c in cands}
    assert [c.qid for c in cands] == ["Q12418", "Q900000001", "Q900000002", "Q737062", "Q900000003"]
    assert by_qid["Q12418"].label == "Mona Lisa" and by_qid["Q12418"].sitelinks == 170
    assert by_qid["Q12418"].description == "painting by Leonardo da Vinci"
    # listed under sculpture then painting: the first class in config order wins
    assert by_qid["Q900000001"].class_qid == "Q3305213"
    assert by_qid["Q900000001"].label.startswith('../../etc/passwd "Study" {No. 1}\n')
    # no English label, no description: kept here as None (skipped later, with a reason)
    assert by_qid["Q900000002"].label is None and by_qid["Q900000002"].description is None
    assert "Q900000004" not in by_qid  # 12 sitelinks < 30


def test_parse_properties_and_build_the_table():
    cands = parse_candidates(fixture("collection_candidates_static.json"), "static", STATIC_CLASSES, 30)
    cands = [c for c in cands if c.label]
    props = parse_properties(fixture("collection_properties.json"))
    homonyms = parse_homonyms(fixture("collection_homonyms.json"))
    df = build_references_table({"static": cands}, props, homonyms).set_index("qid")
    mona = df.loc["Q12418"]
    assert mona["creator"] == "Leonardo da Vinci" and mona["creator_qids"] == ["Q762"]
    assert mona["year"] == 1503  # the earliest of two inception values
    assert mona["image_file"] == "Mona Lisa, by Leonardo da Vinci, from C2RMF retouched.jpg"
    assert mona["image_url"] == (
        "https://commons.wikimedia.org/wiki/Special:FilePath/Mona_Lisa%2C_by_Leonardo_da_Vinci%2C_from_C2RMF_retouched.jpg"
    )
    assert mona["depicts"] == ["landscape", "woman"]  # the unlabelled value is left out
    assert mona["genre"] == ["portrait"] and mona["main_subject"] == []
    assert mona["label_homonyms"] == 7 and mona["rank"] == 1
    hostile = df.loc["Q900000001"]
    # unknown-value creator (a genid IRI) and inception: no creator; the BCE publication date is the fallback
    assert pd.isna(hostile["creator"]) and hostile["creator_qids"] == []
    assert hostile["year"] == -500
    assert hostile["label_clean"] == '../../etc/passwd "Study" {No. 1} second line'
    assert hostile["slug"] == "etc_passwd_study_no_1_second_line"
    assert pd.isna(hostile["image_file"]) and pd.isna(hostile["label_homonyms"])
    olympias = df[df["label_clean"] == "Olympia"]
    assert sorted(olympias["slug"]) == ["olympia_q737062", "olympia_q900000003"]
    assert olympias["title_shared"].all() and not mona["title_shared"]
    assert (olympias["label_homonyms"] == 214).all()
    # a static work takes its creator from P170 even when directors are listed
    assert df.loc["Q900000003", "creator"] == "A Creator"


def test_dynamic_works_prefer_directors_and_publication_dates():
    cands = parse_candidates(fixture("collection_candidates_static.json"), "dynamic", STATIC_CLASSES, 30)
    film = next(c for c in cands if c.qid == "Q900000003")
    df = build_references_table(
        {"dynamic": [film]}, parse_properties(fixture("collection_properties.json")), {}
    )
    row = df.iloc[0]
    assert row["creator"] == "First Director; Second Director"  # sorted by QID
    assert row["creator_qids"] == ["Q900000010", "Q900000020"]
    assert row["year"] == 1936


def test_parse_errors_name_the_query_and_row():
    data = fixture("collection_candidates_static.json")
    del data["results"]["bindings"][2]["item"]
    with pytest.raises(ValueError, match=r"candidates_static_p000, row 2: \?item is missing"):
        parse_candidates(data, "static", STATIC_CLASSES, 30, name="candidates_static_p000")
    data = fixture("collection_candidates_static.json")
    data["results"]["bindings"][0]["sitelinks"]["value"] = "many"
    with pytest.raises(ValueError, match=r"row 0: \?sitelinks is not a number"):
        parse_candidates(data, "static", STATIC_CLASSES, 30)
    with pytest.raises(ValueError, match="no results.bindings"):
        parse_properties({"head": {}}, "properties_c000_p000")


def test_empty_result_builds_an_empty_table_with_the_full_schema():
    df = build_references_table({"static": [], "dynamic": []}, {}, {})
    assert list(df.columns) == col.REFERENCE_COLUMNS and len(df) == 0
    assert str(df["year"].dtype) == "Int64"


@pytest.mark.parametrize(
    ("value", "year"),
    [
        ("1889-06-01T00:00:00Z", 1889),
        ("-0500-01-01T00:00:00Z", -500),
        ("+2001-07-20T00:00:00Z", 2001),
        ("1927-01-10", 1927),
        ("http://www.wikidata.org/.well-known/genid/abc", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_year(value, year):
    assert parse_year(value) == year


def test_commons_file_name():
    iri = "http://commons.wikimedia.org/wiki/Special:FilePath/Van%20Gogh%20-%20Starry_Night.jpg"
    assert commons_file_name(iri) == "Van Gogh - Starry Night.jpg"
    assert commons_file_name("https://example.org/other.jpg") is None


# ---- the front door, end to end on the demo snapshot -----------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One full demo collection into a temporary data root (shared by the tests below)."""
    root = tmp_path_factory.mktemp("stage01")
    cfg = write_study_config(root, "demo", collection={"snapshot": str(SNAPSHOT)})
    logs: list[str] = []
    refs = col.collect_references(cfg, log=logs.append)
    return cfg, refs, logs


def test_demo_collects_twenty_of_each_kind(demo_run):
    cfg, refs, _ = demo_run
    assert refs.groupby("kind").size().to_dict() == {"dynamic": 20, "static": 20}
    assert refs["qid"].is_unique and refs["slug"].is_unique
    assert list(refs.columns) == col.REFERENCE_COLUMNS
    for _kind, part in refs.groupby("kind"):
        assert list(part["rank"]) == list(range(1, 21))
        assert list(part["sitelinks"]) == sorted(part["sitelinks"], reverse=True)
    assert refs["sitelinks"].min() >= cfg.collection.min_sitelinks
    on_disk = read_table(cfg.references_table)
    assert (on_disk["note"] == STANDIN_LABEL).all()
    assert on_disk["qid"].tolist() == refs["qid"].tolist()
    assert on_disk.attrs["provenance"]["collection"]["endpoint_info"]["oxigraph"].startswith("oxigraph")


def test_demo_edge_cases(demo_run):
    _, refs, logs = demo_run
    by_qid = refs.set_index("qid")
    for below_floor in ("Q2990634", "Q1219263", "Q2085", "Q79784"):
        assert below_floor not in by_qid.index
    assert "Q1061035" not in by_qid.index  # a painting without P18
    assert "Q1056853" not in by_qid.index  # no English label ...
    report = refs.attrs["report"]
    assert {"qid": "Q1056853", "kind": "dynamic", "reason": "no English label"} in report["skipped"]
    assert any("Q1056853" in line for line in logs)  # ... and it says so
    assert by_qid.loc["Q737062", "slug"] == "olympia_q737062"
    assert by_qid.loc["Q1415219", "slug"] == "olympia_q1415219"
    assert by_qid.loc["Q737062", "title_shared"] and by_qid.loc["Q737062", "label_homonyms"] == 2
    assert by_qid.loc["Q223596", "slug"] == "face_off"
    assert by_qid.loc["Q1756446", "slug"] == "and_justice_for_all"
    assert by_qid.loc["Q1756446", "label_clean"] == "...And Justice for All"
    assert by_qid.loc["Q484048", "slug"] == "amelie"
    assert pd.isna(by_qid.loc["Q172241", "creator"])  # no director in the snapshot
    assert pd.isna(by_qid.loc["Q1415219", "year"])  # no date in the snapshot
    assert by_qid.loc["Q83495", "creator"] == "Lana Wachowski; Lilly Wachowski"
    assert by_qid.loc["Q45585", "depicts"] == sorted(by_qid.loc["Q45585", "depicts"], key=str.casefold)
    assert "Moon" in by_qid.loc["Q45585", "depicts"]
    assert by_qid.loc["Q47703", "year"] == 1972 and by_qid.loc["Q47703", "genre"] == [
        "crime film",
        "drama film",
    ]


def test_demo_saves_every_raw_response_and_stops_the_server(demo_run):
    cfg, refs, _ = demo_run
    report = refs.attrs["report"]
    run_dir = cfg.path("data", "raw", report["raw_run"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["files"]) == report["queries"] >= 4
    record = json.loads((run_dir / "sparql" / manifest["files"][0]).read_text())
    assert record["query_name"] == "candidates_static_p000" and record["query"].startswith("PREFIX wd:")
    assert record["endpoint"] == report["endpoint"] and record["retrieved_utc"].endswith("Z")
    assert record["response"]["results"]["bindings"]
    port = int(report["endpoint"].split(":")[2].split("/")[0])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the local server is gone


def test_rebuild_from_saved_responses_without_any_endpoint(demo_run, monkeypatch):
    cfg, refs, _ = demo_run
    raw_runs = sorted(p.name for p in cfg.path("data", "raw").iterdir())

    def no_endpoint(*_a, **_k):
        raise AssertionError("replay must not start or query an endpoint")

    monkeypatch.setattr(oxigraph, "find_oxigraph", no_endpoint)
    monkeypatch.setattr(sparql.SparqlClient, "select", no_endpoint)
    cfg.references_table.unlink()
    rebuilt = col.collect_references(cfg, use_saved_responses=True, log=quiet)
    pd.testing.assert_frame_equal(rebuilt, refs)
    assert sorted(p.name for p in cfg.path("data", "raw").iterdir()) == raw_runs  # nothing new saved
    assert rebuilt.attrs["report"]["replayed"] and rebuilt.attrs["report"]["raw_run"] == raw_runs[-1]


def test_replay_refuses_saved_responses_for_other_queries(demo_run):
    cfg, _, _ = demo_run
    changed = cfg.with_overrides(collection={"min_sitelinks": 40})
    with pytest.raises(SavedResponseError, match="different query text"):
        col.collect_references(changed, use_saved_responses=True, log=quiet)
    with pytest.raises(SavedResponseError, match="no complete run"):
        ReplayClient.latest(cfg.path("data", "nothing-here"))


def test_an_empty_result_writes_an_empty_table(make_config):
    cfg = make_config(collection={"min_sitelinks": 10_000})
    logs: list[str] = []
    refs = col.collect_references(cfg, log=logs.append)
    assert len(refs) == 0 and list(refs.columns) == col.REFERENCE_COLUMNS
    assert len(read_table(cfg.references_table)) == 0
    assert any("empty" in w for w in refs.attrs["report"]["warnings"]) and any("WARNING" in x for x in logs)


def test_a_failing_endpoint_keeps_everything_already_saved(make_config):
    cfg = make_config()
    col.collect_references(cfg, log=quiet)
    table_bytes = cfg.references_table.read_bytes()
    raw_root = cfg.path("data", "raw")
    before = {p: p.read_bytes() for p in raw_root.rglob("*") if p.is_file()}
    truncated = b'{"head":{"vars":["item"]},"results":{"bindings":[{"item":{"type":"uri","val'
    with ScriptedServer({"/sparql": [Reply(200, truncated)]}) as server:
        broken = cfg.with_overrides(
            collection={"endpoint": server.url("/sparql"), "http": {"max_retries": 1, "backoff_base_s": 0.0}}
        )
        with pytest.raises(RequestFailed, match=r"truncated or malformed JSON") as err:
            col.collect_references(broken, log=quiet)
    assert "candidates_static_p000" in str(err.value) and server.url("/sparql") in str(err.value)
    assert cfg.references_table.read_bytes() == table_bytes
    assert all(p.read_bytes() == data for p, data in before.items())
    runs = [p for p in raw_root.iterdir() if p.is_dir()]
    assert sum((p / "manifest.json").is_file() for p in runs) == 1  # the failed run stays incomplete
    assert ReplayClient.latest(raw_root).manifest["endpoint"].startswith("http://127.0.0.1")


def test_paging_in_small_pages_gives_the_same_table(demo_run, make_config):
    _, refs, _ = demo_run
    small = make_config(collection={"page_size": 7})
    paged = col.collect_references(small, log=quiet)
    assert paged.attrs["report"]["queries"] > refs.attrs["report"]["queries"]
    cols = [c for c in col.REFERENCE_COLUMNS if c != "reference_dir"]
    pd.testing.assert_frame_equal(paged[cols], refs[cols])


def test_a_bad_class_id_in_the_config_is_refused_before_any_work(make_config):
    cfg = make_config(collection={"static_classes": ["Q3305213", "Q1 } ?s ?p ?o {"]})
    with pytest.raises(ValueError, match="not a Wikidata item id"):
        col.collect_references(cfg, log=quiet)
    assert not cfg.references_table.exists()


def test_cli_runs_the_stage(make_config, capsys):
    cfg = make_config(collection={"top_k_static": 2, "top_k_dynamic": 2})
    assert cli.main(["--config", str(cfg.source)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == {"references": 4, "per_kind": {"dynamic": 2, "static": 2}}
    assert cli.main(["--config", str(cfg.source), "--use-saved-responses"]) == 0


# ---- figures ----------------------------------------------------------------------------------------


def test_distribution_figure_draws_from_the_table(demo_run):
    import matplotlib

    matplotlib.use("agg")
    _, refs, _ = demo_run
    fig = col.plot_distributions(refs)
    assert len(fig.axes) == 2 and sum(len(ax.patches) for ax in fig.axes) > 0


def test_an_endpoint_that_ignores_offset_stops_the_paging(make_config):
    """A store that answers every page with the first one would loop for ever; it is an error instead."""
    page = fixture("collection_candidates_static.json")
    page["results"]["bindings"] = page["results"]["bindings"][:2]

    class IgnoresOffset:
        endpoint = "http://127.0.0.1:1/stub"

        def select(self, name, query):
            return page

    cfg = make_config(collection={"page_size": 2, "static_classes": STATIC_CLASSES})
    with pytest.raises(ValueError, match=r"candidates_static_p001: .*same page twice"):
        query_references(IgnoresOffset(), cfg, log=quiet)
