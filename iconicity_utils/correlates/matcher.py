"""The titles as patterns, and the Aho-Corasick matcher that finds them in a batch's bytes (stage 06).

:func:`build_patterns` normalises the titles (:mod:`~iconicity_utils.correlates.normalise`) and
keeps the distinct ones as byte patterns.  :class:`Matcher` runs the Rust ``aho-corasick`` crate's
DFA (the ``ahocorasick_rs`` package) over an Arrow string array's UTF-8 data buffer itself, with no
copy, and reports *every* match, overlapping ones included (a caption holding "The Godfather Part
II" holds "The Godfather" too; "longest match" modes would hide it).  Matching UTF-8 bytes is exact:
a valid UTF-8 pattern can only match at character boundaries.  Word boundaries are checked later,
by :mod:`~iconicity_utils.correlates.counting`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata

import ahocorasick_rs as ar
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iconicity_utils.correlates.normalise import normalisation_name, normalise_texts

__all__ = [
    "MATCHERS",
    "SHORT_TITLE_BYTES",
    "TitlePatterns",
    "build_patterns",
    "Matcher",
    "HyperscanMatcher",
    "make_matcher",
]

#: the matchers :func:`make_matcher` knows (``correlates.frequency.matcher``)
MATCHERS = ("ahocorasick_rs", "hyperscan")
#: titles of at most this many bytes (ASCII, starting with a word character: "It", "Up", "Her") are
#: matched with the character before them (see :class:`Matcher`)
SHORT_TITLE_BYTES = 4
#: the bytes that can precede a word in a regular caption (printable ASCII that is not ``\w``)
_CONTEXT = bytes(c for c in range(32, 127) if not (chr(c).isalnum() or c == 95))
_EMPTY = np.zeros(0, dtype=np.int64)


def _is_word_char(ch: str) -> bool:
    """Is ``ch`` a word character (Python's ``\\w``: a letter, digit or underscore of any script)?"""
    return ch.isalnum() or ch == "_"


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
    #: the normalisation mode (:data:`~iconicity_utils.correlates.normalise.NORMALISE_MODES`)
    normalise: str = "exact"

    def __len__(self) -> int:
        return len(self.patterns)

    def fingerprint(self, column: str) -> str:
        """sha256 of the patterns, the caption column and the normalisation's name."""
        name = normalisation_name(self.normalise)
        blob = json.dumps({"patterns": list(self.patterns), "column": column, "normalisation": name})
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def build_patterns(titles: Sequence[str], normalise: str = "exact") -> TitlePatterns:
    """Normalise ``titles`` (one per reference; ``normalise``: the mode) and turn the distinct ones into patterns."""
    normalised = tuple(normalise_texts(list(titles), normalise))
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
        normalise=normalise,
    )


