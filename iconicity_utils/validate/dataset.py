"""The validation set of stage 08: the sources, every known edit of each, and the edit table.

Sources are real photographs (``skimage.data``, shipped with scikit-image, no download) and,
optionally, the study's first static references (stage 01).  Each is normalised to a square of
``validation.image_size`` pixels (:func:`normalise`), so that the grid's cells are equal and an
edit that keeps a cell keeps it pixel for pixel.  Every edit of :data:`~iconicity_utils.validate.edits.EDITS`
is made of every source at each strength, and every source is paired with other sources (the
``independent`` family).  Edits that bring in another image (``replace``, ``collage``) take the
next source in the list.

Layout, under ``<data>/validation/`` (the authors' folder layout, so the scoring front door
:func:`~iconicity_utils.score.score_folders` reads it as it is):

- ``sources/<source>/source.png``: the normalised source (the "reference");
- ``edits/validation/<source>/<edit_id>.png``: its edits (the "generated images" of one model);
- ``sources.csv``: the whitelist of sources (column ``label_clean``).

The edit table (:data:`EDIT_COLUMNS`) has one row per (source, edit image).  A rebuild is
idempotent: an image whose parameters (its ``key``) and source are unchanged is not made again,
and files that are no longer in the table are removed, so the scorer never sees a stale edit.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from iconicity_utils.core.images import list_images, open_rgb
from iconicity_utils.core.io import atomic_path, atomic_write_text, read_table
from iconicity_utils.validate.edits import EDITS, apply_edit, check_strengths

__all__ = [
    "EDIT_COLUMNS",
    "EDITS_TABLE",
    "SCORED_MODEL",
    "validation_dir",
    "normalise",
    "load_sources",
    "edit_plan",
    "planned_images",
    "build_edits",
]

#: the edit table, in the results folder
EDITS_TABLE = "validation_edits.parquet"
#: the "model" folder the edits sit in (the authors' ``gendir/<model>/<slug>/`` layout)
SCORED_MODEL = "validation"
#: bump when an edit's pixels change for the same parameters: every image is made again
EDITS_VERSION = 1
#: one row per (source, edit image): what it is (family, edit, strength), where it is, its key
EDIT_COLUMNS = (
    "source", "source_kind", "edit_id", "edit", "family", "strength", "unit", "other_source", "limit",
    "in_auroc", "path", "source_path", "key",
)  # fmt: skip


def validation_dir(cfg) -> Path:
    """Where stage 08's images live: ``<data>/validation``."""
    return cfg.data_dir / "validation"


def normalise(image: Image.Image, size: int) -> Image.Image:
    """RGB, the centred square, resized to ``size`` x ``size`` (Lanczos)."""
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.Resampling.LANCZOS)


def _skimage_photo(name: str) -> Image.Image:
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None:
        raise ValueError(f"validation.skimage_sources: skimage.data has no image {name!r}")
    arr = np.asarray(loader())
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr[..., :3].astype(np.uint8))


def _reference_photos(cfg, n: int) -> dict[str, Image.Image]:
    """The first ``n`` static references of stage 01 (their first image), by ``ref-<slug>``."""
    if n == 0:
        return {}
    refs = read_table(cfg.references_table)
    out: dict[str, Image.Image] = {}
    for slug in refs.loc[refs["kind"] == "static", "slug"].astype(str):
        files = list_images(cfg.reference_dir("static", slug))
        if files:
            out[f"ref-{slug.strip().replace(' ', '_').lower()}"] = open_rgb(files[0])
        if len(out) == n:
            break
    return out


def load_sources(cfg) -> dict[str, tuple[str, Image.Image]]:
    """Source name -> (kind, normalised image): ``skimage-<name>`` photographs, then ``ref-<slug>``.

    Raises:
        ValueError: fewer than two sources (the independent pairs and the edits that bring in
            another image need one), or an image size the grid does not divide.
    """
    v = cfg.validation
    rows, cols = cfg.realization.grid
    if v.image_size % rows or v.image_size % cols:
        raise ValueError(f"validation.image_size {v.image_size} is not a multiple of the grid {rows}x{cols}")
    photos = {f"skimage-{n}": ("skimage", _skimage_photo(n)) for n in v.skimage_sources}
    photos.update({k: ("reference", im) for k, im in _reference_photos(cfg, v.max_references).items()})
    if len(photos) < 2:
        raise ValueError(f"validation needs at least two sources, got {sorted(photos)}")
    return {name: (kind, normalise(im, v.image_size)) for name, (kind, im) in photos.items()}


def _strengths(cfg, name: str) -> tuple[float, ...]:
    given = cfg.validation.strengths.get(name)
    return check_strengths(name, EDITS[name].strengths if given is None else given)


def _edit_id(edit: str, strength: float) -> str:
    return f"{edit}-{strength:g}"


def _in_auroc(edit: str, strength: float, n_cells: int) -> bool:
    """Limits and the ends of the ``replace`` series (k = 0 is the copy, k = K another image) are
    measured, but left out of the AUROC."""
    return not (EDITS[edit].limit or (edit == "replace" and strength in (0, n_cells)))


