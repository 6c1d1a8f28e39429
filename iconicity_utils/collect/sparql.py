"""SPARQL for stage 01: safe query values, the shared PREFIXes, SPARQL-JSON, and the client.

- **Values that go into queries** (:func:`qid`, :func:`string_literal`): a QID from a config is
  validated against ``^Q[1-9][0-9]*$``; a label is written as an escaped SPARQL string literal,
  so quotes, braces, backslashes and newlines in it cannot change the query (text holding a
  ``\\u`` sequence is refused: engines decode codepoint escapes differently).
  :func:`prefix_block` declares every prefix the queries use (WDQS predefines them, a standard
  store does not).
- **SPARQL over HTTP** (:class:`SparqlClient`): a GET of the SPARQL 1.1 protocol through the
  polite client of :mod:`iconicity_utils.core.http` (User-Agent, timeouts, backoff,
  ``Retry-After``), the same against the Wikidata Query Service and the demo's local oxigraph
  (``collection.endpoint: local``, reached by name: :mod:`iconicity_utils.core.plugins`).  Every
  response is checked to be SPARQL-JSON before it is returned, so a truncated answer (oxigraph
  answers 200 and then breaks off when a query fails half-way) is retried, then a clear
  :class:`~iconicity_utils.core.http.RequestFailed` naming the JSON error.

Example:
    >>> client = SparqlClient("https://query.wikidata.org/sparql", RetryPolicy())  # doctest: +SKIP
    >>> data = client.select("probe", "SELECT * WHERE { ?s ?p ?o } LIMIT 1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from iconicity_utils.config.sections import RetryPolicy
from iconicity_utils.core.http import http_get

__all__ = [
    "PREFIXES",
    "parse_sparql_json",
    "SparqlClient",
    "qid",
    "string_literal",
    "is_portable_literal",
    "prefix_block",
    "bindings",
    "term",
    "literal_value",
    "entity_value",
]

#: Every prefix the stage's queries use.  WDQS predefines them, a standard store does not, so every
#: query declares them all (an undeclared prefix is HTTP 400 "Prefix not found" on oxigraph).
PREFIXES = {
    "wd": "http://www.wikidata.org/entity/",
    "wdt": "http://www.wikidata.org/prop/direct/",
    "wikibase": "http://wikiba.se/ontology#",
    "schema": "http://schema.org/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
}
#: the Accept header of a SPARQL-JSON request (as SPARQLWrapper sends it)
SPARQL_JSON_ACCEPT = "application/sparql-results+json,application/json,text/javascript,application/javascript"

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
# Reading SPARQL-JSON rows (every malformed row a ValueError naming the query and the row)
# --------------------------------------------------------------------------------------------

_ITEM_RE = r"Q[1-9][0-9]*"


def bindings(data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The rows of a SELECT result; ValueError naming the query when there are none to read."""
    try:
        rows = data["results"]["bindings"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{name}: not a SPARQL-JSON SELECT result (no results.bindings)") from exc
    if not isinstance(rows, list):
        raise ValueError(f"{name}: results.bindings is not a list")
    return rows


def term(row: dict[str, Any], var: str) -> dict[str, Any] | None:
    """The RDF term bound to ``?var`` in ``row``, or None."""
    value = row.get(var)
    return value if isinstance(value, dict) and "value" in value else None


def literal_value(row: dict[str, Any], var: str, lang: str | None = None) -> str | None:
    """The lexical form of the literal bound to ``?var`` (of language ``lang`` when given), or None."""
    value = term(row, var)
    if value is None or value.get("type") not in ("literal", "typed-literal"):
        return None
    if lang is not None and value.get("xml:lang", "").lower() != lang:
        return None
    return value["value"]


def entity_value(
    row: dict[str, Any],
    var: str,
    name: str,
    index: int,
    required: bool = True,
    prefix: str = PREFIXES["wd"],
    pattern: str = _ITEM_RE,
) -> str | None:
    """The id (``Q42``; with ``prefix=PREFIXES["wdt"]``, ``P31``) of the IRI bound to ``?var``.

    Raises:
        ValueError: naming the query and the row, when ``required`` and ``?var`` is missing, not an
            IRI, or not ``prefix`` followed by an id matching ``pattern`` (otherwise None).
    """
    value = term(row, var)
    if value is None or value.get("type") != "uri":
        if required:
            raise ValueError(f"{name}, row {index}: ?{var} is missing or not an IRI: {value!r}")
        return None
    iri = value["value"]
    if not iri.startswith(prefix) or not re.fullmatch(pattern, iri[len(prefix) :]):
        if required:
            raise ValueError(f"{name}, row {index}: ?{var} is not a Wikidata IRI {prefix}{pattern}: {iri!r}")
        return None
    return iri[len(prefix) :]


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
    """SELECT queries over HTTP (a SPARQL 1.1 protocol GET), with the retry policy.

    Args:
        endpoint: the query URL, e.g. ``https://query.wikidata.org/sparql``.
        policy: User-Agent, timeout and retries (``collection.http``).
        sleep: the wait function between retries (injectable for tests).
    """

    def __init__(self, endpoint: str, policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep):
        self.endpoint = endpoint
        self.policy = policy
        self.sleep = sleep

    def select(self, name: str, query: str) -> dict[str, Any]:
        """Run one query; return its SPARQL-JSON (a dict).  Raises :class:`RequestFailed`."""
        return http_get(
            self.endpoint,
            {"query": query, "format": "json"},
            policy=self.policy,
            name=name,
            parse=parse_sparql_json,
            sleep=self.sleep,
            headers={"Accept": SPARQL_JSON_ACCEPT},
        )
