"""Image helpers shared by the stages: listing, safe decoding, the Visual Reuse grid, pHash,
greyscale thumbnails and near-duplicate removal.

Deduplication follows the authors' released scripts (docs/method.md §1.1): images are taken in
sorted file-name order; an image is dropped when the Hamming distance between its 64-bit pHash and
the pHash of *any already-kept* image is ``<= threshold``
(:data:`~iconicity_utils.constants.PHASH_MAX_DISTANCE`); the first occurrence is kept.  Images whose
hash cannot be computed are reported by path and left out (they cannot be decoded, so no stage
could use them).

The grid (docs/method.md §3.3) follows the authors' ``compute_VR.py``: a cell is ``W // cols``
wide and ``H // rows`` high, and the last row and column absorb the remainder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iconicity_utils.constants import PHASH_MAX_DISTANCE

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "list_images",
    "open_rgb",
    "grid_boxes",
    "split_grid",
    "phash",
    "phash_bits",
    "gray_thumbnail",
    "hamming",
    "DedupResult",
    "dedup_phash",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageReadError(OSError):
    """An image file is missing, truncated or not an image; the message names the path."""


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, in sorted file-name order (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def open_rgb(path: str | Path):
    """Decode an image fully and return it as RGB; :class:`ImageReadError` names a bad file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


def grid_boxes(width: int, height: int, grid: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Cell boxes ``(left, top, right, bottom)`` of a ``rows x cols`` grid, row-major.

    Each cell is ``width // cols`` wide and ``height // rows`` high; the last column and the last
    row absorb the remainder, as in the authors' ``compute_VR.py`` (docs/method.md §3.3).

    Raises:
        ValueError: the image is smaller than the grid (a cell would be empty).
    """
    rows, cols = grid
    if rows < 1 or cols < 1:
        raise ValueError(f"grid must be at least 1x1, got {grid}")
    if width < cols or height < rows:
        raise ValueError(f"a {width}x{height} image is too small for a {rows}x{cols} grid")
    w, h = width // cols, height // rows
    boxes = []
    for r in range(rows):
        for c in range(cols):
            right = (c + 1) * w if c < cols - 1 else width
            bottom = (r + 1) * h if r < rows - 1 else height
            boxes.append((c * w, r * h, right, bottom))
    return boxes


def split_grid(image, grid: tuple[int, int]) -> list:
    """The grid cells of a PIL image, as PIL crops, row-major (see :func:`grid_boxes`)."""
    return [image.crop(box) for box in grid_boxes(image.width, image.height, grid)]


def phash(image_or_path) -> str:
    """The 64-bit perceptual hash (``imagehash.phash``, default size 8) as a 16-digit hex string."""
    import imagehash

    image = open_rgb(image_or_path) if isinstance(image_or_path, str | Path) else image_or_path
    return str(imagehash.phash(image))


def phash_bits(image) -> np.ndarray:
    """The 64-bit perceptual hash of a PIL image as 64 ``uint8`` bits (the same hash as :func:`phash`)."""
    import imagehash

    return np.asarray(imagehash.phash(image).hash, dtype=np.uint8).reshape(-1)


def gray_thumbnail(image, size: int) -> np.ndarray:
    """A ``size x size`` greyscale thumbnail (bilinear), ``uint8``: what the SSIM baseline compares."""
    from PIL import Image

    return np.asarray(image.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def hamming(hash_a: str, hash_b: str) -> int:
    """Hamming distance between two hex pHash strings of equal length."""
    if len(hash_a) != len(hash_b):
        raise ValueError(f"pHash lengths differ: {hash_a!r} vs {hash_b!r}")
    return bin(int(hash_a, 16) ^ int(hash_b, 16)).count("1")


@dataclass
class DedupResult:
    """Outcome of :func:`dedup_phash`, in processing (sorted file-name) order."""

    kept: list[Path] = field(default_factory=list)
    #: (dropped image, the kept image it duplicates, Hamming distance)
    removed: list[tuple[Path, Path, int]] = field(default_factory=list)
    #: (unreadable image, reason)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    hashes: dict[Path, str] = field(default_factory=dict)

    @property
    def n_before(self) -> int:
        return len(self.kept) + len(self.removed) + len(self.failed)

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    @property
    def n_removed(self) -> int:
        return len(self.removed)


def dedup_phash(paths: list[str | Path], threshold: int = PHASH_MAX_DISTANCE) -> DedupResult:
    """Drop near-duplicates: keep an image unless its pHash is within ``threshold`` of a kept one.

    Args:
        paths: image files; they are processed in sorted file-name order whatever order is given.
        threshold: maximum Hamming distance (inclusive) that counts as a duplicate.
    """
    result = DedupResult()
    for path in sorted(Path(p) for p in paths):
        try:
            h = phash(path)
        except ImageReadError as exc:
            result.failed.append((path, str(exc)))
            continue
        result.hashes[path] = h
        match = next(
            ((k, d) for k in result.kept if (d := hamming(h, result.hashes[k])) <= threshold),
            None,
        )
        if match is None:
            result.kept.append(path)
        else:
            result.removed.append((path, match[0], match[1]))
    return result
