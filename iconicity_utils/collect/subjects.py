"""Class-level subjects and aliases of stage 01 (docs/method.md §1.5).

A literal description of a work (stage 05) must name no one: "a woman, a landscape" describes the
*Mona Lisa* without giving it away, "Lisa Gherardini" or "Jesus" does not.  So every depicts (P180)
and main subject (P921) value is classified from its ``wdt:P279`` (subclass of) and ``wdt:P31``
(instance of) statements (the ``subjects`` query, :func:`iconicity_utils.collect.queries.subjects_query`):

============================  =================================================================
``class``                     it has a P279 statement and is not an instance of human (Q5):
                              "woman", "horse", "ship", "robot", "human" (Q5 itself is a class)
``human``                     otherwise, an instance of human (Q5): "Jesus", "Lisa Gherardini"
``fictional character``       otherwise, an instance of one of :data:`FICTIONAL_CLASSES`:
                              "Darth Vader", "Venus", "Marianne"
``individual``                anything else: a named place, ship, war, event, celestial body
                              ("Moon", "RMS Titanic", "Napoleonic Wars"), and also a value with
                              neither statement (unknown, so treated as named: the safe side)
============================  =================================================================

Only ``class`` values go into ``depicts_classes`` / ``main_subject_classes``; every other value is
listed in ``named_subjects`` as ``"Darth Vader (Q51752: fictional character)"``.  The rule is
conservative: an abstract concept that Wikidata models only as an instance (e.g. a physical
quantity) is left out of the descriptions too.

Aliases (the ``aliases`` query): English ``skos:altLabel`` values and the title (P1476, any
language), cleaned like the base prompt (:func:`iconicity_utils.collect.labels.clean_label`),
sorted, unique, without those equal (casefold) to the item's own ``label_clean``; stage 06 counts
them as other names of the work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iconicity_utils.collect.labels import clean_label
from iconicity_utils.collect.sparql import PREFIXES, bindings, entity_value, literal_value

__all__ = [
    "FICTIONAL_CLASSES",
    "HUMAN",
    "SUBJECT_CATEGORIES",
    "SubjectFacts",
    "alias_list",
    "classify_subject",
    "parse_aliases",
    "parse_subjects",
    "subject_columns",
    "subject_qids",
]

#: the classification of a depicts / main subject value
SUBJECT_CATEGORIES = ("class", "human", "fictional character", "individual")
#: human (Q5): an instance of it is a named person, never a class-level subject
HUMAN = "Q5"
#: instances of these are named characters (``fictional character``): fictional character, fictional
#: human and mythical character (the kinds Wikidata gives characters of fiction and myth), deity
#: (gods are named beings) and Roman and Greek deity (what Venus, Athena, ... have as P31 instead of
#: deity), literary, film, television, animated and comics character (how the characters of novels,
#: films, series and comics are typed, e.g. Vito Corleone), and national personification (Marianne,
#: Uncle Sam, John Bull: a named figure, not a class).  Ids as used by several public Wikidata
#: tools, except national personification (unverified offline: it is a guess).  Only direct P31
#: values are compared (docs/method.md §1.5).
FICTIONAL_CLASSES = {
    "Q95074": "fictional character",
    "Q15632617": "fictional human",
    "Q4271324": "mythical character",
    "Q178885": "deity",
    "Q11688446": "Roman deity",
    "Q22989102": "Greek deity",
    "Q3658341": "literary character",
    "Q15773347": "film character",
    "Q15773317": "television character",
    "Q15711870": "animated character",
    "Q1114461": "comics character",
    "Q852174": "national personification",
}
ENTITY = PREFIXES["wd"]
WDT = PREFIXES["wdt"]
#: the reference-table columns filled from the two subject properties
_SUBJECT_PROPS = {"P180": "depicts_classes", "P921": "main_subject_classes"}


@dataclass
class SubjectFacts:
    """What the subjects query says of one value: its P31 classes and whether it has a P279."""

    instance_of: set[str] = field(default_factory=set)
    subclass_of: set[str] = field(default_factory=set)


def parse_subjects(data: dict[str, Any], name: str = "subjects") -> dict[str, SubjectFacts]:
    """A subjects response as ``{value qid: SubjectFacts}`` (a value without statements has no entry).

    Raises:
        ValueError: naming the query and row, for a row without a value item, a property other
            than P31 / P279, or a class that is not an IRI.
    """
    out: dict[str, SubjectFacts] = {}
    for i, row in enumerate(bindings(data, name)):
        value = entity_value(row, "value", name, i)
        prop = entity_value(row, "prop", name, i, prefix=WDT, pattern=r"P(31|279)")
        cls = row.get("class")
        if not isinstance(cls, dict) or cls.get("type") != "uri":
            raise ValueError(f"{name}, row {i}: ?class is missing or not an IRI: {cls!r}")
        iri = str(cls.get("value", ""))
        facts = out.setdefault(value, SubjectFacts())
        target = facts.instance_of if prop == "P31" else facts.subclass_of
        target.add(iri[len(ENTITY) :] if iri.startswith(ENTITY) else iri)
    return out


def classify_subject(facts: SubjectFacts | None) -> str:
    """One of :data:`SUBJECT_CATEGORIES` for a value's facts (None: no statement at all)."""
    facts = facts or SubjectFacts()
    if facts.subclass_of and HUMAN not in facts.instance_of:
        return "class"
    if HUMAN in facts.instance_of:
        return "human"
    if facts.instance_of & FICTIONAL_CLASSES.keys():
        return "fictional character"
    return "individual"


