"""Stage 06, training-data frequency: how many captions of a corpus contain each title (docs/method.md §6).

One pass over the captions counts every title: the parquet shards are read out of core, batch by
batch (pyarrow), and each batch is matched against all titles at once by an Aho-Corasick automaton.
There is no Python loop over captions or over titles.

What counts (:func:`count_batch`)
---------------------------------
A caption *contains* a title when the normalised title occurs in the normalised caption at word
boundaries.  Captions are counted, not occurrences: a caption that repeats a title counts once.

- **Normalisation** (:func:`normalise_array`, the same for titles and captions): Unicode NFKC
  (ligatures, full-width letters, non-breaking spaces), lower case (``utf8_lower``), curly quotes
  to straight ones (``‘ ’ ‚ ‛`` to ``'``, ``“ ” „ ‟`` to ``"``), every run of white space to one
  space, and the ends trimmed.  Punctuation stays: ``Face/Off`` does not match "face off".
- **Word boundaries**: where the title begins with a word character (Python's ``\\w``: a letter,
  digit or underscore of any script), the character before the match must not be one; likewise
  after the match where the title ends with one.  A title's edge that is punctuation (``...And
  Justice for All``) has no boundary condition on that side.  The beginning and the end of a
  caption are boundaries.  ``Titanic`` does not match "titanically"; ``Psycho`` does not match
  "psychology".  This is the regex ``(?<!\\w)title(?!\\w)``, each side only where the title's
  edge is a word character.
- **Exact-caption matches**: the normalised caption *is* the normalised title.

How (:func:`count_batch`)
-------------------------
1. **Normalise a whole Arrow batch with vectorised kernels.**  A caption that is printable ASCII
   with single inner spaces only needs ``ascii_lower``; the few others (found with numpy over the
   batch's byte buffer: a byte >= 0x80, a control byte, two spaces in a row, a space at an end) go
   through the full path (``utf8_normalize`` NFKC, ``utf8_lower``, ``replace_substring``,
   ``replace_substring_regex``, ``utf8_trim``) and are put back with ``replace_with_mask``.
2. **Match the batch's UTF-8 byte buffer once.**  The Arrow string array's data buffer is already
   every caption back to back; its offsets say where each one starts.  The automaton runs once
   over that buffer, reporting *every* match, overlapping ones included (a caption holding "The
   Godfather Part II" holds "The Godfather" too; non-overlapping "longest match" modes would hide
   it).  Matching UTF-8 bytes is exact: a valid UTF-8 pattern can only match at character
   boundaries.
3. **Map matches back with numpy**: ``searchsorted`` over the offsets gives each match's caption;
   a match that runs past its caption's end is dropped; word boundaries are checked on the
   neighbouring bytes (a lookup table for ASCII, a vectorised UTF-8 decode and a table of every
   code point otherwise); ``np.unique`` over ``caption * n_titles + title`` keeps one hit per
   (caption, title), and ``bincount`` gives the counts.

Two matchers (``correlates.frequency.matcher``): ``"ahocorasick_rs"`` (the Rust ``aho-corasick``
crate's DFA over the buffer itself, no copy) and ``"pyahocorasick"`` (a C trie over the buffer
decoded as Latin-1, one character per byte).  They give identical counts (tested); the first is
several times faster (``benchmarks/bench_caption_counts.py``).

Shards, resume, and splitting the work (:func:`count_captions`)
---------------------------------------------------------------
The shards are the parquet files matching ``correlates.frequency.shards`` (sorted).  Each shard's
partial counts are written atomically to ``<cache>/caption_counts/<corpus>/<fingerprint>/`` when
it is finished; a rerun skips every shard whose partial exists and still describes the file (same
size and row count), so an interrupted scan resumes where it stopped.  The fingerprint covers the
normalised titles, the caption column and the normalisation, so changing any of them starts
afresh.  ``--shard i/n`` (1-based) takes every n-th shard from the i-th, so n processes or
machines can share a corpus; the partials add up, and whoever finds every shard done writes the
counts table.  Within one run, a process pool (``correlates.frequency.workers``, default every
core) scans row-group chunks of the pending shards.

Command line::

    python -m iconicity_utils.correlates.caption_counts --config configs/paper.yaml [--shard 2/8] [--workers 16]
    python -m iconicity_utils.correlates.caption_counts --config configs/paper.yaml --status

Output: ``<results>/caption_counts.parquet``, one row per reference (``slug``, ``kind``,
``label_clean``, ``pattern``, ``caption_count``, ``exact_caption_count``), with the corpus, the
shards, the rows scanned and the scan's time in its provenance.

The demo (:func:`build_demo_corpus`) generates a small caption corpus from the references table
with counts known by construction, including the hard cases: a title inside a longer word,
punctuation inside a title, other case, Unicode variants and a caption that repeats a title.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils.core.io import atomic_path, atomic_write_json, read_table, utc_now, write_table

__all__ = [
    "NORMALISATION",
    "QUOTES",
    "TitlePatterns",
    "BatchCounts",
    "ScanResult",
    "IncompleteScan",
    "normalise_array",
    "normalise_batch",
    "normalise_texts",
    "build_patterns",
    "MATCHERS",
    "SHORT_TITLE_BYTES",
    "Matcher",
    "make_matcher",
    "count_batch",
    "count_table",
    "list_shards",
    "select_shards",
    "parse_shard_spec",
    "partials_dir",
    "count_captions",
    "counts_table_path",
    "read_counts",
    "build_demo_corpus",
    "demo_expected_path",
    "compare_expected",
    "main",
]

#: the name of the normalisation, recorded with every count (change it when the rules change)
NORMALISATION = "nfkc-lower-quotes-whitespace-trim/1"

#: curly quotes and their straight replacements
QUOTES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
}  # fmt: skip

#: ``\w`` of Python's ``re`` for the 128 ASCII bytes (``str.isalnum()`` or ``_``)
_ASCII_WORD = np.array([c < 128 and (chr(c).isalnum() or c == 95) for c in range(256)], dtype=bool)
_UNICODE_WORD: np.ndarray | None = None


def _word_table() -> np.ndarray:
    """A bool per code point: is it ``\\w``?  Built once per process (0.2 s), when first needed."""
    global _UNICODE_WORD
    if _UNICODE_WORD is None:
        table = np.fromiter((chr(c).isalnum() for c in range(0x110000)), dtype=bool, count=0x110000)
        table[95] = True
        _UNICODE_WORD = table
    return _UNICODE_WORD


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------


def _as_text(arr):
    """A string / large_string array with no nulls (a null caption is an empty one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

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


def _text_buffers(arr) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, data)`` of a string array: int64 offsets from 0, and its UTF-8 bytes (no copy)."""
    import pyarrow as pa

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


def _from_buffers(offsets: np.ndarray, data: np.ndarray):
    """A large_string array over numpy offsets and bytes."""
    import pyarrow as pa

    return pa.Array.from_buffers(
        pa.large_string(),
        len(offsets) - 1,
        [
            None,
            pa.py_buffer(np.ascontiguousarray(offsets, dtype=np.int64)),
            pa.py_buffer(np.ascontiguousarray(data)),
        ],
    )


#: ASCII white space as Python's ``str.isspace`` sees it: \t \n \v \f \r, \x1c-\x1f, space
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
#: UTF-8 lead bytes of the multi-byte white space and curly quotes handled in :func:`_squeeze`
_LEADS = np.zeros(256, dtype=bool)
_LEADS[[0xC2, 0xE1, 0xE2, 0xE3]] = True
#: the multi-byte characters Python's ``str.isspace`` calls white space (NFKC maps most to U+0020)
_WIDE_SPACES = [
    c.encode("utf-8")
    for c in map(chr, [0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
]


def _drop_bytes(offsets: np.ndarray, drop_at: np.ndarray) -> np.ndarray:
    """The offsets after removing the bytes at the sorted positions ``drop_at`` (cheap: few positions)."""
    if drop_at.size == 0:
        return offsets
    cap = np.searchsorted(offsets, drop_at, side="right") - 1
    per_caption = np.bincount(cap, minlength=len(offsets) - 1)
    return offsets - np.concatenate([[0], np.cumsum(per_caption)])


def _squeeze(offsets: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Curly quotes to straight ones, every run of white space to one space, the ends trimmed (numpy).

    Works on the UTF-8 bytes of many strings at once (``offsets``, ``data``) and returns new ones;
    only the positions that change are touched one by one.
    """
    if data.size == 0:
        return offsets.copy(), data.copy()
    out = data.copy()
    lead = np.flatnonzero(_LEADS[data])
    if lead.size:  # multi-byte white space and curly quotes: the lead byte becomes ASCII, the rest goes
        last = data.size - 1
        seq2 = (data[lead].astype(np.int64) << 8) | data[np.minimum(lead + 1, last)]
        seq3 = (seq2 << 8) | data[np.minimum(lead + 2, last)]
        single = np.isin(seq3, [0xE28098, 0xE28099, 0xE2809A, 0xE2809B])
        double = np.isin(seq3, [0xE2809C, 0xE2809D, 0xE2809E, 0xE2809F])
        space2 = np.isin(seq2, [int.from_bytes(s, "big") for s in _WIDE_SPACES if len(s) == 2])
        space3 = np.isin(seq3, [int.from_bytes(s, "big") for s in _WIDE_SPACES if len(s) == 3])
        out[lead[single]] = ord("'")
        out[lead[double]] = ord('"')
        out[lead[space2 | space3]] = 32
        three = lead[space3 | single | double]
        drop_at = np.unique(np.concatenate([lead[space2 | space3 | single | double] + 1, three + 2]))
        if drop_at.size:
            keep = np.ones(data.size, dtype=bool)
            keep[drop_at] = False
            offsets = _drop_bytes(offsets, drop_at)
            out = out[keep]
    space = _ASCII_SPACE[out]
    out[space] = 32
    remove = np.zeros(out.size, dtype=bool)
    remove[1:] = space[1:] & space[:-1]  # the rest of a run
    filled = np.flatnonzero(np.diff(offsets) > 0)
    lo, hi = offsets[filled], offsets[filled + 1]
    remove[lo] |= space[lo]  # a leading run
    tail = np.flatnonzero(space[hi - 1])  # a trailing run: walk back to its first byte, the one kept
    p, floor = hi[tail] - 1, lo[tail]
    while p.size:
        back = (p > floor) & space[np.maximum(p - 1, 0)]
        remove[p[~back]] = True
        p, floor = p[back] - 1, floor[back]
    drop_at = np.flatnonzero(remove)
    return _drop_bytes(offsets, drop_at), out[~remove]


