"""Stage 01, image side: the reference images of the collected references (docs/method.md §1).

The stage's front door, :func:`iconicity_utils.collect.collection.collect_references`, queries Wikidata,
builds the references table and then calls :func:`collect_reference_images`, which puts every
reference's images into its folder ``cfg.reference_dir(kind, slug)`` and returns the per-image
table (written to :func:`images_table_path`).  This module knows nothing of SPARQL: it reads the
references table (``qid``, ``slug``, ``kind``, ``label_clean``, ``image_file``, ``image_url``) and
fills its image columns ``n_before``, ``n_kept``, ``n_removed`` and ``reference_dir``.

Reference images
----------------
- ``reference_images: synthetic`` (demo): labelled stand-ins drawn by the ``reference_images``
  provider ``synthetic`` (:mod:`iconicity_utils.demo.synthetic_references`, reached by name through
  :func:`iconicity_utils.core.plugins.provider`).  Static: one image.  Dynamic: stills plus a
  near-duplicate that pHash dedup removes, written to ``<data>/<stills_dir>/<slug>/``; the image
  table records them with ``standin = True``.
- ``reference_images: commons`` (paper): the P18 file is looked up through the Commons API
  (:class:`iconicity_utils.collect.commons.CommonsClient`)
  at ``collection.commons_api`` (``prop=imageinfo&iiprop=url|extmetadata&iiurlwidth=<image_width>``),
  whose answer is saved under ``<data>/raw/commons/``; the scaled file is downloaded with the same
  retry policy (``collection.http``) into ``reference_dir`` as ``p18_<key><ext>`` (the key hashes
  file name and width); source URL, licence and author are recorded.  A file already in place is
  reused (resume); a download that does not decode is moved to ``<data>/raw/commons/unreadable/``.
- **Dynamic stills are provided by you**: put the stills of each film or series into
  ``<data>/<stills_dir>/<slug>/`` (e.g. ``data/paper/stills/the_godfather/``), any of PNG, JPEG,
  WebP, ...; the paper took 10-20 image-search results per title (``"<title> film still"``),
  which this project does not scrape.  Run stage 01 once to learn the slugs (the folders that
  are missing are listed in the report), fill the folders, and run it again
  (``--use-saved-responses`` reuses the same Wikidata answers).  Stills are deduplicated in
  file-name order: an image is dropped when its pHash is within ``collection.phash_threshold``
  (default :data:`~iconicity_utils.core.constants.PHASH_MAX_DISTANCE`, 18) of an image already kept
  (:func:`iconicity_utils.core.images.dedup_phash`; docs/method.md §1.1).
- A corrupt or unreadable image is reported by path (status ``unreadable``) and skipped; it is
  never fatal to the run.  Failures are rows with a status, never exceptions (except a bad slug
  or config, which are bugs).

Per-image table
---------------
``<data>/processed/reference_images.parquet`` (:func:`images_table_path`) has one row per
candidate image, columns :data:`IMAGE_COLUMNS`: ``qid, slug, kind, file, path`` (the kept copy in
``reference_dir``, or None), ``source_path``, ``status`` (one of :data:`STATUSES`: ``kept``,
``duplicate``, ``unreadable``, ``failed``), ``phash``, ``duplicate_of``, ``hamming``,
``width, height, source_url, licence, author, standin, error``.

Folders
-------
A slug is one safe path component (:data:`SLUG_RE`); :func:`reference_dir_checked` refuses any
other slug and verifies that the resolved folder lies inside the data folder, so no label, however
hostile, can make stage 01 write elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from iconicity_utils.collect.commons import CommonsClient
from iconicity_utils.collect.labels import SLUG_RE
from iconicity_utils.core import plugins
from iconicity_utils.core.constants import KINDS
from iconicity_utils.core.http import RequestFailed
from iconicity_utils.core.images import dedup_phash, list_images, open_rgb, phash
from iconicity_utils.core.io import atomic_path, atomic_write_bytes, atomic_write_json, utc_now

__all__ = [
    "IMAGE_COLUMNS",
    "STATUSES",
    "SLUG_RE",
    "images_table_path",
    "reference_dir_checked",
    "collect_reference_images",
    "none_for_missing",
    "type_image_columns",
    "plot_reference_examples",
]

IMAGE_COLUMNS = [
    "qid",
    "slug",
    "kind",
    "file",
    "path",
    "source_path",
    "status",
    "phash",
    "duplicate_of",
    "hamming",
    "width",
    "height",
    "source_url",
    "licence",
    "author",
    "standin",
    "error",
]
#: the per-image table's object columns (stored with None, not NaN, for missing values)
_TEXT_COLUMNS = (
    "file",
    "path",
    "source_path",
    "status",
    "phash",
    "duplicate_of",
    "source_url",
    "licence",
    "author",
    "error",
)
#: the status of a candidate image
STATUSES = ("kept", "duplicate", "unreadable", "failed")


def images_table_path(cfg) -> Path:
    """Where the per-image table goes: ``<data>/processed/reference_images.parquet``."""
    return cfg.path("data", "processed", "reference_images.parquet")


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------


def reference_dir_checked(cfg, kind: str, slug: str) -> Path:
    """``cfg.reference_dir(kind, slug)`` after checking that it cannot leave the data folder."""
    if kind not in KINDS:
        raise ValueError(f"unknown reference kind {kind!r}; expected one of {KINDS}")
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise ValueError(f"unsafe slug {slug!r}: a slug must match [a-z0-9][a-z0-9_]*")
    folder = cfg.reference_dir(kind, slug)
    data = cfg.data_dir.resolve()
    if not folder.resolve().is_relative_to(data):
        raise ValueError(f"reference folder {folder} lies outside the data folder {data}")
    return folder


def _stills_dir_checked(cfg, slug: str) -> Path:
    if not SLUG_RE.fullmatch(slug):
        raise ValueError(f"unsafe slug {slug!r}")
    folder = cfg.path("data", cfg.collection.stills_dir, slug)
    if not folder.resolve().is_relative_to(cfg.data_dir.resolve()):
        raise ValueError(f"stills folder {folder} lies outside the data folder {cfg.data_dir}")
    return folder


def _clear_folder(folder: Path, keep: set[str]) -> None:
    """Remove the image files of ``folder`` that are not in ``keep`` (stale ones of earlier runs)."""
    for path in list_images(folder):
        if path.name not in keep:
            path.unlink()


# --------------------------------------------------------------------------------------------
# The images of one reference, as rows of the per-image table
# --------------------------------------------------------------------------------------------


def _image_row(row: dict[str, Any], **values: Any) -> dict[str, Any]:
    base = {col: None for col in IMAGE_COLUMNS}
    base.update(qid=row["qid"], slug=row["slug"], kind=row["kind"], standin=False)
    base.update(values)
    return base


def _kept_row(cfg, row: dict[str, Any], kept: Path, source: Path, image, hash_: str, **values: Any):
    """The row of an image kept as ``kept`` in ``reference_dir`` (copied from ``source``)."""
    return _image_row(
        row,
        file=kept.name,
        path=cfg.relative(kept),
        source_path=cfg.relative(source),
        status="kept",
        phash=hash_,
        width=image.size[0],
        height=image.size[1],
        **values,
    )


def _commons_meta(cfg, row: dict[str, Any], commons: CommonsClient, key: str) -> dict[str, Any]:
    """The Commons description of the P18 file: saved under ``<data>/raw/commons/``, or asked for and saved."""
    raw_path = cfg.path("data", "raw", "commons", f"{key}_{row['slug']}.json")
    if raw_path.is_file():
        saved = json.loads(raw_path.read_text(encoding="utf-8"))
        return saved["file"]
    described = commons.describe(row["image_file"], cfg.collection.image_width)
    meta = {k: v for k, v in described.__dict__.items() if k != "raw"}
    atomic_write_json(
        raw_path,
        {"api": commons.api, "retrieved_utc": utc_now(), "file": meta, "response": described.raw},
    )
    return meta


def _static_commons(cfg, row, folder: Path, commons: CommonsClient, log) -> list[dict[str, Any]]:
    if not row["image_file"]:
        return []
    file_name = row["image_file"]
    # one key per (file, width): a resumed run reuses exactly this file, never a stale one
    key = hashlib.sha1(f"{file_name}\x1f{cfg.collection.image_width}".encode()).hexdigest()[:12]
    try:
        meta = _commons_meta(cfg, row, commons, key)
    except (RequestFailed, LookupError, KeyError, json.JSONDecodeError) as exc:
        log(f"[image] {row['slug']}: {exc}")
        _clear_folder(folder, set())
        return [_image_row(row, file=file_name, status="failed", error=str(exc))]
    suffix = Path(urllib.parse.urlparse(meta["download_url"]).path).suffix.lower() or ".jpg"
    target = folder / f"p18_{key}{suffix}"
    common = {
        "source_url": meta.get("description_url") or row["image_url"],
        "licence": meta.get("licence"),
        "author": meta.get("author"),
    }
    if not target.is_file():
        try:
            atomic_write_bytes(target, commons.download(meta["download_url"]))
        except RequestFailed as exc:
            log(f"[image] {row['slug']}: {exc}")
            _clear_folder(folder, set())
            return [_image_row(row, file=target.name, status="failed", error=str(exc), **common)]
    try:
        image = open_rgb(target)
    except OSError as exc:
        log(f"[image] unreadable, skipped: {exc}")
        bad = cfg.path("data", "raw", "commons", "unreadable", f"{row['slug']}{suffix}")
        bad.parent.mkdir(parents=True, exist_ok=True)
        target.replace(bad)
        _clear_folder(folder, set())
        source_path = cfg.relative(bad)
        return [
            _image_row(
                row, file=target.name, status="unreadable", source_path=source_path, error=str(exc), **common
            )
        ]
    _clear_folder(folder, {target.name})
    return [_kept_row(cfg, row, target, target, image, phash(image), **common)]


def _static_synthetic(cfg, row, folder: Path, draw) -> list[dict[str, Any]]:
    """The stand-in drawn by the ``reference_images`` provider ``draw`` (the demo's)."""
    (path,), meta = draw(cfg, row, folder)
    _clear_folder(folder, {path.name})
    image = open_rgb(path)
    return [_kept_row(cfg, row, path, path, image, phash(image), **meta)]


def _copy_still(still: Path, folder: Path) -> Path:
    """``still`` copied into ``folder`` (left alone when an identical copy is there)."""
    target = folder / still.name
    if not target.is_file() or target.read_bytes() != still.read_bytes():
        with atomic_path(target) as tmp:
            shutil.copyfile(still, tmp)
    return target


def _dynamic(cfg, row, folder: Path, draw, log) -> list[dict[str, Any]]:
    """The stills of ``<data>/<stills_dir>/<slug>/`` after pHash dedup; the kept ones copied to ``folder``."""
    stills = _stills_dir_checked(cfg, row["slug"])
    meta = {"licence": None, "author": None, "standin": False}
    if draw is not None:  # stand-in stills drawn by the reference_images provider (the demo's)
        _, meta = draw(cfg, row, stills)
    result = dedup_phash(list_images(stills), threshold=cfg.collection.phash_threshold)
    out = []
    for path, reason in result.failed:
        log(f"[image] unreadable still, skipped: {reason}")
        out.append(
            _image_row(
                row, file=path.name, source_path=cfg.relative(path), status="unreadable", error=reason, **meta
            )
        )
    _clear_folder(folder, {p.name for p in result.kept})
    for path in result.kept:
        target = _copy_still(path, folder)
        out.append(_kept_row(cfg, row, target, path, open_rgb(target), result.hashes[path], **meta))
    for path, original, distance in result.removed:
        out.append(
            _image_row(
                row,
                file=path.name,
                source_path=cfg.relative(path),
                status="duplicate",
                phash=result.hashes[path],
                duplicate_of=original.name,
                hamming=distance,
                **meta,
            )
        )
    return sorted(out, key=lambda r: r["file"])


def _images_of(cfg, row, folder: Path, draw, commons: CommonsClient | None, log):
    """The per-image rows of one reference, its images put into ``folder``.

    ``draw`` is the ``reference_images`` provider that draws stand-ins, or None (real images).
    """
    if row["kind"] == "dynamic":
        return _dynamic(cfg, row, folder, draw, log)
    if draw is not None:
        return _static_synthetic(cfg, row, folder, draw)
    return _static_commons(cfg, row, folder, commons, log)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def none_for_missing(values):
    """An object column with None (not NaN) for missing values, as parquet should store them."""
    values = values.astype(object)
    return values.where(values.notna(), None)


def type_image_columns(refs):
    """Type the image columns of a references table (``Int64`` counts, None for a missing folder)."""
    refs = refs.copy()
    for col in ("n_before", "n_kept", "n_removed"):
        refs[col] = pd.array(list(refs[col]), dtype="Int64")
    refs["reference_dir"] = none_for_missing(refs["reference_dir"])
    return refs.reset_index(drop=True)


def _images_table(rows: list[dict[str, Any]]):
    """The per-image table of :data:`IMAGE_COLUMNS` from its rows, typed for parquet."""
    images = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
    for col in ("hamming", "width", "height"):
        images[col] = pd.array(list(images[col]), dtype="Int64")
    images["standin"] = images["standin"].astype(bool)
    for col in _TEXT_COLUMNS:
        images[col] = none_for_missing(images[col])
    return images


def _missing_stills_message(cfg, missing: list[str]) -> str:
    return (
        f"{len(missing)} dynamic reference(s) have no stills yet; put images into "
        f"{cfg.path('data', cfg.collection.stills_dir)}/<slug>/ for: {', '.join(missing[:10])}"
        + (" ..." if len(missing) > 10 else "")
    )


def collect_reference_images(cfg, refs, *, sleep: Callable[[float], None] = time.sleep, log=print):
    """Put every reference's images in place.

    Returns:
        ``(images, refs, missing_stills)``: the per-image table, the references with
        ``n_before / n_kept / n_removed / reference_dir`` filled, and the dynamic slugs that
        have no stills at all.

    Static: the P18 file (commons) or a synthetic stand-in; dynamic: the stills of
    ``<data>/<stills_dir>/<slug>/`` after pHash dedup.  Failures are rows with a status, never
    exceptions (except a bad slug or config, which are bugs).
    """
    synthetic = cfg.collection.reference_images == "synthetic"
    draw = plugins.provider("reference_images", "synthetic") if synthetic else None
    commons = (
        None if synthetic else CommonsClient(cfg.collection.commons_api, cfg.collection.http, sleep=sleep)
    )
    refs = refs.copy()
    image_rows: list[dict[str, Any]] = []
    missing_stills: list[str] = []
    for i, row in enumerate(refs.to_dict("records")):
        folder = reference_dir_checked(cfg, row["kind"], row["slug"])
        rows = _images_of(cfg, row, folder, draw, commons, log)
        if row["kind"] == "dynamic" and not rows:
            missing_stills.append(row["slug"])
        image_rows.extend(rows)
        refs.at[i, "n_before"] = (
            len(rows) if row["kind"] == "dynamic" else int(bool(row["image_file"]) or synthetic)
        )
        refs.at[i, "n_kept"] = sum(r["status"] == "kept" for r in rows)
        refs.at[i, "n_removed"] = sum(r["status"] == "duplicate" for r in rows)
        refs.at[i, "reference_dir"] = cfg.relative(folder)
    if missing_stills:
        log(_missing_stills_message(cfg, missing_stills))
    return _images_table(image_rows), type_image_columns(refs), missing_stills


# --------------------------------------------------------------------------------------------
# Figure for notebook 01
# --------------------------------------------------------------------------------------------


def plot_reference_examples(cfg, refs, images, n_static: int = 4, n_dynamic: int = 2):
    """The reference images of the top references: static ones, then each dynamic one's stills."""
    import matplotlib.pyplot as plt

    static = refs[(refs["kind"] == "static") & (refs["n_kept"] > 0)].head(n_static)
    dynamic = refs[(refs["kind"] == "dynamic") & (refs["n_kept"] > 0)].head(n_dynamic)
    panels: list[tuple[Path, str]] = []
    for row in static.itertuples():
        kept = images[(images["slug"] == row.slug) & (images["status"] == "kept")]
        panels += [(cfg.absolute(p), f"{row.label_clean}\n(static)") for p in kept["path"].head(1)]
    for row in dynamic.itertuples():
        rows = images[images["slug"] == row.slug]
        for r in rows.itertuples():
            tag = "kept" if r.status == "kept" else f"{r.status}, d={r.hamming}"
            src = cfg.absolute(r.path if r.status == "kept" else r.source_path)
            panels.append((src, f"{row.label_clean}\n{r.file} ({tag})"))
    cols = 5
    rows_n = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(cols * 2.6, rows_n * 2.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (path, title) in zip(axes.flat, panels, strict=False):
        ax.imshow(open_rgb(path))
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig
