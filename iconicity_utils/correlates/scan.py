"""The caption-count scan of stage 06: sharded, resumable, on every core; and the counts table.

One pass over the captions counts every title (:func:`count_captions`): the parquet shards
(:mod:`~iconicity_utils.correlates.corpus`) are read out of core, batch by batch (pyarrow), and each
batch is counted at once (:func:`~iconicity_utils.correlates.counting.count_batch`).  There is no
Python loop over captions or over titles.

Each shard's partial counts are written atomically to ``<cache>/caption_counts/<corpus>/<fingerprint>/``
when it is finished; a rerun skips every shard whose partial exists and still describes the file
(same size and row count), so an interrupted scan resumes where it stopped.  The fingerprint covers
the normalised titles, the caption column and the normalisation, so changing any of them starts
afresh.  With ``--shard i/n`` the partials of n processes or machines add up, and whoever finds
every shard done writes the counts table.  Within one run, a process pool
(``correlates.frequency.workers``, default every core) scans row-group chunks of the pending shards.

Command line::

    python -m iconicity_utils captions --config configs/paper.yaml [--shard 2/8] [--workers 16]
    python -m iconicity_utils captions --config configs/paper.yaml --status

Output: ``<results>/caption_counts.parquet`` (:func:`counts_table_path`), one row per reference
(``slug``, ``kind``, ``label_clean``, ``pattern``, ``caption_count``, ``exact_caption_count``, one
``caption_count_<mode>`` per configured count mode, ``caption_ambiguity``, ``caption_samples``,
``alias_samples`` (with the ``aliases`` mode) and ``normalisation``), with the corpus, the shards, the rows scanned, the normalisation, the count
modes and the scan's time in its provenance.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from iconicity_utils.core.io import atomic_write_json, read_table, utc_now, write_table
from iconicity_utils.correlates.aliases import reference_aliases
from iconicity_utils.correlates.corpus import list_shards, select_shards
from iconicity_utils.correlates.counting import BatchCounts, count_batch
from iconicity_utils.correlates.matcher import TitlePatterns, make_matcher
from iconicity_utils.correlates.modes import KIND_WORDS, MODE_ARRAY, CountSpec, bottom_k, build_spec
from iconicity_utils.correlates.normalise import normalisation_name

__all__ = [
    "IncompleteScan",
    "ScanResult",
    "partials_dir",
    "count_captions",
    "scan_status",
    "counts_table_path",
    "count_spec",
    "read_counts",
    "open_batches",
]


class IncompleteScan(RuntimeError):
    """Some shards of the corpus have no partial counts yet."""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "corpus"


def partials_dir(cfg, patterns: TitlePatterns) -> Path:
    """Where the per-shard partial counts of this corpus and these titles live."""
    f = cfg.correlates.frequency
    fp = patterns.fingerprint(f.caption_column)[:16]
    return cfg.path("cache", "caption_counts", _slug(f.corpus), fp)


def _shard_identity(path: Path) -> dict[str, Any]:
    """What a partial must still match: size, rows and row groups (not mtime: shards get copied)."""
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


def open_batches(path: Path, column: str, row_groups: Sequence[int], batch_rows: int) -> Iterator[Any]:
    """The caption column of some row groups of one shard, batch by batch (one thread).

    Raises:
        KeyError: the shard has no such column (names the shard, its columns and the key to set).
    """
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


def _init_worker(source: tuple, matcher: str, column: str, batch_rows: int, one_thread: bool = True) -> None:
    """Build the count spec and the matcher once per process (from the same inputs, so the same ids)."""
    global _WORKER
    if one_thread:  # a pool process is one core: no Arrow thread pools competing with the others
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
    spec = build_spec(*source)
    _WORKER = (spec, make_matcher(spec.patterns, matcher), column, batch_rows)


def _scan_piece(
    path: str, row_groups: tuple[int, ...]
) -> tuple[str, tuple[int, ...], BatchCounts, float, float]:
    """Count one chunk of row groups of one shard (in a worker, or in this process).

    Returns ``(path, row groups, counts, wall seconds, CPU seconds of this process)``.
    """
    assert _WORKER is not None, "the scanning state is not initialised"
    spec, matcher, column, batch_rows = _WORKER
    t0, c0 = time.perf_counter(), time.process_time()
    total = BatchCounts.zeros(len(spec.patterns), spec)
    for arr in open_batches(Path(path), column, row_groups, batch_rows):
        total.add(count_batch(arr, spec.patterns, matcher, spec))
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
class _Shards:
    """The shards of the corpus and their partials: identity, name, partial file, record when done."""

    shards: list[Path]
    identities: dict[Path, dict[str, Any]]
    keys: dict[Path, str]
    paths: dict[Path, Path]
    fingerprint: str
    done: dict[Path, dict[str, Any]]

    @classmethod
    def read(cls, cfg, spec: CountSpec, folder: Path) -> _Shards:
        shards = list_shards(cfg)
        fingerprint = spec.fingerprint(cfg.correlates.frequency.caption_column)
        identities = {s: _shard_identity(s) for s in shards}
        keys = {s: _shard_key(cfg, s) for s in shards}
        paths = {s: _partial_path(folder, s, keys[s]) for s in shards}
        done = {
            s: rec for s in shards if (rec := _load_partial(paths[s], identities[s], fingerprint)) is not None
        }
        return cls(shards, identities, keys, paths, fingerprint, done)

    @property
    def missing(self) -> list[str]:
        return [self.keys[s] for s in self.shards if s not in self.done]


class _Assembler:
    """Adds up the pieces of each pending shard; writes a shard's partial when its last piece is in."""

    def __init__(
        self, state: _Shards, pending: list[Path], jobs: list[tuple[Path, tuple[int, ...]]], spec: CountSpec
    ):
        self.state = state
        self.remaining = {s: sum(1 for j in jobs if j[0] == s) for s in pending}
        self.partial = {s: BatchCounts.zeros(len(spec.patterns), spec) for s in pending}
        self.busy = {s: 0.0 for s in pending}
        self.cpu = {s: 0.0 for s in pending}
        self.normalisation = normalisation_name(spec.titles.normalise)

    def add(self, path: str, _rg, counts: BatchCounts, secs: float, cpu: float) -> tuple[Path, dict] | None:
        """One finished piece; ``(shard, partial record)`` when it completes its shard, else None."""
        s = Path(path)
        self.partial[s].add(counts)
        self.busy[s] += secs
        self.cpu[s] += cpu
        self.remaining[s] -= 1
        if self.remaining[s]:
            return None
        st = self.state
        record = _partial_record(
            st.keys[s],
            st.identities[s],
            st.fingerprint,
            self.partial.pop(s),
            self.busy[s],
            self.cpu[s],
            self.normalisation,
        )
        atomic_write_json(st.paths[s], record)
        return s, record


