"""Counting one batch of captions: which captions contain each title, and which are it (stage 06).

What counts
-----------
A caption *contains* a title when the normalised title occurs in the normalised caption at word
boundaries.  Captions are counted, not occurrences: a caption that repeats a title counts once.

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
1. Regular captions (printable ASCII, single inner spaces) are matched in the ``ascii_lower``
   buffer; the others are normalised in full first (:mod:`~iconicity_utils.correlates.normalise`).
2. The matcher (:mod:`~iconicity_utils.correlates.matcher`) runs once over the batch's UTF-8 data
   buffer: every caption back to back, the offsets saying where each one starts.
3. Matches are mapped back with numpy: ``searchsorted`` over the offsets gives each match's
   caption; a match that runs past its caption's end is dropped; word boundaries are checked on
   the neighbouring bytes (a lookup table for ASCII, a vectorised UTF-8 decode and a table of every
   code point otherwise); ``np.unique`` over ``caption * n_titles + title`` keeps one hit per
   (caption, title), and ``bincount`` gives the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from iconicity_utils.correlates.matcher import MATCHERS, Matcher, TitlePatterns, build_patterns, make_matcher
from iconicity_utils.correlates.modes import MODE_ARRAY, CountSpec, bottom_k, mode_counts, sample_keys
from iconicity_utils.correlates.normalise import (
    as_text,
    fold_punctuation,
    irregular_rows,
    normalise_array,
    text_buffers,
)

__all__ = ["BatchCounts", "count_batch", "count_table", "count_modes"]

#: ``\w`` of Python's ``re`` for the 128 ASCII bytes (``str.isalnum()`` or ``_``)
_ASCII_WORD = np.array([c < 128 and (chr(c).isalnum() or c == 95) for c in range(256)], dtype=bool)
_UNICODE_WORD: np.ndarray | None = None
_EMPTY = np.zeros(0, dtype=np.int64)


def _word_table() -> np.ndarray:
    """A bool per code point: is it ``\\w``?  Built once per process (0.2 s), when first needed."""
    global _UNICODE_WORD
    if _UNICODE_WORD is None:
        table = np.fromiter((chr(c).isalnum() for c in range(0x110000)), dtype=bool, count=0x110000)
        table[95] = True
        _UNICODE_WORD = table
    return _UNICODE_WORD


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
    #: with a :class:`~iconicity_utils.correlates.modes.CountSpec`: per reference, captions with
    #: the title and the creator, with the title and context, with the title and neither, with
    #: the title or an alias (:data:`~iconicity_utils.correlates.modes.MODE_ARRAY`)
    modes: np.ndarray | None = None
    #: ``(reference, key, caption)``: the bottom-k sample of matched captions
    samples: list = field(default_factory=list)
    sample_k: int = 0
    #: ``(reference, key, caption)``: the bottom-k sample of captions only an alias matched
    alias_samples: list = field(default_factory=list)

    @classmethod
    def zeros(cls, n_patterns: int, spec: CountSpec | None = None) -> BatchCounts:
        modes = np.zeros((spec.n_refs, len(MODE_ARRAY)), np.int64) if spec is not None else None
        k = spec.sample_k if spec is not None else 0
        return cls(np.zeros(n_patterns, np.int64), np.zeros(n_patterns, np.int64), modes=modes, sample_k=k)

    def add(self, other: BatchCounts) -> BatchCounts:
        self.counts += other.counts
        self.exact += other.exact
        if other.modes is not None:
            self.modes = other.modes.copy() if self.modes is None else self.modes + other.modes
            self.sample_k = max(self.sample_k, other.sample_k)
            self.samples = bottom_k([*self.samples, *other.samples], self.sample_k)
            self.alias_samples = bottom_k([*self.alias_samples, *other.alias_samples], self.sample_k)
        self.rows += other.rows
        self.nonempty += other.nonempty
        self.bytes += other.bytes
        self.slow_rows += other.slow_rows
        self.raw_matches += other.raw_matches
        return self


def _irregular_hits(arr, irregular: np.ndarray, patterns: TitlePatterns, matcher: Matcher):
    """The hits of the irregular captions, normalised in full: ``(captions, patterns, exact, raw matches)``."""
    rows = np.flatnonzero(irregular)
    sub_off, sub = text_buffers(normalise_array(arr.filter(pa.array(irregular)), patterns.normalise))
    pid, start = matcher.find(sub, sub_off)
    caps, pids, exact = _hits(pid, start, sub_off, sub, patterns)
    return rows[caps], pids, exact, int(pid.size)


def _bottom_k_batch(arr, caps: np.ndarray, refs: np.ndarray, k: int) -> list[tuple[int, int, str]]:
    """The ``k`` captions per reference of smallest key among the hits ``(caps, refs)`` of one batch."""
    if caps.size == 0 or k == 0:
        return []
    offsets, raw = text_buffers(arr)
    keys = sample_keys(offsets, raw, caps, refs)
    order = np.lexsort((keys, refs))
    refs, keys, caps = refs[order], keys[order], caps[order]
    first = np.searchsorted(refs, refs, side="left")
    keep = (np.arange(refs.size) - first) < k
    texts = arr.take(pa.array(caps[keep])).to_pylist()
    return [(int(r), int(key), t or "") for r, key, t in zip(refs[keep], keys[keep], texts, strict=True)]


def _add_modes(out: BatchCounts, arr, pairs: np.ndarray, spec: CountSpec) -> None:
    """The count modes and the caption samples of one batch (``pairs``: unique caption x pattern keys):
    of the title's captions, and of the captions only an alias matched."""
    out.modes, caps, refs, a_caps, a_refs = mode_counts(pairs, spec)
    out.sample_k = spec.sample_k
    out.samples = _bottom_k_batch(arr, caps, refs, spec.sample_k)
    out.alias_samples = _bottom_k_batch(arr, a_caps, a_refs, spec.sample_k)


