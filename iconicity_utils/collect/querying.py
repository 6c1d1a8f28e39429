"""Stage 01's queries, run: the top-K references of each kind, their properties, homonyms,
subject classes and aliases.

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
from iconicity_utils.collect.controls import (
    as_candidates,
    control_slugs,
    finish_controls_table,
    match_controls,
    merge_candidates,
    parse_control_candidates,
)
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
from iconicity_utils.collect.queries import (
    VALUES_CHUNK,
    aliases_query,
    candidates_query,
    controls_query,
    homonyms_query,
    properties_query,
    subjects_query,
)
from iconicity_utils.collect.subjects import SubjectFacts, parse_aliases, parse_subjects, subject_qids
from iconicity_utils.core import plugins
from iconicity_utils.core.constants import KINDS

__all__ = [
    "chunked_pages",
    "describe_items",
    "kind_classes",
    "open_endpoint",
    "paged",
    "query_references",
    "query_study",
]


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


def paged(
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
    for name, data in paged(client, f"candidates_{kind}", query, c.page_size, report):
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


def chunked_pages(client, cfg, prefix: str, qids: list[str], query, report):
    """Yield ``(name, data)`` of ``<prefix>_cNNN_pNNN``: ``query(chunk, limit, offset)`` for
    :data:`VALUES_CHUNK` of ``qids`` at a time, each paged by ``collection.page_size``."""
    for chunk_no, start in enumerate(range(0, len(qids), VALUES_CHUNK)):
        chunk_query = functools.partial(query, qids[start : start + VALUES_CHUNK])
        yield from paged(client, f"{prefix}_c{chunk_no:03d}", chunk_query, cfg.collection.page_size, report)


def _query_properties(client, cfg, qids: list[str], report, prefix: str = "") -> dict[str, ItemValues]:
    """The :data:`PROPERTIES` values of ``qids``, asked for :data:`VALUES_CHUNK` items at a time."""
    properties: dict[str, ItemValues] = {}
    for name, data in chunked_pages(client, cfg, f"{prefix}properties", qids, properties_query, report):
        for qid, vals in parse_properties(data, name).items():
            properties.setdefault(qid, ItemValues()).merge(vals)
    return properties


def _query_subjects(client, cfg, values: list[str], report, prefix: str = "") -> dict[str, SubjectFacts]:
    """The class facts (P31, P279) of the depicts / main subject ``values``."""
    facts: dict[str, SubjectFacts] = {}
    for name, data in chunked_pages(client, cfg, f"{prefix}subjects", values, subjects_query, report):
        for qid, found in parse_subjects(data, name).items():
            merged = facts.setdefault(qid, SubjectFacts())
            merged.instance_of |= found.instance_of
            merged.subclass_of |= found.subclass_of
    return facts


def _query_aliases(client, cfg, qids: list[str], report, prefix: str = "") -> dict[str, list[str]]:
    """The raw English alternative labels and P1476 titles of ``qids``."""
    aliases: dict[str, list[str]] = {}
    for name, data in chunked_pages(client, cfg, f"{prefix}aliases", qids, aliases_query, report):
        for qid, found in parse_aliases(data, name).items():
            aliases.setdefault(qid, []).extend(found)
    return aliases


def describe_items(client, cfg, items: list[Candidate], report, prefix: str = "") -> dict[str, Any]:
    """Properties, subject classes, aliases and label homonyms of ``items``: the keyword arguments
    of :func:`~iconicity_utils.collect.parse.build_references_table` (query names start with ``prefix``)."""
    qids = [cand.qid for cand in items]
    properties = _query_properties(client, cfg, qids, report, prefix) if qids else {}
    values = sorted({v for q in qids for v in subject_qids(properties.get(q, ItemValues()))}, key=_qid_key)
    subjects = _query_subjects(client, cfg, values, report, prefix) if values else {}
    aliases = _query_aliases(client, cfg, qids, report, prefix) if qids else {}
    labels = sorted({cand.label for cand in items if cand.label})
    homonyms = _query_homonyms(client, labels, report, prefix) if labels else {}
    return {"properties": properties, "homonyms": homonyms, "subjects": subjects, "aliases": aliases}


def _qid_key(qid: str) -> int:
    return int(qid[1:])


def _query_homonyms(client, labels: list[str], report, prefix: str = "") -> dict[str, int]:
    """How many items carry each label; a label no query can carry portably is left out, with a warning."""
    for label in labels:
        if not sparql.is_portable_literal(label):
            report["warnings"].append(
                f"label {label!r} holds a backslash-u sequence: label_homonyms left empty"
            )
    labels = [label for label in labels if sparql.is_portable_literal(label)]
    homonyms: dict[str, int] = {}
    for chunk_no, start in enumerate(range(0, len(labels), VALUES_CHUNK)):
        name = f"{prefix}homonyms_c{chunk_no:03d}"
        data = client.select(name, homonyms_query(labels[start : start + VALUES_CHUNK]))
        report["queries"] += 1
        homonyms.update(parse_homonyms(data, name))
    return homonyms


def _references(client, cfg, report, log):
    """The references table and the properties of its works."""
    selected: dict[str, list[Candidate]] = {}
    for kind in KINDS:
        selected[kind] = _select_candidates(client, cfg, kind, report, log)
        report[f"n_{kind}"] = len(selected[kind])
    all_selected = [cand for kind in KINDS for cand in selected[kind]]
    described = describe_items(client, cfg, all_selected, report)
    df = build_references_table(selected, **described)
    if df.empty:
        msg = "the endpoint returned no usable reference: the references table is empty"
        report["warnings"].append(msg)
        log(f"WARNING: {msg}")
    return df, described["properties"]


def query_references(client, cfg, log: Callable[[str], None] = print):
    """Run the stage's reference queries through ``client`` (live, recording or replaying).

    Returns:
        ``(references, report)``: the references table (image columns still empty) and a dict
        with per-kind counts and the items skipped (no English label, empty label).
    """
    report: dict[str, Any] = {"skipped": [], "queries": 0, "warnings": []}
    df, _ = _references(client, cfg, report, log)
    return df, report


def query_study(client, cfg, log: Callable[[str], None] = print):
    """:func:`query_references`, then the matched controls when ``collection.controls`` is on.

    Returns:
        ``(references, controls, report)``; ``controls`` is None when they are off.
    """
    report: dict[str, Any] = {"skipped": [], "queries": 0, "warnings": []}
    df, properties = _references(client, cfg, report, log)
    controls = _query_controls(client, cfg, df, properties, report, log) if cfg.collection.controls else None
    return df, controls, report


def _control_references(refs, properties: dict[str, ItemValues]) -> list[dict[str, Any]]:
    """The references as :func:`match_controls` takes them: with their labelled genres by QID."""
    out = []
    for row in refs[["qid", "slug", "class_qid", "kind"]].to_dict("records"):
        genres = properties.get(row["qid"], ItemValues()).get("P136")
        row["genres"] = {g: lab for g, lab in genres if lab and g.startswith("Q")}
        out.append(row)
    return out


def _control_candidates(client, cfg, references: list[dict[str, Any]], report) -> list:
    """Per (class, genre) pair of the references, the first ``n * k`` labelled candidates."""
    c = cfg.collection
    groups = []
    for kind in KINDS:
        refs = [r for r in references if r["kind"] == kind]
        need = len(refs) * c.controls_per_reference
        pairs = sorted(
            {(r["class_qid"], g) for r in refs for g in r["genres"]},
            key=lambda p: (_qid_key(p[0]), _qid_key(p[1])),
        )
        for cls, genre in pairs:
            query = functools.partial(
                controls_query, [cls], genre, c.controls_max_sitelinks, require_image=kind == "static"
            )
            found: dict[str, Any] = {}
            for name, data in paged(
                client, f"controls_{cls.lower()}_{genre.lower()}", query, c.page_size, report
            ):
                found.update(
                    (x.qid, x) for x in parse_control_candidates(data, genre, c.controls_max_sitelinks, name)
                )
                if sum(bool(clean_label(x.label)) for x in found.values()) >= need:  # usable ones
                    break
            groups.append(list(found.values()))
    return merge_candidates(groups)


def _query_controls(client, cfg, refs, properties: dict[str, ItemValues], report, log):
    """The controls table (image columns still empty); ``report["controls"]`` says what was matched."""
    c = cfg.collection
    references = _control_references(refs, properties)
    candidates = _control_candidates(client, cfg, references, report)
    matches = match_controls(references, candidates, c.controls_per_reference)
    chosen = as_candidates(matches, dict(zip(refs["qid"], refs["kind"], strict=True)))
    items = [cand for kind in KINDS for cand in chosen.get(kind, [])]
    taken = set(refs["slug"])
    table = build_references_table(
        chosen,
        **describe_items(client, cfg, items, report, prefix="control_"),
        slugs=lambda labels, qids: control_slugs(labels, qids, taken),
    )
    table = finish_controls_table(table, matches, set(refs["label_clean"].str.casefold()))
    counts = {slug: 0 for slug in refs["slug"]}
    for slug in table["control_for"]:
        counts[slug] += 1
    short = [slug for slug, n in counts.items() if n < c.controls_per_reference]
    report["controls"] = {
        "n": len(table),
        "per_reference": c.controls_per_reference,
        "max_sitelinks": c.controls_max_sitelinks,
        "candidates": len(candidates),
        "references_short": short,
        "unlabelled_candidates": sorted(x.qid for x in candidates if not clean_label(x.label)),
    }
    log(
        f"{len(table)} matched controls; {len(short)} reference(s) with fewer than {c.controls_per_reference}"
    )
    return table


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