def _scan_shards(cfg, spec: CountSpec, state: _Shards, pending: list[Path], workers: int):
    """Scan the pending shards; yield ``(shard, partial record)`` as each shard finishes."""
    f = cfg.correlates.frequency
    total_rows = sum(state.identities[s]["rows"] for s in pending)
    target = max(1, math.ceil(total_rows / (workers * 4)))
    jobs = [(s, rg) for s in pending for rg in _chunks(state.identities[s]["row_groups"], target)]
    assembler = _Assembler(state, pending, jobs, spec)
    # workers rebuild the same spec (same ids) from the same inputs
    init = (spec.source, f.matcher, f.caption_column, f.batch_rows)
    pieces = _in_process(init, jobs) if workers == 1 or len(jobs) == 1 else _in_pool(init, jobs, workers)
    for piece in pieces:
        out = assembler.add(*piece)
        if out is not None:
            yield out


def _in_process(init: tuple, jobs: list) -> Iterator[tuple]:
    """The pieces counted one after the other in this process."""
    global _WORKER
    saved = _WORKER
    _init_worker(*init, one_thread=False)
    try:
        for s, rg in jobs:
            yield _scan_piece(str(s), rg)
    finally:
        _WORKER = saved


def _in_pool(init: tuple, jobs: list, workers: int) -> Iterator[tuple]:
    """The pieces counted by a process pool, as they finish."""
    # forkserver: workers fork from a clean server that has imported this module once (no threads of
    # this process are copied, and no worker imports pyarrow again); spawn where there is none
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
    else:  # pragma: no cover - Windows
        ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker, initargs=init
    ) as pool:
        futures = {pool.submit(_scan_piece, str(s), rg) for s, rg in jobs}
        try:
            while futures:
                ready, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in ready:
                    yield fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _partial_record(
    key: str,
    identity: dict,
    fingerprint: str,
    counts: BatchCounts,
    seconds: float,
    cpu_seconds: float,
    normalisation: str,
) -> dict:
    hits = np.flatnonzero((counts.counts > 0) | (counts.exact > 0))
    return {
        "shard": key,
        **identity,
        "fingerprint": fingerprint,
        "normalisation": normalisation,
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
        # sparse: [reference, title and creator, title and context, title alone, title or alias]
        "modes": [[int(r), *map(int, counts.modes[r])] for r in np.flatnonzero(counts.modes.any(axis=1))]
        if counts.modes is not None
        else [],
        "samples": [[r, str(k), t] for r, k, t in counts.samples],
        "alias_samples": [[r, str(k), t] for r, k, t in counts.alias_samples],
    }


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
    for col in ("creator", "year"):
        if col not in refs.columns:
            refs[col] = None
    keep = [
        "slug",
        "kind",
        "label_clean",
        "creator",
        "year",
        *(["aliases"] if "aliases" in refs.columns else []),
    ]
    return refs[keep].reset_index(drop=True)


