"""SPARQL access for stage 01: a polite HTTP client, safe query values, and the local endpoint.

Three jobs, one per section:

- **Polite HTTP** (:class:`RetryPolicy`, :func:`call_with_retries`, :func:`http_get`): a
  descriptive User-Agent, a timeout per request, exponential backoff
  ``min(backoff_cap_s, backoff_base_s * 2**attempt)`` after a 5xx, a timeout, a dropped
  connection or a truncated / malformed body, and ``Retry-After`` honoured on 429 and 503 (a
  server that asks for more than ``retry_after_cap_s`` is an error, never ignored: the Wikidata
  Query Service bans clients that ignore it).  Other 4xx are not retried.  The final error,
  :class:`RequestFailed`, names the endpoint, the HTTP status and the query (or request) name.
  The Commons client of :mod:`iconicity_utils.collect.reference_images` uses the same policy.
- **SPARQL over HTTP** (:class:`SparqlClient`): SPARQLWrapper, exactly as against the Wikidata
  Query Service; every response is checked to be SPARQL-JSON before it is returned, so a
  truncated answer (oxigraph answers 200 and then breaks off when a query fails half-way) is a
  clear :class:`RequestFailed` naming the JSON error, not a crash deep in a parser.
- **Values that go into queries** (:func:`qid`, :func:`string_literal`): a QID from a config is
  validated against ``^Q[1-9][0-9]*$``; a label is written as an escaped SPARQL string literal,
  so quotes, braces, backslashes and newlines in it cannot change the query (text holding a
  ``\\u`` sequence is refused: engines decode codepoint escapes differently).
- **The embedded endpoint** (:class:`LocalOxigraph`): the ``oxigraph`` server binary from the
  ``oxigraph`` PyPI wheel loads a Turtle snapshot into a temporary store, serves it read-only on
  127.0.0.1 at a free port, is polled until it answers a query, and is always stopped when the
  ``with`` block ends (also on errors and KeyboardInterrupt).

Example:
    >>> with LocalOxigraph("data/snapshot/wikidata_demo.ttl") as server:   # doctest: +SKIP
    ...     client = SparqlClient(server.endpoint, RetryPolicy(user_agent="me/0.1 (me@example.org)"))
    ...     data = client.select("probe", "SELECT * WHERE { ?s ?p ?o } LIMIT 1")
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from iconicity_utils.config.study import RetryPolicy

__all__ = [
    "PREFIXES",
    "RetryPolicy",
    "RequestFailed",
    "call_with_retries",
    "http_get",
    "parse_sparql_json",
    "SparqlClient",
    "qid",
    "string_literal",
    "is_portable_literal",
    "LocalOxigraph",
    "LocalEndpointError",
    "find_oxigraph",
]

T = TypeVar("T")

#: Every prefix the stage's queries use.  WDQS predefines them, a standard store does not, so every
#: query declares them all (an undeclared prefix is HTTP 400 "Prefix not found" on oxigraph).
PREFIXES = {
    "wd": "http://www.wikidata.org/entity/",
    "wdt": "http://www.wikidata.org/prop/direct/",
    "wikibase": "http://wikiba.se/ontology#",
    "schema": "http://schema.org/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}

# --------------------------------------------------------------------------------------------
# Values that go into queries
# --------------------------------------------------------------------------------------------

_QID_RE = re.compile(r"Q[1-9][0-9]*")


def qid(value: str) -> str:
    """Validate a Wikidata item id (``"Q45585"``) and return it; anything else raises ValueError."""
    if not isinstance(value, str) or not _QID_RE.fullmatch(value):
        raise ValueError(f"not a Wikidata item id (expected Q followed by digits): {value!r}")
    return value


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def is_portable_literal(text: str) -> bool:
    """Whether :func:`string_literal` can write ``text`` so that every SPARQL engine reads it back.

    SPARQL 1.1 decodes ``\\uXXXX`` / ``\\UXXXXXXXX`` codepoint escapes *before* parsing, and
    engines disagree on whether an escaped backslash protects them (rdflib decodes ``\\\\u0022``
    to a quote, oxigraph keeps it).  Text with a backslash followed by ``u`` or ``U`` is
    therefore refused; it cannot end the literal either way, but it could change its value.
    """
    return re.search(r"\\[uU]", text) is None


def string_literal(text: str, lang: str | None = None) -> str:
    """``text`` as a double-quoted SPARQL string literal, optionally language-tagged.

    Backslash, double quote and the control characters with an ECHAR escape are escaped
    (SPARQL 1.1 grammar, STRING_LITERAL_QUOTE / ECHAR), so the literal always ends where this
    function ends it, whatever the text holds.  ``lang`` must be a BCP-47-like tag.
    """
    if not isinstance(text, str):
        raise TypeError(f"a SPARQL string literal needs a str, got {type(text).__name__}")
    if not is_portable_literal(text):
        raise ValueError(
            f"{text!r} holds a backslash-u sequence; SPARQL engines differ on whether such codepoint "
            "escapes are decoded before parsing, so no literal means the same text on all of them"
        )
    body = "".join(_ESCAPES.get(ch, ch) for ch in text)
    if lang is None:
        return f'"{body}"'
    if not re.fullmatch(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*", lang):
        raise ValueError(f"not a language tag: {lang!r}")
    return f'"{body}"@{lang}'


def prefix_block() -> str:
    """The PREFIX declarations every query starts with."""
    return "\n".join(f"PREFIX {name}: <{iri}>" for name, iri in PREFIXES.items())


# --------------------------------------------------------------------------------------------
# Polite HTTP
# --------------------------------------------------------------------------------------------


# RetryPolicy (user agent, timeout, retries, backoff) is the ``collection.http`` config section,
# defined with the other sections in iconicity_utils.config.study and re-exported here.


class RequestFailed(RuntimeError):
    """A request failed for good; the message names the endpoint, the status and the query name.

    Attributes:
        endpoint: the URL that was asked.
        name: the query (or request) name.
        status: the last HTTP status, or None when no HTTP answer came (timeout, refused, ...).
        reason: what went wrong last.
        attempts: how many attempts were made.
    """

    def __init__(self, endpoint: str, name: str, status: int | None, reason: str, attempts: int):
        self.endpoint = endpoint
        self.name = name
        self.status = status
        self.reason = reason
        self.attempts = attempts
        status_text = f"HTTP {status}" if status is not None else "no HTTP status"
        super().__init__(
            f"request {name!r} to {endpoint} failed after {attempts} attempt(s): {status_text}: {reason}"
        )


class _Attempt(Exception):
    """One failed attempt, classified: whether to retry, and the server's Retry-After."""

    def __init__(self, status: int | None, reason: str, retry: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry = retry
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(body: bytes | str | None, n: int = 200) -> str:
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "..."


RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_AFTER_STATUSES = (429, 503)


def _classify(exc: BaseException) -> _Attempt:
    """Turn the exception of one attempt into a retry decision."""
    from SPARQLWrapper import SPARQLExceptions as sx

    if isinstance(exc, _Attempt):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        status = exc.code
        try:
            body = exc.read()
        except Exception:  # the body of an error page is informative only
            body = b""
        retry_after = _parse_retry_after(exc.headers.get("Retry-After")) if exc.headers else None
        return _Attempt(
            status,
            f"{exc.reason} {_short(body)}".strip(),
            retry=status in RETRY_STATUSES,
            retry_after=retry_after if status in RETRY_AFTER_STATUSES else None,
        )
    sparqlwrapper_status = {
        sx.QueryBadFormed: 400,
        sx.Unauthorized: 401,
        sx.EndPointNotFound: 404,
        sx.URITooLong: 414,
        sx.EndPointInternalError: 500,
    }
    for cls, status in sparqlwrapper_status.items():
        if isinstance(exc, cls):
            return _Attempt(status, _short(str(exc), 400), retry=status in RETRY_STATUSES)
    if isinstance(exc, TimeoutError | socket.timeout):
        return _Attempt(None, f"timed out: {exc}", retry=True)
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError | socket.timeout):
            return _Attempt(None, f"timed out: {exc.reason}", retry=True)
        return _Attempt(None, f"connection failed: {exc.reason}", retry=True)
    if isinstance(exc, http.client.IncompleteRead):
        return _Attempt(None, f"truncated response: {exc!r}", retry=True)
    if isinstance(exc, http.client.HTTPException | ConnectionError):
        return _Attempt(None, f"connection error: {type(exc).__name__}: {exc}", retry=True)
    raise exc  # a programming error: not ours to retry


