"""Image helpers: the Visual Reuse grid (the authors' remainder rule), its crops, the pHash bits and
the SSIM thumbnails the engine stores."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image
from scoring_fixtures import photo

from iconicity_utils.core.images import gray_thumbnail, grid_boxes, hamming, phash, phash_bits, split_grid

# -- grid --------------------------------------------------------------------------------------


def test_grid_remainder_goes_to_the_last_row_and_column():
    boxes = grid_boxes(90, 62, (4, 4))  # cell 22 x 15; last column 66..90, last row 45..62
    lefts = [0, 22, 44, 66]
    tops = [0, 15, 30, 45]
    want = [
        (lefts[c], tops[r], 90 if c == 3 else lefts[c] + 22, 62 if r == 3 else tops[r] + 15)
        for r in range(4)
        for c in range(4)
    ]
    assert boxes == want
    assert boxes[15] == (66, 45, 90, 62) and boxes[0] == (0, 0, 22, 15)
    for w, h, g in [(90, 62, (4, 4)), (17, 11, (3, 5)), (4, 4, (4, 4)), (100, 7, (1, 2))]:
        cover = np.zeros((h, w), dtype=int)
        for left, top, right, bottom in grid_boxes(w, h, g):
            cover[top:bottom, left:right] += 1
        assert (cover == 1).all(), (w, h, g)  # every pixel in exactly one cell
    with pytest.raises(ValueError, match="too small"):
        grid_boxes(3, 10, (4, 4))


def test_split_grid_crops_are_the_pixel_blocks():
    im = photo("astronaut", (90, 62))
    arr = np.asarray(im)
    cells = split_grid(im, (4, 4))
    assert len(cells) == 16
    for (left, top, right, bottom), cell in zip(grid_boxes(90, 62, (4, 4)), cells, strict=True):
        np.testing.assert_array_equal(np.asarray(cell), arr[top:bottom, left:right])


def test_phash_bits_are_the_hex_hash_as_bits():
    a, b = photo("astronaut", (64, 48)), photo("coffee", (64, 48))
    bits_a, bits_b = phash_bits(a), phash_bits(b)
    assert bits_a.shape == (64,) and bits_a.dtype == np.uint8 and set(np.unique(bits_a)) <= {0, 1}
    assert "".join(map(str, bits_a)) == format(int(phash(a), 16), "064b")
    assert (
        int((bits_a != bits_b).sum())
        == hamming(phash(a), phash(b))
        == imagehash.phash(a) - imagehash.phash(b)
    )


def test_gray_thumbnail_is_pil_greyscale_bilinear():
    im = photo("chelsea", (50, 77))
    thumb = gray_thumbnail(im, 16)
    assert thumb.shape == (16, 16) and thumb.dtype == np.uint8
    want = np.asarray(im.convert("L").resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(thumb, want)