def normalise_array(arr):
    """The full normalisation of every string of an Arrow array: NFKC, lower case, quotes, spaces, trim.

    Titles and captions go through the same steps, so they are normalised identically.  Bytes that
    are not valid UTF-8 are replaced by U+FFFD first.  Returns a ``large_string`` array.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _as_text(arr)
    try:
        x = pc.utf8_normalize(arr, "NFKC")
    except pa.ArrowInvalid:  # invalid UTF-8: repair those strings (rare), then normalise
        repaired = [v.decode("utf-8", "replace") for v in arr.cast(pa.large_binary()).to_pylist()]
        x = pc.utf8_normalize(pa.array(repaired, pa.large_string()), "NFKC")
    x = pc.utf8_lower(x)
    return _from_buffers(*_squeeze(*_text_buffers(x)))


def normalise_texts(texts: Sequence[str | None]) -> list[str]:
    """:func:`normalise_array` for a list of Python strings (None becomes ``""``)."""
    import pyarrow as pa

    if not len(texts):
        return []
    return normalise_array(pa.array(list(texts), pa.string())).to_pylist()


def _irregular_rows(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
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


def normalise_batch(arr):
    """:func:`normalise_array` for a batch of captions, fast: ``(normalised array, rows on the full path)``.

    ``ascii_lower`` normalises a caption of printable ASCII with single inner spaces completely;
    only the others (:func:`_irregular_rows`) take the full path.  The result equals
    :func:`normalise_array` on every caption (tested).  :func:`count_batch` uses the same split
    without assembling the array.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _as_text(arr)
    mask = _irregular_rows(*_text_buffers(arr))
    lowered = pc.ascii_lower(arr).cast(pa.large_string())
    n_slow = int(mask.sum())
    if n_slow == 0:
        return lowered, 0
    fixed = normalise_array(arr.filter(pa.array(mask)))
    return pc.replace_with_mask(lowered, pa.array(mask), fixed), n_slow


# --------------------------------------------------------------------------------------------
# Titles as patterns
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TitlePatterns:
    """The titles to count, normalised, as the automaton's patterns.

    Attributes:
        titles: one per reference, as given.
        normalised: each title normalised (``""`` when nothing is left).
        patterns: the distinct non-empty normalised titles, sorted: the automaton's patterns.
        index: per reference, the index of its pattern in ``patterns`` (-1 for an empty title).
    """

    titles: tuple[str, ...]
    normalised: tuple[str, ...]
    patterns: tuple[str, ...]
    index: tuple[int, ...]
    encoded: tuple[bytes, ...] = field(repr=False)
    byte_lengths: np.ndarray = field(repr=False)
    starts_word: np.ndarray = field(repr=False)
    ends_word: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.patterns)

    def fingerprint(self, column: str) -> str:
        """sha256 of the patterns, the caption column and :data:`NORMALISATION`."""
        blob = json.dumps({"patterns": list(self.patterns), "column": column, "normalisation": NORMALISATION})
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def build_patterns(titles: Sequence[str]) -> TitlePatterns:
    """Normalise ``titles`` (one per reference) and turn the distinct ones into patterns."""
    normalised = tuple(normalise_texts(list(titles)))
    patterns = tuple(sorted({t for t in normalised if t}))
    where = {p: i for i, p in enumerate(patterns)}
    encoded = tuple(p.encode("utf-8") for p in patterns)
    return TitlePatterns(
        titles=tuple(titles),
        normalised=normalised,
        patterns=patterns,
        index=tuple(where.get(t, -1) for t in normalised),
        encoded=encoded,
        byte_lengths=np.array([len(e) for e in encoded], dtype=np.int64),
        starts_word=np.array([_is_word_char(p[0]) for p in patterns], dtype=bool),
        ends_word=np.array([_is_word_char(p[-1]) for p in patterns], dtype=bool),
    )


