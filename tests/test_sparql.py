"""Safe query values and SPARQL-JSON (:mod:`iconicity_utils.collect.sparql`)."""

from __future__ import annotations

import json

import pyoxigraph as ox
import pytest

from iconicity_utils.collect import sparql

OK = json.dumps(
    {"head": {"vars": ["s"]}, "results": {"bindings": [{"s": {"type": "literal", "value": "x"}}]}}
)
TRUNCATED = b'{"head":{"vars":["s"]},"results":{"bindings":[{"s":{"type":"literal","val'


# ---- values that go into queries ------------------------------------------------------------


@pytest.mark.parametrize("good", ["Q1", "Q45585", "Q3305213"])
def test_qid_accepts_item_ids(good):
    assert sparql.qid(good) == good


@pytest.mark.parametrize(
    "bad", ["", "Q", "Q0", "q42", "P31", "Q42 ", "Q42}", "Q42 . ?s ?p ?o", "Q4\n2", 42, None]
)
def test_qid_rejects_everything_else(bad):
    with pytest.raises(ValueError, match="not a Wikidata item id"):
        sparql.qid(bad)


HOSTILE = [
    'He said "hi"',
    "back\\slash",
    "brace } ?s ?p ?o . { ",
    'x"@en } UNION { ?item ?p ?o } #',
    "new\nline and\rreturn\tand tab",
    "C:\\new\\dir \\x41",
    "unicode: Amélie, 七人の侍, 🎬",
    "../../etc/passwd",
    "",
]


@pytest.mark.parametrize("label", HOSTILE)
def test_string_literal_matches_exactly_that_label_and_nothing_else(label):
    """The escaped literal finds the one item carrying the label, in a store built without our escaping."""
    store = ox.Store()
    rdfs_label = ox.NamedNode("http://www.w3.org/2000/01/rdf-schema#label")
    target = ox.NamedNode("http://www.wikidata.org/entity/Q1")
    store.add(ox.Quad(target, rdfs_label, ox.Literal(label, language="en")))
    for i, other in enumerate(["decoy", 'He said "hi" twice', "brace"], start=2):
        store.add(
            ox.Quad(
                ox.NamedNode(f"http://www.wikidata.org/entity/Q{i}"),
                rdfs_label,
                ox.Literal(other, language="en"),
            )
        )
    query = (
        f"{sparql.prefix_block()}\nSELECT ?item WHERE {{ VALUES ?label {{ {sparql.string_literal(label, 'en')} }} "
        "?item rdfs:label ?label . }"
    )
    rows = [row["item"].value for row in store.query(query)]
    assert rows == ["http://www.wikidata.org/entity/Q1"]


@pytest.mark.parametrize("label", HOSTILE)
def test_string_literal_reads_back_identically_in_a_second_parser(label):
    import rdflib

    rows = rdflib.Graph().query(f"SELECT ?x WHERE {{ VALUES ?x {{ {sparql.string_literal(label)} }} }}")
    assert [str(row[0]) for row in rows] == [label]


@pytest.mark.parametrize("label", ["\\u0022 quote as text", "tail \\U0001F3AC"])
def test_string_literal_refuses_codepoint_escape_look_alikes(label):
    assert not sparql.is_portable_literal(label)
    with pytest.raises(ValueError, match="backslash-u"):
        sparql.string_literal(label)


def test_string_literal_rejects_a_bad_language_tag():
    with pytest.raises(ValueError, match="language tag"):
        sparql.string_literal("x", 'en" } ')


# ---- SPARQL-JSON ------------------------------------------------------------------------------


def test_parse_sparql_json_accepts_select_and_ask():
    assert sparql.parse_sparql_json(OK)["results"]["bindings"][0]["s"]["value"] == "x"
    assert sparql.parse_sparql_json(b'{"head": {}, "boolean": true}')["boolean"] is True


def test_parse_sparql_json_names_where_a_truncated_body_breaks_off():
    with pytest.raises(ValueError, match=r"truncated or malformed JSON .*char \d+ of 73"):
        sparql.parse_sparql_json(TRUNCATED)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[]", "must be an object"),
        ('{"head": {"vars": []}}', "results.bindings"),
        ('{"results": {"bindings": []}}', "head.vars"),
        ('{"head": {"vars": []}, "results": {"bindings": [1]}}', "binding 0 is not an object"),
    ],
)
def test_parse_sparql_json_rejects_other_shapes(body, problem):
    with pytest.raises(ValueError, match=problem):
        sparql.parse_sparql_json(body)
