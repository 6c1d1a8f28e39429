"""The known edits of stage 08: pure, deterministic image functions, each with a family and a strength.

Every edit takes a square RGB PIL image whose side is divisible by the grid (the validation
sources are normalised so: :func:`~iconicity_utils.validate.dataset.normalise`) and returns an
image of the same size.  Edits that bring in another image's content (``replace``, ``collage``)
take it as ``other``; edits that draw random numbers take a ``seed``.  The same arguments always
give the same pixels.

:data:`EDITS` is the catalogue: name -> :class:`EditSpec` (family, default strengths, the allowed
range of a strength, whether the edit needs another image, whether it probes a *limit* of VR
rather than a family).  Families (issue 19):

- ``replication``: ``copy``, ``jpeg`` (quality), ``rescale`` (down-then-up factor), ``crop``
  (area removed, at most 20 %, then resized back), ``hflip``, ``jitter`` (colour), ``rotate``
  (degrees, at most 10), ``blur`` (radius), ``noise`` (sigma), ``patch`` (a local patch, at most
  one cell's area), ``border`` (a letterbox, per side), ``text`` (an overlay, height fraction);
- ``transformation``: ``shuffle`` (cells moved into a new composition), ``replace`` (k of the
  grid's cells replaced by another image's, k = 0 ... K), ``posterize`` (bits), ``edges`` (an edge
  sketch), ``mirror`` (one half mirrored onto the other), ``collage`` (the image small on another),
  ``zoom`` (area removed, more than 50 %, then resized back);
- ``limit``: ``shift`` (a translation by a fraction of a cell; VR's grid is not translation-invariant).

The ``independent`` family (another source image) is no edit: the dataset pairs sources.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from iconicity_utils.core.images import grid_boxes

__all__ = [
    "FAMILIES",
    "EditSpec",
    "EDITS",
    "apply_edit",
    "check_strengths",
    "replace_order",
    "replace_cells",
    "shuffle_cells",
]

#: the families of the edit table, in display order
FAMILIES = ("replication", "transformation", "independent")
_RESAMPLE = Image.Resampling.BICUBIC


@dataclass(frozen=True)
class EditSpec:
    """One edit of the catalogue."""

    func: Callable
    family: str
    #: default strengths (what a config that names no strengths gets)
    strengths: tuple[float, ...]
    #: the allowed range of a strength, inclusive
    low: float
    high: float
    #: what the strength means, for tables and figures
    unit: str
    needs_other: bool = False
    #: a probe of VR's limits (``shift``), kept out of the AUROC
    limit: bool = False


# -- replication -------------------------------------------------------------------------------


def copy(image: Image.Image, strength: float = 0.0) -> Image.Image:
    """The exact copy."""
    return image.copy()


def jpeg(image: Image.Image, quality: float) -> Image.Image:
    """JPEG compression at ``quality`` (1-95), decoded again."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def rescale(image: Image.Image, factor: float) -> Image.Image:
    """Downscaled by ``factor`` (bicubic), then upscaled back to the original size."""
    small = image.resize((max(1, round(image.width * factor)),) * 2, _RESAMPLE)
    return small.resize(image.size, _RESAMPLE)


def _centre_crop(image: Image.Image, area_removed: float) -> Image.Image:
    side = math.sqrt(1.0 - area_removed)
    w, h = round(image.width * side), round(image.height * side)
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h)).resize(image.size, _RESAMPLE)


def crop(image: Image.Image, area_removed: float) -> Image.Image:
    """A centred crop that removes ``area_removed`` of the area (at most 20 %), resized back."""
    return _centre_crop(image, area_removed)


def hflip(image: Image.Image, strength: float = 1.0) -> Image.Image:
    """The horizontal mirror image."""
    return ImageOps.mirror(image)


def jitter(image: Image.Image, amount: float) -> Image.Image:
    """Colour jitter: brightness and saturation times ``1 + amount``, contrast times ``1 - amount``."""
    out = ImageEnhance.Brightness(image).enhance(1.0 + amount)
    out = ImageEnhance.Contrast(out).enhance(1.0 - amount)
    return ImageEnhance.Color(out).enhance(1.0 + amount)


def rotate(image: Image.Image, degrees: float) -> Image.Image:
    """A rotation by ``degrees`` (at most 10) about the centre, same size, corners black."""
    return image.rotate(degrees, resample=_RESAMPLE, expand=False)


def blur(image: Image.Image, radius: float) -> Image.Image:
    """A Gaussian blur of ``radius`` pixels."""
    return image.filter(ImageFilter.GaussianBlur(radius))