def _automaton(patterns: list[bytes]):
    """``find(data) -> (pattern ids, starts)`` of every match, overlapping ones included."""
    if not patterns:
        return lambda data: (_EMPTY, _EMPTY)
    ac = ar.BytesAhoCorasick(patterns, matchkind=ar.MatchKind.Standard, implementation=ar.Implementation.DFA)

    def find(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if data.size == 0:
            return _EMPTY, _EMPTY
        found = ac.find_matches_as_indexes(data, overlapping=True)
        flat = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=3 * len(found))
        return flat[0::3], flat[1::3]

    return find


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

    def __init__(self, patterns: TitlePatterns, name: str = MATCHERS[0]):
        if name not in MATCHERS or name == "hyperscan":
            raise ValueError(
                f"unknown matcher {name!r} (correlates.frequency.matcher); expected one of {list(MATCHERS)}"
            )
        self.name = name
        self.version = _version("ahocorasick-rs")
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
        self._main = _automaton([enc[i] for i in rest] + context)
        self._all = _automaton(list(enc))
        # caption starts: the first 1-4 bytes of each caption, packed into an integer, per length
        self._head_bytes = np.zeros(256, dtype=bool)
        self._head_bytes[[enc[i][0] for i in short]] = True
        self._heads: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for length in range(1, SHORT_TITLE_BYTES + 1):
            ids = [i for i in short if len(enc[i]) == length]
            keys = np.array([int.from_bytes(enc[i], "little") for i in ids], dtype=np.int64)
            order = np.argsort(keys)
            self._heads[length] = (keys[order], np.array(ids, dtype=np.int64)[order])

    def find(self, data: np.ndarray, offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every match of every pattern in ``data``: ``(pattern ids, start byte offsets)`` (``offsets`` unused)."""
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


def _hs_expression(pattern: bytes) -> bytes:
    """A title as a hyperscan literal: every byte escaped, ``\\b`` where its edge is an ASCII word byte.

    Only ASCII edges are anchored: hyperscan's ``\\b`` (no UCP) treats bytes >= 0x80 as non-word,
    so an anchored match is a superset of the true ones only where the edge itself is ASCII.  The
    word-boundary check of :mod:`~iconicity_utils.correlates.counting` decides, as for every matcher.
    """
    body = b"".join(b"\\x%02x" % c for c in pattern)
    left = b"\\b" if _ASCII_WORD_BYTE[pattern[0]] else b""
    right = b"\\b" if _ASCII_WORD_BYTE[pattern[-1]] else b""
    return left + body + right


_ASCII_WORD_BYTE = [c < 128 and (chr(c).isalnum() or c == 95) for c in range(256)]


class HyperscanMatcher:
    """Intel's hyperscan (the ``hyperscan`` package), block mode, one database of anchored literals.

    Each caption is followed by ``\\n`` in a joined copy of the buffer
    (``pyarrow.compute.binary_join_element_wise``), so that an anchor sees a caption's own edges;
    matches (hyperscan reports end offsets) are mapped back to the unjoined buffer.  Same results
    as :class:`Matcher` after the word-boundary check (tested).
    """

    def __init__(self, patterns: TitlePatterns):
        import hyperscan

        self.name = "hyperscan"
        self.version = _version("hyperscan")
        self._lengths = patterns.byte_lengths
        self._db = None
        if len(patterns):
            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            exprs = [_hs_expression(p) for p in patterns.encoded]
            self._db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs))
            self._scratch = hyperscan.Scratch(self._db)

    def find(self, data: np.ndarray, offsets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every match in ``data`` (captions at ``offsets``; one caption when None): ``(ids, starts)``."""
        offsets = np.array([0, data.size], dtype=np.int64) if offsets is None else offsets
        if self._db is None or data.size == 0:
            return _EMPTY, _EMPTY
        arr = pa.LargeStringArray.from_buffers(
            len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data)
        )
        sep = pa.scalar("\n", pa.large_string())
        joined = pc.binary_join_element_wise(arr, sep, pa.scalar("", pa.large_string()))
        joined_data = joined.buffers()[2]
        ids: list[int] = []
        ends: list[int] = []

        def on_match(pid, _from, to, _flags, _ctx):
            ids.append(pid)
            ends.append(to)

        size = int(offsets[-1]) + len(offsets) - 1  # every caption and its separator
        self._db.scan(
            joined_data.slice(0, size).to_pybytes(), match_event_handler=on_match, scratch=self._scratch
        )
        pid = np.array(ids, dtype=np.int64)
        start = np.array(ends, dtype=np.int64) - self._lengths[pid] if pid.size else _EMPTY
        joined_off = offsets + np.arange(len(offsets), dtype=np.int64)
        cap = np.searchsorted(joined_off, start, side="right") - 1
        return pid, start - cap

    def find_regular(self, offsets: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same as :meth:`find` (anchored literals need no special case for short titles)."""
        return self.find(data, offsets)


def make_matcher(patterns: TitlePatterns, name: str = MATCHERS[0]) -> Matcher | HyperscanMatcher:
    """The named matcher over ``patterns`` (see :data:`MATCHERS`)."""
    if name == "hyperscan":
        return HyperscanMatcher(patterns)
    return Matcher(patterns, name)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return None