def call_with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    endpoint: str,
    name: str,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> T:
    """Run ``attempt()`` until it returns, retrying as :class:`RetryPolicy` says.

    Args:
        attempt: one request; raises urllib / SPARQLWrapper / socket errors, or ``_Attempt``.
        policy: timeouts, retries and waits.
        endpoint: named in the error.
        name: the query or request name, named in the error.
        sleep: the wait function (tests pass a recorder so nothing really sleeps).
        log: where to report each retry (default: stderr).

    Raises:
        RequestFailed: the request did not succeed within ``policy.max_retries`` retries, the
            error is not retryable (e.g. HTTP 400), or the server asked to wait longer than
            ``policy.retry_after_cap_s``.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    last: _Attempt | None = None
    for n in range(policy.max_retries + 1):
        try:
            return attempt()
        except Exception as exc:
            last = _classify(exc)
        if not last.retry:
            raise RequestFailed(endpoint, name, last.status, last.reason, n + 1)
        if n == policy.max_retries:
            break
        wait = policy.backoff(n)
        if last.retry_after is not None:
            if last.retry_after > policy.retry_after_cap_s:
                raise RequestFailed(
                    endpoint,
                    name,
                    last.status,
                    f"server asked to wait {last.retry_after:g} s (Retry-After), more than "
                    f"retry_after_cap_s = {policy.retry_after_cap_s:g} s; try again later",
                    n + 1,
                )
            wait = last.retry_after
        status = f"HTTP {last.status}" if last.status is not None else "no status"
        log(f"[retry] {name} @ {endpoint}: {status}: {last.reason}; waiting {wait:g} s")
        sleep(wait)
    assert last is not None
    raise RequestFailed(endpoint, name, last.status, last.reason, policy.max_retries + 1)


def http_get(
    url: str,
    params: Mapping[str, str] | None,
    *,
    policy: RetryPolicy,
    name: str,
    parse: Callable[[bytes], T] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T | bytes:
    """GET ``url?params`` politely; return the body, or ``parse(body)`` (a ValueError is retried)."""
    import urllib.parse

    full = url if not params else f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params)}"

    def attempt():
        request = urllib.request.Request(full, headers={"User-Agent": policy.user_agent})
        with urllib.request.urlopen(request, timeout=policy.timeout_s) as response:
            body = response.read()
        if parse is None:
            return body
        try:
            return parse(body)
        except ValueError as exc:
            raise _Attempt(200, f"malformed response ({exc}); body: {_short(body)}", retry=True) from exc

    return call_with_retries(attempt, policy=policy, endpoint=url, name=name, sleep=sleep)


# --------------------------------------------------------------------------------------------
# SPARQL over HTTP
# --------------------------------------------------------------------------------------------


def parse_sparql_json(body: bytes | str) -> dict[str, Any]:
    """Decode a SPARQL 1.1 JSON results document; ValueError says what is wrong with it.

    A SELECT result must have ``head.vars`` (a list) and ``results.bindings`` (a list of
    objects); an ASK result a boolean ``boolean``.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        tail = text[-80:].replace("\n", " ")
        raise ValueError(
            f"truncated or malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno}, "
            f"char {exc.pos} of {len(text)}); the body ends with {tail!r}"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"SPARQL-JSON must be an object, got {type(data).__name__}")
    if "boolean" in data:
        if not isinstance(data["boolean"], bool):
            raise ValueError("SPARQL-JSON ASK result without a boolean 'boolean'")
        return data
    head, results = data.get("head"), data.get("results")
    if not isinstance(head, dict) or not isinstance(head.get("vars", []), list):
        raise ValueError("SPARQL-JSON without 'head.vars'")
    if not isinstance(results, dict) or not isinstance(results.get("bindings"), list):
        raise ValueError("SPARQL-JSON without a 'results.bindings' list")
    for i, row in enumerate(results["bindings"]):
        if not isinstance(row, dict):
            raise ValueError(f"SPARQL-JSON binding {i} is not an object")
    return data


