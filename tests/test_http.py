"""The polite HTTP client (:mod:`iconicity_utils.core.http`) against a scripted local server:
retries, backoff, Retry-After, timeouts, truncated bodies, and the SPARQL client built on it."""

from __future__ import annotations

import json
import socket

import pytest
from collection_http import Reply, ScriptedServer

from iconicity_utils.collect import sparql
from iconicity_utils.config.sections import RetryPolicy
from iconicity_utils.core.http import RequestFailed, http_get

OK = json.dumps(
    {"head": {"vars": ["s"]}, "results": {"bindings": [{"s": {"type": "literal", "value": "x"}}]}}
)
TRUNCATED = b'{"head":{"vars":["s"]},"results":{"bindings":[{"s":{"type":"literal","val'

UA = "iconicity-tests/0.1 (https://example.org/iconicity; tests@example.org)"


class Waits(list):
    """A fake ``sleep`` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(**kw) -> RetryPolicy:
    base = dict(user_agent=UA, timeout_s=2.0, max_retries=3, backoff_base_s=0.01, backoff_cap_s=0.05)
    base.update(kw)
    return RetryPolicy(**base)


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
        pytest.raises(RequestFailed, match=r"HTTP 429.*Retry-After.*retry_after_cap_s") as err,
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
    with server, pytest.raises(RequestFailed) as err:
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
    with server, pytest.raises(RequestFailed, match=r"no HTTP status: timed out") as err:
        select(server, waits, timeout_s=0.15, max_retries=1)
    assert err.value.status is None and err.value.attempts == 2


def test_truncated_json_is_retried_then_a_clear_error():
    waits = Waits()
    server = ScriptedServer({"/sparql": [Reply(200, TRUNCATED)]})
    with server, pytest.raises(RequestFailed) as err:
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
    with server, pytest.raises(RequestFailed, match=r"HTTP 400") as err:
        select(server, waits)
    assert err.value.attempts == 1 and waits == [] and len(server.seen) == 1


def test_a_refused_connection_is_retried_then_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits = Waits()
    client = sparql.SparqlClient(f"http://127.0.0.1:{port}/sparql", policy(max_retries=1), sleep=waits)
    with pytest.raises(RequestFailed, match="connection failed"):
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
        data = http_get(
            server.url("/api"), {"a": "b c"}, policy=policy(), name="api", parse=json.loads, sleep=waits
        )
    assert data == {"ok": 1} and waits == [2.0]
    assert server.seen[-1].query == {"a": ["b c"]} and server.seen[-1].headers["User-Agent"] == UA


def test_backoff_grows_and_is_capped():
    p = policy(backoff_base_s=1.0, backoff_cap_s=5.0)
    assert [p.backoff(k) for k in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_policy_requires_a_user_agent():
    with pytest.raises(ValueError, match="User-Agent"):
        RetryPolicy(user_agent="  ")


def test_policy_from_config(demo_cfg):
    p = demo_cfg.collection.http
    assert isinstance(p, RetryPolicy)
    assert p.user_agent == RetryPolicy().user_agent  # the demo keeps the package's User-Agent
    assert (p.timeout_s, p.max_retries, p.backoff_base_s, p.backoff_cap_s) == (30.0, 3, 0.5, 5.0)
    assert p.retry_after_cap_s == 30.0