# --------------------------------------------------------------------------------------------
# Matchers: every (pattern, start) in a byte buffer, overlapping matches included
# --------------------------------------------------------------------------------------------

_EMPTY = np.zeros(0, dtype=np.int64)

#: titles of at most this many bytes (ASCII, starting with a word character: "It", "Up", "Her") are
#: matched with the character before them (see :class:`Matcher`)
SHORT_TITLE_BYTES = 4
#: the bytes that can precede a word in a regular caption (printable ASCII that is not ``\w``)
_CONTEXT = bytes(c for c in range(32, 127) if not (chr(c).isalnum() or c == 95))


def _automaton(name: str, patterns: list[bytes]):
    """``find(data) -> (pattern ids, starts)`` of every match, overlapping ones included."""
    if not patterns:
        return lambda data: (_EMPTY, _EMPTY)
    if name == "ahocorasick_rs":
        try:
            import ahocorasick_rs as ar
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "correlates.frequency.matcher 'ahocorasick_rs' needs the ahocorasick-rs package "
                "(pip install ahocorasick-rs), or set the matcher to 'pyahocorasick'"
            ) from exc
        ac = ar.BytesAhoCorasick(
            patterns, matchkind=ar.MatchKind.Standard, implementation=ar.Implementation.DFA
        )

        def find_rs(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if data.size == 0:
                return _EMPTY, _EMPTY
            found = ac.find_matches_as_indexes(data, overlapping=True)
            flat = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=3 * len(found))
            return flat[0::3], flat[1::3]

        return find_rs
    if name == "pyahocorasick":
        import ahocorasick

        trie = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for i, enc in enumerate(patterns):
            trie.add_word(enc.decode("latin-1"), i)  # one character per byte: offsets are byte offsets
        trie.make_automaton()
        lengths = np.array([len(p) for p in patterns], dtype=np.int64)

        def find_trie(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if data.size == 0:
                return _EMPTY, _EMPTY
            flat = np.fromiter(
                itertools.chain.from_iterable(trie.iter(data.tobytes().decode("latin-1"))), dtype=np.int64
            )
            pid = flat[1::2]
            return pid, flat[0::2] + 1 - lengths[pid]

        return find_trie
    raise ValueError(f"unknown matcher {name!r}; expected one of {sorted(MATCHERS)}")


#: the matchers :func:`make_matcher` knows
MATCHERS = ("ahocorasick_rs", "pyahocorasick")


class Matcher:
    """Two automata over one set of title patterns; both find every match, overlapping ones too.

    - :meth:`find` runs all patterns as they are (any normalised text).
    - :meth:`find_regular` is for *regular* captions only (printable ASCII, lower case, single
      inner spaces, no space at the ends).  A short title that begins with a word character
      ("it", "up", "her") hides inside many words ("with", "cup", "other"), and reporting every
      such raw match costs more than the scan.  There such a title is searched as
      ``<non-word byte><title>`` (each of the 32 that a regular caption can hold), which is every
      occurrence not at a caption's start, plus a vectorised check of every caption's first bytes.
      Every other title is searched as it is.  The results are those of :meth:`find` after the
      word-boundary check (tested).
    """

    def __init__(self, patterns: TitlePatterns, name: str):
        if name not in MATCHERS:
            raise ValueError(f"unknown matcher {name!r}; expected one of {sorted(MATCHERS)}")
        self.name = name
        self.version = _version("ahocorasick-rs" if name == "ahocorasick_rs" else "pyahocorasick")
        enc = patterns.encoded
        short = [
            i
            for i, p in enumerate(enc)
            if len(p) <= SHORT_TITLE_BYTES and p.isascii() and patterns.starts_word[i]
        ]
        rest = [i for i in range(len(enc)) if i not in set(short)]
        context = [bytes([c]) + enc[i] for i in short for c in _CONTEXT]
        self._main_pid = np.array(rest + [i for i in short for _ in _CONTEXT], dtype=np.int64)
        self._main_shift = np.array([0] * len(rest) + [1] * len(context), dtype=np.int64)
        self._main = _automaton(name, [enc[i] for i in rest] + context)
        self._all = _automaton(name, list(enc))
        # caption starts: the first 1-4 bytes of each caption, packed into an integer, per length
        self._head_bytes = np.zeros(256, dtype=bool)
        self._head_bytes[[enc[i][0] for i in short]] = True
        self._heads: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for length in range(1, SHORT_TITLE_BYTES + 1):
            ids = [i for i in short if len(enc[i]) == length]
            keys = np.array([int.from_bytes(enc[i], "little") for i in ids], dtype=np.int64)
            order = np.argsort(keys)
            self._heads[length] = (keys[order], np.array(ids, dtype=np.int64)[order])

    def find(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every match of every pattern in ``data``: ``(pattern ids, start byte offsets)``."""
        return self._all(data)

    def find_regular(self, offsets: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`find` after the boundary check, for regular captions (see the class docstring)."""
        raw, start = self._main(data)
        pid = self._main_pid[raw]
        start = start + self._main_shift[raw]
        heads_pid, heads_start = [pid], [start]
        lengths = np.diff(offsets)
        first = offsets[:-1]
        if data.size:  # only captions whose first byte begins a short title
            maybe = np.flatnonzero(self._head_bytes[data[np.minimum(first, data.size - 1)]] & (lengths > 0))
            first, lengths = first[maybe], lengths[maybe]
        packed = _first_bytes(data, first, lengths)
        for length, (keys, ids) in self._heads.items():
            if keys.size:
                head = packed & ((1 << (8 * length)) - 1)
                at = np.minimum(np.searchsorted(keys, head), keys.size - 1)
                hit = np.flatnonzero((keys[at] == head) & (lengths >= length))
                heads_pid.append(ids[at[hit]])
                heads_start.append(first[hit])
        return np.concatenate(heads_pid), np.concatenate(heads_start)


def _first_bytes(data: np.ndarray, first: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The first (up to) 4 bytes of every caption as a little-endian integer, zero past its end."""
    packed = np.zeros(len(first), dtype=np.int64)
    if data.size >= 4:  # one unaligned 4-byte read per caption, through an overlapping view
        words = np.ndarray(shape=(data.size - 3,), dtype="<u4", buffer=data, strides=(1,))
        inside = first <= data.size - 4
        packed[inside] = words[first[inside]]
        short = np.flatnonzero(lengths < 4)
        packed[short] &= (np.int64(1) << (8 * lengths[short])) - 1
        rest = np.flatnonzero(~inside & (lengths > 0))
    else:
        rest = np.flatnonzero(lengths > 0)
    for i in rest:  # at most the last three captions of the buffer
        packed[i] = int.from_bytes(data[first[i] : first[i] + min(4, lengths[i])].tobytes(), "little")
    return packed


def make_matcher(patterns: TitlePatterns, name: str) -> Matcher:
    """The named matcher (``"ahocorasick_rs"`` or ``"pyahocorasick"``) over ``patterns``."""
    return Matcher(patterns, name)


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return None


# --------------------------------------------------------------------------------------------
# One batch
# --------------------------------------------------------------------------------------------


def _decode_at(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The code points whose UTF-8 lead bytes are at ``pos`` (vectorised)."""
    last = data.size - 1
    b0 = data[pos].astype(np.int64)
    b1 = data[np.minimum(pos + 1, last)].astype(np.int64) & 0x3F
    b2 = data[np.minimum(pos + 2, last)].astype(np.int64) & 0x3F
    b3 = data[np.minimum(pos + 3, last)].astype(np.int64) & 0x3F
    cp = np.where(
        b0 < 0x80,
        b0,
        np.where(
            b0 < 0xE0,
            ((b0 & 0x1F) << 6) | b1,
            np.where(
                b0 < 0xF0,
                ((b0 & 0x0F) << 12) | (b1 << 6) | b2,
                ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3,
            ),
        ),
    )
    return np.clip(cp, 0, 0x10FFFF)


def _word_at(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Is the character starting at byte ``pos`` a word character?"""
    b = data[pos]
    out = _ASCII_WORD[b]
    high = np.flatnonzero(b >= 0x80)
    if high.size:
        out[high] = _word_table()[_decode_at(data, pos[high])]
    return out


def _word_before(data: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Is the character ending just before byte ``pos`` a word character?"""
    p = pos - 1
    b = data[p]
    out = _ASCII_WORD[b]
    high = np.flatnonzero(b >= 0x80)
    if high.size:
        q = p[high]
        for _ in range(3):  # back to the lead byte: at most 3 continuation bytes
            q = np.where((data[q] & 0xC0) == 0x80, q - 1, q)
        out[high] = _word_table()[_decode_at(data, q)]
    return out


def _hits(pid, start, offsets, data, patterns: TitlePatterns, skip_rows=None):
    """The matches that count: ``(caption, pattern, is the whole caption)`` after every check.

    A match must lie inside one caption and sit at word boundaries; ``skip_rows`` (a bool per
    caption) drops the matches of some captions.
    """
    if pid.size == 0:
        return _EMPTY, _EMPTY, np.zeros(0, dtype=bool)
    end = start + patterns.byte_lengths[pid]
    cap = np.searchsorted(offsets, start, side="right") - 1
    lo, hi = offsets[cap], offsets[cap + 1]
    ok = end <= hi  # a match across two captions is no match
    if skip_rows is not None:
        ok &= ~skip_rows[cap]
    check = np.flatnonzero(ok & patterns.starts_word[pid] & (start > lo))
    ok[check] &= ~_word_before(data, start[check])
    check = np.flatnonzero(ok & patterns.ends_word[pid] & (end < hi))
    ok[check] &= ~_word_at(data, end[check])
    return cap[ok], pid[ok], (start[ok] == lo[ok]) & (end[ok] == hi[ok])


@dataclass
class BatchCounts:
    """Counts of one batch (or, summed, of a shard or a corpus), one entry per pattern."""

    counts: np.ndarray
    exact: np.ndarray
    rows: int = 0
    nonempty: int = 0
    bytes: int = 0
    slow_rows: int = 0
    raw_matches: int = 0

    @classmethod
    def zeros(cls, n_patterns: int) -> BatchCounts:
        return cls(np.zeros(n_patterns, np.int64), np.zeros(n_patterns, np.int64))

    def add(self, other: BatchCounts) -> BatchCounts:
        self.counts += other.counts
        self.exact += other.exact
        self.rows += other.rows
        self.nonempty += other.nonempty
        self.bytes += other.bytes
        self.slow_rows += other.slow_rows
        self.raw_matches += other.raw_matches
        return self


def count_batch(arr, patterns: TitlePatterns, matcher: Matcher) -> BatchCounts:
    """Count, for every pattern, the captions of ``arr`` that contain it and those that are it.

    Regular captions are matched in the ``ascii_lower`` buffer with :meth:`Matcher.find_regular`;
    the others (:func:`_irregular_rows`) are normalised in full and matched with
    :meth:`Matcher.find`.  Hits are deduplicated per (caption, title).

    Args:
        arr: an Arrow string array of captions (nulls count as empty captions).
        patterns: from :func:`build_patterns`.
        matcher: from :func:`make_matcher` over the same patterns.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _as_text(arr)
    offsets, raw = _text_buffers(arr)
    irregular = _irregular_rows(offsets, raw)
    n_pat = len(patterns)
    out = BatchCounts.zeros(n_pat)
    out.rows, out.bytes = len(arr), int(raw.size)
    out.nonempty = int(np.count_nonzero(np.diff(offsets)))
    lower_off, lower = _text_buffers(pc.ascii_lower(arr))  # same lengths: only A-Z change
    pid, start = matcher.find_regular(lower_off, lower)
    out.raw_matches = int(pid.size)
    caps, pids, exact = _hits(pid, start, lower_off, lower, patterns, skip_rows=irregular)
    rows = np.flatnonzero(irregular)
    out.slow_rows = int(rows.size)
    if rows.size:
        sub_off, sub = _text_buffers(normalise_array(arr.filter(pa.array(irregular))))
        pid, start = matcher.find(sub)
        out.raw_matches += int(pid.size)
        c2, p2, e2 = _hits(pid, start, sub_off, sub, patterns)
        caps, pids, exact = (
            np.concatenate([caps, rows[c2]]),
            np.concatenate([pids, p2]),
            np.concatenate([exact, e2]),
        )
    if caps.size == 0:
        return out
    keys = caps * n_pat + pids
    pairs = np.unique(keys)  # one hit per (caption, title)
    out.counts = np.bincount(pairs % n_pat, minlength=n_pat).astype(np.int64)
    whole = np.unique(keys[exact])
    out.exact = np.bincount(whole % n_pat, minlength=n_pat).astype(np.int64)
    return out


def count_table(captions, titles: Sequence[str], matcher: str = "pyahocorasick", batch_rows: int = 65536):
    """Count ``titles`` in an in-memory list / Arrow array of captions: ``(caption counts, exact counts)``.

    A convenience for small data and tests; corpora on disk go through :func:`count_captions`.
    Both lists are per title, in the order given (equal normalised titles get equal counts).
    """
    import pyarrow as pa

    arr = (
        captions
        if isinstance(captions, pa.Array | pa.ChunkedArray)
        else pa.array(list(captions), pa.string())
    )
    arr = _as_text(arr)
    pats = build_patterns(titles)
    m = make_matcher(pats, matcher)
    total = BatchCounts.zeros(len(pats))
    for start in range(0, len(arr), batch_rows):
        total.add(count_batch(arr.slice(start, batch_rows), pats, m))
    counts = [int(total.counts[i]) if i >= 0 else 0 for i in pats.index]
    exact = [int(total.exact[i]) if i >= 0 else 0 for i in pats.index]
    return counts, exact


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------


class IncompleteScan(RuntimeError):
    """Some shards of the corpus have no partial counts yet."""


def _shard_glob(cfg) -> str:
    pattern = cfg.correlates.frequency.shards
    return pattern if os.path.isabs(pattern) else str(cfg.data_dir / pattern)


def list_shards(cfg) -> list[Path]:
    """The parquet shards of the configured corpus, sorted.

    Raises:
        FileNotFoundError: no file matches ``correlates.frequency.shards``.
    """
    import glob

    pattern = _shard_glob(cfg)
    shards = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not shards:
        hint = (
            " (the demo builds its corpus with correlates.frequency.synthetic_corpus: true)"
            if not cfg.correlates.frequency.synthetic_corpus
            else ""
        )
        raise FileNotFoundError(
            f"no caption shards match correlates.frequency.shards = {cfg.correlates.frequency.shards!r} "
            f"(looked for {pattern}){hint}"
        )
    return shards


def parse_shard_spec(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` (1-based, ``1 <= i <= n``) as ``(i, n)``; None is ``(1, 1)``."""
    if spec is None:
        return 1, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not match:
        raise ValueError(f"--shard takes i/n, e.g. 2/8, got {spec!r}")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard {spec}: need 1 <= i <= n (1-based), got i={i}, n={n}")
    return i, n


def select_shards(shards: Sequence[Path], spec: str | None) -> list[Path]:
    """The shards of part ``i`` of ``n``: every n-th shard from the i-th (1-based)."""
    i, n = parse_shard_spec(spec)
    return list(shards[i - 1 :: n])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "corpus"


def partials_dir(cfg, patterns: TitlePatterns) -> Path:
    """Where the per-shard partial counts of this corpus and these titles live."""
    f = cfg.correlates.frequency
    fp = patterns.fingerprint(f.caption_column)[:16]
    return cfg.path("cache", "caption_counts", _slug(f.corpus), fp)


def _shard_identity(path: Path) -> dict[str, Any]:
    """What a partial must still match: size, rows and row groups (not mtime: shards get copied)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return {
        "size": path.stat().st_size,
        "rows": meta.num_rows,
        "row_groups": [meta.row_group(i).num_rows for i in range(meta.num_row_groups)],
    }


def _partial_path(folder: Path, shard: Path, shard_key: str) -> Path:
    digest = hashlib.sha256(shard_key.encode("utf-8")).hexdigest()[:12]
    return folder / f"{_slug(shard.stem)[:60]}-{digest}.json"


def _shard_key(cfg, shard: Path) -> str:
    """A shard's name in partials: its path relative to the data root when inside it."""
    try:
        return shard.resolve().relative_to(cfg.data_dir.resolve()).as_posix()
    except ValueError:
        return shard.resolve().as_posix()


def _load_partial(path: Path, identity: dict[str, Any], fingerprint: str) -> dict[str, Any] | None:
    """A partial that is complete and still describes its shard, else None."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("fingerprint") != fingerprint:
        return None
    if any(record.get(k) != identity[k] for k in ("size", "rows", "row_groups")):
        return None
    return record


def _open_batches(path: Path, column: str, row_groups: Sequence[int], batch_rows: int) -> Iterator[Any]:
    """The caption column of some row groups of one shard, batch by batch (one thread)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, memory_map=True)
    names = pf.schema_arrow.names
    if column not in names:
        raise KeyError(
            f"caption column {column!r} is not in {path} (columns: {names}); "
            "set correlates.frequency.caption_column"
        )
    for batch in pf.iter_batches(
        batch_size=batch_rows, row_groups=list(row_groups), columns=[column], use_threads=False
    ):
        yield batch.column(0)


#: per process: (patterns, matcher, column, batch_rows), set by the pool initializer
_WORKER: tuple | None = None


def _init_worker(
    titles: tuple[str, ...], matcher: str, column: str, batch_rows: int, one_thread: bool = True
) -> None:
    """Build the patterns and the matcher once per process (from the same titles, so the same ids)."""
    import pyarrow as pa

    global _WORKER
    if one_thread:  # a pool process is one core: no Arrow thread pools competing with the others
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
    pats = build_patterns(titles)
    _WORKER = (pats, make_matcher(pats, matcher), column, batch_rows)


def _scan_piece(
    path: str, row_groups: tuple[int, ...]
) -> tuple[str, tuple[int, ...], BatchCounts, float, float]:
    """Count one chunk of row groups of one shard (in a worker, or in this process).

    Returns ``(path, row groups, counts, wall seconds, CPU seconds of this process)``.
    """
    assert _WORKER is not None, "the scanning state is not initialised"
    pats, matcher, column, batch_rows = _WORKER
    t0, c0 = time.perf_counter(), time.process_time()
    total = BatchCounts.zeros(len(pats))
    for arr in _open_batches(Path(path), column, row_groups, batch_rows):
        total.add(count_batch(arr, pats, matcher))
    return path, row_groups, total, time.perf_counter() - t0, time.process_time() - c0


def _chunks(sizes: Sequence[int], target_rows: int) -> list[tuple[int, ...]]:
    """Consecutive row groups in chunks of at least ``target_rows`` rows (the last may be smaller)."""
    out: list[tuple[int, ...]] = []
    current: list[int] = []
    rows = 0
    for i, n in enumerate(sizes):
        current.append(i)
        rows += n
        if rows >= target_rows:
            out.append(tuple(current))
            current, rows = [], 0
    if current:
        out.append(tuple(current))
    return out


@dataclass
class ScanResult:
    """What a call of :func:`count_captions` did, and the counts when every shard is done.

    Attributes:
        counts: the counts table (one row per reference) when the scan is complete, else None.
        shards_total: shards of the corpus (all parts).
        shards_done: shards with partial counts (all parts, including those done before).
        shards_scanned: shards this call scanned.
        shards_reused: shards of this call's part that were already done (not read again).
        rows_scanned: rows (captions) this call read.
        seconds: wall time of this call's scanning.
        cpu_seconds: CPU time the counting of this call took, in whichever processes did it.
        provenance: corpus, rows, time, matcher, ... (also in the table's parquet metadata).
    """

    counts: Any
    shards_total: int
    shards_done: int
    shards_scanned: int
    shards_reused: int
    rows_scanned: int
    seconds: float
    partials: Path
    provenance: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.shards_done == self.shards_total

    def summary(self) -> str:
        rate = self.rows_scanned / self.seconds if self.seconds > 0 else float("nan")
        text = (
            f"{self.shards_done}/{self.shards_total} shards done ({self.shards_scanned} scanned now, "
            f"{self.shards_reused} reused); {self.rows_scanned:,} captions read in {self.seconds:.2f} s"
        )
        if self.rows_scanned:
            text += f" ({rate:,.0f} captions/s)"
        if self.complete:
            text += f"; corpus: {self.provenance['rows_scanned']:,} captions in all"
        return text


def counts_table_path(cfg) -> Path:
    """``<results>/caption_counts.parquet``."""
    return cfg.results_dir / "caption_counts.parquet"


def _references_titles(cfg):
    refs = read_table(cfg.references_table)
    return refs[["slug", "kind", "label_clean"]].reset_index(drop=True)


def count_captions(
    cfg,
    *,
    shard: str | None = None,
    workers: int | None = None,
    log: Callable[[str], None] = print,
) -> ScanResult:
    """Count every reference's title in the configured corpus, resuming from saved partials.

    Args:
        cfg: the study config (``correlates.frequency`` decides the corpus and the engine).
        shard: ``"i/n"``: scan only part i of n of the shard list (the others may be scanned
            elsewhere; their partials add up).
        workers: processes (default ``correlates.frequency.workers``, else every core); 1 scans
            in this process.
        log: where progress goes.

    Returns:
        A :class:`ScanResult`; when every shard is done, the counts table is also written to
        :func:`counts_table_path`.
    """
    f = cfg.correlates.frequency
    refs = _references_titles(cfg)
    pats = build_patterns(list(refs["label_clean"]))
    fingerprint = pats.fingerprint(f.caption_column)
    folder = partials_dir(cfg, pats)
    shards = list_shards(cfg)
    mine = set(select_shards(shards, shard))
    workers = workers or f.workers or os.cpu_count() or 1

    identities = {s: _shard_identity(s) for s in shards}
    keys = {s: _shard_key(cfg, s) for s in shards}
    paths = {s: _partial_path(folder, s, keys[s]) for s in shards}
    done = {
        s: rec for s in shards if (rec := _load_partial(paths[s], identities[s], fingerprint)) is not None
    }
    pending = [s for s in shards if s in mine and s not in done]
    reused = sum(1 for s in shards if s in mine and s in done)

    t0 = time.perf_counter()
    rows_now = 0
    cpu_now = 0.0
    if pending:
        log(
            f"scanning {len(pending)} shard(s) of {len(shards)} with {workers} process(es), "
            f"matcher {f.matcher}; partials in {cfg.relative(folder)}"
        )
        for s, record in _scan_shards(cfg, pats, pending, identities, keys, paths, fingerprint, workers):
            done[s] = record
            rows_now += record["rows_scanned"]
            cpu_now += record["cpu_seconds"]
    seconds = time.perf_counter() - t0

    missing = [keys[s] for s in shards if s not in done]
    prov = _provenance(cfg, pats, shards, done, fingerprint, folder)
    result = ScanResult(
        counts=None,
        shards_total=len(shards),
        shards_done=len(done),
        shards_scanned=len(pending),
        shards_reused=reused,
        rows_scanned=rows_now,
        seconds=seconds,
        cpu_seconds=cpu_now,
        partials=folder,
        provenance=prov,
        missing=missing,
    )
    if not missing:
        result.counts = _merge(refs, pats, [done[s] for s in shards])
        prov["last_run"] = {"shards_scanned": len(pending), "rows": rows_now, "wall_seconds": round(seconds, 3),
                            "workers": workers}  # fmt: skip
        write_table(result.counts, counts_table_path(cfg), cfg, caption_counts=prov)
    else:
        log(
            f"{len(missing)} shard(s) still lack counts (e.g. {missing[0]}); scan them "
            "(another --shard i/n) and the last run writes the counts table"
        )
    log(result.summary())
    return result


def _scan_shards(cfg, pats, pending, identities, keys, paths, fingerprint, workers):
    """Scan the pending shards; yield ``(shard, partial record)`` as each shard finishes."""
    f = cfg.correlates.frequency
    titles = tuple(pats.titles)  # workers rebuild the same patterns (same ids) from the same titles
    total_rows = sum(identities[s]["rows"] for s in pending)
    target = max(1, math.ceil(total_rows / (workers * 4)))
    jobs = [(s, rg) for s in pending for rg in _chunks(identities[s]["row_groups"], target)]
    remaining = {s: sum(1 for j in jobs if j[0] == s) for s in pending}
    partial = {s: BatchCounts.zeros(len(pats)) for s in pending}
    busy = {s: 0.0 for s in pending}
    cpu_s = {s: 0.0 for s in pending}

    def finished(path: str, rg, counts: BatchCounts, secs: float, cpu: float):
        s = Path(path)
        partial[s].add(counts)
        busy[s] += secs
        cpu_s[s] += cpu
        remaining[s] -= 1
        if remaining[s]:
            return None
        record = _partial_record(keys[s], identities[s], fingerprint, partial.pop(s), busy[s], cpu_s[s])
        atomic_write_json(paths[s], record)
        return s, record

    if workers == 1 or len(jobs) == 1:
        global _WORKER
        saved = _WORKER
        _init_worker(titles, f.matcher, f.caption_column, f.batch_rows, one_thread=False)
        try:
            for s, rg in jobs:
                out = finished(*_scan_piece(str(s), rg))
                if out is not None:
                    yield out
        finally:
            _WORKER = saved
        return

    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # forkserver: workers fork from a clean server that has imported this module once (no threads of
    # this process are copied, and no worker imports pyarrow again); spawn where there is none
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if main_spec is None or main_spec.name != __name__:  # run with -m, the server imports it anyway
            ctx.set_forkserver_preload([__name__])
    else:  # pragma: no cover - Windows
        ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(titles, f.matcher, f.caption_column, f.batch_rows),
    ) as pool:
        futures = {pool.submit(_scan_piece, str(s), rg) for s, rg in jobs}
        try:
            while futures:
                ready, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in ready:
                    out = finished(*fut.result())
                    if out is not None:
                        yield out
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _partial_record(
    key: str, identity: dict, fingerprint: str, counts: BatchCounts, seconds: float, cpu_seconds: float
) -> dict:
    hits = np.flatnonzero((counts.counts > 0) | (counts.exact > 0))
    return {
        "shard": key,
        **identity,
        "fingerprint": fingerprint,
        "normalisation": NORMALISATION,
        "rows_scanned": counts.rows,
        "captions_nonempty": counts.nonempty,
        "bytes_normalised": counts.bytes,
        "rows_full_normalisation": counts.slow_rows,
        "raw_matches": counts.raw_matches,
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu_seconds, 4),
        "finished_utc": utc_now(),
        # sparse: [pattern index, captions containing it, captions that are it]
        "counts": [[int(i), int(counts.counts[i]), int(counts.exact[i])] for i in hits],
    }


def _merge(refs, pats: TitlePatterns, records: list[dict]):
    """Sum partial counts into the counts table (one row per reference)."""
    import pandas as pd

    counts = np.zeros(len(pats), np.int64)
    exact = np.zeros(len(pats), np.int64)
    for record in records:
        for i, c, e in record["counts"]:
            counts[i] += c
            exact[i] += e
    idx = np.array(pats.index, dtype=np.int64)
    defined = idx >= 0
    out = refs.copy()
    out["pattern"] = list(pats.normalised)
    out["caption_count"] = pd.array(np.where(defined, counts[np.maximum(idx, 0)], 0), dtype="Int64")
    out["exact_caption_count"] = pd.array(np.where(defined, exact[np.maximum(idx, 0)], 0), dtype="Int64")
    out.loc[~defined, ["caption_count", "exact_caption_count"]] = pd.NA
    return out


def _provenance(cfg, pats, shards, done, fingerprint, folder) -> dict[str, Any]:
    f = cfg.correlates.frequency
    records = list(done.values())
    return {
        "corpus": f.corpus,
        "shards_glob": f.shards,
        "caption_column": f.caption_column,
        "shards_total": len(shards),
        "shards_done": len(records),
        "rows_scanned": int(sum(r["rows_scanned"] for r in records)),
        "captions_nonempty": int(sum(r["captions_nonempty"] for r in records)),
        # the time spent counting, summed over shards (each shard's time in its process)
        "scan_seconds": round(float(sum(r["seconds"] for r in records)), 3),
        "scan_finished_utc": max((r["finished_utc"] for r in records), default=None),
        "matcher": f.matcher,
        "normalisation": NORMALISATION,
        "matching": "case-insensitive, word boundaries, captions counted once",
        "patterns": len(pats),
        "fingerprint": fingerprint,
        "partials": cfg.relative(folder),
    }


def read_counts(cfg):
    """The counts table written by a complete scan (:func:`counts_table_path`).

    Raises:
        IncompleteScan: no complete scan has written it yet.
    """
    path = counts_table_path(cfg)
    if not path.is_file():
        raise IncompleteScan(
            f"no caption counts at {path}: run the scan (python -m iconicity_utils.correlates.caption_counts "
            f"--config {cfg.source}) until every shard is done"
        )
    return read_table(path)


# --------------------------------------------------------------------------------------------
# The demo corpus: known counts by construction
# --------------------------------------------------------------------------------------------

_FILLER = (
    "photo", "print", "canvas", "framed", "vintage", "poster", "wall", "decor", "gift", "blue", "green",
    "cotton", "shirt", "mug", "sticker", "detail", "modern", "classic", "edition", "digital", "design",
    "art", "sale", "cheap", "large", "small", "home", "office", "style", "colour", "paper", "high",
    "quality", "set", "pack", "retro", "limited", "museum", "gallery", "copy", "frame", "black", "white",
    "red", "gold", "silver", "wooden", "glass", "metal", "card", "book", "cover", "scene", "still",
    "image", "picture", "view", "close", "up", "free", "shipping", "new", "old", "rare", "original",
)  # fmt: skip
#: hand-made decoys: text that looks like a demo title but must not count (title inside a longer
#: word, punctuation dropped, part of a title)
_DECOYS = {
    "Psycho": ["psychology textbook cover", "a psychotic villain, comic style"],
    "Titanic": ["titanically large ship model", "titanics of industry, old photo"],
    "Metropolis": ["metropolises at night, skyline print"],
    "Guernica": ["guernicas in the rain, street photo"],
    "Face/Off": ["face off hockey poster", "faceoff at the rink", "face / off sticker"],
    "Impression, Sunrise": ["impression sunrise over the harbour"],
    "2001: A Space Odyssey": ["2001 a space odyssey themed party"],
    "...And Justice for All": ["and justice for all, courthouse sign"],
    "The Starry Night": ["starry night sky over the desert", "the starry nights of summer"],
    "Mona Lisa": ["mona lisas smile in every shop", "xmona lisa typo shirt"],
    "The Matrix": ["the matrixes of linear algebra"],
    "Casablanca": ["casablancas bar sign"],
    "Star Wars": ["starwars lego set", "star warship model"],
}
#: how a mention is written: each keeps the title findable after normalisation
_MENTIONS = (
    "{t} poster, {a} {b} {c}",
    "{a} {b} inspired by {t}",
    "“{t}” {a} {b}",
    "{a} ({t}) {b} {c}",
    "{T} {a} {b}",
    "{a} {b} - {lt}",
    "{t}! {t}! {t} {a}",
    "{a}\t{t}\n{b}",
    "{a} {b} {t}.",
)  # fmt: skip


def _variants(title: str) -> list[str]:
    """The title written in ways that normalise to it: NBSP, double space, NFD, full width."""
    out = []
    if " " in title:
        out.append(title.replace(" ", "\u00a0", 1))
        out.append(title.replace(" ", "  ", 1))
    if unicodedata.normalize("NFD", title) != title:
        out.append(unicodedata.normalize("NFD", title))
    if title.isascii():
        out.append("".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in title))
    return out


