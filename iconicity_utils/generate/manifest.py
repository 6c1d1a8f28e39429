"""The generation manifest, derived from the PNGs on disk (one row per finished image).

**The PNGs are the source of truth**: :func:`rebuild_manifest` reads every
``<model>/<variant>/<slug>/<index>.png`` under the generated-images folder (metadata only, with
the ``IEND`` truncation check), so a crash can never leave a manifest row without an image or a
duplicated row.  :func:`remove_orphan_temps` deletes what a killed writer left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from iconicity_utils.core.io import write_table
from iconicity_utils.generate.metadata import read_png_metadata

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = ["MANIFEST_COLUMNS", "generated_root", "rebuild_manifest", "remove_orphan_temps"]

logger = logging.getLogger(__name__)

#: manifest columns (``path`` is relative to the project root, POSIX); ``write_table`` adds ``note``
#: for stand-in configs.
MANIFEST_COLUMNS = [
    "model",
    "variant",
    "slug",
    "index",
    "seed",
    "seed_mode",
    "prompt",
    "path",
    "model_id",
    "revision",
    "pipeline",
    "scheduler",
    "steps",
    "guidance",
    "height",
    "width",
    "dtype",
    "device",
    "device_name",
    "num_threads",
    "batch_size",
    "diffusers",
    "torch",
    "transformers",
]


def generated_root(cfg: StudyConfig) -> Path:
    """The folder of the generated images, ``<data>/generated``."""
    return cfg.path("data", "generated")


def _scan_pngs(root: Path) -> Iterable[Path]:
    """``<model>/<variant>/<slug>/<index>.png`` under ``root`` (hidden files skipped), sorted."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*/*/*/*.png") if not p.name.startswith("."))


def rebuild_manifest(cfg: StudyConfig, write: bool = True) -> pd.DataFrame:
    """Derive the generation manifest from the PNGs on disk (one row per image) and write it.

    Every ``<model>/<variant>/<slug>/<index>.png`` under the generated-images folder is read
    (metadata only, with the ``IEND`` truncation check).  A file that cannot be read, or whose
    metadata names another unit than its path, is left out with a warning: it is not a finished
    unit, and the next ``generate`` regenerates it.

    Args:
        cfg: the study config.
        write: write the table to ``cfg.generations_manifest`` (atomically, with provenance).

    Returns:
        The manifest, sorted by (model, variant, slug, index), with :data:`MANIFEST_COLUMNS`.
    """
    rows = []
    for path in _scan_pngs(generated_root(cfg)):
        model, variant, slug = path.parts[-4:-1]
        try:
            meta = read_png_metadata(path)
        except (OSError, ValueError) as exc:
            logger.warning("manifest: skipping %s", exc)
            continue
        where = (meta["model"], meta["variant"], meta["slug"], str(meta["index"]))
        if where != (model, variant, slug, path.stem):
            logger.warning("manifest: skipping %s: its metadata names unit %s", path, where)
            continue
        row = {name: meta.get(name) for name in MANIFEST_COLUMNS if name != "path"}
        row["path"] = cfg.relative(path)
        rows.append(row)
    df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    df = df.sort_values(["model", "variant", "slug", "index"], kind="stable").reset_index(drop=True)
    for name in ("index", "seed", "steps", "height", "width", "num_threads", "batch_size"):
        df[name] = df[name].astype("int64")
    df["guidance"] = df["guidance"].astype("float64")
    if df.duplicated(["model", "variant", "slug", "index"]).any():  # pragma: no cover - one path per unit
        raise RuntimeError("manifest: duplicated units; this is a bug")
    if write:
        write_table(df, cfg.generations_manifest, cfg, stage="02_generation", images=len(df))
    return df


def remove_orphan_temps(root: Path) -> int:
    """Delete temporary files left by a killed writer (``.<index>.png.*.tmp.png``); return how many."""
    if not root.is_dir():
        return 0
    removed = 0
    for tmp in root.glob("*/*/*/.*.tmp.png"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed
