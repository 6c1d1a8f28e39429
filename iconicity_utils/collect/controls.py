"""Matched non-iconic controls of stage 01 (``collection.controls``; docs/method.md §1.6).

A control is a work that resembles a reference in what it is, not in how famous it is: for each
reference, in the references table's order, up to ``collection.controls_per_reference`` works

- of the reference's class (``class_qid``: painting, film, television series),
- sharing at least one genre (P136, with an English label) with it,
- with at most ``collection.controls_max_sitelinks`` sitelinks (below every reference's floor),
- static ones with a P18 image, every one with an English label (the prompt is the title),

taken in a deterministic order: sitelinks descending, then QID as text (the query's own order),
each work used once.  Stage 05 writes literal descriptions of them, so they get the references'
columns (properties, class-level subjects, aliases) plus ``control_for`` (the slug of the
reference matched) and ``matched_genre`` (the label of the shared genre; the first in
alphabetical order when several are shared).

Candidates come from one query per (class, genre) pair of the references
(:func:`iconicity_utils.collect.queries.controls_query`), paged until ``n * k`` labelled works are in
(``n`` references of that kind, ``k`` controls each) or the answer ends: since at most ``n * k``
works are ever taken, every work a reference can take lies in those first ``n * k`` of each of its
(class, genre) lists, so the greedy match below is the same as over the whole endpoint.

Slugs are unique across both tables: a control whose slug is a reference's (or another control's)
gets ``_<qid>`` appended; the references' slugs never depend on the controls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from iconicity_utils.collect.labels import assign_slugs, clean_label
from iconicity_utils.collect.parse import REFERENCE_COLUMNS, Candidate
from iconicity_utils.collect.sparql import bindings, entity_value, literal_value

__all__ = [
    "CONTROL_COLUMNS",
    "ControlCandidate",
    "as_candidates",
    "control_slugs",
    "finish_controls_table",
    "match_controls",
    "merge_candidates",
    "parse_control_candidates",
]

#: the controls table's columns: the references table's, then the match
CONTROL_COLUMNS = [*REFERENCE_COLUMNS, "control_for", "matched_genre"]


@dataclass
class ControlCandidate:
    """A work that may be a control: its classes and genres among those asked for."""

    qid: str
    sitelinks: int
    label: str | None
    description: str | None
    classes: set[str] = field(default_factory=set)
    genres: set[str] = field(default_factory=set)


def parse_control_candidates(
    data: dict[str, Any], genre: str, max_sitelinks: int, name: str = "controls"
) -> list[ControlCandidate]:
    """The rows of a controls response (one genre), one candidate per work, in response order.

    Rows above ``max_sitelinks`` are dropped (a store that ignored the FILTER cannot smuggle them in).

    Raises:
        ValueError: naming the query and row, for a row without an item, a class or sitelinks.
    """
    items: dict[str, ControlCandidate] = {}
    for i, row in enumerate(bindings(data, name)):
        qid = entity_value(row, "item", name, i)
        cls = entity_value(row, "class", name, i)
        raw = literal_value(row, "sitelinks")
        if raw is None or not raw.strip().lstrip("+").isdigit():
            raise ValueError(
                f"{name}, row {i}: ?sitelinks is missing or not a count: {row.get('sitelinks')!r}"
            )
        sitelinks = int(raw)
        if sitelinks > max_sitelinks:
            continue
        cand = items.setdefault(qid, ControlCandidate(qid, sitelinks, None, None))
        cand.label = cand.label or literal_value(row, "label", "en")
        cand.description = cand.description or literal_value(row, "description", "en")
        cand.classes.add(cls)
        cand.genres.add(genre)
    return list(items.values())


def merge_candidates(groups: Sequence[Sequence[ControlCandidate]]) -> list[ControlCandidate]:
    """One candidate per work across the (class, genre) answers, in the match order:
    sitelinks descending, then QID as text."""
    merged: dict[str, ControlCandidate] = {}
    for group in groups:
        for cand in group:
            seen = merged.setdefault(
                cand.qid, ControlCandidate(cand.qid, cand.sitelinks, cand.label, cand.description)
            )
            seen.label = seen.label or cand.label
            seen.description = seen.description or cand.description
            seen.classes |= cand.classes
            seen.genres |= cand.genres
    return sorted(merged.values(), key=lambda c: (-c.sitelinks, c.qid))


def match_controls(
    references: Sequence[dict[str, Any]], candidates: Sequence[ControlCandidate], per_reference: int
) -> list[tuple[dict[str, Any], ControlCandidate, str]]:
    """Greedy matching, reference after reference: ``[(reference, control, matched genre label)]``.

    Args:
        references: in table order, each with ``qid``, ``slug``, ``class_qid`` and ``genres``
            (``{genre qid: English label}``).
        candidates: in match order (:func:`merge_candidates`); those without an English label
            are never taken.
        per_reference: at most this many controls per reference.
    """
    used: set[str] = {r["qid"] for r in references}
    out = []
    for ref in references:
        taken = 0
        for cand in candidates:
            if taken >= per_reference:
                break
            shared = cand.genres & ref["genres"].keys()
            if cand.qid in used or not shared or ref["class_qid"] not in cand.classes:
                continue
            if not clean_label(cand.label):
                continue
            used.add(cand.qid)
            taken += 1
            genre = sorted((ref["genres"][g] for g in shared), key=lambda s: (s.casefold(), s))[0]
            out.append((ref, cand, genre))
    return out


def control_slugs(labels: list[str], qids: list[str], taken: set[str]) -> list[str]:
    """Slugs for the controls, unique among them and unlike every slug in ``taken`` (the references').

    Raises:
        ValueError: when no unique slug can be made (a control's QID repeats a reference's).
    """
    slugs = assign_slugs(labels, qids)
    slugs = [f"{s}_{q.lower()}" if s in taken else s for s, q in zip(slugs, qids, strict=True)]
    clash = (set(slugs) & taken) | {s for s in slugs if slugs.count(s) > 1}
    if clash:
        raise ValueError(f"control slugs clash with reference slugs or each other: {sorted(clash)}")
    return slugs


def as_candidates(matches, kinds: dict[str, str]) -> dict[str, list[Candidate]]:
    """The matched controls as ranked :class:`~iconicity_utils.collect.parse.Candidate` lists per kind
    (``kinds``: reference qid -> kind), with the reference's class."""
    out: dict[str, list[Candidate]] = {}
    for ref, cand, _ in matches:
        kind = kinds[ref["qid"]]
        out.setdefault(kind, []).append(
            Candidate(cand.qid, kind, ref["class_qid"], cand.sitelinks, cand.label, cand.description)
        )
    return out


def finish_controls_table(table, matches, reference_titles: set[str]):
    """Add ``control_for`` and ``matched_genre``; ``title_shared`` also counts the references' titles."""
    by_qid = {cand.qid: (ref["slug"], genre) for ref, cand, genre in matches}
    table = table.copy()
    table["control_for"] = [by_qid[q][0] for q in table["qid"]]
    table["matched_genre"] = [by_qid[q][1] for q in table["qid"]]
    folded = table["label_clean"].str.casefold()
    table["title_shared"] = (table["title_shared"] | folded.isin(reference_titles)).astype(bool)
    for col in ("control_for", "matched_genre"):
        table[col] = table[col].astype(object)
    return table[CONTROL_COLUMNS].reset_index(drop=True)
