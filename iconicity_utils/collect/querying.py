"""Stage 01's queries, run: the top-K references of each kind, their properties and homonyms.

:func:`query_references` runs through any client with ``select(name, query)`` (live, recording
or replaying: :mod:`iconicity_utils.collect.recording`), page after page, and returns the
references table (:mod:`iconicity_utils.collect.parse`).  :func:`open_endpoint` yields the
endpoint to ask: the configured URL, or for ``collection.endpoint: local`` the demo's local
server, reached by name (the ``sparql_endpoint`` provider ``local``,
:func:`iconicity_utils.core.plugins.provider`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from iconicity_utils.collect import sparql
from iconicity_utils.collect.labels import clean_label
from iconicity_utils.collect.parse import (
    Candidate,
    ItemValues,
    bindings,
    build_references_table,
    parse_candidates,
    parse_homonyms,
    parse_properties,
)
from iconicity_utils.collect.queries import VALUES_CHUNK, candidates_query, homonyms_query, properties_query
from iconicity_utils.core import plugins
from iconicity_utils.core.constants import KINDS

__all__ = ["kind_classes", "open_endpoint", "query_references"]


def kind_classes(cfg, kind: str) -> list[str]:
    classes = cfg.collection.static_classes if kind == "static" else cfg.collection.dynamic_classes
    return [sparql.qid(c) for c in classes]


def _check_paging(rows: list, previous: list | None, name: str, client) -> None:
    """A full page identical to the one before means the endpoint ignores OFFSET: stop, loudly."""
    if previous is not None and rows and rows == previous:
        endpoint = getattr(client, "endpoint", None) or getattr(
            getattr(client, "client", None), "endpoint", "?"
        )
        raise ValueError(
            f"{name}: the endpoint {endpoint} returned the same page twice (it ignores OFFSET?); "
            "paging cannot go on"
        )


def _paged(
    client, prefix: str, query: Callable[[int, int], str], page_size: int, report
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Select ``<prefix>_pNNN`` page after page (``query(limit, offset)``); yield ``(name, data)``.

    Paging ends after a short page; a page identical to the one before is an error.
    """
    previous: list | None = None
    for page in itertools.count():
        name = f"{prefix}_p{page:03d}"
        data = client.select(name, query(page_size, page * page_size))
        report["queries"] += 1
        rows = bindings(data, name)
        _check_paging(rows, previous, name, client)
        yield name, data
        if len(rows) < page_size:
            return
        previous = rows


def _select_candidates(client, cfg, kind: str, report, log) -> list[Candidate]:
    """The ``top_k_<kind>`` most linked items with an English label, in rank order.

    Items without one are skipped, listed in ``report["skipped"]`` and logged.
    """
    c = cfg.collection
    classes = kind_classes(cfg, kind)
    top_k = c.top_k_static if kind == "static" else c.top_k_dynamic
    query = functools.partial(candidates_query, classes, c.min_sitelinks, require_image=kind == "static")
    chosen: list[Candidate] = []
    seen: set[str] = set()
    for name, data in _paged(client, f"candidates_{kind}", query, c.page_size, report):
        for cand in parse_candidates(data, kind, classes, c.min_sitelinks, name):
            if cand.qid in seen or len(chosen) >= top_k:
                continue
            seen.add(cand.qid)
            if cand.label is None or not clean_label(cand.label):
                reason = "no English label" if cand.label is None else "empty English label"
                report["skipped"].append({"qid": cand.qid, "kind": kind, "reason": reason})
                log(f"skipped {cand.qid} ({kind}): {reason}; the base prompt is the English title")
                continue
            chosen.append(cand)
        if len(chosen) >= top_k:
            break
    return chosen


def _query_properties(client, cfg, qids: list[str], report) -> dict[str, ItemValues]:
    """The :data:`PROPERTIES` values of ``qids``, asked for :data:`VALUES_CHUNK` items at a time."""
    properties: dict[str, ItemValues] = {}
    for chunk_no, start in enumerate(range(0, len(qids), VALUES_CHUNK)):
        query = functools.partial(properties_query, qids[start : start + VALUES_CHUNK])
        pages = _paged(client, f"properties_c{chunk_no:03d}", query, cfg.collection.page_size, report)
        for name, data in pages:
            for qid, vals in parse_properties(data, name).items():
                properties.setdefault(qid, ItemValues()).merge(vals)
    return properties


def _query_homonyms(client, labels: list[str], report) -> dict[str, int]:
    """How many items carry each label; a label no query can carry portably is left out, with a warning."""
    for label in labels:
        if not sparql.is_portable_literal(label):
            report["warnings"].append(
                f"label {label!r} holds a backslash-u sequence: label_homonyms left empty"
            )
    labels = [label for label in labels if sparql.is_portable_literal(label)]
    homonyms: dict[str, int] = {}
    for chunk_no, start in enumerate(range(0, len(labels), VALUES_CHUNK)):
        name = f"homonyms_c{chunk_no:03d}"
        data = client.select(name, homonyms_query(labels[start : start + VALUES_CHUNK]))
        report["queries"] += 1
        homonyms.update(parse_homonyms(data, name))
    return homonyms


def query_references(client, cfg, log: Callable[[str], None] = print):
    """Run the stage's queries through ``client`` (live, recording or replaying).

    Returns:
        ``(references, report)``: the references table (image columns still empty) and a dict
        with per-kind counts and the items skipped (no English label, empty label).
    """
    report: dict[str, Any] = {"skipped": [], "queries": 0, "warnings": []}
    selected: dict[str, list[Candidate]] = {}
    for kind in KINDS:
        selected[kind] = _select_candidates(client, cfg, kind, report, log)
        report[f"n_{kind}"] = len(selected[kind])
    all_selected = [cand for kind in KINDS for cand in selected[kind]]
    properties = _query_properties(client, cfg, [cand.qid for cand in all_selected], report)
    homonyms = _query_homonyms(client, sorted({cand.label for cand in all_selected if cand.label}), report)
    df = build_references_table(selected, properties, homonyms)
    if df.empty:
        msg = "the endpoint returned no usable reference: the references table is empty"
        report["warnings"].append(msg)
        log(f"WARNING: {msg}")
    return df, report


@contextlib.contextmanager
def open_endpoint(cfg) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(endpoint URL, description)``; for ``endpoint: local``, a running local oxigraph."""
    c = cfg.collection
    if c.endpoint != "local":
        yield c.endpoint, {"kind": "remote", "url": c.endpoint}
        return
    snapshot = Path(c.snapshot)
    if not snapshot.is_absolute():
        snapshot = cfg.root / snapshot
    if not snapshot.is_file():
        raise FileNotFoundError(f"collection.snapshot not found: {snapshot} (config {cfg.source})")
    local_endpoint = plugins.provider("sparql_endpoint", "local")
    with local_endpoint(snapshot) as server:
        info = {
            "kind": "local oxigraph (serve-read-only)",
            "oxigraph": server.version(),
            "snapshot": cfg.relative(snapshot),
            "snapshot_sha256": hashlib.sha256(snapshot.read_bytes()).hexdigest(),
        }
        yield server.endpoint, info
