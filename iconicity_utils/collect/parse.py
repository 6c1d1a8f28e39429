"""SPARQL-JSON of stage 01 into the references table (its columns: :mod:`iconicity_utils.collect.collection`).

- :func:`parse_candidates`, :func:`parse_properties`, :func:`parse_homonyms`: one response each,
  every malformed row a ValueError naming the query and the row;
- :func:`build_references_table`: the parsed responses as the typed references table (image
  columns still empty; :mod:`iconicity_utils.collect.reference_images` fills them).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from iconicity_utils.collect import sparql
from iconicity_utils.collect.labels import assign_slugs, clean_label
from iconicity_utils.collect.queries import PROPERTIES
from iconicity_utils.collect.reference_images import none_for_missing, type_image_columns
from iconicity_utils.collect.subjects import SubjectFacts, alias_list, subject_columns
from iconicity_utils.core.constants import KINDS

__all__ = [
    "REFERENCE_COLUMNS",
    "Candidate",
    "ItemValues",
    "bindings",
    "build_references_table",
    "commons_file_name",
    "commons_file_url",
    "parse_candidates",
    "parse_homonyms",
    "parse_properties",
    "parse_year",
]

ENTITY = sparql.PREFIXES["wd"]
WDT = sparql.PREFIXES["wdt"]
COMMONS_FILEPATH = "commons.wikimedia.org/wiki/Special:FilePath/"
CREATOR_PROPS = {"static": ("P170",), "dynamic": ("P57", "P170")}
DATE_PROPS = {"static": ("P571", "P577"), "dynamic": ("P577", "P571")}

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
    "depicts_classes",
    "main_subject_classes",
    "named_subjects",
    "aliases",
    "description",
    "label_homonyms",
    "title_shared",
    "n_before",
    "n_kept",
    "n_removed",
    "reference_dir",
]


bindings = sparql.bindings
_term = sparql.term
_literal = sparql.literal_value
_entity = sparql.entity_value


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
    for i, row in enumerate(bindings(data, name)):
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
    for i, row in enumerate(bindings(data, name)):
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
    for i, row in enumerate(bindings(data, name)):
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
    candidates: dict[str, list[Candidate]],
    properties: dict[str, ItemValues],
    homonyms: dict[str, int],
    subjects: dict[str, SubjectFacts] | None = None,
    aliases: dict[str, list[str]] | None = None,
    slugs: Callable[[list[str], list[str]], list[str]] = assign_slugs,
):
    """The references DataFrame (without image columns filled) from parsed responses.

    ``subjects`` (the class facts of the depicts / main subject values) and ``aliases`` (raw
    alternative labels and titles) fill the class-level columns (:mod:`iconicity_utils.collect.subjects`);
    a value without facts is an ``individual``.  ``slugs(labels, qids)`` names the folders.
    """
    rows = []
    for kind in KINDS:
        for rank, cand in enumerate(candidates.get(kind, []), start=1):
            values = properties.get(cand.qid, ItemValues())
            row = _reference_row(cand, values)
            row.update(subject_columns(values, subjects or {}))
            row["aliases"] = alias_list((aliases or {}).get(cand.qid, []), row["label_clean"])
            row["rank"] = rank
            row["label_homonyms"] = homonyms.get(cand.label) if cand.label is not None else None
            rows.append(row)
    df = pd.DataFrame(rows, columns=[c for c in REFERENCE_COLUMNS if c not in ("slug",)] + ["slug"])
    df["slug"] = slugs(list(df["label_clean"]), list(df["qid"])) if len(df) else []
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
