"""The prompts of a generation run: one ``(slug, variant, prompt)`` row per image prompt.

The base variant (:data:`~iconicity_utils.core.constants.BASE_VARIANT`, ``"title"``) is the
reference's bare English title, ``label_clean`` (:func:`title_prompts`); stage 05 passes its
perturbed prompts as a further table (:func:`load_prompts`).  Slugs and variants become folder
names, so both are checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from iconicity_utils.core.constants import BASE_VARIANT
from iconicity_utils.core.io import read_table

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = ["load_prompts", "select_prompts", "title_prompts"]

_SAFE_NAME = re.compile(r"^[^/\\\x00]+$")


def title_prompts(cfg: StudyConfig) -> pd.DataFrame:
    """The base prompts: one row ``(slug, variant="title", prompt=label_clean)`` per reference.

    Raises:
        FileNotFoundError: the references table (stage 01 output) does not exist.
        ValueError: a required column is missing, or a row has an empty title (names the slug).
    """
    path = cfg.references_table
    refs = read_table(path)
    missing = [c for c in ("slug", "label_clean") if c not in refs.columns]
    if missing:
        raise ValueError(f"{path}: references table lacks column(s) {missing}; found {list(refs.columns)}")
    out = pd.DataFrame(
        {"slug": refs["slug"].astype(object), "variant": BASE_VARIANT, "prompt": refs["label_clean"]}
    )
    return _validate_prompts(out, str(path))


def _validate_prompts(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a prompt table: columns, non-empty strings, safe names, one prompt per (slug, variant)."""
    missing = [c for c in ("slug", "variant", "prompt") if c not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: prompt table lacks column(s) {missing}; "
            f"expected slug, variant, prompt, found {list(df.columns)}"
        )
    df = df[["slug", "variant", "prompt"]].reset_index(drop=True)
    for i, row in enumerate(df.itertuples(index=False)):
        for name in ("slug", "variant"):
            value = getattr(row, name)
            if not isinstance(value, str) or not _SAFE_NAME.match(value) or value.startswith("."):
                raise ValueError(
                    f"{source}: row {i}: {name} {value!r} is not a usable folder name "
                    "(a non-empty string without '/', '\\' or a leading '.')"
                )
        if not isinstance(row.prompt, str) or not row.prompt.strip():
            raise ValueError(
                f"{source}: row {i} (slug {row.slug!r}, variant {row.variant!r}): empty or missing prompt"
            )
    dup = df.duplicated(["slug", "variant"], keep=False)
    if dup.any():
        pairs = sorted({(s, v) for s, v in df.loc[dup, ["slug", "variant"]].itertuples(index=False)})
        raise ValueError(f"{source}: more than one prompt for (slug, variant) {pairs[:5]}")
    return df


def load_prompts(prompts: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A prompt table from a DataFrame or a ``.parquet`` / ``.csv`` file, validated.

    The table has one row per ``(slug, variant)`` with columns ``slug, variant, prompt`` (extra
    columns are ignored).  This is how stage 05 hands its perturbed prompts to ``generate``.
    """
    if isinstance(prompts, pd.DataFrame):
        return _validate_prompts(prompts, "<prompts DataFrame>")
    path = Path(prompts)
    if not path.is_file():
        raise FileNotFoundError(f"prompt table not found: {path}")
    if path.suffix == ".parquet":
        df = read_table(path)
    elif path.suffix == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        raise ValueError(f"{path}: a prompt table must be .parquet or .csv")
    return _validate_prompts(df, str(path))


def select_prompts(
    cfg: StudyConfig,
    prompts: pd.DataFrame | str | Path | None,
    variants: Sequence[str] | None,
    slugs: Sequence[str] | None,
) -> pd.DataFrame:
    """The (slug, variant, prompt) rows of a run: the title prompts or ``prompts``, filtered.

    Args:
        cfg: the study config (its ``generation.variants`` and references table).
        prompts: a prompt table that replaces the title prompts, or None.
        variants: keep these variants (default: the config's, or every variant of ``prompts``).
        slugs: keep these references (default: all).

    Raises:
        ValueError: a variant without prompts, or a slug or variant the table lacks.
    """
    if prompts is None:
        wanted = list(variants) if variants is not None else list(cfg.generation.variants)
        others = [v for v in wanted if v != BASE_VARIANT]
        if others:
            raise ValueError(
                f"variant(s) {others} have no prompts: only {BASE_VARIANT!r} comes from the references "
                "table; pass a prompt table (prompts=..., --prompts FILE) with slug, variant, prompt"
            )
        table = title_prompts(cfg) if wanted else title_prompts(cfg).iloc[0:0]
    else:
        table = load_prompts(prompts)
        if variants is not None:
            unknown = sorted(set(variants) - set(table["variant"]))
            if unknown:
                raise ValueError(
                    f"variant(s) {unknown} are not in the prompt table; it has {sorted(set(table['variant']))}"
                )
            table = table[table["variant"].isin(list(variants))]
    if slugs is not None:
        unknown = sorted(set(slugs) - set(table["slug"]))
        if unknown:
            raise ValueError(f"slug(s) {unknown[:10]} have no prompt in this run")
        table = table[table["slug"].isin(list(slugs))]
    return table.reset_index(drop=True)