def count_batch(arr, patterns: TitlePatterns, matcher: Matcher, spec: CountSpec | None = None) -> BatchCounts:
    """Count, for every pattern, the captions of ``arr`` that contain it and those that are it.

    Regular captions are matched in the ``ascii_lower`` buffer with :meth:`Matcher.find_regular`;
    the others (:func:`~iconicity_utils.correlates.normalise.irregular_rows`) are normalised in
    full and matched with :meth:`Matcher.find`.  Hits are deduplicated per (caption, title).

    Args:
        arr: an Arrow string array of captions (nulls count as empty captions).
        patterns: from :func:`~iconicity_utils.correlates.matcher.build_patterns`.
        matcher: from :func:`~iconicity_utils.correlates.matcher.make_matcher` over the same patterns.
        spec: with it, ``patterns`` is ``spec.patterns`` and the count modes and caption samples
            of :mod:`~iconicity_utils.correlates.modes` are counted too.
    """
    arr = as_text(arr)
    offsets, raw = text_buffers(arr)
    irregular = irregular_rows(offsets, raw)
    n_pat = len(patterns)
    out = BatchCounts.zeros(n_pat, spec)
    out.rows, out.bytes = len(arr), int(raw.size)
    out.nonempty = int(np.count_nonzero(np.diff(offsets)))
    lowered = pc.ascii_lower(arr)  # same lengths: only A-Z change
    if patterns.normalise == "punctuation":  # regular captions stay regular: ASCII, single spaces
        lowered = fold_punctuation(lowered)
    lower_off, lower = text_buffers(lowered)
    pid, start = matcher.find_regular(lower_off, lower)
    out.raw_matches = int(pid.size)
    caps, pids, exact = _hits(pid, start, lower_off, lower, patterns, skip_rows=irregular)
    out.slow_rows = int(np.count_nonzero(irregular))
    if out.slow_rows:
        c2, p2, e2, raw_matches = _irregular_hits(arr, irregular, patterns, matcher)
        out.raw_matches += raw_matches
        caps, pids, exact = (
            np.concatenate([caps, c2]),
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
    if spec is not None:
        _add_modes(out, arr, pairs, spec)
    return out


def count_table(
    captions,
    titles: Sequence[str],
    matcher: str = MATCHERS[0],
    batch_rows: int = 65536,
    normalise: str = "exact",
):
    """Count ``titles`` in an in-memory list / Arrow array of captions: ``(caption counts, exact counts)``.

    A convenience for small data and tests; corpora on disk go through
    :func:`~iconicity_utils.correlates.scan.count_captions`.  Both lists are per title, in the
    order given (equal normalised titles get equal counts); ``normalise`` is the normalisation mode.
    """
    arr = (
        captions
        if isinstance(captions, pa.Array | pa.ChunkedArray)
        else pa.array(list(captions), pa.string())
    )
    arr = as_text(arr)
    pats = build_patterns(titles, normalise)
    m = make_matcher(pats, matcher)
    total = BatchCounts.zeros(len(pats))
    for start in range(0, len(arr), batch_rows):
        total.add(count_batch(arr.slice(start, batch_rows), pats, m))
    counts = [int(total.counts[i]) if i >= 0 else 0 for i in pats.index]
    exact = [int(total.exact[i]) if i >= 0 else 0 for i in pats.index]
    return counts, exact


def count_modes(
    captions, spec: CountSpec, matcher: str = MATCHERS[0], batch_rows: int = 65536
) -> BatchCounts:
    """Count a :class:`~iconicity_utils.correlates.modes.CountSpec` in an in-memory list of captions.

    Returns the summed :class:`BatchCounts`: ``counts[spec.title_pid]`` is the ``title`` count,
    ``modes`` the other modes per reference, ``samples`` the caption sample, ``alias_samples``
    the sample of the captions only an alias matched.
    """
    arr = captions if isinstance(captions, pa.Array) else pa.array(list(captions), pa.string())
    arr = as_text(arr)
    m = make_matcher(spec.patterns, matcher)
    total = BatchCounts.zeros(len(spec.patterns), spec)
    for start in range(0, len(arr), batch_rows):
        total.add(count_batch(arr.slice(start, batch_rows), spec.patterns, m, spec))
    return total
