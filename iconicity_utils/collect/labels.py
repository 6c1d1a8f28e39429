"""Labels and slugs of stage 01: the base prompt from a Wikidata label, and a safe folder name.

- :func:`clean_label`: the bare title, tidied (the base prompt of every later stage);
- :func:`slugify` / :func:`assign_slugs`: unique, filesystem-safe folder names (:data:`SLUG_RE`):
  one path component, never ``.`` or ``..``, never hidden, whatever the label holds.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from iconicity_utils.collect import sparql

__all__ = ["SLUG_MAX", "SLUG_RE", "assign_slugs", "clean_label", "slugify"]

#: what a slug, and so a reference folder name, may be: one path component, never ``.`` or ``..``,
#: never hidden (:func:`slugify` makes them)
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_]*")

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
    (:data:`SLUG_RE`): one path component that is never ``.``
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
