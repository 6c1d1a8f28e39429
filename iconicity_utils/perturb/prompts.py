"""Stage 05's prompts table: every selected reference's title, synonym and literal prompts.

:func:`build_prompts` builds it (written to :func:`prompts_path`): ``title``, ``synonym``
(:mod:`~iconicity_utils.perturb.synonyms`, WordNet 3.0) and ``literal``
(:mod:`~iconicity_utils.perturb.literal`) prompts, the leak check
(:mod:`~iconicity_utils.perturb.leaks`) and the CLIP text distance to the title
(:mod:`~iconicity_utils.perturb.distance`).  The rules are docs/method.md §5.1-5.2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import BASE_VARIANT, RESEED_VARIANT
from iconicity_utils.core.io import read_table, with_standin_label, write_table
from iconicity_utils.perturb.controls import control_prompts
from iconicity_utils.perturb.distance import add_text_distance
from iconicity_utils.perturb.leaks import flag_rows
from iconicity_utils.perturb.literal import literal_rows, read_literal_csv
from iconicity_utils.perturb.synonyms import meaning_ranker, synonym_variants
from iconicity_utils.perturb.wordnet import load_wordnet, wordnet_source
from iconicity_utils.registry import is_standin_config

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = [
    "PROMPTS_TABLE",
    "PROMPT_COLUMNS",
    "prompts_path",
    "variant_names",
    "select_references",
    "build_prompts",
    "write_stage_table",
]

#: the prompts table, under the data root
PROMPTS_TABLE = "prompts.parquet"
#: the prompts table's columns, in order
PROMPT_COLUMNS = [
    "slug", "kind", "title", "variant", "prompt", "status", "source", "method", "reason", "leak",
    "leak_words", "named", "named_words", "in_comparison", "standin", "text_encoder", "text_cosine",
    "text_distance",
]  # fmt: skip


def prompts_path(cfg: StudyConfig) -> Path:
    """``<data>/processed/prompts.parquet``."""
    return cfg.path("data", "processed", PROMPTS_TABLE)


def variant_names(cfg: StudyConfig) -> list[str]:
    """The variant names of the prompts table: ``title``, ``synonym`` [``synonym-2`` ...], ``literal``."""
    names = []
    for v in cfg.perturbation.variants:
        if v == "synonym":
            names += ["synonym"] + [f"synonym-{k}" for k in range(2, cfg.perturbation.n_synonyms + 1)]
        else:
            names.append(v)
    return names


def select_references(cfg: StudyConfig, refs: pd.DataFrame) -> pd.DataFrame:
    """The references stage 05 perturbs: ``perturbation.slugs`` (table order), or the first
    ``max_references`` (ceil(m/2) static and floor(m/2) dynamic in the table's order, the other
    kind filling in when one runs short), or all.

    Raises:
        ValueError: a slug of ``perturbation.slugs`` is not in the references table.
    """
    p = cfg.perturbation
    if p.slugs is not None:
        unknown = [s for s in p.slugs if s not in set(refs["slug"])]
        if unknown:
            raise ValueError(
                f"{cfg.source}: perturbation.slugs {unknown} are not in the references table {cfg.references_table}"
            )
        return refs[refs["slug"].isin(p.slugs)].reset_index(drop=True)
    if p.max_references is None:
        return refs.reset_index(drop=True)
    static, dynamic = refs[refs["kind"] == "static"], refs[refs["kind"] != "static"]
    m = p.max_references
    n_dynamic = min(len(dynamic), m - min(len(static), math.ceil(m / 2)))
    n_static = min(len(static), m - n_dynamic)
    return pd.concat([static.head(n_static), dynamic.head(n_dynamic)]).reset_index(drop=True)


def _references(cfg: StudyConfig) -> pd.DataFrame:
    refs = read_table(cfg.references_table)
    lacking = [c for c in ("slug", "kind", "label_clean") if c not in refs.columns]
    if lacking:
        raise ValueError(f"{cfg.references_table}: references table lacks column(s) {lacking}")
    for col in ("creator", "depicts", "genre", "main_subject", "class_qid"):
        if col not in refs.columns:
            refs[col] = None
    return refs


def _title_and_synonym_rows(
    cfg: StudyConfig, refs: pd.DataFrame, names: list[str], wn
) -> list[dict[str, Any]]:
    """The ``title`` row and the ``synonym`` rows of every reference, in the table's order."""
    p = cfg.perturbation
    ranker = meaning_ranker(p.meaning_encoder) if "synonym" in p.variants else None
    source = wordnet_source(wn) if wn is not None else None
    source = f"{source}; ranked by {p.meaning_encoder}" if ranker is not None else source
    curated = {}
    if p.synonym_csv and "synonym" in p.variants:
        curated = read_literal_csv(cfg.absolute(p.synonym_csv), refs["slug"])
    synonyms = [n for n in names if n.startswith("synonym")]
    rows: list[dict[str, Any]] = []
    for r in refs.itertuples(index=False):
        rows.append(
            {"slug": r.slug, "variant": BASE_VARIANT, "prompt": r.label_clean, "source": "title (label_clean)",
             "method": "the bare title", "reason": ""}
        )  # fmt: skip
        if RESEED_VARIANT in p.variants:  # the noise floor: the title's prompt, new seeds (noise_floor.py)
            rows.append({**rows[-1], "variant": RESEED_VARIANT, "method": "the bare title with new seeds"})
        if "synonym" in p.variants:
            made = synonym_variants(
                r.label_clean, wn, n=p.n_synonyms, proper_names=p.proper_names, creator=r.creator,
                ranker=ranker, min_zipf=p.synonym_min_zipf, min_cosine=p.meaning_min_cosine,
            )  # fmt: skip
            for k, (name, v) in enumerate(zip(synonyms, made, strict=True)):
                row = {"slug": r.slug, "variant": name, "prompt": v.prompt, "source": source,
                       "method": v.method, "reason": v.reason}  # fmt: skip
                if k == 0 and r.slug in curated:
                    text, line = curated[r.slug]
                    row.update(prompt=text, source=f"csv {p.synonym_csv}", method=f"line {line}", reason="")
                rows.append(row)
    return rows


