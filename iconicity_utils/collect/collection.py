"""Stage 01: collect the cultural references from Wikidata, and their reference images (docs/method.md §1).

This module is the querying side of the stage and its front door; the image side (synthetic
stand-ins, Commons downloads, user stills, pHash dedup, the per-image table) is
:mod:`iconicity_utils.collect.reference_images`.

One front door, :func:`collect_references` (and ``python -m iconicity_utils.collect.collection --config
configs/demo.yaml [--use-saved-responses]``).  It:

1. queries a SPARQL endpoint (``collection.endpoint``) through SPARQLWrapper, with the polite
   client of :mod:`iconicity_utils.collect.sparql`.  ``endpoint: local`` starts the ``oxigraph`` server
   from PyPI over ``collection.snapshot`` (a hand-written snapshot in Wikidata's vocabulary) on
   127.0.0.1 and stops it afterwards; the paper config queries https://query.wikidata.org/sparql.
   The same query text runs on both (every PREFIX declared, labels from ``rdfs:label`` /
   ``schema:description`` with LANG filters, never ``SERVICE wikibase:label``, a stable ORDER BY
   with LIMIT/OFFSET paging);
2. saves every raw response (query name and text, endpoint, UTC time, SPARQL-JSON) under
   ``<data>/raw/<run>/sparql/``; ``--use-saved-responses`` rebuilds the table from the latest
   complete run (one with a ``manifest.json``) without any network, and refuses a saved
   response whose query text differs from the one the config now produces;
3. builds the references table and writes it with :func:`iconicity_utils.core.io.write_table`;
4. puts the reference images in place (``cfg.reference_dir(kind, slug)``) with
   :func:`iconicity_utils.collect.reference_images.collect_reference_images` and writes the per-image
   table beside the references table.

Queries
-------
- ``candidates_<kind>_pNNN``: items that are an instance (``wdt:P31``) of one of the kind's classes
  (static: painting Q3305213 plus ``collection.static_classes``; dynamic: film Q11424 and
  television series Q5398426), with ``wikibase:sitelinks >= collection.min_sitelinks`` (static
  ones must also have a P18 image), ranked by sitelinks (``ORDER BY DESC(?sitelinks)
  ASC(STR(?item))``), paged by ``collection.page_size`` until ``top_k_<kind>`` usable items are in.
- ``properties_cNNN_pNNN``: for chunks of the selected items, one row per value of creator
  (P170), director (P57), inception (P571), publication date (P577), image (P18), depicts (P180),
  genre (P136) and main subject (P921), with the value's English label.  One row per value means
  no cross product between multi-valued properties.
- ``homonyms_cNNN``: how many items of the endpoint carry exactly each selected English label
  (a textual-uniqueness measure for stage 06).  Labels enter this query as escaped string
  literals (:func:`iconicity_utils.collect.sparql.string_literal`); class ids are validated QIDs.

References table (``cfg.references_table``), one row per reference
------------------------------------------------------------------
=================  ==========================================================================
``qid``            Wikidata item id (``"Q45585"``), unique
``label``          the English ``rdfs:label`` as stored on Wikidata
``label_clean``    the base prompt: NFC, control characters and runs of white space collapsed,
                   surrounding quotes and a trailing disambiguator such as ``" (1927 film)"``
                   removed
``slug``           unique, filesystem-safe folder name (see :func:`slugify`, :func:`assign_slugs`)
``kind``           ``"static"`` or ``"dynamic"``
``class_qid``      the class it was selected by (the first of its classes in config order)
``rank``           1-based rank by sitelinks within its kind
``creator``        English labels of the creators, ``"; "``-joined (static: P170; dynamic:
                   director P57, else creator P170); None when there is none with a label
``creator_qids``   list of their QIDs (also those without an English label)
``year``           Int64; earliest year of inception P571 (static) or publication date P577
                   (dynamic), falling back on the other property; None when absent
``sitelinks``      int, ``wikibase:sitelinks``
``image_file``     P18 Commons file name (first in sorted order when several), or None
``image_url``      its ``https://commons.wikimedia.org/wiki/Special:FilePath/...`` URL, or None
``depicts``        list of English labels of P180 values (sorted, unique; unlabelled values left out)
``genre``          same for P136
``main_subject``   same for P921
``description``    English ``schema:description`` or None
``label_homonyms`` Int64; items in the endpoint whose English label equals ``label`` (>= 1;
                   None for a label holding a ``\\u`` sequence, which no query can carry portably)
``title_shared``   bool; another reference in this table has the same ``label_clean``
``n_before``       Int64; candidate reference images found (static: 1 when there is a P18 file)
``n_kept``         Int64; reference images in ``reference_dir`` (used for scoring)
``n_removed``      Int64; near-duplicates removed by pHash (dynamic), else 0
``reference_dir``  the folder of its reference images, relative to the project root
``note``           the stand-in label, for synthetic-image configs (added by ``write_table``)
=================  ==========================================================================

``n_before`` ... ``reference_dir`` are filled by :mod:`iconicity_utils.collect.reference_images`, which
also describes the per-image table ``<data>/processed/reference_images.parquet``.

Edge cases (each has a test in ``tests/test_collection.py`` or ``tests/test_reference_images.py``)
-------------------------------------------------------------------------------------------------
- **Shared titles** (Manet's *Olympia* and Riefenstahl's *Olympia*): both are kept; every
  reference whose base slug is shared gets ``_<qid>`` appended (``olympia_q737062``), so slugs
  are unique and never depend on which work came first.  ``title_shared`` marks them.
- **Hostile labels** (unicode, ``/``, ``..``, leading dots, quotes, braces, newlines): slugs keep
  only ``[a-z0-9_]``, so a slug is one path component;
  :func:`~iconicity_utils.collect.reference_images.reference_dir_checked` also verifies that the resolved
  folder lies inside the data folder.  A label that slugs to nothing (e.g. ``七人の侍``) gets its
  QID as slug.  In queries, labels are escaped literals.
- **Missing optional fields** (creator, date, image, description, depicts/genre/main subject):
  None or an empty list; never an error.  A dynamic reference without P18 is normal.
- **No English label**: the base prompt is the English title, so the item is skipped and listed
  in the collection report (``skipped``); the next-ranked item takes its place in the top K.
- **Empty result**: an empty table with the full schema is written and a warning is printed
  and recorded; it is not an error (the next stages then have nothing to score).
- **Malformed or truncated JSON**: retried as a transient failure, then a clear
  :class:`~iconicity_utils.collect.sparql.RequestFailed` naming endpoint, status, query and the JSON
  error; the previous table, images and raw runs are left as they were.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import itertools
import json
import re
import sys
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iconicity_utils.collect import sparql
from iconicity_utils.collect.reference_images import (
    SLUG_RE,
    STATUSES,
    collect_reference_images,
    images_table_path,
    none_for_missing,
    type_image_columns,
)
from iconicity_utils.core.constants import KINDS
from iconicity_utils.core.io import atomic_write_json, utc_now, write_table

__all__ = [
    "REFERENCE_COLUMNS",
    "collect_references",
    "query_references",
    "candidates_query",
    "properties_query",
    "homonyms_query",
    "parse_candidates",
    "parse_properties",
    "parse_homonyms",
    "parse_year",
    "commons_file_name",
    "clean_label",
    "slugify",
    "assign_slugs",
    "RawRecorder",
    "ReplayClient",
    "SavedResponseError",
    "open_endpoint",
    "report_path",
    "plot_distributions",
    "main",
]

ENTITY = sparql.PREFIXES["wd"]
WDT = sparql.PREFIXES["wdt"]
COMMONS_FILEPATH = "commons.wikimedia.org/wiki/Special:FilePath/"

#: properties fetched for every selected item
PROPERTIES = {
    "P170": "creator",
    "P57": "director",
    "P571": "inception",
    "P577": "publication date",
    "P18": "image",
    "P180": "depicts",
    "P136": "genre",
    "P921": "main subject",
}
CREATOR_PROPS = {"static": ("P170",), "dynamic": ("P57", "P170")}
DATE_PROPS = {"static": ("P571", "P577"), "dynamic": ("P577", "P571")}

#: items per VALUES block (keeps GET URLs short on the Wikidata Query Service)
VALUES_CHUNK = 50

REFERENCE_COLUMNS = [
    "qid",
    "label",
    "label_clean",
    "slug",
    "kind",
    "class_qid",
    "rank",
    "creator",
    "creator_qids",
    "year",
    "sitelinks",
    "image_file",
    "image_url",
    "depicts",
    "genre",
    "main_subject",
    "description",
    "label_homonyms",
    "title_shared",
    "n_before",
    "n_kept",
    "n_removed",
    "reference_dir",
]


def report_path(cfg) -> Path:
    """Where the collection report goes: ``<data>/processed/collection_report.json``."""
    return cfg.path("data", "processed", "collection_report.json")


# --------------------------------------------------------------------------------------------
# Labels and slugs
# --------------------------------------------------------------------------------------------

_DISAMBIGUATOR = re.compile(
    r"\s*\((?:\d{4} )?(?:film|painting|TV series|television series|series|miniseries|sculpture|photograph)\)$",
    re.IGNORECASE,
)
_QUOTES = {'"': '"', "'": "'", "“": "”", "«": "»", "„": "“", "‘": "’"}
SLUG_MAX = 80
_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}


def clean_label(label: str | None) -> str:
    """The base prompt from an English label: the bare title, tidied.

    NFC; every control or format character (newline, tab, zero-width space, ...) and every run
    of white space becomes one space; the ends are stripped; matching surrounding quotes and a
    trailing disambiguator such as ``" (1927 film)"`` are removed.  Nothing else changes:
    punctuation, case and diacritics stay, because the prompt is the title as people write it.
    """
    if label is None:
        return ""
    text = unicodedata.normalize("NFC", label)
    text = "".join(" " if unicodedata.category(ch).startswith(("C", "Z")) else ch for ch in text)
    text = " ".join(text.split())
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return _DISAMBIGUATOR.sub("", text).strip()


def slugify(text: str, qid: str) -> str:
    """A filesystem-safe slug: NFKD, accents dropped, ``[a-z0-9]`` kept, anything else ``_``.

    Runs of ``_`` collapse; ``_`` and ``.`` are stripped from the ends; at most 80 characters; an
    empty result is the QID in lower case (``q1056853``); a Windows device name (``con``, ``nul``,
    ...) gets ``_<qid>`` appended.  The result matches ``[a-z0-9][a-z0-9_]*``
    (:data:`~iconicity_utils.collect.reference_images.SLUG_RE`): one path component that is never ``.``
    or ``..`` and never hidden.
    """
    sparql.qid(qid)
    out = []
    for ch in unicodedata.normalize("NFKD", text or ""):
        if unicodedata.combining(ch):
            continue
        out.append(ch.lower() if ch.isascii() and ch.isalnum() else "_")
    slug = re.sub(r"_+", "_", "".join(out)).strip("_.")
    slug = slug[:SLUG_MAX].rstrip("_")
    if not slug:
        slug = qid.lower()
    if slug in _RESERVED:
        slug = f"{slug}_{qid.lower()}"
    assert SLUG_RE.fullmatch(slug), slug
    return slug


def assign_slugs(labels: Sequence[str], qids: Sequence[str]) -> list[str]:
    """Unique slugs for parallel lists of clean labels and QIDs.

    Every reference whose slug would be shared gets ``_<qid>`` appended, all of them (so a slug
    does not depend on which work was seen first); repeated until unique.  QIDs must be unique.
    """
    if len(set(qids)) != len(qids):
        dupes = sorted({q for q in qids if list(qids).count(q) > 1})
        raise ValueError(f"duplicate QIDs cannot get unique slugs: {dupes}")
    slugs = [slugify(label, q) for label, q in zip(labels, qids, strict=True)]
    for _ in range(3):
        counts: dict[str, int] = {}
        for s in slugs:
            counts[s] = counts.get(s, 0) + 1
        clashes = {s for s, n in counts.items() if n > 1}
        if not clashes:
            return slugs
        slugs = [f"{s}_{q.lower()}" if s in clashes else s for s, q in zip(slugs, qids, strict=True)]
    raise ValueError(f"could not make slugs unique: {sorted(clashes)}")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------


def _values(var: str, terms: Sequence[str]) -> str:
    return f"VALUES ?{var} {{ {' '.join(terms)} }}"


def candidates_query(
    classes: Sequence[str], min_sitelinks: int, limit: int, offset: int, require_image: bool
) -> str:
    """Items of the given classes with at least ``min_sitelinks`` sitelinks, most linked first.

    One row per (item, class) with the English label and description when there are any.
    """
    if not classes:
        raise ValueError("at least one class QID is needed")
    terms = [f"wd:{sparql.qid(c)}" for c in classes]
    for name, value in (("min_sitelinks", min_sitelinks), ("limit", limit), ("offset", offset)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    image = "\n  FILTER EXISTS { ?item wdt:P18 ?image . }" if require_image else ""
    return f"""{sparql.prefix_block()}
