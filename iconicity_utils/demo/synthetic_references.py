"""The demo's reference images: deterministic, labelled synthetic stand-ins drawn per slug.

Registered as the ``reference_images`` provider ``synthetic`` (``pyproject.toml``); stage 01
(:mod:`iconicity_utils.collect.reference_images`) reaches :func:`write_synthetic_images` through
:func:`iconicity_utils.core.plugins.provider` when ``collection.reference_images: synthetic``.

Seeded gradients and shapes, with a palette per reference.  Static: one image,
``reference.png``.  Dynamic: four pHash-distinct stills plus one re-compressed, resized copy of a
still (a near-duplicate that pHash dedup removes), written to the reference's stills folder.
They carry PNG text (JPEG comment) ``iconicity:standin``, and the image table records them with
:data:`STANDIN_META` (``standin = True``).
"""

from __future__ import annotations

import colorsys
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from PIL.PngImagePlugin import PngInfo

from iconicity_utils.core.images import hamming, phash
from iconicity_utils.core.io import atomic_path

__all__ = [
    "STANDIN_META",
    "SYNTHETIC_STILLS",
    "synthetic_image",
    "write_synthetic_images",
    "write_synthetic_static",
    "write_synthetic_stills",
]

SYNTHETIC_STILLS = 4  # distinct stills per dynamic reference (plus one near-duplicate)
# the words recorded in the image table, kept as the demo has always written them (they name the
# module that drew the stand-ins before the package had subpackages)
SYNTHETIC_LICENCE = "CC0-1.0 (synthetic stand-in drawn by iconicity_utils.collection)"
SYNTHETIC_AUTHOR = "iconicity_utils.collection (synthetic stand-in, not the real work)"
STANDIN_META = {"licence": SYNTHETIC_LICENCE, "author": SYNTHETIC_AUTHOR, "standin": True}


def _seed(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _palette(seed: int):
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
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)


def _near_duplicate(image, path: Path, comment: str) -> None:
    """A re-compressed, slightly resized copy (what an image search returns twice)."""
    w, h = image.size
    small = image.resize((max(8, int(w * 0.9)), max(8, int(h * 0.9))), Image.Resampling.BICUBIC)
    with atomic_path(path) as tmp:
        small.save(tmp, format="JPEG", quality=70, comment=comment.encode("utf-8"))


def write_synthetic_static(cfg, row: dict[str, Any], folder: Path) -> Path:
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


def write_synthetic_stills(cfg, row: dict[str, Any], folder: Path, min_distance: int) -> list[Path]:
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


def write_synthetic_images(cfg, row: dict[str, Any], folder: Path) -> tuple[list[Path], dict[str, Any]]:
    """Draw the stand-in images of one reference (a references-table row) into ``folder``.

    Static: ``reference.png``.  Dynamic: the stills (``folder`` is the reference's stills folder),
    each pHash-distinct from the others by more than ``collection.phash_threshold + 4``, and a
    near-duplicate of the second.

    Returns:
        ``(paths, meta)``: the files written, and the image-table values every one of them carries
        (:data:`STANDIN_META`: licence, author, ``standin = True``).
    """
    if row["kind"] == "static":
        return [write_synthetic_static(cfg, row, folder)], dict(STANDIN_META)
    min_distance = cfg.collection.phash_threshold + 4
    return write_synthetic_stills(cfg, row, folder, min_distance=min_distance), dict(STANDIN_META)