def edit_plan(cfg, names: list[str]) -> pd.DataFrame:
    """One row per (source, edit image) to make, before any pixel: edits, then independent pairs."""
    rows, cols = cfg.realization.grid
    v = cfg.validation
    plan = []
    for i, source in enumerate(names):
        nxt = names[(i + 1) % len(names)]
        for edit in v.edits:
            spec = EDITS[edit]
            for s in _strengths(cfg, edit):
                plan.append({"source": source, "edit_id": _edit_id(edit, s), "edit": edit, "family": spec.family,
                             "strength": s, "unit": spec.unit, "other_source": nxt if spec.needs_other else None,
                             "limit": spec.limit, "in_auroc": _in_auroc(edit, s, rows * cols)})  # fmt: skip
        n_other = len(names) - 1 if v.max_independent is None else min(v.max_independent, len(names) - 1)
        for j in range(1, n_other + 1):
            other = names[(i + j) % len(names)]
            plan.append({"source": source, "edit_id": f"independent-{other}", "edit": "independent",
                         "family": "independent", "strength": float("nan"), "unit": "none",
                         "other_source": other, "limit": False, "in_auroc": True})  # fmt: skip
    return pd.DataFrame(plan)


def planned_images(cfg, n_static_references: int) -> int:
    """How many edit images the validation makes, before any pixel (for the preflight's estimate).

    Args:
        cfg: the study config (``validation``).
        n_static_references: how many static references stage 01 has (or is expected to have).
    """
    v = cfg.validation
    n = len(v.skimage_sources) + min(v.max_references, n_static_references)
    return len(edit_plan(cfg, [f"source-{i}" for i in range(n)])) if n >= 2 else 0


def _seed(cfg, source: str) -> int:
    return cfg.validation.seed + zlib.crc32(source.encode())


def _key(row, cfg, digests: dict[str, str]) -> str:
    """What decides an edit image's pixels, hashed: change any and the image is made again."""
    parts = {
        "version": EDITS_VERSION, "edit": row["edit"], "strength": row["strength"], "seed": _seed(cfg, row["source"]),
        "grid": list(cfg.realization.grid), "source": digests[row["source"]],
        "other": digests.get(row["other_source"]) if isinstance(row["other_source"], str) else None,
    }  # fmt: skip
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _make(row, sources, cfg) -> Image.Image:
    image = sources[row["source"]][1]
    other = sources[row["other_source"]][1] if isinstance(row["other_source"], str) else None
    if row["edit"] == "independent":
        return other.copy()
    seed = _seed(cfg, row["source"])
    return apply_edit(row["edit"], image, row["strength"], other=other, seed=seed, grid=cfg.realization.grid)


def _save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp.png") as tmp:
        image.save(tmp, format="PNG", compress_level=1)


def _previous_keys(cfg) -> dict[str, str]:
    path = cfg.results_dir / EDITS_TABLE
    if not path.is_file():
        return {}
    old = read_table(path)
    return dict(zip(old["path"], old["key"], strict=True)) if {"path", "key"} <= set(old.columns) else {}


def _remove_stale(root: Path, keep: set[Path]) -> int:
    """Delete image files under ``root`` that the table does not list; returns how many."""
    stale = [p for p in root.rglob("*.png") if p not in keep] if root.is_dir() else []
    for p in stale:
        p.unlink()
    return len(stale)


def _write_sources(cfg, sources, root: Path) -> dict[str, str]:
    """The normalised sources and the whitelist; returns each source's content digest."""
    digests = {}
    for name, (_kind, image) in sources.items():
        digests[name] = hashlib.sha1(image.tobytes()).hexdigest()[:16]
        path = root / "sources" / name / "source.png"
        if not path.is_file() or hashlib.sha1(open_rgb(path).tobytes()).hexdigest()[:16] != digests[name]:
            _save_png(image, path)
    _remove_stale(root / "sources", {root / "sources" / n / "source.png" for n in sources})
    csv = "label_clean\n" + "".join(f"{n}\n" for n in sources)
    if not (root / "sources.csv").is_file() or (root / "sources.csv").read_text() != csv:
        atomic_write_text(root / "sources.csv", csv)
    return digests


def build_edits(cfg, sources: dict[str, tuple[str, Image.Image]] | None = None) -> pd.DataFrame:
    """Make the validation set and return its edit table (:data:`EDIT_COLUMNS`); writes no table.

    Args:
        cfg: the study config (``validation``, ``realization.grid``, the data folder).
        sources: source name -> (kind, image), normalised here (default: :func:`load_sources`).
    """
    if sources is None:
        sources = load_sources(cfg)
    else:
        sources = {n: (k, normalise(im, cfg.validation.image_size)) for n, (k, im) in sources.items()}
    root = validation_dir(cfg)
    digests = _write_sources(cfg, sources, root)
    plan = edit_plan(cfg, list(sources))
    previous = _previous_keys(cfg)
    keys, paths, made = [], [], 0
    for row in plan.to_dict("records"):
        key = _key(row, cfg, digests)
        path = root / "edits" / SCORED_MODEL / row["source"] / f"{row['edit_id']}.png"
        if previous.get(cfg.relative(path)) != key or not path.is_file():
            _save_png(_make(row, sources, cfg), path)
            made += 1
        keys.append(key)
        paths.append(path)
    _remove_stale(root / "edits", set(paths))
    plan["source_kind"] = plan["source"].map({n: k for n, (k, _) in sources.items()})
    plan["path"] = [cfg.relative(p) for p in paths]
    plan["source_path"] = [cfg.relative(root / "sources" / s / "source.png") for s in plan["source"]]
    plan["key"] = keys
    plan.attrs["made"] = made
    return plan[list(EDIT_COLUMNS)]
