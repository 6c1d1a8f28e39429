"""A hand-made stage 06 study: a references table, per-reference scores, and caption shards.

Twelve references with titles that exercise the caption counter (punctuation inside a title, a
leading ellipsis, a one-word title that hides in longer words, two references sharing a title),
per-reference scores whose recognised counts depend on sitelinks (so a binomial GLM is
estimable), and a slow, obviously correct caption counter (one regex per title) to check the
fast one against.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from study_configs import write_study_config

from iconicity_utils.core.io import write_table

#: slug, qid, kind, English label, sitelinks, year, label_homonyms (items of the endpoint with that label)
REFERENCES = [
    ("mona_lisa", "Q12418", "static", "Mona Lisa", 170, 1503, 1),
    ("the_starry_night", "Q45585", "static", "The Starry Night", 118, 1889, 1),
    ("the_kiss", "Q698487", "static", "The Kiss", 64, 1907, 2),
    ("guernica", "Q175036", "static", "Guernica", 86, 1937, 1),
    ("impression_sunrise", "Q1153", "static", "Impression, Sunrise", 52, 1872, 1),
    ("olympia_q737062", "Q737062", "static", "Olympia", 58, 1863, 2),
    ("titanic", "Q44578", "dynamic", "Titanic", 115, 1997, 3),
    ("star_wars", "Q17738", "dynamic", "Star Wars", 110, 1977, 1),
    ("psycho", "Q163038", "dynamic", "Psycho", 72, 1960, 2),
    ("face_off", "Q223596", "dynamic", "Face/Off", 45, 1997, 1),
    ("and_justice_for_all", "Q1756446", "dynamic", "...And Justice for All", 36, 1979, 1),
    ("olympia_q1415219", "Q1415219", "dynamic", "Olympia", 40, None, 2),
]
MODELS = ["tiny-sd-a", "tiny-sd-b"]
#: stage 01's ``aliases`` (English altLabels and P1476 titles, without the label)
ALIASES = {
    "mona_lisa": ["La Gioconda", "La Joconde"],
    "impression_sunrise": ["Impression, soleil levant"],
    "face_off": ["Face Off"],
    "psycho": ["Psycho (1960 film)"],
}


def study_config(folder: Path, name: str = "c06", **correlates):
    """The demo config with outputs in ``folder`` and a synthetic caption corpus, ahocorasick_rs, 1 worker."""
    section = {
        "n_bootstrap": 200,
        "frequency": {
            "corpus": "test captions",
            "shards": "captions/demo_captions_*.parquet",
            "synthetic_corpus": True,
            "matcher": "ahocorasick_rs",
            "workers": 1,
        },
    }
    return write_study_config(folder, name, correlates=_merge(section, correlates))


def _merge(base: dict, updates: dict) -> dict:
    out = dict(base)
    for key, value in updates.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def references_frame() -> pd.DataFrame:
    df = pd.DataFrame(
        REFERENCES, columns=["slug", "qid", "kind", "label", "sitelinks", "year", "label_homonyms"]
    )
    df["label_clean"] = df["label"]
    df["year"] = df["year"].astype("Int64")
    df["label_homonyms"] = df["label_homonyms"].astype("Int64")
    df["aliases"] = [ALIASES.get(s, []) for s in df["slug"]]
    return df


def make_references(cfg, refs: pd.DataFrame | None = None) -> pd.DataFrame:
    refs = references_frame() if refs is None else refs
    write_table(refs, cfg.references_table, cfg, collection={"endpoint": "hand-made test references"})
    return refs


def make_scores(cfg, seed: int = 0) -> pd.DataFrame:
    """Per-reference scores: recognised images out of 10 rise with sitelinks; a second variant too."""
    rng = np.random.default_rng(seed)
    refs = references_frame()
    rows = []
    for m, model in enumerate(MODELS):
        for variant in ("title", "synonym"):
            for r in refs.itertuples():
                p = 1 / (1 + np.exp(-(-2.0 + 0.025 * r.sitelinks + 0.4 * m)))
                k = int(rng.binomial(10, p))
                rows.append(
                    {
                        "model": model,
                        "variant": variant,
                        "slug": r.slug,
                        "kind": r.kind,
                        "n_images": 10,
                        "n_recognised": k,
                        "cra": k / 10,
                        "vi_mean": float(rng.uniform()),
                        "crt": float(k / 10 * rng.uniform()),
                        "vr_all": float(rng.uniform()),
                    }
                )
    df = pd.DataFrame(rows)
    write_table(df, cfg.results_dir / "scores_per_reference.parquet", cfg)
    return df


def make_study(cfg):
    return make_references(cfg), make_scores(cfg)


def write_shards(folder: Path, shards: list[list[str | None]], column: str = "TEXT", row_group_size: int = 3):
    """One parquet file per list of captions: ``part_00.parquet``, ...; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, captions in enumerate(shards):
        path = folder / f"part_{i:02d}.parquet"
        pq.write_table(
            pa.table({column: pa.array(captions, pa.string())}), path, row_group_size=row_group_size
        )
        paths.append(path)
    return paths


# ---- the slow, obviously correct counter --------------------------------------------------------

QUOTES = {"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"'}


def glm_design(part: pd.DataFrame, predictors, extra=()) -> tuple[np.ndarray, pd.DataFrame]:
    """The binomial GLM's outcome and design, written independently of the package: a constant,
    each predictor z-scored (ddof=1), the ``extra`` columns as given, and (recognised, not) counts."""
    X = pd.DataFrame({"const": 1.0}, index=part.index)
    for p in predictors:
        X[p] = (part[p] - part[p].mean()) / part[p].std(ddof=1)
    for name, values in extra:
        X[name] = values.loc[part.index].astype(float)
    y = np.column_stack([part["n_recognised"], part["n_images"] - part["n_recognised"]])
    return y, X


def slow_normalise(text: str | None, mode: str = "exact") -> str:
    text = unicodedata.normalize("NFKC", text or "").lower()
    for src, dst in QUOTES.items():
        text = text.replace(src, dst)
    if mode == "punctuation":  # every character that is not a letter, digit, mark or _ is a space
        text = "".join(
            ch if ch.isalnum() or ch == "_" or unicodedata.category(ch)[0] == "M" else " " for ch in text
        )
    return " ".join(text.split())


def slow_counts(captions, titles) -> tuple[list[int], list[int]]:
    """One regex per title over every caption: captions containing it, and captions that are it."""
    texts = [slow_normalise(c) for c in captions]
    counts, exact = [], []
    for title in titles:
        t = slow_normalise(title)
        left = r"(?<!\w)" if re.match(r"\w", t[0]) else ""
        right = r"(?!\w)" if re.match(r"\w", t[-1]) else ""
        rx = re.compile(left + re.escape(t) + right)
        counts.append(sum(1 for x in texts if rx.search(x)))
        exact.append(sum(1 for x in texts if x == t))
    return counts, exact