def subject_qids(values) -> list[str]:
    """The item values of P180 and P921 of an ``ItemValues`` (QIDs only: an "unknown value" node has no class facts)."""
    return [v for pid in _SUBJECT_PROPS for v, _ in values.get(pid) if v.startswith("Q")]


def _sorted_labels(labels) -> list[str]:
    return sorted(set(labels), key=lambda s: (s.casefold(), s))


def subject_columns(values, facts: dict[str, SubjectFacts]) -> dict[str, list[str]]:
    """``depicts_classes``, ``main_subject_classes`` and ``named_subjects`` of one item.

    A ``class`` value without an English label is in none of them (it names no one, and has no
    word to describe it with); every other value left out is in ``named_subjects``.
    """
    out: dict[str, list[str]] = {}
    named: list[str] = []
    for pid, column in _SUBJECT_PROPS.items():
        classes = []
        for value, label in values.get(pid):
            if not value.startswith("Q"):
                continue
            category = classify_subject(facts.get(value))
            if category == "class":
                classes += [label] if label else []
            else:
                named.append(f"{label or '(no English label)'} ({value}: {category})")
        out[column] = _sorted_labels(classes)
    out["named_subjects"] = _sorted_labels(named)
    return out


def parse_aliases(data: dict[str, Any], name: str = "aliases") -> dict[str, list[str]]:
    """An aliases response as ``{qid: [raw alias, ...]}`` (English alt labels and P1476 titles).

    Raises:
        ValueError: naming the query and row, for a row without an item or a literal alias, or an
            alternative label that is not English.
    """
    out: dict[str, list[str]] = {}
    for i, row in enumerate(bindings(data, name)):
        qid = entity_value(row, "item", name, i)
        prop = row.get("prop", {}).get("value", "") if isinstance(row.get("prop"), dict) else ""
        alias = literal_value(row, "alias")
        if alias is None:
            raise ValueError(f"{name}, row {i}: ?alias is missing or not a literal: {row.get('alias')!r}")
        if not prop.endswith(("#altLabel", "/P1476")):
            raise ValueError(f"{name}, row {i}: ?prop is neither skos:altLabel nor wdt:P1476: {prop!r}")
        if prop.endswith("#altLabel") and row["alias"].get("xml:lang", "").lower() != "en":
            raise ValueError(f"{name}, row {i}: an alternative label that is not English: {row['alias']!r}")
        out.setdefault(qid, []).append(alias)
    return out


def alias_list(raw: list[str], label_clean: str) -> list[str]:
    """The ``aliases`` column: cleaned, sorted, unique, none equal (casefold) to ``label_clean``."""
    own = (label_clean or "").casefold()
    cleaned = {c for a in raw if (c := clean_label(a)) and c.casefold() != own}
    return _sorted_labels(cleaned)