def count_spec(cfg, refs=None) -> CountSpec:
    """The :class:`~iconicity_utils.correlates.modes.CountSpec` of the references (titles, creators,
    years; aliases when ``correlates.frequency.count_modes`` has ``aliases``; the normalisation)."""
    f = cfg.correlates.frequency
    refs = refs if refs is not None else _references_titles(cfg)
    years = [None if pd.isna(y) else int(y) for y in refs["year"]]
    creators = [c if isinstance(c, str) else None for c in refs["creator"]]
    aliases, weak = reference_aliases(cfg, refs) if "aliases" in f.count_modes else (None, None)
    return build_spec(list(refs["label_clean"]), creators, years, f.sample_k, aliases, weak, f.normalise)


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
    spec = count_spec(cfg, refs)
    folder = partials_dir(cfg, spec.titles)
    state = _Shards.read(cfg, spec, folder)
    mine = set(select_shards(state.shards, shard))
    workers = workers or f.workers or os.cpu_count() or 1
    pending = [s for s in state.shards if s in mine and s not in state.done]
    reused = sum(1 for s in state.shards if s in mine and s in state.done)

    t0 = time.perf_counter()
    rows_now, cpu_now = 0, 0.0
    if pending:
        log(
            f"scanning {len(pending)} shard(s) of {len(state.shards)} with {workers} process(es), "
            f"matcher {f.matcher}; partials in {cfg.relative(folder)}"
        )
        for s, record in _scan_shards(cfg, spec, state, pending, workers):
            state.done[s] = record
            rows_now += record["rows_scanned"]
            cpu_now += record["cpu_seconds"]
    seconds = time.perf_counter() - t0

    result = ScanResult(
        counts=None, shards_total=len(state.shards), shards_done=len(state.done), shards_scanned=len(pending),
        shards_reused=reused, rows_scanned=rows_now, seconds=seconds, cpu_seconds=cpu_now, partials=folder,
        provenance=_provenance(cfg, spec, state, folder), missing=state.missing,
    )  # fmt: skip
    if not result.missing:
        result.counts = _merge(refs, spec, [state.done[s] for s in state.shards], f.count_modes)
        result.provenance["last_run"] = {"shards_scanned": len(pending), "rows": rows_now,
                                         "wall_seconds": round(seconds, 3), "workers": workers}  # fmt: skip
        write_table(result.counts, counts_table_path(cfg), cfg, caption_counts=result.provenance)
    else:
        log(
            f"{len(result.missing)} shard(s) still lack counts (e.g. {result.missing[0]}); scan them "
            "(another --shard i/n) and the last run writes the counts table"
        )
    log(result.summary())
    return result


