"""Caption and title normalisation for the caption count (stage 06, docs/method.md §6).

Titles and captions go through the same steps (:func:`normalise_array`): Unicode NFKC (ligatures,
full-width letters, non-breaking spaces), lower case (``utf8_lower``), curly quotes to straight
ones (``‘ ’ ‚ ‛`` to ``'``, ``“ ” „ ‟`` to ``"``), every run of white space (Python's
``str.isspace``) to one space, and the ends trimmed.  Punctuation stays: ``Face/Off`` does not
match "face off".  Every step is a vectorised ``pyarrow.compute`` kernel over a whole batch.

With ``correlates.frequency.normalise: punctuation`` (:data:`NORMALISE_MODES`) one step follows
(:func:`fold_punctuation`): every run of characters that are neither letters, digits, combining
marks nor ``_`` becomes one space, and the ends are trimmed again, so that "Face Off" counts for
*Face/Off* and "Impression Sunrise" for *Impression, Sunrise* (WIMBD-style analysed text).  The
name of the normalisation (:func:`normalisation_name`) is recorded with every count.

A caption that is printable ASCII with single inner spaces only needs ``ascii_lower``
(:func:`irregular_rows` finds the others with numpy over the batch's byte buffer);
:func:`normalise_batch` takes the full path for the others only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "NORMALISATION",
    "NORMALISE_MODES",
    "normalisation_name",
    "fold_punctuation",
    "QUOTES",
    "as_text",
    "text_buffers",
    "normalise_array",
    "normalise_texts",
    "irregular_rows",
    "normalise_batch",
]

#: the name of the normalisation, recorded with every count (change it when the rules change)
NORMALISATION = "nfkc-lower-quotes-whitespace-trim/1"
#: ``correlates.frequency.normalise``: ``exact`` keeps punctuation; ``punctuation`` turns it into spaces
NORMALISE_MODES = ("exact", "punctuation")
#: what ``punctuation`` adds to :data:`NORMALISATION`
PUNCTUATION_STEP = "punctuation-to-space/1"
#: a run of characters that are not ``\w`` (letters, digits, ``_``) nor combining marks (RE2)
_NON_WORD_RUN = r"[^\pL\pN\pM_]+"

#: curly quotes and their straight replacements
QUOTES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
}  # fmt: skip

#: the characters Python's ``str.isspace`` calls white space, other than the space itself (RE2)
_OTHER_SPACE = (
    r"\t\n\x{0b}\x{0c}\r\x{1c}-\x{1f}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
#: a run of white space that is not a single space: one with another white space character, or
#: two spaces or more.  A match always spans its whole run, so replacing it by one space turns
#: every run into one space while leaving the many single spaces alone (four times faster than
#: replacing every run)
_SPACE_RUN = f"[ {_OTHER_SPACE}]*[{_OTHER_SPACE}][ {_OTHER_SPACE}]*|  +"
#: the curly quotes of :data:`QUOTES` by replacement, as RE2 character classes
_QUOTE_CLASSES = {
    straight: "[" + "".join(q for q, s in QUOTES.items() if s == straight) + "]"
    for straight in dict.fromkeys(QUOTES.values())
}


def normalisation_name(mode: str = "exact") -> str:
    """The recorded name of a normalisation mode (:data:`NORMALISE_MODES`)."""
    if mode not in NORMALISE_MODES:
        raise ValueError(
            f"unknown normalisation {mode!r} (correlates.frequency.normalise); expected one of {list(NORMALISE_MODES)}"
        )
    return NORMALISATION if mode == "exact" else f"{NORMALISATION}+{PUNCTUATION_STEP}"


def fold_punctuation(arr):
    """Every run of characters that are not letters, digits, marks or ``_`` to one space; ends trimmed."""
    return pc.utf8_trim(pc.replace_substring_regex(arr, _NON_WORD_RUN, " "), " ").cast(pa.large_string())


def as_text(arr):
    """A string / large_string array with no nulls (a null caption is an empty one)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        if pa.types.is_string_view(t):
            arr = arr.cast(pa.large_string())
        else:
            raise TypeError(f"the caption column must hold strings, got {t}")
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    return arr


