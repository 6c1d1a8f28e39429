"""Stage 01, image side: the reference images of the collected references (docs/method.md §1).

The stage's front door, :func:`iconicity_utils.collect.collection.collect_references`, queries Wikidata,
builds the references table and then calls :func:`collect_reference_images`, which puts every
reference's images into its folder ``cfg.reference_dir(kind, slug)`` and returns the per-image
table (written to :func:`images_table_path`).  This module knows nothing of SPARQL: it reads the
references table (``qid``, ``slug``, ``kind``, ``label_clean``, ``image_file``, ``image_url``) and
fills its image columns ``n_before``, ``n_kept``, ``n_removed`` and ``reference_dir``.

Reference images
----------------
- ``reference_images: synthetic`` (demo): deterministic, labelled stand-ins drawn per slug
  (seeded gradients and shapes; a palette per reference).  Static: one image.  Dynamic: four
  distinct stills plus one re-compressed, resized copy of a still (a near-duplicate that pHash
  dedup removes), written to ``<data>/<stills_dir>/<slug>/``.  They carry PNG text (JPEG comment)
  ``iconicity:standin`` and ``standin = True`` in the image table.
- ``reference_images: commons`` (paper): the P18 file is looked up through the Commons API
  (``collection.commons_api``, ``prop=imageinfo&iiprop=url|extmetadata&iiurlwidth=<image_width>``),
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
import html
import json
import re
import shutil
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iconicity_utils.collect import sparql
from iconicity_utils.core.constants import KINDS
from iconicity_utils.core.images import dedup_phash, hamming, list_images, open_rgb, phash
from iconicity_utils.core.io import atomic_path, atomic_write_bytes, atomic_write_json, utc_now

__all__ = [
    "IMAGE_COLUMNS",
    "STATUSES",
    "SLUG_RE",
    "images_table_path",
    "reference_dir_checked",
    "collect_reference_images",
    "synthetic_image",
    "CommonsFile",
    "CommonsClient",
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

#: what a slug, and so a reference folder name, may be: one path component, never ``.`` or ``..``,
#: never hidden (:func:`iconicity_utils.collect.collection.slugify` makes them)
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_]*")

SYNTHETIC_STILLS = 4  # distinct stills per dynamic reference (plus one near-duplicate)
# the words recorded in the image table; they name the stage's front door, as they always have
SYNTHETIC_LICENCE = "CC0-1.0 (synthetic stand-in drawn by iconicity_utils.collect.collection)"
SYNTHETIC_AUTHOR = "iconicity_utils.collect.collection (synthetic stand-in, not the real work)"
_STANDIN_META = {"licence": SYNTHETIC_LICENCE, "author": SYNTHETIC_AUTHOR, "standin": True}


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
# Synthetic stand-ins
# --------------------------------------------------------------------------------------------


def _seed(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _palette(seed: int):
    import colorsys

    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.random()
    colours = []
    for offset in (0.0, 0.08, 0.33, 0.5, 0.67, 0.9):
        h = (base + offset + rng.normal(0, 0.02)) % 1.0
        s = 0.45 + 0.5 * rng.random()
        v = 0.35 + 0.6 * rng.random()
        colours.append(tuple(int(255 * x) for x in colorsys.hsv_to_rgb(h, s, v)))
    return colours


def synthetic_image(palette_seed: int, layout_seed: int, size: tuple[int, int]):
    """A deterministic, non-noise picture: a tilted two-colour gradient with soft waves and shapes.

    The palette follows ``palette_seed`` (one per reference, so a film's stills share a look) and
    the composition follows ``layout_seed``.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    width, height = size
    colours = _palette(palette_seed)
    rng = np.random.default_rng(layout_seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    t = np.clip(t + 0.12 * np.sin(2 * np.pi * (rng.uniform(0.5, 2.0) * xx / width + rng.uniform(0, 1))), 0, 1)
    c0, c1 = (np.array(colours[i], dtype=np.float32) for i in rng.choice(len(colours), 2, replace=False))
    canvas = (c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]).astype(np.uint8)
    image = Image.fromarray(canvas, "RGB")
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for _ in range(int(rng.integers(4, 8))):
        colour = colours[int(rng.integers(len(colours)))] + (int(rng.integers(150, 240)),)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.08, 0.35) * width, rng.uniform(0.08, 0.35) * height
        shape = int(rng.integers(3))
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        if shape == 0:
            draw.ellipse(box, fill=colour)
        elif shape == 1:
            draw.rectangle(box, fill=colour)
        else:
            n = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            draw.polygon([(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles], fill=colour)
    image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    return image.filter(ImageFilter.GaussianBlur(radius=max(1, width // 256)))


def _standin_text(row: dict[str, Any]) -> str:
    return f"synthetic stand-in reference image for {row['label_clean']!r} ({row['qid']}); not the real work"


def _save_png(image, path: Path, text: dict[str, str]) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)


def _near_duplicate(image, path: Path, comment: str) -> None:
    """A re-compressed, slightly resized copy (what an image search returns twice)."""
    from PIL import Image

    w, h = image.size
    small = image.resize((max(8, int(w * 0.9)), max(8, int(h * 0.9))), Image.Resampling.BICUBIC)
    with atomic_path(path) as tmp:
        small.save(tmp, format="JPEG", quality=70, comment=comment.encode("utf-8"))


def _write_synthetic_static(cfg, row: dict[str, Any], folder: Path) -> Path:
    width = cfg.collection.image_width
    size = (width, int(round(width * 1.25)))
    image = synthetic_image(_seed("palette", row["slug"]), _seed("static", row["slug"]), size)
    path = folder / "reference.png"
    _save_png(
        image,
        path,
        {"iconicity:standin": _standin_text(row), "Title": row["label_clean"], "Software": "iconicity_utils"},
    )
    return path


def _write_synthetic_stills(cfg, row: dict[str, Any], folder: Path, min_distance: int) -> list[Path]:
    """Four pHash-distinct stills and a near-duplicate of the second, into ``folder``."""
    width = cfg.collection.image_width
    size = (width, int(round(width * 9 / 16)))
    palette = _seed("palette", row["slug"])
    written: list[Path] = []
    hashes: list[str] = []
    images = []
    for index in range(SYNTHETIC_STILLS):
        for attempt in range(50):
            image = synthetic_image(palette, _seed("still", row["slug"], str(index), str(attempt)), size)
            h = phash(image)
            if all(hamming(h, other) > min_distance for other in hashes):
                break
        else:  # pragma: no cover - 50 draws never all collide in practice
            raise RuntimeError(f"could not draw {SYNTHETIC_STILLS} distinct stills for {row['slug']}")
        hashes.append(h)
        images.append(image)
        path = folder / f"still_{index:02d}.png"
        _save_png(image, path, {"iconicity:standin": _standin_text(row), "Title": row["label_clean"]})
        written.append(path)
    dup = folder / "still_01_recompressed.jpg"
    _near_duplicate(images[1], dup, "iconicity:standin " + _standin_text(row))
    written.append(dup)
    return written


# --------------------------------------------------------------------------------------------
# Wikimedia Commons
# --------------------------------------------------------------------------------------------


def _strip_html(value: str | None) -> str | None:
    if not value:
        return None
    text = html.unescape(re.sub(r"<[^>]+>", " ", value))
    return " ".join(text.split()) or None


@dataclass
class CommonsFile:
    """What the Commons API says about one file."""

    file_name: str
    download_url: str
    description_url: str | None
    licence: str | None
    licence_url: str | None
    author: str | None
    raw: dict[str, Any]


class CommonsClient:
    """The Commons ``imageinfo`` API and file downloads, with the polite retry policy.

    Args:
        api: the ``api.php`` URL (``collection.commons_api``).
        policy: User-Agent, timeout and retries (``collection.http``, shared with the SPARQL client).
        sleep: the wait function between retries (injectable for tests).
    """

    def __init__(self, api: str, policy: sparql.RetryPolicy, sleep: Callable[[float], None] = time.sleep):
        self.api = api
        self.policy = policy
        self.sleep = sleep

    def describe(self, file_name: str, width: int) -> CommonsFile:
        """Look a file up (``prop=imageinfo&iiprop=url|extmetadata&iiurlwidth=width``).

        Raises:
            RequestFailed: the API could not be reached or answered malformed JSON.
            LookupError: the file does not exist on Commons, or has no URL.
        """
        params = {
            "action": "query",
            "format": "json",
            "formatversion": "2",
            "prop": "imageinfo",
            "iiprop": "url|extmetadata",
            "iiurlwidth": str(int(width)),
            "titles": f"File:{file_name}",
        }
        data = sparql.http_get(
            self.api,
            params,
            policy=self.policy,
            name=f"imageinfo {file_name}",
            parse=json.loads,
            sleep=self.sleep,
        )
        return self._commons_file(file_name, data)

    def _commons_file(self, file_name: str, data: dict[str, Any]) -> CommonsFile:
        """The :class:`CommonsFile` of an ``imageinfo`` answer; LookupError when it has none."""
        pages = (data.get("query") or {}).get("pages") or []
        if isinstance(pages, dict):  # formatversion=1
            pages = list(pages.values())
        if not pages or pages[0].get("missing") or pages[0].get("invalid") or not pages[0].get("imageinfo"):
            raise LookupError(f"Commons has no file {file_name!r} (api {self.api})")
        info = pages[0]["imageinfo"][0]
        url = info.get("thumburl") or info.get("url")
        if not url:
            raise LookupError(f"Commons gave no URL for {file_name!r}")
        meta = info.get("extmetadata") or {}

        def meta_value(key: str) -> str | None:
            entry = meta.get(key)
            return entry.get("value") if isinstance(entry, dict) else None

        return CommonsFile(
            file_name=file_name,
            download_url=url,
            description_url=info.get("descriptionurl"),
            licence=_strip_html(meta_value("LicenseShortName")),
            licence_url=meta_value("LicenseUrl"),
            author=_strip_html(meta_value("Artist")),
            raw=data,
        )

    def download(self, url: str) -> bytes:
        """The bytes of ``url`` (retried as any request)."""
        return sparql.http_get(url, None, policy=self.policy, name=f"download {url}", sleep=self.sleep)


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
    except (sparql.RequestFailed, LookupError, KeyError, json.JSONDecodeError) as exc:
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
        except sparql.RequestFailed as exc:
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


def _static_synthetic(cfg, row, folder: Path) -> list[dict[str, Any]]:
    path = _write_synthetic_static(cfg, row, folder)
    _clear_folder(folder, {path.name})
    image = open_rgb(path)
    return [_kept_row(cfg, row, path, path, image, phash(image), **_STANDIN_META)]


def _copy_still(still: Path, folder: Path) -> Path:
    """``still`` copied into ``folder`` (left alone when an identical copy is there)."""
    target = folder / still.name
    if not target.is_file() or target.read_bytes() != still.read_bytes():
        with atomic_path(target) as tmp:
            shutil.copyfile(still, tmp)
    return target


def _dynamic(cfg, row, folder: Path, synthetic: bool, log) -> list[dict[str, Any]]:
    """The stills of ``<data>/<stills_dir>/<slug>/`` after pHash dedup; the kept ones copied to ``folder``."""
    stills = _stills_dir_checked(cfg, row["slug"])
    if synthetic:
        _write_synthetic_stills(cfg, row, stills, min_distance=cfg.collection.phash_threshold + 4)
    result = dedup_phash(list_images(stills), threshold=cfg.collection.phash_threshold)
    meta = _STANDIN_META if synthetic else {"licence": None, "author": None, "standin": False}
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


def _images_of(cfg, row, folder: Path, synthetic: bool, commons: CommonsClient | None, log):
    """The per-image rows of one reference, its images put into ``folder``."""
    if row["kind"] == "dynamic":
        return _dynamic(cfg, row, folder, synthetic, log)
    if synthetic:
        return _static_synthetic(cfg, row, folder)
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
    import pandas as pd

    refs = refs.copy()
    for col in ("n_before", "n_kept", "n_removed"):
        refs[col] = pd.array(list(refs[col]), dtype="Int64")
    refs["reference_dir"] = none_for_missing(refs["reference_dir"])
    return refs.reset_index(drop=True)


def _images_table(rows: list[dict[str, Any]]):
    """The per-image table of :data:`IMAGE_COLUMNS` from its rows, typed for parquet."""
    import pandas as pd

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
    commons = (
        None if synthetic else CommonsClient(cfg.collection.commons_api, cfg.collection.http, sleep=sleep)
    )
    refs = refs.copy()
    image_rows: list[dict[str, Any]] = []
    missing_stills: list[str] = []
    for i, row in enumerate(refs.to_dict("records")):
        folder = reference_dir_checked(cfg, row["kind"], row["slug"])
        rows = _images_of(cfg, row, folder, synthetic, commons, log)
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