def _merge(refs, spec: CountSpec, records: list[dict], count_modes):
    """Sum partial counts into the counts table (one row per reference): every count mode, the samples."""
    n_pat = len(spec.patterns)
    counts = np.zeros(n_pat, np.int64)
    exact = np.zeros(n_pat, np.int64)
    modes = np.zeros((spec.n_refs, len(MODE_ARRAY)), np.int64)
    samples, alias_samples = [], []
    for record in records:
        for i, c, e in record["counts"]:
            counts[i] += c
            exact[i] += e
        for r, *m in record.get("modes", []):
            modes[r] += m
        samples += [(r, int(k), t) for r, k, t in record.get("samples", [])]
        alias_samples += [(r, int(k), t) for r, k, t in record.get("alias_samples", [])]
    idx = spec.title_pid
    defined = idx >= 0
    out = refs[["slug", "kind", "label_clean"]].copy()
    out["pattern"] = list(spec.titles.normalised)
    out["caption_count"] = pd.array(np.where(defined, counts[np.maximum(idx, 0)], 0), dtype="Int64")
    out["exact_caption_count"] = pd.array(np.where(defined, exact[np.maximum(idx, 0)], 0), dtype="Int64")
    written = [m for m in count_modes if m != "title"]
    for mode in written:
        out[f"caption_count_{mode}"] = pd.array(modes[:, MODE_ARRAY.index(mode)], dtype="Int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        out["caption_ambiguity"] = np.where(out["caption_count"].fillna(0).to_numpy() > 0,
                                            modes[:, 2] / out["caption_count"].fillna(0).to_numpy(), np.nan)  # fmt: skip
    chosen = bottom_k(samples, spec.sample_k)
    out["caption_samples"] = [[t for r2, _k, t in chosen if r2 == r] for r in range(spec.n_refs)]
    if "aliases" in count_modes:
        chosen = bottom_k(alias_samples, spec.sample_k)
        out["alias_samples"] = [[t for r2, _k, t in chosen if r2 == r] for r in range(spec.n_refs)]
    cols = [
        "caption_count",
        "exact_caption_count",
        *(f"caption_count_{m}" for m in written if m != "aliases"),
    ]
    out.loc[~defined, cols] = pd.NA  # an empty title: no count (its aliases may still have one)
    out.loc[~defined, "caption_ambiguity"] = np.nan
    out["normalisation"] = normalisation_name(spec.titles.normalise)
    return out


def _provenance(cfg, spec: CountSpec, state: _Shards, folder: Path) -> dict[str, Any]:
    f = cfg.correlates.frequency
    records = list(state.done.values())
    return {
        "corpus": f.corpus,
        "shards_glob": f.shards,
        "caption_column": f.caption_column,
        "shards_total": len(state.shards),
        "shards_done": len(records),
        "rows_scanned": int(sum(r["rows_scanned"] for r in records)),
        "captions_nonempty": int(sum(r["captions_nonempty"] for r in records)),
        # the time spent counting, summed over shards (each shard's time in its process)
        "scan_seconds": round(float(sum(r["seconds"] for r in records)), 3),
        "scan_finished_utc": max((r["finished_utc"] for r in records), default=None),
        "matcher": f.matcher,
        "normalisation": normalisation_name(spec.titles.normalise),
        "matching": "case-insensitive, word boundaries, captions counted once",
        "patterns": len(spec.titles),
        "count_modes": list(f.count_modes),
        "evidence": "title_creator: a creator's surname; title_context: a kind word "
        f"({', '.join(KIND_WORDS)}) or the year; same caption, word boundaries, same normalisation",
        "aliases": f"title or an alias, once per caption; alias_rule {f.alias_rule} (common: wordfreq Zipf "
        f">= {f.alias_common_zipf:g}; a weak alias counts only with the creator's surname or the year); "
        f"{spec.alias_pid.size} aliases, {int(spec.alias_weak.sum())} weak"
        if "aliases" in f.count_modes
        else "not counted",
        "sample": f"bottom-{spec.sample_k} of a fixed 64-bit hash of the caption bytes per reference",
        "fingerprint": state.fingerprint,
        "partials": cfg.relative(folder),
    }


def scan_status(cfg) -> dict[str, Any]:
    """Which shards have partial counts, without scanning anything."""
    spec = count_spec(cfg)
    folder = partials_dir(cfg, spec.titles)
    state = _Shards.read(cfg, spec, folder)
    return {
        "shards_total": len(state.shards),
        "shards_done": len(state.done),
        "missing": state.missing,
        "partials": str(folder),
    }


def read_counts(cfg):
    """The counts table written by a complete scan (:func:`counts_table_path`).

    Raises:
        IncompleteScan: no complete scan has written it yet.
    """
    path = counts_table_path(cfg)
    if not path.is_file():
        raise IncompleteScan(
            f"no caption counts at {path}: run the scan (python -m iconicity_utils captions "
            f"--config {cfg.source}) until every shard is done"
        )
    return read_table(path)
