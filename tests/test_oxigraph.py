"""The demo's local SPARQL endpoint (:mod:`iconicity_utils.demo.oxigraph`)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from iconicity_utils.collect import sparql
from iconicity_utils.config.sections import RetryPolicy
from iconicity_utils.core import plugins
from iconicity_utils.demo.oxigraph import LocalEndpointError, LocalOxigraph, find_oxigraph

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "data" / "snapshot" / "wikidata_demo.ttl"
UA = "iconicity-tests/0.1 (https://example.org/iconicity; tests@example.org)"


def policy() -> RetryPolicy:
    return RetryPolicy(user_agent=UA, timeout_s=2.0, max_retries=3, backoff_base_s=0.01, backoff_cap_s=0.05)


def test_the_local_endpoint_is_the_registered_provider():
    assert plugins.provider("sparql_endpoint", "local") is LocalOxigraph


# ---- the local oxigraph server --------------------------------------------------------------------


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_local_oxigraph_serves_the_snapshot_and_always_stops():
    server = LocalOxigraph(SNAPSHOT)
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
    with pytest.raises(LocalEndpointError, match="snapshot not found"):
        LocalOxigraph(tmp_path / "nope.ttl").start()
    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix wd: <http://www.wikidata.org/entity/> .\nwd:Q1 wd:P31 .\n")
    with pytest.raises(LocalEndpointError, match="could not load the snapshot .*bad.ttl"):
        LocalOxigraph(bad).start()


def test_find_oxigraph_finds_the_wheel_binary():
    binary = find_oxigraph()
    assert binary.name == "oxigraph" and binary.is_file()


def test_endpoint_is_an_error_before_start():
    with pytest.raises(LocalEndpointError, match="not running"):
        _ = LocalOxigraph(SNAPSHOT).endpoint


def test_the_snapshot_header_states_its_provenance():
    head = SNAPSHOT.read_text(encoding="utf-8").split("@prefix", 1)[0]
    assert "HAND-WRITTEN FOR THE OFFLINE DEMO" in head
    assert "TO THE BEST OF OUR KNOWLEDGE" in head
    assert "ILLUSTRATIVE, NOT MEASURED" in head
