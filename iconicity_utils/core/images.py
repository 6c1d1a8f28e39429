"""Image helpers shared by the stages: listing, safe decoding, the Visual Reuse grid, pHash,
greyscale thumbnails and near-duplicate removal.

Deduplication follows the authors' released scripts (docs/method.md §1.1): images are taken in
sorted file-name order; an image is dropped when the Hamming distance between its 64-bit pHash and
the pHash of *any already-kept* image is ``<= threshold``
(:data:`~iconicity_utils.core.constants.PHASH_MAX_DISTANCE`); the first occurrence is kept.  Images whose
hash cannot be computed are reported by path and left out (they cannot be decoded, so no stage
could use them).

The grid (docs/method.md §3.3) follows the authors' ``compute_VR.py``: a cell is ``W // cols``
wide and ``H // rows`` high, and the last row and column absorb the remainder.

Decoding (:func:`open_rgb`, docs/method.md §3.8) is Pillow's ``convert("RGB")``, as the authors'
scripts and the encoders' own preprocessing: CMYK and palette images are converted, an alpha
channel is dropped, an animated image gives its first frame.  Two exceptions, where that
conversion would be wrong: 16-bit greyscale (``I;16``) is scaled to 8 bits (``>> 8``) instead of
clipped at 255, and 32-bit integer or float pixels are refused (:class:`ImageReadError`), not
clipped.  :func:`check_image_file` decodes a file the same way and says what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iconicity_utils.core.constants import PHASH_MAX_DISTANCE

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "INPUT_PROBLEMS",
    "ImageCheck",
    "check_image_file",
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


#: why an input image is not scored (the ``reason`` column of ``scores_skipped.parquet``)
INPUT_PROBLEMS = (
    "missing",  # no such file
    "empty",  # zero bytes
    "not_an_image",  # Pillow cannot identify it (e.g. text named .png)
    "too_large",  # more pixels than Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS x 2)
    "truncated",  # the pixel data ends early
    "unreadable",  # any other decoding error
    "unsupported_mode",  # 32-bit integer or float pixels: no faithful 8-bit RGB reading
    "too_small",  # narrower or lower than the grid: a cell would be empty
)

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


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


def _as_rgb(im, path: Path):
    """An opened, loaded Pillow image as 8-bit RGB (see the module docstring for the rules)."""
    from PIL import Image

    if im.mode in _SIXTEEN_BIT or (im.mode == "I" and im.format == "PNG"):  # 16-bit grey
        a = np.asarray(im).astype(np.uint32) >> 8
        return Image.fromarray(a.astype(np.uint8), "L").convert("RGB")
    if im.mode in ("I", "F"):
        raise ImageReadError(
            f"cannot read image {path}: pixel mode {im.mode!r} (32-bit integer or float) has no "
            "faithful 8-bit RGB reading; convert it to 8 or 16 bits"
        )
    return im.convert("RGB")


def _decode(path: Path):
    """``(8-bit RGB image, the file's pixel mode, how it was read)``; :class:`ImageReadError` if it cannot be."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return _as_rgb(im, path), im.mode, _note(im)
    except ImageReadError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc


def open_rgb(path: str | Path):
    """Decode an image fully and return it as 8-bit RGB; :class:`ImageReadError` names a bad file."""
    return _decode(Path(path))[0]


@dataclass(frozen=True)
class ImageCheck:
    """What :func:`check_image_file` found: ``reason`` is None for a usable image.

    ``note`` says how a usable image that is not plain 8-bit RGB or greyscale is read
    (e.g. ``"CMYK converted to RGB"``, ``"alpha dropped"``, ``"first of 3 frames"``).
    """

    path: str
    reason: str | None = None
    detail: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def _note(im) -> str:
    notes = []
    if im.mode in _SIXTEEN_BIT or (im.mode == "I" and im.format == "PNG"):
        notes.append("16-bit scaled to 8 bits")
    elif im.mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif im.mode in ("P", "PA"):
        notes.append("palette converted to RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        notes.append("alpha dropped")
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        notes.append(f"first of {frames} frames")
    return "; ".join(notes)


def check_image_file(path: str | Path, grid: tuple[int, int] | None = None) -> ImageCheck:
    """Decode an image file as :func:`open_rgb` does and say what, if anything, makes it unusable.

    Args:
        path: the file.
        grid: ``(rows, cols)``; an image narrower than ``cols`` or lower than ``rows`` pixels is
            ``"too_small"`` (a grid cell would be empty; see :func:`grid_boxes`).

    Returns:
        An :class:`ImageCheck` whose ``reason`` is one of :data:`INPUT_PROBLEMS` (None: usable),
        with the cause in ``detail``.  Never raises for a bad file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    name = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ImageCheck(name, "missing", "no such file")
    except OSError as exc:
        return ImageCheck(name, "unreadable", f"{type(exc).__name__}: {exc}")
    if size == 0:
        return ImageCheck(name, "empty", "the file is empty (0 bytes)")
    try:
        rgb, mode, note = _decode(path)
    except ImageReadError as exc:
        cause = exc.__cause__
        if isinstance(cause, UnidentifiedImageError):
            reason = "not_an_image"
        elif isinstance(cause, Image.DecompressionBombError):
            reason = "too_large"
        elif cause is None:
            reason = "unsupported_mode"
        elif "truncated" in str(cause).lower() or isinstance(cause, EOFError):
            reason = "truncated"
        else:
            reason = "unreadable"
        return ImageCheck(name, reason, str(exc).removeprefix(f"cannot read image {path}: "))
    width, height = rgb.size
    if grid is not None and (width < grid[1] or height < grid[0]):
        return ImageCheck(
            name,
            "too_small",
            f"a {width}x{height} image is smaller than the {grid[0]}x{grid[1]} grid",
            width,
            height,
            mode,
        )
    return ImageCheck(name, None, "", width, height, mode, note)


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