SELECT ?item ?class ?sitelinks ?label ?description WHERE {{
  {_values("class", terms)}
  ?item wdt:P31 ?class ;
        wikibase:sitelinks ?sitelinks .
  FILTER(?sitelinks >= {min_sitelinks}){image}
  OPTIONAL {{ ?item rdfs:label ?label . FILTER(LANG(?label) = "en") }}
  OPTIONAL {{ ?item schema:description ?description . FILTER(LANG(?description) = "en") }}
}}
ORDER BY DESC(?sitelinks) ASC(STR(?item)) ASC(STR(?class))
LIMIT {limit}
OFFSET {offset}
"""


def properties_query(qids: Sequence[str], limit: int, offset: int) -> str:
    """One row per value of the :data:`PROPERTIES` of ``qids``, with the value's English label."""
    if not qids:
        raise ValueError("at least one item QID is needed")
    items = [f"wd:{sparql.qid(q)}" for q in qids]
    props = [f"wdt:{p}" for p in PROPERTIES]
    return f"""{sparql.prefix_block()}
SELECT ?item ?prop ?value ?valueLabel WHERE {{
  {_values("item", items)}
  {_values("prop", props)}
  ?item ?prop ?value .
  OPTIONAL {{ ?value rdfs:label ?valueLabel . FILTER(LANG(?valueLabel) = "en") }}
}}
ORDER BY ASC(STR(?item)) ASC(STR(?prop)) ASC(STR(?value)) ASC(STR(?valueLabel))
LIMIT {int(limit)}
OFFSET {int(offset)}
"""


