"""The SPARQL text of stage 01 (docs/method.md §1): candidates, their properties, label homonyms,
the class facts of their subjects, their aliases, and matched control candidates.

The same text runs on the Wikidata Query Service and on the demo's local store: every PREFIX
declared, labels from ``rdfs:label`` / ``schema:description`` with LANG filters (never
``SERVICE wikibase:label``), a stable ORDER BY with LIMIT/OFFSET paging.  Class and item ids enter
as validated QIDs, labels as escaped string literals (:mod:`iconicity_utils.collect.sparql`).
"""

from __future__ import annotations

from collections.abc import Sequence

from iconicity_utils.collect import sparql

__all__ = [
    "PROPERTIES",
    "SUBJECT_PROPERTIES",
    "VALUES_CHUNK",
    "aliases_query",
    "candidates_query",
    "controls_query",
    "homonyms_query",
    "properties_query",
    "subjects_query",
]

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
#: what the subjects query asks of each depicts / main subject value: its classes (P31) and
#: whether it is a class itself (P279, subclass of)
SUBJECT_PROPERTIES = {"P31": "instance of", "P279": "subclass of"}
CREATOR_PROPS = {"static": ("P170",), "dynamic": ("P57", "P170")}
DATE_PROPS = {"static": ("P571", "P577"), "dynamic": ("P577", "P571")}

#: items per VALUES block (keeps GET URLs short on the Wikidata Query Service)
VALUES_CHUNK = 50


def _values(var: str, terms: Sequence[str]) -> str:
    return f"VALUES ?{var} {{ {' '.join(terms)} }}"


def _items(qids: Sequence[str], what: str = "item") -> list[str]:
    if not qids:
        raise ValueError(f"at least one {what} QID is needed")
    return [f"wd:{sparql.qid(q)}" for q in qids]


def _paging(limit: int, offset: int, **more: int) -> None:
    for name, value in (("limit", limit), ("offset", offset), *more.items()):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def candidates_query(
    classes: Sequence[str], min_sitelinks: int, limit: int, offset: int, require_image: bool
) -> str:
    """Items of the given classes with at least ``min_sitelinks`` sitelinks, most linked first.

    One row per (item, class) with the English label and description when there are any.
    """
    terms = _items(classes, "class")
    _paging(limit, offset, min_sitelinks=min_sitelinks)
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
    items = _items(qids)
    _paging(limit, offset)
    props = [f"wdt:{p}" for p in PROPERTIES]
    return f"""{sparql.prefix_block()}
SELECT ?item ?prop ?value ?valueLabel WHERE {{
  {_values("item", items)}
  {_values("prop", props)}
  ?item ?prop ?value .
  OPTIONAL {{ ?value rdfs:label ?valueLabel . FILTER(LANG(?valueLabel) = "en") }}
}}
ORDER BY ASC(STR(?item)) ASC(STR(?prop)) ASC(STR(?value)) ASC(STR(?valueLabel))
LIMIT {limit}
OFFSET {offset}
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


def subjects_query(qids: Sequence[str], limit: int, offset: int) -> str:
    """One row per ``wdt:P31`` (instance of) and ``wdt:P279`` (subclass of) value of each of ``qids``.

    ``qids`` are depicts (P180) and main subject (P921) values; the answer says which of them are
    classes (:mod:`iconicity_utils.collect.subjects` classifies them).  A value with neither
    statement has no row.
    """
    values = _items(qids, "subject")
    _paging(limit, offset)
    props = [f"wdt:{p}" for p in SUBJECT_PROPERTIES]
    return f"""{sparql.prefix_block()}
SELECT ?value ?prop ?class WHERE {{
  {_values("value", values)}
  {_values("prop", props)}
  ?value ?prop ?class .
}}
ORDER BY ASC(STR(?value)) ASC(STR(?prop)) ASC(STR(?class))
LIMIT {limit}
OFFSET {offset}
"""


def aliases_query(qids: Sequence[str], limit: int, offset: int) -> str:
    """The English alternative labels (``skos:altLabel``) and the titles (P1476, any language) of ``qids``."""
    items = _items(qids)
    _paging(limit, offset)
    return f"""{sparql.prefix_block()}
SELECT ?item ?prop ?alias WHERE {{
  {_values("item", items)}
  {_values("prop", ["skos:altLabel", "wdt:P1476"])}
  ?item ?prop ?alias .
  FILTER(?prop = wdt:P1476 || LANG(?alias) = "en")
}}
ORDER BY ASC(STR(?item)) ASC(STR(?prop)) ASC(STR(?alias)) ASC(LANG(?alias))
LIMIT {limit}
OFFSET {offset}
"""


def controls_query(
    classes: Sequence[str], genre: str, max_sitelinks: int, limit: int, offset: int, require_image: bool
) -> str:
    """Works of ``classes`` with genre (P136) ``genre`` and at most ``max_sitelinks``, most linked first.

    One row per (item, class), with the English label and description when there are any: the
    candidates of the matched non-iconic controls (:mod:`iconicity_utils.collect.controls`).
    """
    terms = _items(classes, "class")
    genre_term = f"wd:{sparql.qid(genre)}"
    _paging(limit, offset, max_sitelinks=max_sitelinks)
    image = "\n  FILTER EXISTS { ?item wdt:P18 ?image . }" if require_image else ""
    return f"""{sparql.prefix_block()}
SELECT ?item ?class ?sitelinks ?label ?description WHERE {{
  {_values("class", terms)}
  ?item wdt:P31 ?class ;
        wdt:P136 {genre_term} ;
        wikibase:sitelinks ?sitelinks .
  FILTER(?sitelinks <= {max_sitelinks}){image}
  OPTIONAL {{ ?item rdfs:label ?label . FILTER(LANG(?label) = "en") }}
  OPTIONAL {{ ?item schema:description ?description . FILTER(LANG(?description) = "en") }}
}}
ORDER BY DESC(?sitelinks) ASC(STR(?item)) ASC(STR(?class))
LIMIT {limit}
OFFSET {offset}
"""
