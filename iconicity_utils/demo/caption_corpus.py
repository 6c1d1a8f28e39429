"""The demo's caption corpus: a small synthetic one, with the counts of every title known by construction.

Not science: stage 06 reaches it by name, as the ``caption_corpus`` provider ``synthetic``
(``iconicity_utils.core.plugins.provider("caption_corpus", "synthetic")``, declared in
``pyproject.toml``), when ``correlates.frequency.synthetic_corpus`` is true.  The provider is
:data:`build_demo_corpus`: call it with a config to write the corpus (:func:`build_corpus`), and
``build_demo_corpus.compare_expected(cfg, counts)`` to set counts beside the constructed ones.

The corpus holds the hard cases: a title inside a longer word, punctuation inside a title, other
case, Unicode variants and a caption that repeats a title.
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
from iconicity_utils.correlates.corpus import shard_glob
from iconicity_utils.correlates.modes import surnames
from iconicity_utils.correlates.normalise import NORMALISATION, QUOTES, normalise_texts

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
#: word, punctuation dropped, part of a title)
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
    "{t} poster, {a} {b} {c}",
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


def _checked_counts(refs, captions: list[str], planned: dict) -> list[tuple[int, int]]:
    """The slow, independent counts of every reference; an error where they differ from the plan."""
    checked = _slow_counts(captions, list(refs["label_clean"]))
    for slug, (count, exact) in zip(refs["slug"], checked, strict=True):
        if (count, exact) != planned[slug]:
            raise AssertionError(
                f"demo corpus: {slug} is planned at {planned[slug]} but the slow count finds {(count, exact)}"
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
    not (a title inside a longer word, punctuation dropped, part of a title).  The rest is filler
    made of words that appear in no title.  The planned counts are checked against an
    independent, slow count (one regex per title over Python-normalised text) before they are
    written to :func:`demo_expected_path`; a mismatch is an error.  Deterministic for a given
    references table, ``n_captions``, ``n_shards`` and ``seed``; rebuilt only when one changes.

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
    key = {
        "titles": list(zip(refs["slug"], refs["label_clean"], refs["sitelinks"].astype(int), strict=True)),
        "n_captions": n_captions,
        "n_shards": n_shards,
        "seed": seed,
        "column": column,
        "normalisation": NORMALISATION,
        "evidence": [
            "by surname, (year): _with_evidence v2",
            *zip(refs.get("creator", []), refs.get("year", []), strict=False),
        ],
    }
    fingerprint = hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()
    if _up_to_date(cfg, folder, names, fingerprint):
        return folder
    captions, planned = _demo_captions(refs, n_captions, seed)
    checked = _checked_counts(refs, captions, planned)
    _write_shards(folder, names, column, captions)
    expected = {
        slug: {"title": t, "caption_count": c, "exact_caption_count": e}
        for (slug, t), (c, e) in zip(
            zip(refs["slug"], refs["label_clean"], strict=True), checked, strict=True
        )
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


def _with_evidence(mentions: list[str], rows) -> list[str]:
    """Some mentions name the creator ("by Manet") or the year ("(1863)"): the count modes' evidence.

    Deterministic (by position), no random draw; exact captions are left alone.  With two
    references of one title (*Olympia*), each gets its own captions, so their modes differ.
    """
    out = list(mentions)
    for j, (creator, year) in enumerate(zip(rows.get("creator", []), rows.get("year", []), strict=False)):
        names = surnames(creator)
        for k, text in enumerate(out):
            if text.startswith("  ") or (k + j) % (3 + j) != 0:
                continue
            has_year = year is not None and not pd.isna(year)
            if names and (((k + j) // (3 + j)) % 2 == 0 or not has_year):
                out[k] = f"{text} by {names[0]}"
            elif has_year:
                out[k] = f"{text} ({int(year)})"
    return out


def _demo_captions(refs, n_captions: int, seed: int) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The demo captions (shuffled) and, per slug, the planned (captions containing, exact)."""
    rng = np.random.default_rng(seed)
    title_words = {w for t in normalise_texts(list(refs["label_clean"])) for w in re.findall(r"\w+", t)}
    filler = [w for w in _FILLER if w not in title_words]

    def pick() -> str:
        return str(filler[rng.integers(len(filler))])

    captions: list[str] = []
    planned: dict[str, tuple[int, int]] = {}
    by_title: dict[str, list[str]] = {}
    for slug, title in zip(refs["slug"], refs["label_clean"], strict=True):
        by_title.setdefault(title, []).append(slug)
    for title, slugs in by_title.items():
        links = int(refs.loc[refs["slug"] == slugs[0], "sitelinks"].iloc[0])
        n = int(rng.poisson(max(0.0, (links - 30) * 0.6)))
        mentions, exact = _mentions(title, n, pick)
        captions += _with_evidence(mentions, refs[refs["slug"].isin(slugs)])
        for slug in slugs:
            planned[slug] = (n, exact)
        captions += _DECOYS.get(title, [])
    while len(captions) < n_captions:
        captions.append(" ".join(pick() for _ in range(int(rng.integers(3, 12)))))
    order = rng.permutation(len(captions))
    return [captions[i] for i in order], planned


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _slow_counts(captions: Sequence[str], titles: Sequence[str]) -> list[tuple[int, int]]:
    """One regex per title over Python-normalised captions: slow, simple, independent of the engine."""

    def norm(text: str) -> str:
        text = unicodedata.normalize("NFKC", text).lower()
        for src, dst in QUOTES.items():
            text = text.replace(src, dst)
        return " ".join(text.split())

    texts = [norm(c) for c in captions]
    out = []
    for title in titles:
        t = norm(title)
        if not t:
            out.append((0, 0))
            continue
        rx = re.compile(
            ("(?<!\\w)" if _is_word_char(t[0]) else "")
            + re.escape(t)
            + ("(?!\\w)" if _is_word_char(t[-1]) else "")
        )
        out.append((sum(1 for x in texts if rx.search(x)), sum(1 for x in texts if x == t)))
    return out


def compare_expected(cfg, counts):
    """The demo's counts beside the counts known by construction (``match`` per reference)."""
    expected = json.loads(demo_expected_path(cfg).read_text(encoding="utf-8"))["expected"]
    exp = pd.DataFrame(
        [
            {"slug": s, "expected_count": v["caption_count"], "expected_exact": v["exact_caption_count"]}
            for s, v in expected.items()
        ]
    )
    out = counts[["slug", "label_clean", "caption_count", "exact_caption_count"]].merge(
        exp, on="slug", how="left"
    )
    out["match"] = (out["caption_count"] == out["expected_count"]) & (
        out["exact_caption_count"] == out["expected_exact"]
    )
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