def homonyms_query(labels: Sequence[str]) -> str:
    """How many items carry each English label; labels enter as escaped literals."""
    if not labels:
        raise ValueError("at least one label is needed")
    terms = [sparql.string_literal(label, "en") for label in labels]
    return f"""{sparql.prefix_block()}
SELECT ?label (COUNT(DISTINCT ?item) AS ?n) WHERE {{
  {_values("label", terms)}
  ?item rdfs:label ?label .
}}
GROUP BY ?label
ORDER BY ASC(STR(?label))
"""


# --------------------------------------------------------------------------------------------
# Parsing SPARQL-JSON
# --------------------------------------------------------------------------------------------


def _bindings(data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    try:
        rows = data["results"]["bindings"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{name}: not a SPARQL-JSON SELECT result (no results.bindings)") from exc
    if not isinstance(rows, list):
        raise ValueError(f"{name}: results.bindings is not a list")
    return rows


def _term(row: dict[str, Any], var: str) -> dict[str, Any] | None:
    term = row.get(var)
    return term if isinstance(term, dict) and "value" in term else None


def _literal(row: dict[str, Any], var: str, lang: str | None = None) -> str | None:
    term = _term(row, var)
    if term is None or term.get("type") not in ("literal", "typed-literal"):
        return None
    if lang is not None and term.get("xml:lang", "").lower() != lang:
        return None
    return term["value"]


def _entity(row: dict[str, Any], var: str, name: str, index: int, required: bool = True) -> str | None:
    term = _term(row, var)
    if term is None or term.get("type") != "uri":
        if required:
            raise ValueError(f"{name}, row {index}: ?{var} is missing or not an IRI: {term!r}")
        return None
    value = term["value"]
    if not value.startswith(ENTITY) or not re.fullmatch(r"Q[1-9][0-9]*", value[len(ENTITY) :]):
        if required:
            raise ValueError(f"{name}, row {index}: ?{var} is not a Wikidata item IRI: {value!r}")
        return None
    return value[len(ENTITY) :]


def _integer(row: dict[str, Any], var: str, name: str, index: int) -> int:
    term = _term(row, var)
    if term is None:
        raise ValueError(f"{name}, row {index}: ?{var} is missing")
    try:
        number = float(term["value"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}, row {index}: ?{var} is not a number: {term['value']!r}") from exc
    if number != int(number):
        raise ValueError(f"{name}, row {index}: ?{var} is not an integer: {term['value']!r}")
    return int(number)


@dataclass
class Candidate:
    """One ranked item of a candidates query."""

    qid: str
    kind: str
    class_qid: str
    sitelinks: int
    label: str | None
    description: str | None


def parse_candidates(
    data: dict[str, Any], kind: str, classes: Sequence[str], min_sitelinks: int, name: str = "candidates"
) -> list[Candidate]:
    """The rows of a candidates response, one per item, in response order.

    An item listed under several classes gets the first of them in ``classes`` order; its
    English label and description are the first non-empty ones seen.  Rows below
    ``min_sitelinks`` are dropped (a store that ignored the FILTER cannot smuggle them in).

    Raises:
        ValueError: naming the query and row, for a row without an item IRI or sitelinks.
    """
    order = {c: i for i, c in enumerate(classes)}
    items: dict[str, Candidate] = {}
    for i, row in enumerate(_bindings(data, name)):
        qid = _entity(row, "item", name, i)
        cls = _entity(row, "class", name, i)
        sitelinks = _integer(row, "sitelinks", name, i)
        if sitelinks < min_sitelinks:
            continue
        label = _literal(row, "label", "en")
        description = _literal(row, "description", "en")
        seen = items.get(qid)
        if seen is None:
            items[qid] = Candidate(qid, kind, cls, sitelinks, label, description)
            continue
        if order.get(cls, len(order)) < order.get(seen.class_qid, len(order)):
            seen.class_qid = cls
        seen.label = seen.label or label
        seen.description = seen.description or description
    return list(items.values())


@dataclass
class ItemValues:
    """The property values of one item: ``{pid: [(value, english label or None), ...]}``."""

    values: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)

    def get(self, pid: str) -> list[tuple[str, str | None]]:
        return self.values.get(pid, [])

    def merge(self, other: ItemValues) -> None:
        """Add the values of ``other`` (another page of the same item), keeping order, no repeats."""
        for pid, pairs in other.values.items():
            bucket = self.values.setdefault(pid, [])
            bucket.extend(p for p in pairs if p not in bucket)


def parse_properties(data: dict[str, Any], name: str = "properties") -> dict[str, ItemValues]:
    """A properties response as ``{qid: ItemValues}``; values keep response order, no repeats.

    Entity values are reduced to their QID, Commons files keep their IRI, literals their lexical
    form.  Rows for properties other than :data:`PROPERTIES` are ignored.
    """
    out: dict[str, ItemValues] = {}
    for i, row in enumerate(_bindings(data, name)):
        qid = _entity(row, "item", name, i)
        prop_term = _term(row, "prop")
        if prop_term is None or not prop_term["value"].startswith(WDT):
            raise ValueError(f"{name}, row {i}: ?prop is missing or not a wdt: property: {prop_term!r}")
        pid = prop_term["value"][len(WDT) :]
        if pid not in PROPERTIES:
            continue
        value_term = _term(row, "value")
        if value_term is None:
            raise ValueError(f"{name}, row {i}: ?value is missing")
        value = _entity(row, "value", name, i, required=False) or value_term["value"]
        label = _literal(row, "valueLabel", "en")
        bucket = out.setdefault(qid, ItemValues()).values.setdefault(pid, [])
        if all(v != value for v, _ in bucket):
            bucket.append((value, label))
        elif label:
            bucket[:] = [(v, lab or (label if v == value else None)) for v, lab in bucket]
    return out


def parse_homonyms(data: dict[str, Any], name: str = "homonyms") -> dict[str, int]:
    """A homonyms response as ``{label: number of items}``."""
    out: dict[str, int] = {}
    for i, row in enumerate(_bindings(data, name)):
        label = _literal(row, "label")
        if label is None:
            raise ValueError(f"{name}, row {i}: ?label is missing")
        out[label] = _integer(row, "n", name, i)
    return out


_YEAR = re.compile(r"^([+-]?\d{1,})-\d{2}-\d{2}")


def parse_year(value: str | None) -> int | None:
    """The year of an ``xsd:dateTime`` / ``xsd:date`` lexical form (``"-0500-01-01T..."`` -> -500).

    Anything else (an "unknown value" blank node IRI, free text) is None.
    """
    if not value:
        return None
    match = _YEAR.match(value.strip())
    return int(match.group(1)) if match else None


def commons_file_name(value: str) -> str | None:
    """The Commons file name of a P18 value (a ``Special:FilePath`` IRI or a bare file name)."""
    if not value:
        return None
    if COMMONS_FILEPATH in value:
        value = value.split(COMMONS_FILEPATH, 1)[1]
        value = urllib.parse.unquote(value)
    elif value.startswith(("http://", "https://")):
        return None
    value = value.replace("_", " ").strip()
    return value or None


def commons_file_url(file_name: str) -> str:
    """The ``Special:FilePath`` URL of a Commons file."""
    return "https://" + COMMONS_FILEPATH + urllib.parse.quote(file_name.replace(" ", "_"))


def _labels(values: list[tuple[str, str | None]]) -> list[str]:
    return sorted({lab for _, lab in values if lab}, key=lambda s: (s.casefold(), s))


def _reference_row(candidate: Candidate, values: ItemValues) -> dict[str, Any]:
    kind = candidate.kind
    creators: list[tuple[str, str | None]] = []
    for pid in CREATOR_PROPS[kind]:
        creators = [(v, lab) for v, lab in values.get(pid) if re.fullmatch(r"Q[1-9][0-9]*", v)]
        if creators:
            break
    creators.sort(key=lambda vl: int(vl[0][1:]))
    creator_labels = [lab for _, lab in creators if lab]
    year = None
    for pid in DATE_PROPS[kind]:
        years = [y for v, _ in values.get(pid) if (y := parse_year(v)) is not None]
        if years:
            year = min(years)
            break
    files = sorted(f for v, _ in values.get("P18") if (f := commons_file_name(v)))
    image_file = files[0] if files else None
    return {
        "qid": candidate.qid,
        "label": candidate.label,
        "label_clean": clean_label(candidate.label),
        "kind": kind,
        "class_qid": candidate.class_qid,
        "creator": "; ".join(creator_labels) if creator_labels else None,
        "creator_qids": [v for v, _ in creators],
        "year": year,
        "sitelinks": candidate.sitelinks,
        "image_file": image_file,
        "image_url": commons_file_url(image_file) if image_file else None,
        "depicts": _labels(values.get("P180")),
        "genre": _labels(values.get("P136")),
        "main_subject": _labels(values.get("P921")),
        "description": candidate.description,
    }


def build_references_table(
    candidates: dict[str, list[Candidate]], properties: dict[str, ItemValues], homonyms: dict[str, int]
):
    """The references DataFrame (without image columns filled) from parsed responses."""
    import pandas as pd

    rows = []
    for kind in KINDS:
        for rank, cand in enumerate(candidates.get(kind, []), start=1):
            row = _reference_row(cand, properties.get(cand.qid, ItemValues()))
            row["rank"] = rank
            row["label_homonyms"] = homonyms.get(cand.label) if cand.label is not None else None
            rows.append(row)
    df = pd.DataFrame(rows, columns=[c for c in REFERENCE_COLUMNS if c not in ("slug",)] + ["slug"])
    df["slug"] = assign_slugs(list(df["label_clean"]), list(df["qid"])) if len(df) else []
    folded = df["label_clean"].str.casefold()
    df["title_shared"] = folded.duplicated(keep=False).astype(bool) if len(df) else []
    for col in ("n_before", "n_kept", "n_removed"):
        df[col] = pd.array([pd.NA] * len(df), dtype="Int64")
    df["reference_dir"] = None
    return _typed(df[REFERENCE_COLUMNS])


def _typed(df):
    """Fix the column dtypes of a references table (so an empty table has the same schema).

    The image columns are typed by :func:`~iconicity_utils.collect.reference_images.type_image_columns`.
    """
    import pandas as pd

    df = df.copy()
    for col in ("year", "label_homonyms"):
        df[col] = pd.array(list(df[col]), dtype="Int64") if len(df) else pd.array([], dtype="Int64")
    for col in ("rank", "sitelinks"):
        df[col] = df[col].astype("int64")
    df["title_shared"] = df["title_shared"].astype(bool)
    for col in (
        "qid",
        "label",
        "label_clean",
        "slug",
        "kind",
        "class_qid",
        "creator",
        "image_file",
        "image_url",
        "description",
    ):
        df[col] = none_for_missing(df[col])
    return type_image_columns(df)


# --------------------------------------------------------------------------------------------
# Raw responses: record and replay
# --------------------------------------------------------------------------------------------


class SavedResponseError(RuntimeError):
    """Saved raw responses are missing, incomplete, or do not match the queries asked now."""


def _safe_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"query names are lower-case identifiers, got {name!r}")
    return name


class RawRecorder:
    """Saves every raw response of one run under ``<raw>/<run id>/sparql/`` (never overwriting).

    A run is complete when :meth:`finish` has written its ``manifest.json``; only complete runs
    are replayed.  A run id is the UTC start time, ``20261128T031500Z`` (``-1``, ``-2``, ... on a
    clash), so runs sort by time.
    """

    def __init__(self, raw_root: Path, endpoint: str, endpoint_info: dict[str, Any]):
        stamp = utc_now().replace("-", "").replace(":", "")
        run_dir = Path(raw_root) / stamp
        n = 0
        while run_dir.exists():
            n += 1
            run_dir = Path(raw_root) / f"{stamp}-{n}"
        (run_dir / "sparql").mkdir(parents=True)
        self.run_dir = run_dir
        self.endpoint = endpoint
        self.endpoint_info = endpoint_info
        self.files: list[str] = []

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def save(self, name: str, query: str, data: dict[str, Any]) -> Path:
        """Write one response with its query text, endpoint and UTC time."""
        path = self.run_dir / "sparql" / f"{len(self.files):03d}_{_safe_name(name)}.json"
        if path.exists():  # pragma: no cover - run dirs are fresh
            raise SavedResponseError(f"refusing to overwrite a saved response: {path}")
        record = {
            "query_name": name,
            "endpoint": self.endpoint,
            "endpoint_info": self.endpoint_info,
            "retrieved_utc": utc_now(),
            "query": query,
            "response": data,
        }
        atomic_write_json(path, record)
        self.files.append(path.name)
        return path

    def finish(self, **summary: Any) -> Path:
        """Mark the run complete (``manifest.json``)."""
        manifest = {
            "run_id": self.run_id,
            "endpoint": self.endpoint,
            "endpoint_info": self.endpoint_info,
            "finished_utc": utc_now(),
            "files": self.files,
            **summary,
        }
        return atomic_write_json(self.run_dir / "manifest.json", manifest)


class RecordingClient:
    """A SPARQL client that saves every response it returns."""

    def __init__(self, client: sparql.SparqlClient, recorder: RawRecorder):
        self.client = client
        self.recorder = recorder

    def select(self, name: str, query: str) -> dict[str, Any]:
        data = self.client.select(name, query)
        self.recorder.save(name, query, data)
        return data


class ReplayClient:
    """Answers queries from a saved, complete run, by query name; the query text must match."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        manifest_path = self.run_dir / "manifest.json"
        if not manifest_path.is_file():
            raise SavedResponseError(f"{self.run_dir} is not a complete run (no manifest.json)")
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.records: dict[str, dict[str, Any]] = {}
        for file in self.manifest.get("files", []):
            path = self.run_dir / "sparql" / file
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise SavedResponseError(f"saved response {path} cannot be read: {exc}") from exc
            self.records[record["query_name"]] = record
        self.endpoint = self.manifest.get("endpoint")
        self.endpoint_info = {**self.manifest.get("endpoint_info", {}), "replayed_from": self.run_dir.name}

    @classmethod
    def latest(cls, raw_root: Path, run: str | None = None) -> ReplayClient:
        """The named run, or the latest complete run under ``raw_root``."""
        raw_root = Path(raw_root)
        if run is not None:
            if not re.fullmatch(r"[0-9TZ-]+", run):
                raise SavedResponseError(f"not a run id: {run!r}")
            return cls(raw_root / run)
        runs = (
            sorted(p for p in raw_root.glob("*") if (p / "manifest.json").is_file())
            if raw_root.is_dir()
            else []
        )
        if not runs:
            raise SavedResponseError(
                f"no complete run of saved responses under {raw_root}; run stage 01 once without "
                "--use-saved-responses (it needs the endpoint)"
            )
        return cls(runs[-1])

    def select(self, name: str, query: str) -> dict[str, Any]:
        record = self.records.get(name)
        if record is None:
            raise SavedResponseError(
                f"no saved response for query {name!r} in {self.run_dir} (the config asks for more than "
                "that run fetched); run without --use-saved-responses"
            )
        if record["query"] != query:
            raise SavedResponseError(
                f"the saved response for query {name!r} in {self.run_dir} was made with a different query "
                "text (the config changed since); run without --use-saved-responses"
            )
        return sparql.parse_sparql_json(json.dumps(record["response"]))


# --------------------------------------------------------------------------------------------
# Querying
# --------------------------------------------------------------------------------------------


def _kind_classes(cfg, kind: str) -> list[str]:
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
        rows = _bindings(data, name)
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
    classes = _kind_classes(cfg, kind)
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
    with sparql.LocalOxigraph(snapshot) as server:
        info = {
            "kind": "local oxigraph (serve-read-only)",
            "oxigraph": server.version(),
            "snapshot": cfg.relative(snapshot),
            "snapshot_sha256": hashlib.sha256(snapshot.read_bytes()).hexdigest(),
        }
        yield server.endpoint, info


# --------------------------------------------------------------------------------------------
# The front door
# --------------------------------------------------------------------------------------------


def collect_references(
    cfg,
    *,
    use_saved_responses: bool | None = None,
    raw_run: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
):
    """Stage 01: query, save raw responses, build the references table, place the images.

    Args:
        cfg: the study config (its ``collection`` section decides everything).
        use_saved_responses: rebuild from saved raw responses instead of querying (default:
            ``collection.use_saved_responses``).
        raw_run: which saved run to replay (default: the latest complete one).
        sleep: the wait between retries (injectable for tests).
        log: where progress and warnings go.

    Returns:
        The references table, also written to ``cfg.references_table`` (with the per-image
        table and ``collection_report.json`` beside it).  ``df.attrs["report"]`` holds the report.

    Raises:
        RequestFailed: the endpoint failed for good (nothing already written is touched).
        SavedResponseError: replay asked for but no matching complete run exists.
        ValueError: a class id in the config is not a QID, or a response cannot be parsed.
    """
    t0 = time.perf_counter()
    replay = cfg.collection.use_saved_responses if use_saved_responses is None else use_saved_responses
    for kind in KINDS:
        _kind_classes(cfg, kind)  # validate before any work
    if replay:
        refs, report, origin = _replayed_references(cfg, raw_run, log)
    else:
        refs, report, origin = _queried_references(cfg, sleep, log)
    t_query = time.perf_counter() - t0
    images, refs, missing_stills = collect_reference_images(cfg, refs, sleep=sleep, log=log)
    summary = {
        **origin,
        "replayed": bool(replay),
        "reference_images": cfg.collection.reference_images,
        "phash_threshold": cfg.collection.phash_threshold,
        "min_sitelinks": cfg.collection.min_sitelinks,
        "top_k": {"static": cfg.collection.top_k_static, "dynamic": cfg.collection.top_k_dynamic},
    }
    write_table(images, images_table_path(cfg), cfg, collection=summary)
    write_table(refs, cfg.references_table, cfg, collection=summary)
    report.update(
        summary,
        created_utc=utc_now(),
        n_images={s: int((images["status"] == s).sum()) for s in STATUSES},
        missing_stills=missing_stills,
        seconds={"query": round(t_query, 3), "total": round(time.perf_counter() - t0, 3)},
    )
    atomic_write_json(report_path(cfg), report)
    refs.attrs["report"] = report
    log(
        f"{len(refs)} references ({report['n_static']} static, {report['n_dynamic']} dynamic), "
        f"{report['n_images']['kept']} reference images -> {cfg.references_table}"
    )
    return refs


def _replayed_references(cfg, raw_run: str | None, log):
    """:func:`query_references` answered by a saved run: ``(refs, report, origin)``."""
    client = ReplayClient.latest(cfg.path("data", "raw"), raw_run)
    refs, report = query_references(client, cfg, log=log)
    log(f"rebuilt from saved responses {client.run_dir}")
    origin = {
        "endpoint": client.endpoint,
        "endpoint_info": client.endpoint_info,
        "raw_run": client.run_dir.name,
    }
    return refs, report, origin


def _queried_references(cfg, sleep, log):
    """:func:`query_references` against the endpoint, every response saved: ``(refs, report, origin)``.

    The run is marked complete only when every query has succeeded.
    """
    with open_endpoint(cfg) as (endpoint, info):
        recorder = RawRecorder(cfg.path("data", "raw"), endpoint, info)
        client = RecordingClient(sparql.SparqlClient(endpoint, cfg.collection.http, sleep), recorder)
        refs, report = query_references(client, cfg, log=log)
        recorder.finish(config=cfg.name, queries=report["queries"])
    log(
        f"queried {endpoint} ({info.get('kind')}): {report['queries']} queries, raw responses in {recorder.run_dir}"
    )
    return refs, report, {"endpoint": endpoint, "endpoint_info": info, "raw_run": recorder.run_id}


# --------------------------------------------------------------------------------------------
# Figures for notebook 01
# --------------------------------------------------------------------------------------------


def plot_distributions(refs):
    """Histograms of sitelinks and of years, per kind (a matplotlib figure)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    all_years = refs["year"].dropna().astype(int).to_numpy()
    # shared bin edges, so the two kinds are comparable bar for bar
    sitelink_bins = np.histogram_bin_edges(refs["sitelinks"].to_numpy(), bins=12) if len(refs) else 12
    year_bins = np.histogram_bin_edges(all_years, bins=12) if len(all_years) else 12
    for kind in KINDS:
        part = refs[refs["kind"] == kind]
        axes[0].hist(part["sitelinks"], bins=sitelink_bins, alpha=0.6, label=f"{kind} (n={len(part)})")
        years = part["year"].dropna().astype(int)
        axes[1].hist(years, bins=year_bins, alpha=0.6, label=f"{kind} (n={len(years)} with a year)")
    axes[0].set(xlabel="Wikidata sitelinks", ylabel="references", title="Popularity (sitelinks)")
    axes[1].set(xlabel="year (P571 inception / P577 publication)", ylabel="references", title="Creation date")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m iconicity_utils.collect.collection --config configs/demo.yaml [--use-saved-responses]``."""
    from iconicity_utils.config import load_config

    parser = argparse.ArgumentParser(
        prog="python -m iconicity_utils.collect.collection",
        description="Stage 01: collect references from Wikidata (or the local snapshot) and their images.",
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument(
        "--use-saved-responses",
        action="store_true",
        default=None,
        help="rebuild from the latest complete run of saved raw responses, without querying",
    )
    parser.add_argument("--raw-run", default=None, help="with --use-saved-responses: the run id to replay")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    try:
        refs = collect_references(cfg, use_saved_responses=args.use_saved_responses, raw_run=args.raw_run)
    except (sparql.RequestFailed, SavedResponseError, sparql.LocalEndpointError) as exc:
        print(f"stage 01 failed: {exc}", file=sys.stderr)
        return 1
    counts = refs.groupby("kind").size().to_dict() if len(refs) else {}
    print(json.dumps({"references": len(refs), "per_kind": counts}, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