def demo_expected_path(cfg) -> Path:
    """``expected_counts.json`` beside the generated demo shards."""
    return Path(_shard_glob(cfg)).parent / "expected_counts.json"


def build_demo_corpus(cfg, n_captions: int = 20_000, n_shards: int = 4, seed: int = 0) -> Path:
    """Generate the demo caption corpus at ``correlates.frequency.shards``, with known counts.

    For every reference of the references table a planned number of captions mention its title
    (0 to ~60, more for more-linked references), written in many ways that must count (other
    case, curly quotes, tabs and newlines, a title repeated in one caption, NBSP, double spaces,
    NFD accents, full-width letters, a caption that is exactly the title) beside decoys that must
    not (a title inside a longer word, punctuation dropped, part of a title).  The rest is filler
    made of words that appear in no title.  The planned counts are checked against an
    independent, slow count (one regex per title over Python-normalised text) before they are
    written to :func:`demo_expected_path`; a mismatch is an error.  Deterministic for a given
    references table, ``n_captions``, ``n_shards`` and ``seed``; rebuilt only when one changes.

    Returns:
        The folder of the shards.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not cfg.correlates.frequency.synthetic_corpus:
        raise ValueError(
            "build_demo_corpus writes a synthetic corpus: set correlates.frequency.synthetic_corpus"
        )
    refs = read_table(cfg.references_table)
    pattern = Path(_shard_glob(cfg))
    folder = pattern.parent
    names = [f"demo_captions_{i:02d}.parquet" for i in range(n_shards)]
    if any(c in str(folder) for c in "*?["):
        raise ValueError(
            f"the synthetic corpus needs a plain folder in correlates.frequency.shards, got {pattern}"
        )
    import fnmatch

    if not all(fnmatch.fnmatch(n, pattern.name) for n in names):
        raise ValueError(f"generated shard names ({names[0]}, ...) do not match {pattern.name!r}")
    key = {
        "titles": list(zip(refs["slug"], refs["label_clean"], refs["sitelinks"].astype(int), strict=True)),
        "n_captions": n_captions,
        "n_shards": n_shards,
        "seed": seed,
        "column": cfg.correlates.frequency.caption_column,
        "normalisation": NORMALISATION,
    }
    fingerprint = hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()
    expected_path = demo_expected_path(cfg)
    if expected_path.is_file() and all((folder / n).is_file() for n in names):
        try:
            if json.loads(expected_path.read_text())["fingerprint"] == fingerprint:
                return folder
        except (OSError, ValueError, KeyError):
            pass

    captions, planned = _demo_captions(refs, n_captions, seed)
    checked = _slow_counts(captions, list(refs["label_clean"]))
    for slug, (count, exact) in zip(refs["slug"], checked, strict=True):
        if (count, exact) != planned[slug]:
            raise AssertionError(
                f"demo corpus: {slug} is planned at {planned[slug]} but the slow count finds {(count, exact)}"
            )
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("demo_captions_*.parquet"):
        if stale.name not in names:
            stale.unlink()
    column = cfg.correlates.frequency.caption_column
    per = math.ceil(len(captions) / n_shards)
    for i, name in enumerate(names):
        part = captions[i * per : (i + 1) * per]
        table = pa.table(
            {column: pa.array(part, pa.string()), "id": pa.array(range(i * per, i * per + len(part)))}
        )
        with atomic_path(folder / name) as tmp:
            pq.write_table(table, tmp, row_group_size=max(1, per // 4))
    atomic_write_json(
        expected_path,
        {
            "fingerprint": fingerprint,
            "note": "synthetic demo captions: counts known by construction, not a training corpus",
            "captions": len(captions),
            "expected": {
                slug: {"title": t, "caption_count": c, "exact_caption_count": e}
                for (slug, t), (c, e) in zip(
                    zip(refs["slug"], refs["label_clean"], strict=True), checked, strict=True
                )
            },
        },
    )
    return folder


def _demo_captions(refs, n_captions: int, seed: int) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The demo captions (shuffled) and, per slug, the planned (captions containing, exact)."""
    rng = np.random.default_rng(seed)
    title_words = {w for t in normalise_texts(list(refs["label_clean"])) for w in re.findall(r"\w+", t)}
    filler = [w for w in _FILLER if w not in title_words]

    def pick() -> str:
        return str(filler[rng.integers(len(filler))])

    captions: list[str] = []
    planned: dict[str, list[int]] = {}
    by_title: dict[str, list[str]] = {}
    for slug, title in zip(refs["slug"], refs["label_clean"], strict=True):
        by_title.setdefault(title, []).append(slug)
    for title, slugs in by_title.items():
        links = int(refs.loc[refs["slug"] == slugs[0], "sitelinks"].iloc[0])
        n = int(rng.poisson(max(0.0, (links - 30) * 0.6)))
        exact = 0
        for k in range(n):
            a, b, c = pick(), pick(), pick()
            variants = _variants(title)
            t = variants[k % len(variants)] if variants and k % 4 == 3 else title
            if k % 7 == 5:
                captions.append(f"  {title.upper()} ")
                exact += 1
                continue
            template = _MENTIONS[k % len(_MENTIONS)]
            captions.append(template.format(t=t, T=title.upper(), lt=title.lower(), a=a, b=b, c=c))
        for slug in slugs:
            planned[slug] = [n, exact]
        for decoy in _DECOYS.get(title, []):
            captions.append(decoy)
    while len(captions) < n_captions:
        captions.append(" ".join(pick() for _ in range(int(rng.integers(3, 12)))))
    order = rng.permutation(len(captions))
    return [captions[i] for i in order], {s: (c, e) for s, (c, e) in planned.items()}


