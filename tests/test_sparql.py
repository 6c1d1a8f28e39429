"""The polite SPARQL/HTTP client, safe query values, and the local oxigraph endpoint."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pyoxigraph as ox
import pytest
from collection_http import Reply, ScriptedServer

from iconicity_utils.collect import sparql

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "data" / "snapshot" / "wikidata_demo.ttl"
OK = json.dumps(
    {"head": {"vars": ["s"]}, "results": {"bindings": [{"s": {"type": "literal", "value": "x"}}]}}
)
TRUNCATED = b'{"head":{"vars":["s"]},"results":{"bindings":[{"s":{"type":"literal","val'
UA = "iconicity-tests/0.1 (https://example.org/iconicity; tests@example.org)"


class Waits(list):
    """A fake ``sleep`` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(**kw) -> sparql.RetryPolicy:
    base = dict(user_agent=UA, timeout_s=2.0, max_retries=3, backoff_base_s=0.01, backoff_cap_s=0.05)
    base.update(kw)
    return sparql.RetryPolicy(**base)


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


# ---- the retry policy against a local HTTP server -------------------------------------------------


def select(server: ScriptedServer, waits: Waits, **kw):
    client = sparql.SparqlClient(server.url("/sparql"), policy(**kw), sleep=waits)
    return client.select("probe", "SELECT ?s WHERE { ?s ?p ?o }")


def test_429_with_retry_after_is_honoured_and_the_user_agent_is_sent():
    waits = Waits()
    script = {
        "/sparql": [Reply(429, b"slow down", {"Retry-After": "3"}, "text/plain"), Reply(200, OK.encode())]
    }
    with ScriptedServer(script) as server:
        data = select(server, waits)
    assert data["results"]["bindings"][0]["s"]["value"] == "x"
    assert waits == [3.0]  # the server's Retry-After, not the backoff
    assert len(server.seen) == 2
    assert all(s.headers["User-Agent"] == UA for s in server.seen)
    assert server.seen[0].query["query"] == ["SELECT ?s WHERE { ?s ?p ?o }"]


def test_503_with_an_http_date_retry_after_is_honoured():
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    waits = Waits()
    script = {"/sparql": [Reply(503, b"busy", {"Retry-After": when}, "text/plain"), Reply(200, OK.encode())]}
    with ScriptedServer(script) as server:
        select(server, waits)
    assert len(waits) == 1 and 25 <= waits[0] <= 31


def test_a_retry_after_beyond_the_cap_is_an_error_not_a_shorter_wait():
    waits = Waits()
    server = ScriptedServer({"/sparql": [Reply(429, b"", {"Retry-After": "3600"}, "text/plain")]})
    with (
        server,
        pytest.raises(sparql.RequestFailed, match=r"HTTP 429.*Retry-After.*retry_after_cap_s") as err,
    ):
        select(server, waits, retry_after_cap_s=60)
    assert waits == [] and len(server.seen) == 1
    assert err.value.status == 429 and err.value.endpoint == server.url("/sparql")


def test_500_is_retried_with_exponential_backoff():
    waits = Waits()
    script = {"/sparql": [Reply(500, b"oops", content_type="text/plain")] * 3 + [Reply(200, OK.encode())]}
    with ScriptedServer(script) as server:
        select(server, waits, max_retries=3, backoff_base_s=0.01, backoff_cap_s=0.03)
    assert waits == [0.01, 0.02, 0.03]  # base * 2**k, capped
    assert len(server.seen) == 4


def test_500_for_good_names_endpoint_status_and_query():
    waits = Waits()
    server = ScriptedServer({"/sparql": [Reply(500, b"internal error", content_type="text/plain")]})
    with server, pytest.raises(sparql.RequestFailed) as err:
        select(server, waits, max_retries=2)
    message = str(err.value)
    assert server.url("/sparql") in message and "HTTP 500" in message and "'probe'" in message
    assert err.value.attempts == 3 and len(server.seen) == 3 and len(waits) == 2


def test_a_timeout_is_retried():
    waits = Waits()
    script = {"/sparql": [Reply(200, OK.encode(), delay_s=1.0), Reply(200, OK.encode())]}
    with ScriptedServer(script) as server:
        data = select(server, waits, timeout_s=0.2)
    assert data["head"]["vars"] == ["s"]
    assert waits == [0.01] and len(server.seen) == 2


def test_timeouts_for_good_say_so():
    waits = Waits()
    server = ScriptedServer({"/sparql": [Reply(200, OK.encode(), delay_s=0.6)]})
    with server, pytest.raises(sparql.RequestFailed, match=r"no HTTP status: timed out") as err:
        select(server, waits, timeout_s=0.15, max_retries=1)
    assert err.value.status is None and err.value.attempts == 2


def test_truncated_json_is_retried_then_a_clear_error():
    waits = Waits()
    server = ScriptedServer({"/sparql": [Reply(200, TRUNCATED)]})
    with server, pytest.raises(sparql.RequestFailed) as err:
        select(server, waits, max_retries=2)
    message = str(err.value)
    assert "truncated or malformed JSON" in message and "HTTP 200" in message and "'probe'" in message
    assert len(server.seen) == 3


