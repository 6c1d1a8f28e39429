"""The SPARQL text of stage 01 (docs/method.md §1): candidates, their properties, label homonyms.

The same text runs on the Wikidata Query Service and on the demo's local store: every PREFIX
declared, labels from ``rdfs:label`` / ``schema:description`` with LANG filters (never
``SERVICE wikibase:label``), a stable ORDER BY with LIMIT/OFFSET paging.  Class and item ids enter
as validated QIDs, labels as escaped string literals (:mod:`iconicity_utils.collect.sparql`).
"""

from __future__ import annotations

from collections.abc import Sequence

from iconicity_utils.collect import sparql

__all__ = ["PROPERTIES", "VALUES_CHUNK", "candidates_query", "homonyms_query", "properties_query"]

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