def _slow_counts(captions: Sequence[str], titles: Sequence[str]) -> list[tuple[int, int]]:
    """One regex per title over Python-normalised captions: slow, simple, independent of the engine."""

    def norm(text: str) -> str:
        text = unicodedata.normalize("NFKC", text).lower()
        for src, dst in QUOTES.items():
            text = text.replace(src, dst)
        return " ".join(text.split())

    texts = [norm(c) for c in captions]
    out = []
    for title in titles:
        t = norm(title)
        if not t:
            out.append((0, 0))
            continue
        rx = re.compile(
            ("(?<!\\w)" if _is_word_char(t[0]) else "")
            + re.escape(t)
            + ("(?!\\w)" if _is_word_char(t[-1]) else "")
        )
        out.append((sum(1 for x in texts if rx.search(x)), sum(1 for x in texts if x == t)))
    return out


def compare_expected(cfg, counts):
    """The demo's counts beside the counts known by construction (``match`` per reference)."""
    import pandas as pd

    expected = json.loads(demo_expected_path(cfg).read_text(encoding="utf-8"))["expected"]
    exp = pd.DataFrame(
        [
            {"slug": s, "expected_count": v["caption_count"], "expected_exact": v["exact_caption_count"]}
            for s, v in expected.items()
        ]
    )
    out = counts[["slug", "label_clean", "caption_count", "exact_caption_count"]].merge(
        exp, on="slug", how="left"
    )
    out["match"] = (out["caption_count"] == out["expected_count"]) & (
        out["exact_caption_count"] == out["expected_exact"]
    )
    return out


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m iconicity_utils.correlates.caption_counts --config FILE [--shard i/n] [--workers N] [--status]``."""
    from iconicity_utils.config import load_config

    parser = argparse.ArgumentParser(
        prog="python -m iconicity_utils.correlates.caption_counts",
        description="Stage 06: count the references' titles in the captions of a parquet corpus (resumable).",
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument(
        "--shard", default=None, help="scan part i of n of the shard list (1-based), e.g. 2/8"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: config, else every core)"
    )
    parser.add_argument("--status", action="store_true", help="report which shards are done, scan nothing")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if cfg.correlates.frequency.source != "scan":
        print(
            f"correlates.frequency.source is {cfg.correlates.frequency.source!r}: nothing to scan",
            file=sys.stderr,
        )
        return 1
    try:
        parse_shard_spec(args.shard)
        if cfg.correlates.frequency.synthetic_corpus:
            build_demo_corpus(cfg)
        if args.status:
            print(json.dumps(_status(cfg), indent=2))
            return 0
        result = count_captions(cfg, shard=args.shard, workers=args.workers)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"caption counts failed: {exc}", file=sys.stderr)
        return 1
    return 0 if result.complete or args.shard else 2


def _status(cfg) -> dict[str, Any]:
    """Which shards have partial counts, without scanning anything."""
    refs = _references_titles(cfg)
    pats = build_patterns(list(refs["label_clean"]))
    fingerprint = pats.fingerprint(cfg.correlates.frequency.caption_column)
    folder = partials_dir(cfg, pats)
    shards = list_shards(cfg)
    done = [
        _shard_key(cfg, s)
        for s in shards
        if _load_partial(_partial_path(folder, s, _shard_key(cfg, s)), _shard_identity(s), fingerprint)
    ]
    return {
        "shards_total": len(shards),
        "shards_done": len(done),
        "missing": [k for s in shards if (k := _shard_key(cfg, s)) not in set(done)],
        "partials": str(folder),
    }


if __name__ == "__main__":
    # run the importable module's main, so that pool workers find its functions by their real name
    from iconicity_utils.correlates.caption_counts import main as _main

    sys.exit(_main())