def text_buffers(arr) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, data)`` of a string array: int64 offsets from 0, and its UTF-8 bytes (no copy)."""
    bufs = arr.buffers()
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    if bufs[1] is None:
        return np.zeros(len(arr) + 1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(bufs[1], dtype=dtype)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    base = int(offsets[0])
    if bufs[2] is None or offsets[-1] == base:
        return offsets - base, np.zeros(0, np.uint8)
    data = np.frombuffer(bufs[2], dtype=np.uint8)[base : int(offsets[-1])]
    return offsets - base, data


def _nfkc(arr):
    """NFKC of every string; bytes that are not valid UTF-8 become U+FFFD first (rare)."""
    try:
        return pc.utf8_normalize(arr, "NFKC")
    except pa.ArrowInvalid:
        repaired = [v.decode("utf-8", "replace") for v in arr.cast(pa.large_binary()).to_pylist()]
        return pc.utf8_normalize(pa.array(repaired, pa.large_string()), "NFKC")


def normalise_array(arr, mode: str = "exact"):
    """The full normalisation of every string of an Arrow array: NFKC, lower case, quotes, spaces, trim.

    Titles and captions go through the same steps, so they are normalised identically.  Bytes that
    are not valid UTF-8 are replaced by U+FFFD first.  ``mode="punctuation"`` also folds
    punctuation (:func:`fold_punctuation`).  Returns a ``large_string`` array.
    """
    normalisation_name(mode)  # a clear error for an unknown mode
    x = pc.utf8_lower(_nfkc(as_text(arr)))
    for straight, curly in _QUOTE_CLASSES.items():
        x = pc.replace_substring_regex(x, curly, straight)
    x = pc.utf8_trim(pc.replace_substring_regex(x, _SPACE_RUN, " "), " ")
    return fold_punctuation(x) if mode == "punctuation" else x.cast(pa.large_string())


def normalise_texts(texts: Sequence[str | None], mode: str = "exact") -> list[str]:
    """:func:`normalise_array` for a list of Python strings (None becomes ``""``)."""
    if not len(texts):
        return []
    return normalise_array(pa.array(list(texts), pa.string()), mode).to_pylist()


def irregular_rows(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """A bool per caption: does it need more than ``ascii_lower`` to be normalised?

    True for a caption with a byte outside printable ASCII (non-ASCII: NFKC, Unicode case, curly
    quotes; a control byte: tabs, newlines, ...; DEL), two spaces in a row, or a space at an end.
    """
    n = len(offsets) - 1
    if data.size == 0:
        return np.zeros(n, dtype=bool)
    flag = (data - np.uint8(32)) >= np.uint8(95)  # < 0x20 or >= 0x7f, by uint8 wrap-around
    space = data == 32
    flag[1:] |= space[1:] & space[:-1]
    lengths = np.diff(offsets)
    filled = lengths > 0
    first = np.minimum(offsets[:-1], data.size - 1)
    mask = np.logical_or.reduceat(flag, first) & filled  # reduceat gives an empty caption junk: masked
    mask |= filled & (space[first] | space[np.maximum(offsets[1:] - 1, 0)])
    return mask


def normalise_batch(arr, mode: str = "exact"):
    """:func:`normalise_array` for a batch of captions, fast: ``(normalised array, rows on the full path)``.

    ``ascii_lower`` normalises a caption of printable ASCII with single inner spaces completely;
    only the others (:func:`irregular_rows`) take the full path.  The result equals
    :func:`normalise_array` on every caption (tested).  The counter uses the same split without
    assembling the array.
    """
    arr = as_text(arr)
    mask = irregular_rows(*text_buffers(arr))
    lowered = pc.ascii_lower(arr).cast(pa.large_string())
    if mode == "punctuation":
        lowered = fold_punctuation(lowered)
    n_slow = int(mask.sum())
    if n_slow == 0:
        return lowered, 0
    fixed = normalise_array(arr.filter(pa.array(mask)), mode)
    return pc.replace_with_mask(lowered, pa.array(mask), fixed), n_slow
