"""The demo's caption corpus: a small synthetic one, with the counts of every title known by construction.

Not science: stage 06 reaches it by name, as the ``caption_corpus`` provider ``synthetic``
(``iconicity_utils.core.plugins.provider("caption_corpus", "synthetic")``, declared in
``pyproject.toml``), when ``correlates.frequency.synthetic_corpus`` is true.  The provider is
:data:`build_demo_corpus`: call it with a config to write the corpus (:func:`build_corpus`), and
``build_demo_corpus.compare_expected(cfg, counts)`` to set counts beside the constructed ones.

The corpus holds the hard cases: a title inside a longer word, punctuation inside a title, other
case, Unicode variants and a caption that repeats a title.  For the count modes
(:mod:`~iconicity_utils.correlates.modes`) each title gets its own share of captions with
evidence (the creator's surname, the year, or "painting" / "film"), from none to nearly all, so
that ``caption_ambiguity`` varies across references; each alias of stage 01's ``aliases`` gets
captions of its own (a weak alias half of them with evidence, half without; it counts only with
the creator's surname or the year, not with a kind word) and one caption holds
title and alias together; each title with punctuation gets captions with the punctuation dropped
("face off", which only ``normalise: punctuation`` counts).  Every mode's count is planned, and
checked against an independent slow count (one regex per name) before it is written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from iconicity_utils.core.io import atomic_path, atomic_write_json, read_table
from iconicity_utils.correlates.aliases import reference_aliases
from iconicity_utils.correlates.corpus import shard_glob
from iconicity_utils.correlates.modes import KIND_WORDS, surnames
from iconicity_utils.correlates.normalise import NORMALISATION, QUOTES, normalisation_name, normalise_texts

__all__ = [
    "SyntheticCaptionCorpus",
    "build_demo_corpus",
    "build_corpus",
    "demo_expected_path",
    "compare_expected",
]

_FILLER = (
    "photo", "print", "canvas", "framed", "vintage", "poster", "wall", "decor", "gift", "blue", "green",
    "cotton", "shirt", "mug", "sticker", "detail", "modern", "classic", "edition", "digital", "design",
    "art", "sale", "cheap", "large", "small", "home", "office", "style", "colour", "paper", "high",
    "quality", "set", "pack", "retro", "limited", "museum", "gallery", "copy", "frame", "black", "white",
    "red", "gold", "silver", "wooden", "glass", "metal", "card", "book", "cover", "scene", "still",
    "image", "picture", "view", "close", "up", "free", "shipping", "new", "old", "rare", "original",
)  # fmt: skip
#: hand-made decoys: text that looks like a demo title but must not count (title inside a longer
#: word, punctuation dropped, part of a title; "face off hockey poster" also must not count as the
#: weak alias "Face Off": a kind word is no evidence for a weak alias)
_DECOYS = {
    "Psycho": ["psychology textbook cover", "a psychotic villain, comic style"],
    "Titanic": ["titanically large ship model", "titanics of industry, old photo"],
    "Metropolis": ["metropolises at night, skyline print"],
    "Guernica": ["guernicas in the rain, street photo"],
    "Face/Off": ["face off hockey poster", "faceoff at the rink", "face / off sticker"],
    "Impression, Sunrise": ["impression sunrise over the harbour"],
    "2001: A Space Odyssey": ["2001 a space odyssey themed party"],
    "...And Justice for All": ["and justice for all, courthouse sign"],
    "The Starry Night": ["starry night sky over the desert", "the starry nights of summer"],
    "Mona Lisa": ["mona lisas smile in every shop", "xmona lisa typo shirt"],
    "The Matrix": ["the matrixes of linear algebra"],
    "Casablanca": ["casablancas bar sign"],
    "Star Wars": ["starwars lego set", "star warship model"],
}
#: how a mention is written: each keeps the title findable after normalisation
_MENTIONS = (
    "{t} wall art, {a} {b} {c}",
    "{a} {b} inspired by {t}",
    "“{t}” {a} {b}",
    "{a} ({t}) {b} {c}",
    "{T} {a} {b}",
    "{a} {b} - {lt}",
    "{t}! {t}! {t} {a}",
    "{a}\t{t}\n{b}",
    "{a} {b} {t}.",
)  # fmt: skip


def _variants(title: str) -> list[str]:
    """The title written in ways that normalise to it: NBSP, double space, NFD, full width."""
    out = []
    if " " in title:
        out.append(title.replace(" ", "\u00a0", 1))
        out.append(title.replace(" ", "  ", 1))
    if unicodedata.normalize("NFD", title) != title:
        out.append(unicodedata.normalize("NFD", title))
    if title.isascii():
        out.append("".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in title))
    return out


def demo_expected_path(cfg) -> Path:
    """``expected_counts.json`` beside the generated demo shards."""
    return Path(shard_glob(cfg)).parent / "expected_counts.json"


def _shard_names(cfg, n_shards: int) -> tuple[Path, list[str]]:
    """The folder of the shards and their file names; refused when the glob cannot hold them."""
    pattern = Path(shard_glob(cfg))
    folder = pattern.parent
    names = [f"demo_captions_{i:02d}.parquet" for i in range(n_shards)]
    if any(c in str(folder) for c in "*?["):
        raise ValueError(
            f"the synthetic corpus needs a plain folder in correlates.frequency.shards, got {pattern}"
        )
    if not all(fnmatch.fnmatch(n, pattern.name) for n in names):
        raise ValueError(f"generated shard names ({names[0]}, ...) do not match {pattern.name!r}")
    return folder, names


def _up_to_date(cfg, folder: Path, names: list[str], fingerprint: str) -> bool:
    expected_path = demo_expected_path(cfg)
    if not (expected_path.is_file() and all((folder / n).is_file() for n in names)):
        return False
    try:
        return json.loads(expected_path.read_text())["fingerprint"] == fingerprint
    except (OSError, ValueError, KeyError):
        return False


#: the share of a title's mentions that carry evidence, by the title's position (0: all ambiguous)
_EVIDENCE_SHARES = (0.9, 0.1, 0.6, 0.3, 0.8, 0.0, 0.5, 1.0)
#: the planned counts of each reference, in this order (``caption_count`` is the ``title`` mode)
PLANNED = ("caption_count", "exact_caption_count", "title_creator", "title_context", "aliases")


def _checked_counts(refs, captions: list[str], planned: dict, aliases) -> dict[str, dict[str, int]]:
    """The slow, independent counts of every reference; an error where they differ from the plan."""
    checked = _slow_mode_counts(captions, refs, aliases)
    for slug, counts in checked.items():
        plan = {k: planned[slug][k] for k in counts}
        if counts != plan:
            raise AssertionError(
                f"demo corpus: {slug} is planned at {plan} but the slow count finds {counts}"
            )
    return checked


def _write_shards(folder: Path, names: list[str], column: str, captions: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("demo_captions_*.parquet"):
        if stale.name not in names:
            stale.unlink()
    per = math.ceil(len(captions) / len(names))
    for i, name in enumerate(names):
        part = captions[i * per : (i + 1) * per]
        table = pa.table(
            {column: pa.array(part, pa.string()), "id": pa.array(range(i * per, i * per + len(part)))}
        )
        with atomic_path(folder / name) as tmp:
            pq.write_table(table, tmp, row_group_size=max(1, per // 4))


def build_corpus(cfg, n_captions: int = 20_000, n_shards: int = 4, seed: int = 0) -> Path:
    """Generate the demo caption corpus at ``correlates.frequency.shards``, with known counts.

    For every reference of the references table a planned number of captions mention its title
    (0 to ~60, more for more-linked references), written in many ways that must count (other
    case, curly quotes, tabs and newlines, a title repeated in one caption, NBSP, double spaces,
    NFD accents, full-width letters, a caption that is exactly the title) beside decoys that must
    not (a title inside a longer word, punctuation dropped, part of a title; a weak alias with a
    kind word only, "face off hockey poster"); a planned share of
    them carry evidence, and aliases and punctuation variants get captions of their own (module
    docstring).  The rest is filler made of words that appear in no title and are no evidence.
    Every mode's planned count is checked against an independent, slow count (one regex per name
    over Python-normalised text) before the counts are written to :func:`demo_expected_path`,
    with the ``title`` count under ``normalise: punctuation`` too; a mismatch is an error.
    Deterministic for a given references table, ``n_captions``, ``n_shards`` and ``seed``.

    Returns:
        The folder of the shards.
    """
    if not cfg.correlates.frequency.synthetic_corpus:
        raise ValueError(
            "build_demo_corpus writes a synthetic corpus: set correlates.frequency.synthetic_corpus"
        )
    refs = read_table(cfg.references_table)
    folder, names = _shard_names(cfg, n_shards)
    column = cfg.correlates.frequency.caption_column
    aliases = reference_aliases(cfg, refs) if "aliases" in refs.columns else None
    key = {
        "titles": list(zip(refs["slug"], refs["label_clean"], refs["sitelinks"].astype(int), strict=True)),
        "n_captions": n_captions, "n_shards": n_shards, "seed": seed, "column": column,
        "normalisation": NORMALISATION, "aliases": aliases,
        "evidence": ["shares, aliases, punctuation: v4 (weak aliases: creator or year)", *zip(refs.get("creator", []), refs.get("year", []), strict=False)],
    }  # fmt: skip
    fingerprint = hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()
    if _up_to_date(cfg, folder, names, fingerprint):
        return folder
    captions, planned = _demo_captions(refs, n_captions, seed, aliases)
    checked = _checked_counts(refs, captions, planned, aliases)
    punctuation = _slow_counts(captions, list(refs["label_clean"]), "punctuation")
    _write_shards(folder, names, column, captions)
    expected = {
        slug: {"title": t, **checked[slug], "caption_count_punctuation": p[0]}
        for slug, t, p in zip(refs["slug"], refs["label_clean"], punctuation, strict=True)
    }
    atomic_write_json(
        demo_expected_path(cfg),
        {
            "fingerprint": fingerprint,
            "note": "synthetic demo captions: counts known by construction, not a training corpus",
            "captions": len(captions),
            "expected": expected,
        },
    )
    return folder


def _mentions(title: str, n: int, pick) -> tuple[list[str], int]:
    """``n`` captions that mention ``title`` in the ways of :data:`_MENTIONS`, and how many are it exactly."""
    captions: list[str] = []
    exact = 0
    for k in range(n):
        a, b, c = pick(), pick(), pick()
        variants = _variants(title)
        t = variants[k % len(variants)] if variants and k % 4 == 3 else title
        if k % 7 == 5:
            captions.append(f"  {title.upper()} ")
            exact += 1
            continue
        template = _MENTIONS[k % len(_MENTIONS)]
        captions.append(template.format(t=t, T=title.upper(), lt=title.lower(), a=a, b=b, c=c))
    return captions, exact


def _year(value) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _evidence(k: int, row, kind_word: str) -> tuple[str, str]:
    """The k-th piece of evidence for one reference: ``(text to add, "creator" | "year" | "kind")``."""
    names, year = surnames(row.get("creator")), _year(row.get("year"))
    turn = (k // 10 + k) % 3
    if turn == 0 and names:
        return f" by {names[0]}", "creator"
    if turn == 1 and year is not None:
        return f" ({year})", "year"
    return f", {kind_word}", "kind"


def _with_evidence(mentions: list[str], rows, share: float, plan: dict) -> list[str]:
    """A ``share`` of the mentions get evidence (deterministic, by position; exact captions are left
    alone), taking turns among the references of the title; ``plan`` gets the counts per mode."""
    out = list(mentions)
    rows = list(rows.to_dict("records"))
    for k, text in enumerate(out):
        if text.startswith("  ") or (k % 10) >= round(share * 10):
            continue
        row = rows[k % len(rows)]
        kind_word = "painting" if row["kind"] == "static" else "film"
        extra, what = _evidence(k, row, kind_word)
        out[k] = text + extra
        for other in rows:
            counts = plan[other["slug"]]
            if what == "creator" and other is row:
                counts["title_creator"] += 1
            if what == "kind" or (what == "year" and _year(other.get("year")) == _year(row.get("year"))):
                counts["title_context"] += 1
    return out


def _alias_captions(refs, aliases, plan: dict, pick, title_rx) -> list[str]:
    """Captions of each alias (none that holds a title), half with evidence; one with title and alias."""
    out: list[str] = []
    for r, row in enumerate(refs.to_dict("records")):
        names, weak = aliases[0][r], aliases[1][r]
        own = normalise_texts([row["label_clean"]])[0]
        for q, (alias, is_weak) in enumerate(zip(names, weak, strict=True)):
            norm = normalise_texts([alias])[0]
            if not norm or norm == own or any(rx.search(norm) for rx in title_rx):
                continue
            for k in range(2 + (r + q) % 3):
                extra, _what = _evidence(k, row, "painting" if row["kind"] == "static" else "film")
                evidence = k % 2 == 0
                out.append(f"{alias} {pick()} {pick()}" + (extra if evidence else "") if k % 3 else
                           f"{pick()} {alias}" + (extra if evidence else f" {pick()}"))  # fmt: skip
                # a weak alias counts only with the creator or the year; a kind word is no evidence
                plan[row["slug"]]["aliases"] += int(
                    not is_weak or (evidence and _what in ("creator", "year"))
                )
            if q == 0:
                out.append(f"{row['label_clean']} ({alias}) {pick()}")
                plan[row["slug"]]["caption_count"] += 1
                plan[row["slug"]]["aliases"] += 1
    return out


def _punctuation_variants(title: str, pick, names: Sequence[str] = ()) -> list[str]:
    """Two captions of a title with punctuation, the punctuation dropped ("face off"): no count when
    exact (none when that is one of the work's ``names``: then it would count as an alias)."""
    folded = " ".join(re.sub(r"[^\w\s]+", " ", title).split())
    if not folded or folded == title or _norm(folded) in {_norm(n) for n in names}:
        return []
    return [f"{folded} {pick()} {pick()}", f"{pick()} {folded.lower()}"]


def _demo_captions(
    refs, n_captions: int, seed: int, aliases=None
) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The demo captions (shuffled) and, per slug, the planned count of every mode (:data:`PLANNED`)."""
    rng = np.random.default_rng(seed)
    title_words = {w for t in normalise_texts(list(refs["label_clean"])) for w in re.findall(r"\w+", t)}
    avoid = title_words | set(KIND_WORDS) | {n.lower() for c in refs.get("creator", []) for n in surnames(c)}
    filler = [w for w in _FILLER if w not in avoid]

    def pick() -> str:
        return str(filler[rng.integers(len(filler))])

    captions: list[str] = []
    plan = {slug: dict.fromkeys(PLANNED, 0) for slug in refs["slug"]}
    by_title: dict[str, list[str]] = {}
    for slug, title in zip(refs["slug"], refs["label_clean"], strict=True):
        by_title.setdefault(title, []).append(slug)
    for i, (title, slugs) in enumerate(by_title.items()):
        links = int(refs.loc[refs["slug"] == slugs[0], "sitelinks"].iloc[0])
        n = int(rng.poisson(max(0.0, (links - 30) * 0.6)))
        mentions, exact = _mentions(title, n, pick)
        for slug in slugs:
            plan[slug].update(caption_count=n, exact_caption_count=exact, aliases=n)
        share = _EVIDENCE_SHARES[i % len(_EVIDENCE_SHARES)]
        captions += _with_evidence(mentions, refs[refs["slug"].isin(slugs)], share, plan)
        names = (
            [a for r in np.flatnonzero(refs["slug"].isin(slugs)) for a in aliases[0][r]] if aliases else []
        )
        captions += _DECOYS.get(title, []) + _punctuation_variants(title, pick, names)
    if aliases is not None:
        captions += _alias_captions(
            refs, aliases, plan, pick, [_title_rx(t) for t in normalise_texts(list(refs["label_clean"])) if t]
        )
    while len(captions) < n_captions:
        captions.append(" ".join(pick() for _ in range(int(rng.integers(3, 12)))))
    order = rng.permutation(len(captions))
    return [captions[i] for i in order], plan


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _norm(text: str, mode: str = "exact") -> str:
    text = unicodedata.normalize("NFKC", text or "").lower()
    for src, dst in QUOTES.items():
        text = text.replace(src, dst)
    if mode == "punctuation":
        text = "".join(c if _is_word_char(c) or unicodedata.category(c)[0] == "M" else " " for c in text)
    return " ".join(text.split())


def _title_rx(t: str) -> re.Pattern:
    """The regex of one normalised name at word boundaries (each side only where its edge is ``\\w``)."""
    left = "(?<!\\w)" if _is_word_char(t[0]) else ""
    return re.compile(left + re.escape(t) + ("(?!\\w)" if _is_word_char(t[-1]) else ""))


def _slow_counts(
    captions: Sequence[str], titles: Sequence[str], mode: str = "exact"
) -> list[tuple[int, int]]:
    """One regex per title over Python-normalised captions: slow, simple, independent of the engine."""
    texts = [_norm(c, mode) for c in captions]
    out = []
    for title in titles:
        t = _norm(title, mode)
        if not t:
            out.append((0, 0))
            continue
        rx = _title_rx(t)
        out.append((sum(1 for x in texts if rx.search(x)), sum(1 for x in texts if x == t)))
    return out


def _slow_mode_counts(captions: Sequence[str], refs, aliases) -> dict[str, dict[str, int]]:
    """Every planned count of every reference, one regex per title, surname, kind word, year and alias."""
    texts = [_norm(c) for c in captions]
    kinds = [_title_rx(_norm(w)) for w in KIND_WORDS]
    out = {}
    for r, row in enumerate(refs.to_dict("records")):
        title = _norm(row["label_clean"])
        hits = [x for x in texts if title and _title_rx(title).search(x)]
        names = [_title_rx(_norm(n)) for n in surnames(row.get("creator"))]
        year = _year(row.get("year"))
        year_rx = _title_rx(str(year)) if year is not None else None

        def creator(x, names=names):
            return any(n.search(x) for n in names)

        def dated(x, year_rx=year_rx):
            return bool(year_rx and year_rx.search(x))

        def context(x):
            return any(k.search(x) for k in kinds) or dated(x)

        forms = (aliases[0][r], aliases[1][r]) if aliases is not None else ((), ())
        strong = [_title_rx(_norm(a)) for a, w in zip(*forms, strict=True) if _norm(a) and not w]
        weak = [_title_rx(_norm(a)) for a, w in zip(*forms, strict=True) if _norm(a) and w]
        holds = sum(1 for x in texts if (title and _title_rx(title).search(x)) or any(a.search(x) for a in strong)
                    or (any(a.search(x) for a in weak) and (creator(x) or dated(x))))  # fmt: skip
        out[row["slug"]] = {
            "caption_count": len(hits), "exact_caption_count": sum(1 for x in texts if title and x == title),
            "title_creator": sum(1 for x in hits if creator(x)), "title_context": sum(1 for x in hits if context(x)),
            "aliases": holds,
        }  # fmt: skip
    return out


def _check_normalisation(counts) -> None:
    """The expectations are for ``normalise: exact``; counts made otherwise are refused."""
    want = normalisation_name("exact")
    made = sorted(set(counts["normalisation"].dropna())) if "normalisation" in counts.columns else [want]
    if made != [want]:
        raise ValueError(
            f"counts column 'normalisation' is {made}, but the demo's expected counts are for {want!r} "
            "(correlates.frequency.normalise: exact); under punctuation compare with "
            "expected_counts.json's caption_count_punctuation"
        )


def compare_expected(cfg, counts):
    """The demo's counts beside the counts known by construction: ``match`` per reference, over the
    ``title`` and exact counts and every count mode the counts table has (a count missing on
    either side is no match).

    Raises:
        ValueError: the counts were made under another normalisation than ``exact`` (column
            ``normalisation``), for which the expectations hold.
    """
    _check_normalisation(counts)
    expected = json.loads(demo_expected_path(cfg).read_text(encoding="utf-8"))["expected"]
    modes = [
        m for m in ("title_creator", "title_context", "aliases") if f"caption_count_{m}" in counts.columns
    ]
    exp = pd.DataFrame(
        [{"slug": s, "expected_count": v["caption_count"], "expected_exact": v["exact_caption_count"],
          **{f"expected_{m}": v[m] for m in modes}} for s, v in expected.items()]
    )  # fmt: skip
    have = [
        "slug",
        "label_clean",
        "caption_count",
        "exact_caption_count",
        *(f"caption_count_{m}" for m in modes),
    ]
    out = counts[have].merge(exp, on="slug", how="left")
    out["match"] = (out["caption_count"] == out["expected_count"]) & (
        out["exact_caption_count"] == out["expected_exact"]
    )
    for m in modes:
        out["match"] &= out[f"caption_count_{m}"] == out[f"expected_{m}"]
    out["match"] = out["match"].fillna(False).astype(bool)  # a count or an expectation missing: no match
    return out


class SyntheticCaptionCorpus:
    """The ``caption_corpus`` provider ``synthetic``: call it to write the corpus (:func:`build_corpus`);
    :meth:`compare_expected` sets counts beside the constructed ones."""

    def __call__(self, cfg, n_captions: int = 20_000, n_shards: int = 4, seed: int = 0) -> Path:
        return build_corpus(cfg, n_captions=n_captions, n_shards=n_shards, seed=seed)

    @staticmethod
    def compare_expected(cfg, counts):
        """:func:`compare_expected`."""
        return compare_expected(cfg, counts)

    @staticmethod
    def expected_path(cfg) -> Path:
        """:func:`demo_expected_path`."""
        return demo_expected_path(cfg)


#: the provider registered as ``caption_corpus`` ``synthetic`` (entry point in ``pyproject.toml``)
build_demo_corpus = SyntheticCaptionCorpus()