def test_truncated_json_once_then_good_succeeds():
    waits = Waits()
    with ScriptedServer({"/sparql": [Reply(200, TRUNCATED), Reply(200, OK.encode())]}) as server:
        assert select(server, waits)["head"]["vars"] == ["s"]
    assert waits == [0.01]


def test_a_transfer_cut_short_is_retried():
    waits = Waits()
    script = {"/sparql": [Reply(200, OK.encode()[:20], short_by=40), Reply(200, OK.encode())]}
    with ScriptedServer(script) as server:
        assert select(server, waits)["head"]["vars"] == ["s"]
    assert len(server.seen) == 2


def test_a_bad_query_is_not_retried():
    waits = Waits()
    server = ScriptedServer({"/sparql": [Reply(400, b"Prefix not found", content_type="text/plain")]})
    with server, pytest.raises(sparql.RequestFailed, match=r"HTTP 400") as err:
        select(server, waits)
    assert err.value.attempts == 1 and waits == [] and len(server.seen) == 1


def test_a_refused_connection_is_retried_then_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits = Waits()
    client = sparql.SparqlClient(f"http://127.0.0.1:{port}/sparql", policy(max_retries=1), sleep=waits)
    with pytest.raises(sparql.RequestFailed, match="connection failed"):
        client.select("probe", "SELECT * WHERE { ?s ?p ?o }")
    assert len(waits) == 1


def test_http_get_uses_the_same_policy():
    waits = Waits()
    script = {
        "/api": [
            Reply(429, b"", {"Retry-After": "2"}),
            Reply(200, b'{"ok": 1}', content_type="application/json"),
        ]
    }
    with ScriptedServer(script) as server:
        data = sparql.http_get(
            server.url("/api"), {"a": "b c"}, policy=policy(), name="api", parse=json.loads, sleep=waits
        )
    assert data == {"ok": 1} and waits == [2.0]
    assert server.seen[-1].query == {"a": ["b c"]} and server.seen[-1].headers["User-Agent"] == UA


def test_backoff_grows_and_is_capped():
    p = policy(backoff_base_s=1.0, backoff_cap_s=5.0)
    assert [p.backoff(k) for k in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_policy_requires_a_user_agent():
    with pytest.raises(ValueError, match="User-Agent"):
        sparql.RetryPolicy(user_agent="  ")


def test_policy_from_config(demo_cfg):
    p = demo_cfg.collection.http
    assert isinstance(p, sparql.RetryPolicy)
    assert p.user_agent == sparql.RetryPolicy().user_agent  # the demo keeps the package's User-Agent
    assert (p.timeout_s, p.max_retries, p.backoff_base_s, p.backoff_cap_s) == (30.0, 3, 0.5, 5.0)
    assert p.retry_after_cap_s == 30.0


# ---- the local oxigraph server --------------------------------------------------------------------


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_local_oxigraph_serves_the_snapshot_and_always_stops():
    server = sparql.LocalOxigraph(SNAPSHOT)
    with pytest.raises(RuntimeError, match="boom"), server:
        port = server.port
        store_dir = Path(server._tmp.name)
        client = sparql.SparqlClient(server.endpoint, policy())
        data = client.select(
            "count", f"{sparql.prefix_block()}\nSELECT (COUNT(*) AS ?n) WHERE {{ ?s wikibase:sitelinks ?o }}"
        )
        assert int(data["results"]["bindings"][0]["n"]["value"]) > 40
        assert _port_open(port)
        raise RuntimeError("boom")
    assert server.process is None and server.port is None
    assert not _port_open(port)
    assert not store_dir.exists()


def test_local_oxigraph_reports_a_missing_or_broken_snapshot(tmp_path):
    with pytest.raises(sparql.LocalEndpointError, match="snapshot not found"):
        sparql.LocalOxigraph(tmp_path / "nope.ttl").start()
    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix wd: <http://www.wikidata.org/entity/> .\nwd:Q1 wd:P31 .\n")
    with pytest.raises(sparql.LocalEndpointError, match="could not load the snapshot .*bad.ttl"):
        sparql.LocalOxigraph(bad).start()


def test_find_oxigraph_finds_the_wheel_binary():
    binary = sparql.find_oxigraph()
    assert binary.name == "oxigraph" and binary.is_file()


def test_endpoint_is_an_error_before_start():
    with pytest.raises(sparql.LocalEndpointError, match="not running"):
        _ = sparql.LocalOxigraph(SNAPSHOT).endpoint


def test_the_snapshot_header_states_its_provenance():
    head = SNAPSHOT.read_text(encoding="utf-8").split("@prefix", 1)[0]
    assert "HAND-WRITTEN FOR THE OFFLINE DEMO" in head
    assert "TO THE BEST OF OUR KNOWLEDGE" in head
    assert "ILLUSTRATIVE, NOT MEASURED" in head