def _in_table_order(df: pd.DataFrame, names: list[str], base: dict[str, Any]) -> pd.DataFrame:
    """Rows by reference (selection order), then variant (:func:`variant_names` order)."""
    order = {name: i for i, name in enumerate(names)}
    df["_order"] = [order[v] for v in df["variant"]]
    position = {slug: i for i, slug in enumerate(base)}
    df["_ref"] = [position[s] for s in df["slug"]]
    return df.sort_values(["_ref", "_order"], kind="stable").drop(columns=["_order", "_ref"])


def build_prompts(
    cfg: StudyConfig,
    *,
    write: bool = True,
    text_distance: bool = True,
    references: pd.DataFrame | None = None,
    wordnet=None,
) -> pd.DataFrame:
    """The prompts table of stage 05 (columns :data:`PROMPT_COLUMNS`), written to :func:`prompts_path`.

    One row per selected reference (:func:`select_references`) and variant (:func:`variant_names`):
    the prompt (None when missing), ``status`` (``ok`` / ``missing``), ``source`` (WordNet, Wikidata,
    the captioner, the CSV), ``method`` (how it was made: the replaced words and senses, the template
    and labels, the captioned image, the CSV line), ``reason`` (why missing), the leak flag and the
    leaking words, ``in_comparison`` (ok, and not leaking unless ``exclude_leaks`` is off),
    ``standin`` (made by a random-weight stand-in captioner) and the CLIP text cosine to the title.

    Args:
        cfg: the study config (``perturbation`` section).
        write: write the table (atomically, with provenance; rewritten whole on every run).
        text_distance: compute the text cosine (loads the text encoder); else NaN.
        references: the references table (default: stage 01's).
        wordnet: a WordNet reader (default: :func:`~iconicity_utils.perturb.wordnet.load_wordnet` on the config).

    Raises:
        :class:`~iconicity_utils.perturb.wordnet.WordNetMissingError`: WordNet is not installed (the message says how to install it).
    """
    p = cfg.perturbation
    everything = references if references is not None else _references(cfg)
    refs = select_references(cfg, everything)
    if refs.empty:
        raise ValueError(f"{cfg.references_table}: no reference to perturb (the references table is empty)")
    names = variant_names(cfg)
    wn = wordnet if wordnet is not None or names == [BASE_VARIANT] else load_wordnet(cfg)
    base = {r.slug: r for r in refs.itertuples(index=False)}
    rows = _title_and_synonym_rows(cfg, refs, names, wn)
    if "literal" in p.variants:
        rows += [{**row, "variant": "literal"} for row in literal_rows(cfg, refs, everything["slug"], wn)]
    df = pd.DataFrame(rows)
    df["kind"] = [base[s].kind for s in df["slug"]]
    df["title"] = [base[s].label_clean for s in df["slug"]]
    # the named-someone check is made on literal rows only (literal.py); the others name no one by it
    df = flag_rows(df, {slug: r.creator for slug, r in base.items()}, cfg, wn)
    df = _in_table_order(df, names, base)
    if p.controls:  # the matched-controls arm (controls.py): their own slugs, after the iconic rows
        df = pd.concat([df, control_prompts(cfg, refs["slug"], wn, everything["slug"])], ignore_index=True)
    df = add_text_distance(cfg, df) if text_distance else df.assign(text_encoder=None, text_cosine=np.nan)
    df["text_distance"] = 1.0 - df["text_cosine"]
    df = df[PROMPT_COLUMNS].reset_index(drop=True)
    if write:
        where = getattr(wn, "location", None)
        write_stage_table(df, prompts_path(cfg), cfg, wordnet=where.describe() if where is not None else None)
    return df


def write_stage_table(df: pd.DataFrame, path: Path, cfg: StudyConfig, **extra: Any) -> Path:
    """``write_table`` with the stage's provenance; rows made by a stand-in captioner carry the label
    even when the config's models are real."""
    df = df.copy()
    if "standin" in df and df["standin"].any() and not is_standin_config(cfg):
        notes = df["note"] if "note" in df else pd.Series([""] * len(df), index=df.index)
        df["note"] = [with_standin_label(n) if s else n for n, s in zip(notes, df["standin"], strict=True)]
    meta = {
        "stage": "05 perturbation",
        "settings": cfg.section_dump("perturbation", "generation", "thresholds"),
    }
    return write_table(df, path, cfg, **meta, **extra)
