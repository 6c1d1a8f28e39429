"""Count modes: is a caption that holds the title about the *work*? (stage 06, docs/method.md §6.2)

A title such as *Up*, *It* or *Olympia* occurs in many captions about something else.  Beside the
``title`` count, the same pass counts, per reference, the captions that hold the title **and**:

- ``title_creator``: the creator's (director's) surname (:func:`surnames`, from stage 01's
  ``creator``; every creator of a work, *Wachowski* for *The Matrix*);
- ``title_context``: a kind word (:data:`KIND_WORDS`) or the work's year;

- ``aliases``: the captions that hold the title **or** one of the work's other names (stage 01's
  ``aliases``: English ``skos:altLabel`` and the P1476 title, "La Gioconda", "七人の侍"), each
  caption once whichever names it holds.  An alias that is a common phrase would flood the count
  like a short title does; an alias marked *weak* (:mod:`~iconicity_utils.correlates.aliases`
  decides: by default one whose wordfreq Zipf frequency is at least 4, e.g. "Face Off") counts
  only in a caption that also holds the creator's surname or the work's year; a kind word is no
  evidence for it ("face off hockey poster", "a new hope still life" are products, not the film);

and ``ambiguous``, the captions with neither, whose share of the ``title`` count is the title's
``caption_ambiguity``.  Evidence words are matched like titles (normalised, at word boundaries)
by the same automaton in the same pass (:class:`CountSpec`).  A bottom-k sample of the matched
captions per reference (the k smallest of a fixed 64-bit hash of the caption's length and its
first and last 8 bytes, mixed with the reference: deterministic, the same whichever shards or
processes scanned them; identical captions share a key and are kept once) lets a reader judge
the precision; a second one, of the captions that only an alias matched (``alias_samples``),
judges the aliases'.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from iconicity_utils.correlates.matcher import TitlePatterns, build_patterns
from iconicity_utils.correlates.normalise import normalise_texts

__all__ = [
    "KIND_WORDS",
    "COUNT_MODES",
    "surnames",
    "CountSpec",
    "build_spec",
    "ref_hits",
    "alias_hits",
    "mode_counts",
    "sample_keys",
    "bottom_k",
]

#: words that place a caption with the title near the work: the kind of image it is
KIND_WORDS = (
    "painting", "print", "poster", "museum", "film", "movie", "dvd", "blu-ray", "scene", "still", "trailer",
)  # fmt: skip
#: the counts of the counts table, one column each (``caption_count`` is ``title``)
COUNT_MODES = ("title", "title_creator", "title_context", "aliases")
#: the columns of :func:`mode_counts`' per-reference array
MODE_ARRAY = ("title_creator", "title_context", "ambiguous", "aliases")
_MIX = np.uint64(0x9E3779B97F4A7C15)


def surnames(creator) -> tuple[str, ...]:
    """The last word of each creator's name (``;``-separated): ``"Lana Wachowski; Lilly Wachowski"`` -> ``("Wachowski",)``."""
    if not isinstance(creator, str):
        return ()
    names = [n.split()[-1] for n in creator.split(";") if n.split()]
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class CountSpec:
    """The titles, the evidence words, and one automaton's patterns for all of them.

    Attributes:
        titles: the title patterns alone (they name the partials folder).
        patterns: titles, surnames, years and kind words together: what the automaton matches.
        title_pid: per reference, its title's id in ``patterns`` (-1: an empty title).
        creator_pid: per reference, up to ``creator_pid.shape[1]`` surname ids (-1: none).
        year_pid: per reference, its year's id (-1: none).
        is_kind: per pattern, is it a kind word?
        sample_k: captions sampled per reference.
        alias_pid: per alias (all references' aliases, flat), its id in ``patterns``.
        alias_ref: per alias, its reference.
        alias_weak: per alias, does it count only with evidence?
    """

    titles: TitlePatterns
    patterns: TitlePatterns
    title_pid: np.ndarray
    creator_pid: np.ndarray
    year_pid: np.ndarray
    is_kind: np.ndarray
    sample_k: int
    #: the arguments of :func:`build_spec` that made it (a worker process rebuilds it from them)
    source: tuple = ()
    alias_pid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    alias_ref: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    alias_weak: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def n_refs(self) -> int:
        return int(self.title_pid.size)

    def fingerprint(self, column: str) -> str:
        """sha256 of every pattern, the evidence of each reference, the column and the sample size."""
        blob = json.dumps(
            {
                "patterns": self.patterns.fingerprint(column),
                "creator": self.creator_pid.tolist(),
                "year": self.year_pid.tolist(),
                "sample_k": self.sample_k,
                "modes": list(MODE_ARRAY),
                # v2: weak aliases need the creator or the year; alias-only captions sampled too
                "rules": "alias-evidence creator-or-year, alias samples/2",
                "aliases": [self.alias_pid.tolist(), self.alias_ref.tolist(), self.alias_weak.tolist()],
            }
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _alias_entries(titles, aliases, weak, normalise: str) -> tuple[list[str], list[int], list[bool]]:
    """Each reference's aliases, flat: ``(alias, reference, weak)``; those that normalise to the
    reference's title or to an alias already kept are dropped, and so are empty ones."""
    if aliases is None:
        return [], [], []
    flat = [(a, r, bool(w)) for r, (names, flags) in enumerate(zip(aliases, weak, strict=True))
            for a, w in zip(names, flags, strict=True)]  # fmt: skip
    norm_titles = normalise_texts(list(titles), normalise)
    norm = normalise_texts([a for a, _r, _w in flat], normalise)
    seen: set[tuple[int, str]] = set()
    out: tuple[list[str], list[int], list[bool]] = ([], [], [])
    for (a, r, w), n in zip(flat, norm, strict=True):
        if n and n != norm_titles[r] and (r, n) not in seen:
            seen.add((r, n))
            for column, value in zip(out, (a, r, w), strict=True):
                column.append(value)
    return out


def build_spec(
    titles: Sequence[str],
    creators: Sequence,
    years: Sequence,
    sample_k: int = 5,
    aliases: Sequence[Sequence[str]] | None = None,
    alias_weak: Sequence[Sequence[bool]] | None = None,
    normalise: str = "exact",
) -> CountSpec:
    """The :class:`CountSpec` of the references (``creators``: stage 01's ``creator``; ``years``: ``year``).

    ``aliases`` (per reference, its other names) and ``alias_weak`` (per alias: count it only with
    evidence) make the ``aliases`` mode; None leaves it out.  ``normalise``: the normalisation mode.
    """
    n = len(titles)
    names = [surnames(c) for c in creators]
    width = max([1, *(len(s) for s in names)])
    flat = [s[j] if j < len(s) else "" for s in names for j in range(width)]
    years = tuple(None if y is None or y != y or str(y) in ("<NA>", "nan", "None") else int(y) for y in years)
    creators = tuple(c if isinstance(c, str) else None for c in creators)
    year_text = ["" if y is None else str(y) for y in years]
    if aliases is not None:
        aliases = tuple(tuple(a) for a in aliases)
        alias_weak = tuple(
            tuple(bool(w) for w in ws) for ws in (alias_weak or [[False] * len(a) for a in aliases])
        )
    a_text, a_ref, a_weak = _alias_entries(titles, aliases, alias_weak, normalise)
    pats = build_patterns([*titles, *flat, *year_text, *KIND_WORDS, *a_text], normalise)
    index = np.array(pats.index, dtype=np.int64)
    is_kind = np.zeros(len(pats), dtype=bool)
    kinds = n + n * width + n
    is_kind[index[kinds : kinds + len(KIND_WORDS)]] = True
    return CountSpec(
        titles=build_patterns(titles, normalise),
        patterns=pats,
        title_pid=index[:n],
        creator_pid=index[n : n + n * width].reshape(n, width),
        year_pid=index[n + n * width : kinds],
        is_kind=is_kind,
        sample_k=sample_k,
        source=(tuple(titles), tuple(creators), tuple(years), sample_k, aliases, alias_weak, normalise),
        alias_pid=index[kinds + len(KIND_WORDS) :],
        alias_ref=np.array(a_ref, dtype=np.int64),
        alias_weak=np.array(a_weak, dtype=bool),
    )


def _has(pairs: np.ndarray, caps: np.ndarray, pid: np.ndarray, n_pat: int) -> np.ndarray:
    """Does caption ``caps[i]`` hold pattern ``pid[i]``?  ``pairs``: sorted unique ``caption * n_pat + pattern``."""
    if pairs.size == 0:
        return np.zeros(caps.size, dtype=bool)
    keys = caps * n_pat + np.maximum(pid, 0)
    at = np.minimum(np.searchsorted(pairs, keys), pairs.size - 1)
    return (pid >= 0) & (pairs[at] == keys)


def _expand(caps: np.ndarray, pids: np.ndarray, entry_pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(caption, entry)`` for every hit ``(caps[i], pids[i])`` and every entry whose pattern it is."""
    order = np.argsort(entry_pid, kind="stable")
    sorted_pid = entry_pid[order]
    lo = np.searchsorted(sorted_pid, pids, side="left")
    reps = np.searchsorted(sorted_pid, pids, side="right") - lo
    hit_caps = np.repeat(caps, reps)
    first = np.repeat(lo - np.concatenate([[0], np.cumsum(reps)[:-1]]), reps)
    return hit_caps, order[np.arange(hit_caps.size) + first]


def ref_hits(pairs: np.ndarray, spec: CountSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(caption, reference)`` of every title hit, one per reference sharing the title."""
    n_pat = len(spec.patterns)
    return _expand(pairs // n_pat, pairs % n_pat, spec.title_pid)


def _evidence(pairs: np.ndarray, caps: np.ndarray, refs: np.ndarray, spec: CountSpec):
    """Per ``(caps[i], refs[i])``: does the caption hold a surname of the reference's creator, the
    reference's year, a kind word?  ``(creator, year, kind)``."""
    n_pat = len(spec.patterns)
    kind_caps = np.unique(pairs[spec.is_kind[pairs % n_pat]] // n_pat)
    creator = np.zeros(caps.size, dtype=bool)
    for j in range(spec.creator_pid.shape[1]):
        creator |= _has(pairs, caps, spec.creator_pid[refs, j], n_pat)
    return creator, _has(pairs, caps, spec.year_pid[refs], n_pat), np.isin(caps, kind_caps)


def alias_hits(pairs: np.ndarray, spec: CountSpec, caps: np.ndarray, refs: np.ndarray):
    """``(caption, reference, alias only)`` once per caption holding the title (the hits ``caps``,
    ``refs``) or an alias that counts there; ``alias only``: the caption does not hold the title.

    A weak alias counts only in a caption that also holds the creator's surname or the work's
    year; a kind word is no evidence for it ("face off hockey poster" is a product, not the film).
    """
    n_pat = len(spec.patterns)
    a_caps, entries = _expand(pairs // n_pat, pairs % n_pat, spec.alias_pid)
    a_refs = spec.alias_ref[entries]
    weak = spec.alias_weak[entries]
    if weak.any():
        creator, year, _kind = _evidence(pairs, a_caps[weak], a_refs[weak], spec)
        ok = ~weak
        ok[weak] = creator | year
        a_caps, a_refs = a_caps[ok], a_refs[ok]
    n = max(spec.n_refs, 1)
    title_keys = np.unique(caps * n + refs)
    keys = np.unique(np.concatenate([title_keys, a_caps * n + a_refs]))
    return keys // n, keys % n, ~np.isin(keys, title_keys)


def mode_counts(pairs: np.ndarray, spec: CountSpec):
    """Per reference: ``(counts, title hit captions, their references, alias-only hit captions,
    their references)``; ``counts[:, j]`` is title_creator, title_context, ambiguous (neither),
    aliases (title or alias) for j = 0 .. 3 (:data:`MODE_ARRAY`).

    ``pairs``: the batch's sorted unique ``caption * n_patterns + pattern`` hits.  The alias-only
    hits are the captions that the ``aliases`` mode counts and the title does not.
    """
    caps, refs = ref_hits(pairs, spec)
    creator, year, kind = _evidence(pairs, caps, refs, spec)
    context = year | kind
    out = np.zeros((spec.n_refs, len(MODE_ARRAY)), dtype=np.int64)
    for j, flag in enumerate((creator, context, ~(creator | context))):
        out[:, j] = np.bincount(refs[flag], minlength=spec.n_refs)
    a_caps, a_refs, only = alias_hits(pairs, spec, caps, refs)
    out[:, 3] = np.bincount(a_refs, minlength=spec.n_refs)
    return out, caps, refs, a_caps[only], a_refs[only]


def _edge_words(data: np.ndarray, lo: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and the last 8 bytes of each caption as integers (zero-padded; only its own bytes)."""
    first = np.zeros(lo.size, dtype=np.uint64)
    last = np.zeros(lo.size, dtype=np.uint64)
    if data.size >= 8:
        words = np.ndarray(shape=(data.size - 7,), dtype="<u8", buffer=data, strides=(1,))
        inside = lo <= data.size - 8
        first[inside] = words[lo[inside]]
        full = lens >= 8
        last[full] = words[lo[full] + lens[full] - 8]
    for i in np.flatnonzero((lo > data.size - 8) | (lens < 8)):  # short captions, the buffer's end
        first[i] = int.from_bytes(data[lo[i] : lo[i] + min(8, lens[i])].tobytes(), "little")
    short = lens < 8
    first[short] &= (np.uint64(1) << (np.uint64(8) * lens[short].astype(np.uint64))) - np.uint64(1)
    return first, last


def sample_keys(offsets: np.ndarray, data: np.ndarray, caps: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """A fixed 64-bit key per (caption, reference): a hash of the caption's length, first and last
    8 bytes, mixed with the reference (uint64, vectorised; the same in any batch)."""
    if caps.size == 0:
        return np.zeros(0, dtype=np.uint64)
    uniq, inv = np.unique(caps, return_inverse=True)
    lo = offsets[uniq]
    lens = offsets[uniq + 1] - lo
    first, last = _edge_words(data, lo, lens)
    with np.errstate(over="ignore"):
        h = (first * _MIX) ^ ((last + np.uint64(0x632BE59BD9B4E019)) * _MIX >> np.uint64(7))
        h ^= lens.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
        key = (h[inv] ^ (refs.astype(np.uint64) * _MIX)) * _MIX
        key ^= key >> np.uint64(31)
    return key


def bottom_k(samples: list[tuple[int, int, str]], k: int) -> list[tuple[int, int, str]]:
    """The ``k`` smallest keys per reference of ``(reference, key, caption)`` triples (distinct keys)."""
    out: list[tuple[int, int, str]] = []
    seen: dict[int, set[int]] = {}
    for ref, key, text in sorted(samples, key=lambda t: (t[0], t[1])):
        keys = seen.setdefault(ref, set())
        if len(keys) < k and key not in keys:
            keys.add(key)
            out.append((ref, key, text))
    return out
