"""Loading a results folder for the explorer: the score tables, the image-path resolver, the titles.

:func:`load_results` reads any results folder (a demo run, a real run, or the output of
:func:`~iconicity_utils.score.score_folders`; image paths relative to the project root or
absolute) into a :class:`Results`, narrowed to the columns the explorer shows and re-thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils.config import load_config
from iconicity_utils.config.notebook import resolve_config_path
from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.core.io import read_table
from iconicity_utils.registry import PROJECT_ROOT
from iconicity_utils.score.tables import PER_MODEL, PER_REFERENCE
from iconicity_utils.score.writer import PER_IMAGE

__all__ = [
    "FEATURES",
    "VARIANT_ORDER",
    "SCORING_COLUMNS",
    "Resolver",
    "Results",
    "order_variants",
    "load_results",
]

#: stage 06's per-reference feature table, in the results folder (key ``slug``)
FEATURES = "reference_features.parquet"
#: prompt variants in display order (stage 05); other values follow, sorted
VARIANT_ORDER = ("title", "synonym", "literal")
#: the per-image columns the explorer needs
REQUIRED = (
    "model", "variant", "slug", "kind", "index", "path", "cra_sim", "cra_tau", "vr_cells", "vr_tau",
    "comparison", "vr", "vi", "vr_mean",
)  # fmt: skip
#: the per-image columns kept for display and for re-aggregation (the rest are dropped at load:
#: :func:`score_tables.aggregate_references` reads each group's first row, so narrow is fast)
KEEP = (
    *REQUIRED, "prompt", "ref_paths", "cra_ref", "cra_pass", "grid", "vr_cells_mode", "vr_pool",
    "cra_encoder", "vr_encoder",
)  # fmt: skip
#: the columns re-thresholding reads (score_tables.rescore and aggregate_references); the others
#: are display-only and are joined back by row for the rows shown
SCORING_COLUMNS = (
    "model", "variant", "slug", "kind", "index", "cra_sim", "cra_tau", "cra_pass", "vr_cells", "vr_tau",
    "comparison", "vr", "vi", "vr_mean", "grid", "vr_cells_mode", "vr_pool", "cra_encoder", "vr_encoder",
)  # fmt: skip


class Resolver:
    """Stored image path -> file: through ``cfg.absolute`` when a config is given, else as stored
    (a relative path that does not exist from the current folder is tried from the project root,
    so a notebook running in ``notebooks/`` finds ``data/...``)."""

    def __init__(self, cfg=None):
        self.cfg = cfg

    def __call__(self, stored) -> Path:
        p = Path(str(stored))
        if p.is_absolute():
            return p
        if self.cfg is not None:
            return self.cfg.absolute(p)
        return p if p.exists() else PROJECT_ROOT / p


@dataclass
class Results:
    """The score tables of one results folder, ready to explore."""

    per_image: Any
    per_reference: Any | None
    per_model: Any | None
    features: Any | None
    folder: Path
    titles: dict[str, str]
    resolve: Resolver
    cfg: Any | None = None
    n_bootstrap: int = 1000
    seed: int = 0
    is_standin: bool = False

    @property
    def features_path(self) -> Path:
        return self.folder / FEATURES

    @property
    def models(self) -> list[str]:
        return sorted(set(self.per_image["model"]))

    def variants(self, model: str) -> list[str]:
        return order_variants(set(self.per_image.loc[self.per_image["model"] == model, "variant"]))

    def consistency(self):
        """The stored per-reference consistency (needs the encoder: never recomputed), or None."""
        pr = self.per_reference
        if pr is None or "consistency" not in pr.columns:
            return None
        return pr[["model", "variant", "slug", "consistency"]]


def _variant_key(variant: str) -> tuple[int, int, str]:
    base, _, k = str(variant).partition("-")
    group = VARIANT_ORDER.index(base) if base in VARIANT_ORDER else len(VARIANT_ORDER)
    return group, int(k) if k.isdigit() else 1, str(variant)


def order_variants(variants) -> list[str]:
    """Variants in :data:`VARIANT_ORDER` (stage 05's ``synonym-2``, ``synonym-3``, ... after
    ``synonym``), then any other value, sorted."""
    return sorted(set(variants), key=_variant_key)


def _folder(path, cfg) -> Path:
    if path is None:
        if cfg is None:
            raise ValueError("give a study config or a results folder")
        return cfg.results_dir
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return PROJECT_ROOT / p


def _titles(per_image, cfg) -> dict[str, str]:
    """slug -> title: the references table's ``label`` when the config has one, else the prompt of
    the ``title`` variant (the folder scorer stores the CSV label there), else the slug."""
    titles: dict[str, str] = {}
    if cfg is not None and Path(cfg.references_table).is_file():
        refs = read_table(cfg.references_table)
        if {"slug", "label"} <= set(refs.columns):
            titles.update(zip(refs["slug"].astype(str), refs["label"].astype(str), strict=True))
    if "prompt" in per_image.columns:
        rows = per_image.sort_values("variant", key=lambda s: s != "title", kind="stable")
        for slug, prompt in zip(rows["slug"], rows["prompt"], strict=True):
            if slug not in titles and isinstance(prompt, str) and prompt:
                titles[slug] = prompt
    for slug in per_image["slug"]:
        titles.setdefault(slug, str(slug))
    return titles


def load_results(config=None, results=None) -> Results:
    """The score tables of a results folder.

    Args:
        config: a study config (object or path) or None.  With a config, stored image paths are
            resolved with ``cfg.absolute`` and titles come from its references table.
        results: the folder holding ``scores_per_image.parquet`` (default: the config's results
            folder); e.g. the ``out_dir`` of :func:`~iconicity_utils.score.score_folders`.

    Raises:
        FileNotFoundError: no per-image table in the folder (says how to make one).
        ValueError: the per-image table lacks a column the explorer needs.
    """
    cfg = config
    if config is not None and not hasattr(config, "thresholds"):
        cfg = load_config(resolve_config_path(config))
    folder = _folder(results, cfg)
    per_image, standin = _read_per_image(folder / PER_IMAGE)
    per_reference = _fast(read_table(folder / PER_REFERENCE)) if (folder / PER_REFERENCE).is_file() else None
    per_model = _fast(read_table(folder / PER_MODEL)) if (folder / PER_MODEL).is_file() else None
    features = _fast(read_table(folder / FEATURES)) if (folder / FEATURES).is_file() else None
    n_bootstrap, seed = 1000, 0
    if per_model is not None and len(per_model) and {"n_bootstrap", "seed"} <= set(per_model.columns):
        n_bootstrap, seed = int(per_model["n_bootstrap"].iloc[0]), int(per_model["seed"].iloc[0])
    elif cfg is not None:
        n_bootstrap, seed = cfg.scoring.n_bootstrap, cfg.scoring.bootstrap_seed
    return Results(
        per_image=per_image,
        per_reference=per_reference,
        per_model=per_model,
        features=features,
        folder=folder,
        titles=_titles(per_image, cfg),
        resolve=Resolver(cfg),
        cfg=cfg,
        n_bootstrap=n_bootstrap,
        seed=seed,
        is_standin=standin,
    )


def _read_per_image(path: Path):
    """The per-image table, narrowed to :data:`KEEP` and sorted, and whether it is a stand-in run."""
    if not path.is_file():
        raise FileNotFoundError(
            f"no score tables to explore: {path} not found.  Score a study with notebooks 03-04 "
            "(./run_all.sh --config ...), or your own folders with "
            "iconicity_utils.score.score_folders(..., out_dir=FOLDER)."
        )
    per_image = read_table(path)
    lacking = [c for c in REQUIRED if c not in per_image.columns]
    if lacking:
        raise ValueError(f"{path}: the per-image table lacks columns {lacking}")
    if per_image.empty:
        raise ValueError(f"{path}: the per-image table has no rows: nothing was scored")
    standin = "note" in per_image.columns and bool((per_image["note"] == STANDIN_LABEL).any())
    per_image = _fast(per_image[[c for c in KEEP if c in per_image.columns]])
    # float32 arrays once, so every re-threshold stacks them without converting lists
    per_image["vr_cells"] = [np.asarray(c, dtype=np.float32) for c in per_image["vr_cells"]]
    if "cra_pass" not in per_image.columns:
        per_image["cra_pass"] = False  # rescore decides it from cra_sim
    per_image = per_image.sort_values(["model", "variant", "slug", "index"], kind="stable").reset_index(
        drop=True
    )
    return per_image, standin


def _fast(df):
    """A plain copy for many small group operations: no ``attrs`` (pandas deep-copies them on every
    slice; the provenance stays in the files) and text columns as Python objects (faster to index
    one row at a time than Arrow-backed strings)."""
    df = df.copy()
    df.attrs = {}
    for col in df.columns:
        if (
            df[col].dtype != object
            and df[col].dtype.kind in "OSUT"
            or str(df[col].dtype) in ("str", "string")
        ):
            df[col] = df[col].astype(object)
    return df
