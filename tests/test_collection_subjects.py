"""Stage 01: class-level subjects and aliases (iconicity_utils.collect.subjects, docs/method.md §1.5).

Every expected category below was decided from the rule (a class has a P279 and is not an instance
of human; then human; then a fictional kind; else an individual) before the code was run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyoxigraph as ox
import pytest
from study_configs import write_study_config

from iconicity_utils.collect import collection as col
from iconicity_utils.collect.parse import ItemValues
from iconicity_utils.collect.queries import aliases_query, subjects_query
from iconicity_utils.collect.recording import SavedResponseError
from iconicity_utils.collect.subjects import (
    SubjectFacts,
    alias_list,
    classify_subject,
    parse_aliases,
    parse_subjects,
    subject_columns,
)

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "data" / "snapshot" / "wikidata_demo.ttl"
WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
SKOS_ALT = "http://www.w3.org/2004/02/skos/core#altLabel"


def uri(value: str) -> dict:
    return {"type": "uri", "value": value}


def fact_rows(*triples: tuple[str, str, str]) -> dict:
    rows = [{"value": uri(WD + v), "prop": uri(WDT + p), "class": uri(WD + c)} for v, p, c in triples]
    return {"head": {"vars": ["value", "prop", "class"]}, "results": {"bindings": rows}}


# ---- the classification rule on hand-made SPARQL-JSON -----------------------------------------------

FACTS = fact_rows(
    ("Q467", "P279", "Q5"),  # woman: subclass of human -> class
    ("Q5", "P279", "Q215627"),  # human itself: a class
    ("Q302", "P31", "Q5"),  # Jesus: instance of human -> human
    ("Q800", "P31", "Q5"),  # instance of human AND subclass of something (bad data) -> human
    ("Q800", "P279", "Q35120"),
    ("Q51752", "P31", "Q15632617"),  # Darth Vader: fictional human -> fictional character
    ("Q51752", "P31", "Q15773347"),
    ("Q47652", "P31", "Q11688446"),  # Venus: Roman deity -> fictional character
    ("Q405", "P31", "Q2537"),  # Moon: natural satellite -> individual
    ("Q25173", "P31", "Q11446"),  # RMS Titanic: instance of ship -> individual
    ("Q11446", "P279", "Q1229765"),  # ship: a class
    ("Q900", "P31", "Q178885"),  # a class that is also typed as a deity: P279 wins -> class
    ("Q900", "P279", "Q35120"),
)


@pytest.mark.parametrize(
    ("qid", "category"),
    [
        ("Q467", "class"),
        ("Q5", "class"),
        ("Q302", "human"),
        ("Q800", "human"),
        ("Q51752", "fictional character"),
        ("Q47652", "fictional character"),
        ("Q405", "individual"),
        ("Q25173", "individual"),
        ("Q11446", "class"),
        ("Q900", "class"),
        ("Q12345", "individual"),  # no statement at all: treated as named (the safe side)
    ],
)
def test_classification_rule(qid, category):
    facts = parse_subjects(FACTS)
    assert classify_subject(facts.get(qid)) == category


def test_subject_columns_keep_classes_and_list_the_named():
    facts = parse_subjects(FACTS)
    values = ItemValues(
        {
            "P180": [("Q467", "woman"), ("Q302", "Jesus"), ("Q11446", "ship"), ("Q405", "Moon")],
            "P921": [("Q25173", "RMS Titanic"), ("Q5", "human"), ("Q302", "Jesus"), ("Q777", None)],
        }
    )
    cols = subject_columns(values, facts)
    assert cols["depicts_classes"] == ["ship", "woman"]
    assert cols["main_subject_classes"] == ["human"]
    # every value left out, once, with its QID and category; an unlabelled named value too
    assert cols["named_subjects"] == [
        "(no English label) (Q777: individual)",
        "Jesus (Q302: human)",
        "Moon (Q405: individual)",
        "RMS Titanic (Q25173: individual)",
    ]


def test_an_unlabelled_class_is_in_no_column():
    facts = {"Q1": SubjectFacts(subclass_of={"Q35120"})}
    cols = subject_columns(ItemValues({"P180": [("Q1", None)]}), facts)
    assert cols == {"depicts_classes": [], "main_subject_classes": [], "named_subjects": []}


def test_malformed_subject_rows_name_the_query_and_row():
    data = fact_rows(("Q467", "P279", "Q5"), ("Q302", "P31", "Q5"))
    data["results"]["bindings"][1]["prop"] = uri(WDT + "P18")
    with pytest.raises(ValueError, match=r"subjects_c000_p000, row 1: \?prop"):
        parse_subjects(data, "subjects_c000_p000")
    data = fact_rows(("Q467", "P279", "Q5"))
    data["results"]["bindings"][0]["class"] = {"type": "literal", "value": "human"}
    with pytest.raises(ValueError, match=r"subjects, row 0: \?class is missing or not an IRI"):
        parse_subjects(data)


# ---- aliases ------------------------------------------------------------------------------------------


def alias_rows(*rows: tuple[str, str, str, str | None]) -> dict:
    out = []
    for item, prop, text, lang in rows:
        alias = {"type": "literal", "value": text} | ({"xml:lang": lang} if lang else {})
        out.append({"item": uri(WD + item), "prop": uri(prop), "alias": alias})
    return {"head": {"vars": ["item", "prop", "alias"]}, "results": {"bindings": out}}


def test_aliases_are_cleaned_sorted_unique_and_exclude_the_label():
    raw = parse_aliases(
        alias_rows(
            ("Q17738", SKOS_ALT, "A New Hope", "en"),
            ("Q17738", SKOS_ALT, "  A New\nHope ", "en"),  # the same alias once cleaned
            ("Q17738", WDT + "P1476", "Star Wars", "en"),  # the title equals the label
            ("Q17738", SKOS_ALT, "star wars", "en"),  # equal up to case
            ("Q189540", WDT + "P1476", "七人の侍", "ja"),
            ("Q484048", SKOS_ALT, "Amelie", "en"),
        )
    )
    assert alias_list(raw["Q17738"], "Star Wars") == ["A New Hope"]
    assert alias_list(raw["Q189540"], "Seven Samurai") == ["七人の侍"]
    assert alias_list(raw["Q484048"], "Amélie") == ["Amelie"]  # an accent makes it another string


def test_malformed_alias_rows_name_the_query_and_row():
    with pytest.raises(ValueError, match=r"aliases_c000_p000, row 0: .*not English"):
        parse_aliases(alias_rows(("Q1", SKOS_ALT, "Gioconda", "it")), "aliases_c000_p000")
    data = alias_rows(("Q1", SKOS_ALT, "x", "en"))
    data["results"]["bindings"][0]["alias"] = uri(WD + "Q2")
    with pytest.raises(ValueError, match=r"aliases, row 0: \?alias is missing or not a literal"):
        parse_aliases(data)


# ---- query text ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store():
    s = ox.Store()
    s.load(path=str(SNAPSHOT), format=ox.RdfFormat.TURTLE)
    return s


def run(store, query: str) -> dict:
    return json.loads(store.query(query).serialize(format=ox.QueryResultsFormat.JSON))


@pytest.mark.parametrize(
    "query",
    [
        subjects_query(["Q467", "Q302", "Q405"], 100, 0),
        aliases_query(["Q12418", "Q17738", "Q189540"], 100, 0),
    ],
)
def test_queries_declare_their_prefixes_and_parse_in_two_engines(query, store):
    from rdflib.plugins.sparql import prepareQuery

    assert "SERVICE" not in query.upper()
    used = set(re.findall(r"\b([a-z]+):[A-Za-z]", query.split("SELECT", 1)[1]))
    assert used <= set(re.findall(r"PREFIX ([a-z]+):", query))
    assert "PREFIX skos: <http://www.w3.org/2004/02/skos/core#>" in query
    assert re.search(r"VALUES \?(value|item) \{ wd:Q\d+ wd:Q\d+ wd:Q\d+ \}", query)
    assert query.rstrip().endswith("LIMIT 100\nOFFSET 0")
    prepareQuery(query)
    assert run(store, query)["results"]["bindings"]


def test_subjects_and_aliases_page_stably_on_the_store(store):
    qids = ["Q467", "Q302", "Q405", "Q5", "Q47652", "Q25173", "Q11471", "Q51752"]
    whole = run(store, subjects_query(qids, 1000, 0))["results"]["bindings"]
    paged = [
        r
        for k in range(0, len(whole), 3)
        for r in run(store, subjects_query(qids, 3, k))["results"]["bindings"]
    ]
    assert paged == whole and len(whole) >= len(qids)
    items = ["Q12418", "Q17738", "Q189540", "Q484048"]
    whole = run(store, aliases_query(items, 1000, 0))["results"]["bindings"]
    paged = [
        r
        for k in range(0, len(whole), 2)
        for r in run(store, aliases_query(items, 2, k))["results"]["bindings"]
    ]
    assert paged == whole
    # the Italian alternative label of the Mona Lisa is filtered out; its English ones are in
    mona = {r["alias"]["value"] for r in whole if r["item"]["value"].endswith("/Q12418")}
    assert mona == {"La Gioconda", "La Joconde"}


@pytest.mark.parametrize("call", [lambda: subjects_query([], 10, 0), lambda: aliases_query(["Q1 }"], 10, 0)])
def test_builders_validate(call):
    with pytest.raises(ValueError):
        call()


# ---- end to end on the local endpoint ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("subjects")
    cfg = write_study_config(root, "demo", collection={"snapshot": str(SNAPSHOT), "controls": False})
    return cfg, col.collect_references(cfg, log=lambda _m: None).set_index("qid")


def test_demo_class_level_subjects_of_famous_works(demo):
    _, refs = demo
    # judged by hand from the snapshot: a description may say "a woman, a flag, a crowd", never "Marianne"
    liberty = refs.loc["Q29530"]
    assert liberty["depicts_classes"] == ["corpse", "crowd", "flag", "woman"]
    assert liberty["named_subjects"] == ["Marianne (Q900000302: fictional character)"]
    assert refs.loc["Q128910", "depicts_classes"] == []  # The Last Supper: only Jesus ...
    assert refs.loc["Q128910", "named_subjects"] == ["Jesus (Q302: human)"]  # ... a human
    assert "Moon (Q405: individual)" in refs.loc["Q45585", "named_subjects"]
    assert "Moon" in refs.loc["Q45585", "depicts"]  # depicts is kept as it was
    assert refs.loc["Q45585", "depicts_classes"] == ["church building", "sky", "star", "tree", "village"]
    assert refs.loc["Q151047", "named_subjects"] == ["Venus (Q47652: fictional character)"]
    assert refs.loc["Q44578", "named_subjects"] == ["RMS Titanic (Q25173: individual)"]
    assert refs.loc["Q1091086", "named_subjects"] == ["Napoleonic Wars (Q34620: individual)"]
    assert refs.loc["Q1415219", "named_subjects"] == ["1936 Summer Olympics (Q8423: individual)"]
    star_wars = refs.loc["Q17738"]
    assert star_wars["depicts_classes"] == ["robot", "spacecraft"]
    assert star_wars["named_subjects"] == ["Darth Vader (Q51752: fictional character)"]
    assert refs.loc["Q471379", "depicts_classes"] == ["fjord", "human", "sky"]  # "human" is a class
    assert refs.loc["Q25729", "named_subjects"] == ["time (Q11471: individual)"]
    assert refs.loc["Q328523", "depicts_classes"] == ["harbour", "ship", "sunrise"]  # ship: a class here


def test_demo_aliases(demo):
    _, refs = demo
    assert refs.loc["Q12418", "aliases"] == ["La Gioconda", "La Joconde"]
    assert refs.loc["Q17738", "aliases"] == ["A New Hope", "Star Wars: Episode IV – A New Hope"]
    assert refs.loc["Q189540", "aliases"] == ["Shichinin no Samurai", "七人の侍"]
    assert refs.loc["Q484048", "aliases"] == ["Amelie", "Le Fabuleux Destin d'Amélie Poulain"]
    assert refs.loc["Q223596", "aliases"] == ["Face Off"]
    assert refs.loc["Q328523", "aliases"] == ["Impression, soleil levant"]
    assert refs.loc["Q25729", "aliases"] == ["Melting Clocks"]  # the double space cleaned
    assert refs.loc["Q175036", "aliases"] == [] and refs.loc["Q44578", "aliases"] == []  # title == label
    for label, aliases in zip(refs["label_clean"], refs["aliases"], strict=True):
        assert label.casefold() not in {a.casefold() for a in aliases}
        assert aliases == sorted(set(aliases), key=lambda s: (s.casefold(), s))


def test_replay_refuses_a_changed_subjects_query(demo):
    cfg, _ = demo
    run_dir = sorted(p for p in cfg.path("data", "raw").iterdir() if (p / "manifest.json").is_file())[-1]
    saved = next(p for p in (run_dir / "sparql").iterdir() if "_subjects_c000_p000" in p.name)
    record = json.loads(saved.read_text())
    assert "VALUES ?prop { wdt:P31 wdt:P279 }" in record["query"]
    record["query"] = record["query"].replace("wdt:P31 wdt:P279", "wdt:P279")
    saved.write_text(json.dumps(record))
    with pytest.raises(SavedResponseError, match="'subjects_c000_p000'.*different query text"):
        col.collect_references(cfg, use_saved_responses=True, log=lambda _m: None)