def noise(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """Additive Gaussian noise of standard deviation ``sigma`` (0-255 scale), clipped."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(image, dtype=np.float32) + rng.normal(0.0, sigma, size=(image.height, image.width, 3))
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def patch(
    image: Image.Image, cell_fraction: float, seed: int = 0, grid: tuple[int, int] = (4, 4)
) -> Image.Image:
    """A local patch of noise covering ``cell_fraction`` of one cell's area (at most one cell),
    square, at a position drawn from ``seed`` (not aligned to the grid)."""
    rng = np.random.default_rng(seed)
    cell_w, cell_h = image.width // grid[1], image.height // grid[0]
    side_w, side_h = round(cell_w * math.sqrt(cell_fraction)), round(cell_h * math.sqrt(cell_fraction))
    left = int(rng.integers(0, image.width - side_w + 1))
    top = int(rng.integers(0, image.height - side_h + 1))
    fill = rng.integers(0, 256, size=(side_h, side_w, 3), dtype=np.uint8)
    out = image.copy()
    out.paste(Image.fromarray(fill), (left, top))
    return out


def border(image: Image.Image, fraction: float) -> Image.Image:
    """A letterbox: the image squeezed vertically between black bars of ``fraction`` of the height each."""
    bar = round(image.height * fraction)
    out = Image.new("RGB", image.size)
    out.paste(image.resize((image.width, image.height - 2 * bar), _RESAMPLE), (0, bar))
    return out


def text(image: Image.Image, height_fraction: float) -> Image.Image:
    """A white caption with a dark outline along the bottom, ``height_fraction`` of the height high."""
    out = image.copy()
    size = max(6, round(image.height * height_fraction))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(out)
    draw.text(
        (image.width // 2, image.height - size // 2 - 2), "ICONICITY 2025", font=font, anchor="ms",
        fill=(255, 255, 255), stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0),
    )  # fmt: skip
    return out


# -- transformation ------------------------------------------------------------------------------


def _cells(image: Image.Image, grid: tuple[int, int]) -> tuple[list[tuple[int, int, int, int]], list]:
    boxes = grid_boxes(image.width, image.height, grid)
    sizes = {(r - left, b - t) for left, t, r, b in boxes}
    if len(sizes) != 1:
        raise ValueError(f"a {image.width}x{image.height} image does not split into equal {grid} cells")
    return boxes, [image.crop(box) for box in boxes]


def shuffle_cells(
    image: Image.Image, fraction: float = 1.0, seed: int = 0, grid: tuple[int, int] = (4, 4)
) -> Image.Image:
    """The same cells in a new composition: ``round(fraction * K)`` cells (at least 2) drawn from
    ``seed`` trade places in a cycle, so every one of them moves; the others stay."""
    boxes, cells = _cells(image, grid)
    n = max(2, round(fraction * len(cells)))
    chosen = np.random.default_rng(seed).permutation(len(cells))[:n]
    out = image.copy()
    for i, dst in enumerate(chosen):
        src = chosen[(i + 1) % n]
        out.paste(cells[src], boxes[dst][:2])
    return out


def replace_order(n_cells: int, seed: int = 0) -> np.ndarray:
    """The order in which ``replace`` takes cells: the first k of one permutation, so the k series nests."""
    return np.random.default_rng(seed).permutation(n_cells)


def replace_cells(
    image: Image.Image, k: float, other: Image.Image, seed: int = 0, grid: tuple[int, int] = (4, 4)
) -> Image.Image:
    """``k`` grid cells replaced by ``other``'s cells at the same positions; the rest copied exactly.

    The cells are the first ``k`` of :func:`replace_order`; cell boxes are those of
    :func:`~iconicity_utils.core.images.grid_boxes`, so a kept cell is pixel-identical to the
    source's cell at the same position.
    """
    boxes, _ = _cells(image, grid)
    if other.size != image.size:
        other = other.resize(image.size, _RESAMPLE)
    out = image.copy()
    for idx in replace_order(len(boxes), seed)[: int(k)]:
        out.paste(other.crop(boxes[idx]), boxes[idx][:2])
    return out


def posterize(image: Image.Image, bits: float) -> Image.Image:
    """A posterised rendering: ``bits`` bits per channel."""
    return ImageOps.posterize(image, int(bits))


def edges(image: Image.Image, strength: float = 1.0) -> Image.Image:
    """An edge "sketch": dark edges on white, from the greyscale image."""
    grey = image.convert("L").filter(ImageFilter.FIND_EDGES)
    return ImageOps.autocontrast(ImageOps.invert(grey)).convert("RGB")


def mirror(image: Image.Image, strength: float = 0.5) -> Image.Image:
    """The left half mirrored onto the right half."""
    out = image.copy()
    half = image.width // 2
    left = image.crop((0, 0, half, image.height))
    out.paste(ImageOps.mirror(left), (image.width - half, 0))
    return out


def collage(image: Image.Image, side: float, other: Image.Image) -> Image.Image:
    """A collage: the image shrunk to ``side`` of its side, set in the top-left corner of ``other``."""
    out = other.resize(image.size, _RESAMPLE) if other.size != image.size else other.copy()
    out.paste(image.resize((round(image.width * side), round(image.height * side)), _RESAMPLE), (0, 0))
    return out


def zoom(image: Image.Image, area_removed: float) -> Image.Image:
    """A strong zoom: a centred crop that removes ``area_removed`` of the area (over 50 %), resized back."""
    return _centre_crop(image, area_removed)


# -- limits --------------------------------------------------------------------------------------


def shift(image: Image.Image, cells: float, grid: tuple[int, int] = (4, 4)) -> Image.Image:
    """The content moved right and down by ``cells`` of a cell; the uncovered strips repeat the edge."""
    arr = np.asarray(image)
    dx, dy = round(image.width // grid[1] * cells), round(image.height // grid[0] * cells)
    padded = np.pad(arr, ((dy, 0), (dx, 0), (0, 0)), mode="edge")
    return Image.fromarray(padded[: image.height, : image.width])


#: the catalogue: name -> spec (family, default strengths, allowed range, unit)
EDITS: dict[str, EditSpec] = {
    "copy": EditSpec(copy, "replication", (0.0,), 0, 0, "none"),
    "jpeg": EditSpec(jpeg, "replication", (90, 50, 20), 1, 95, "quality"),
    "rescale": EditSpec(rescale, "replication", (0.5, 0.25), 0.05, 1, "factor"),
    "crop": EditSpec(crop, "replication", (0.1, 0.2), 0, 0.2, "area removed"),
    "hflip": EditSpec(hflip, "replication", (1.0,), 1, 1, "none"),
    "jitter": EditSpec(jitter, "replication", (0.2, 0.4), 0, 0.9, "factor change"),
    "rotate": EditSpec(rotate, "replication", (5, 10), -10, 10, "degrees"),
    "blur": EditSpec(blur, "replication", (1, 3), 0, 10, "radius px"),
    "noise": EditSpec(noise, "replication", (10, 25), 0, 100, "sigma"),
    "patch": EditSpec(patch, "replication", (0.5, 1.0), 0, 1, "cell area"),
    "border": EditSpec(border, "replication", (0.1,), 0, 0.25, "height per side"),
    "text": EditSpec(text, "replication", (0.08,), 0.02, 0.2, "height"),
    "shuffle": EditSpec(shuffle_cells, "transformation", (1.0,), 0.125, 1, "cells moved"),
    "replace": EditSpec(replace_cells, "transformation", tuple(range(17)), 0, 16, "cells replaced", True),
    "posterize": EditSpec(posterize, "transformation", (2,), 1, 3, "bits"),
    "edges": EditSpec(edges, "transformation", (1.0,), 1, 1, "none"),
    "mirror": EditSpec(mirror, "transformation", (0.5,), 0.5, 0.5, "half"),
    "collage": EditSpec(collage, "transformation", (0.5,), 0.2, 0.7, "side", True),
    "zoom": EditSpec(zoom, "transformation", (0.6, 0.8), 0.5, 0.95, "area removed"),
    "shift": EditSpec(shift, "replication", (0.25, 0.5), 0, 1, "cells", limit=True),
}  # fmt: skip

#: the edits that take a ``seed`` / a ``grid`` keyword
_SEEDED = {"noise", "patch", "shuffle", "replace"}
_GRIDDED = {"patch", "shuffle", "replace", "shift"}


def check_strengths(name: str, strengths) -> tuple[float, ...]:
    """The strengths of an edit, checked against its range.

    Raises:
        ValueError: an unknown edit or a strength out of its range (named).
    """
    if name not in EDITS:
        raise ValueError(f"unknown edit {name!r}; the edits are {sorted(EDITS)}")
    spec = EDITS[name]
    values = tuple(float(s) for s in strengths)
    bad = [s for s in values if not spec.low <= s <= spec.high]
    if bad or not values:
        raise ValueError(
            f"edit {name!r}: strengths {list(values)} must be non-empty and within "
            f"[{spec.low:g}, {spec.high:g}] ({spec.unit})"
        )
    if name == "replace" and any(s != int(s) for s in values):
        raise ValueError(f"edit 'replace': k must be whole numbers, got {list(values)}")
    return values


def apply_edit(
    name: str,
    image: Image.Image,
    strength: float,
    *,
    other: Image.Image | None = None,
    seed: int = 0,
    grid: tuple[int, int] = (4, 4),
) -> Image.Image:
    """Apply one edit of :data:`EDITS` at one strength (deterministic for a given ``seed``).

    Raises:
        ValueError: an unknown edit, a strength out of range, or no ``other`` for an edit that needs one.
    """
    (strength,) = check_strengths(name, [strength])
    spec = EDITS[name]
    kwargs = {}
    if spec.needs_other:
        if other is None:
            raise ValueError(f"edit {name!r} needs another image (other=)")
        kwargs["other"] = other
    if name in _SEEDED:
        kwargs["seed"] = seed
    if name in _GRIDDED:
        kwargs["grid"] = grid
    out = spec.func(image.convert("RGB"), strength, **kwargs)
    if out.size != image.size:
        raise AssertionError(f"edit {name!r} changed the size {image.size} -> {out.size}")
    return out.convert("RGB")