class SparqlClient:
    """SELECT queries over HTTP through SPARQLWrapper, with the retry policy.

    Args:
        endpoint: the query URL, e.g. ``https://query.wikidata.org/sparql``.
        policy: User-Agent, timeout and retries.
        sleep: the wait function between retries (injectable for tests).
    """

    def __init__(self, endpoint: str, policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep):
        self.endpoint = endpoint
        self.policy = policy
        self.sleep = sleep

    def _attempt(self, query: str) -> dict[str, Any]:
        from SPARQLWrapper import GET, JSON, SPARQLWrapper

        wrapper = SPARQLWrapper(self.endpoint, agent=self.policy.user_agent)
        wrapper.setQuery(query)
        wrapper.setMethod(GET)
        wrapper.setReturnFormat(JSON)
        # setTimeout() casts to int, which turns 0.5 s into 0 = "no timeout"; urlopen takes floats.
        wrapper.timeout = float(self.policy.timeout_s)
        result = wrapper.query()
        with contextlib.closing(result.response) as response:
            status = getattr(response, "status", 200)
            body = response.read()
        try:
            return parse_sparql_json(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Attempt(status, str(exc), retry=True) from exc

    def select(self, name: str, query: str) -> dict[str, Any]:
        """Run one query; return its SPARQL-JSON (a dict).  Raises :class:`RequestFailed`."""
        return call_with_retries(
            lambda: self._attempt(query),
            policy=self.policy,
            endpoint=self.endpoint,
            name=name,
            sleep=self.sleep,
        )


# --------------------------------------------------------------------------------------------
# The embedded endpoint: the oxigraph server from PyPI
# --------------------------------------------------------------------------------------------


class LocalEndpointError(RuntimeError):
    """The local oxigraph server could not be found, loaded or started."""


def find_oxigraph() -> Path:
    """The ``oxigraph`` server binary of the ``oxigraph`` wheel: beside this Python, else on PATH."""
    candidate = Path(sys.executable).parent / "oxigraph"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("oxigraph")
    if found:
        return Path(found)
    raise LocalEndpointError(
        f"the oxigraph server binary was found neither at {candidate} nor on PATH; "
        "install the 'oxigraph' PyPI package into this environment (pip install oxigraph)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalOxigraph:
    """A read-only oxigraph SPARQL server over a Turtle snapshot, as a context manager.

    ``with LocalOxigraph(snapshot) as server:`` loads the snapshot into a temporary store, starts
    ``oxigraph serve-read-only`` on 127.0.0.1 at a free port, waits until it answers an ASK
    query, and yields itself (``server.endpoint`` is the query URL).  Leaving the block stops the
    server and deletes the store, whatever happened inside.

    Args:
        snapshot: a Turtle (``.ttl``) file.
        binary: the oxigraph binary (default: :func:`find_oxigraph`).
        startup_timeout_s: how long to wait for the server to answer.
    """

    def __init__(
        self, snapshot: str | Path, binary: str | Path | None = None, startup_timeout_s: float = 20.0
    ):
        self.snapshot = Path(snapshot)
        self.binary = Path(binary) if binary else None
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise LocalEndpointError("the local oxigraph server is not running (use it as a context manager)")
        return f"http://127.0.0.1:{self.port}/query"

    def version(self) -> str:
        """``oxigraph --version`` of the binary, e.g. ``"oxigraph 0.5.13"``."""
        binary = self.binary or find_oxigraph()
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip() or out.stderr.strip()

    def _load(self, binary: Path, store: Path) -> None:
        res = subprocess.run(
            [str(binary), "load", "--location", str(store), "--file", str(self.snapshot)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if res.returncode != 0:
            raise LocalEndpointError(
                f"oxigraph could not load the snapshot {self.snapshot}: {res.stderr.strip() or res.stdout.strip()}"
            )

    def _ready(self) -> bool:
        import urllib.parse

        url = f"http://127.0.0.1:{self.port}/query?" + urllib.parse.urlencode({"query": "ASK {}"})
        request = urllib.request.Request(url, headers={"Accept": "application/sparql-results+json"})
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return response.status == 200
        except (OSError, http.client.HTTPException):
            return False

    def start(self) -> LocalOxigraph:
        if not self.snapshot.is_file():
            raise LocalEndpointError(f"snapshot not found: {self.snapshot}")
        binary = self.binary or find_oxigraph()
        self._tmp = tempfile.TemporaryDirectory(prefix="iconicity-oxigraph-")
        store = Path(self._tmp.name) / "store"
        try:
            self._load(binary, store)
            for _ in range(5):  # a free port can be taken between the probe and the bind: retry
                self.port = _free_port()
                log_path = Path(self._tmp.name) / f"server-{self.port}.log"
                with open(log_path, "wb") as log:
                    self.process = subprocess.Popen(
                        [
                            str(binary),
                            "serve-read-only",
                            "--location",
                            str(store),
                            "--bind",
                            f"127.0.0.1:{self.port}",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                deadline = time.monotonic() + self.startup_timeout_s
                while time.monotonic() < deadline:
                    if self.process.poll() is not None:
                        break
                    if self._ready():
                        return self
                    time.sleep(0.05)
                output = log_path.read_text(errors="replace").strip()
                alive = self.process.poll() is None
                self._stop_process()
                if alive:
                    raise LocalEndpointError(
                        f"oxigraph did not answer on 127.0.0.1:{self.port} within {self.startup_timeout_s:g} s: {output}"
                    )
                if "in use" not in output.lower():
                    raise LocalEndpointError(f"oxigraph serve-read-only exited: {output}")
            raise LocalEndpointError("oxigraph could not bind a free port on 127.0.0.1 after 5 tries")
        except BaseException:
            self.stop()
            raise

    def _stop_process(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop the server (if running) and delete the temporary store."""
        self._stop_process()
        self.port = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalOxigraph:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
