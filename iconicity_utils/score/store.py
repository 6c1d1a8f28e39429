"""The feature cache on disk: arrays keyed by image content hash, in atomically written shards.

A store is one folder (one feature of one encoder, :mod:`iconicity_utils.score.features`); each
flush writes one *shard*: a folder ``part-[<tag>-]<uuid>/`` holding two plain ``.npy`` files,
``keys.npy`` (the content hashes as bytes) and ``values.npy`` (the values stacked).  A shard is
built beside the store under a hidden name and renamed into place whole
(:func:`~iconicity_utils.core.io.atomic_dir`), so a killed run never leaves a half-written shard
and never loses a flushed one.  Opening a store reads only the keys; values are read row by row
from ``values.npy`` opened with ``np.load(path, mmap_mode="r")``, so memory does not grow with
the features a store holds.  Shards of the earlier single-file format (``part-*.npz``) are
rewritten once in this format when a store is opened.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from iconicity_utils.core.io import atomic_dir
from iconicity_utils.score.errors import ScoringInputError

__all__ = ["SHARD_TARGET_BYTES", "FeatureStore", "MemoryStore", "write_shard"]

#: small shards are merged into shards of up to about this size (the most a merge holds in memory)
SHARD_TARGET_BYTES = 64 << 20
KEYS, VALUES = "keys.npy", "values.npy"


class _Shard:
    """One shard on disk: its keys (sorted, for lookups) and the shape of its rows.

    Only the keys are read when a shard is opened; values are read when asked for, from the
    memory-mapped ``values.npy``.
    """

    __slots__ = ("path", "keys", "order", "n", "dtype", "row_shape", "nbytes")

    def __init__(self, path: Path):
        self.path = path
        try:
            keys = np.load(path / KEYS, allow_pickle=False)
            values = np.load(path / VALUES, mmap_mode="r", allow_pickle=False)
            if values.ndim < 1 or values.shape[0] != len(keys):
                raise ValueError(f"values of shape {values.shape} do not match {len(keys)} keys")
        except Exception as exc:  # a damaged shard: say which, do not guess
            raise ScoringInputError(
                f"cache shard {path} is unreadable ({type(exc).__name__}: {exc}); delete it to recompute"
            ) from exc
        encoded = encode_keys(keys)
        self.order = np.argsort(encoded, kind="stable")
        self.keys = encoded[self.order]
        self.n = len(keys)
        self.dtype = values.dtype
        self.row_shape = tuple(values.shape[1:])
        self.nbytes = (path / KEYS).stat().st_size + (path / VALUES).stat().st_size

    def locate(self, query: np.ndarray) -> np.ndarray:
        """Row of each encoded key in this shard, -1 where absent."""
        if self.n == 0 or len(query) == 0:
            return np.full(len(query), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, query), self.n - 1)
        found = self.keys[pos] == query
        return np.where(found, self.order[pos], -1).astype(np.int64)

    def all_keys(self) -> np.ndarray:
        """Every key, in row order (encoded)."""
        out = np.empty_like(self.keys)
        out[self.order] = self.keys
        return out

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The values at ``rows``, read through a memory map (only the pages of those rows).

        Raises:
            FileNotFoundError: the shard was merged away by another process (the store refreshes).
        """
        try:
            values = np.load(self.path / VALUES, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise ScoringInputError(f"cache shard {self.path} is truncated; delete it to recompute") from exc
        return np.array(values[np.asarray(rows, dtype=np.int64)])


def encode_keys(keys) -> np.ndarray:
    """Keys as a byte-string array (64 bytes per SHA-256 hex key): what shard lookups compare."""
    arr = np.asarray(keys)
    if arr.dtype.kind == "S":
        return arr
    if arr.size == 0:
        return np.zeros(0, dtype="S1")
    return np.char.encode(arr.astype(str), "utf-8")


def write_shard(path: str | Path, keys, values: np.ndarray) -> Path:
    """Write one shard folder atomically: ``keys`` as UTF-8 bytes and ``values`` stacked."""
    with atomic_dir(path) as tmp:
        np.save(tmp / VALUES, np.ascontiguousarray(values))
        np.save(tmp / KEYS, encode_keys(keys))
    return Path(path)


def _remove_shard(path: Path) -> None:
    """Take a shard out of the store in one rename, then delete it (readers see it whole or not at all)."""
    gone = path.with_name(f".gone-{path.name}")
    try:
        os.replace(path, gone)
    except FileNotFoundError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def _migrate(npz: Path) -> None:
    """Rewrite a shard of the earlier format (``part-*.npz``: keys and values in one zip) as a folder."""
    target = npz.with_suffix("")
    if not target.is_dir():
        try:
            with np.load(npz, allow_pickle=False) as z:
                keys, values = z["keys"], z["values"]
        except FileNotFoundError:  # another process rewrote it first (it removes the .npz last)
            return
        except Exception as exc:
            raise ScoringInputError(
                f"cache shard {npz} is unreadable ({type(exc).__name__}: {exc}); delete it to recompute"
            ) from exc
        write_shard(target, keys, values)
    npz.unlink(missing_ok=True)


class FeatureStore:
    """Arrays keyed by image content hash, persisted as atomically written shards of ``.npy`` files.

    ``put`` buffers; ``flush`` writes the buffer as one new shard (temporary file + rename), so a
    crash never leaves a half-written shard and never loses a flushed one.  Opening a store reads
    only the shards' keys; values are read from disk when asked for (:meth:`get_many`), so memory
    stays flat however many images the store holds.  Several processes may write to one store
    folder at once: each writes its own shards (``part-<tag>-<uuid>/``).  When more than
    ``max_shards`` small shards accumulate, they are merged into shards of up to
    :data:`SHARD_TARGET_BYTES` (a writer merges only its own shards while it runs; :meth:`compact`
    merges everyone's once the writers are done).

    Args:
        folder: the store's folder.
        max_shards: small shards tolerated before merging.
        dtype: storage dtype of floating-point values (``"float16"`` halves the size; values are
            read back as float32).  ``None`` stores values as given.
        tag: a name for this writer in its shard file names (e.g. the process rank).
    """

    def __init__(self, folder: str | Path, max_shards: int = 32, dtype: str | None = None, tag: str = ""):
        self.folder = Path(folder)
        self.max_shards = max_shards
        self.dtype = np.dtype(dtype) if dtype else None
        self.tag = tag
        self._shards: list[_Shard] = []
        self._own: set[Path] = set()
        self._buffer: dict[str, np.ndarray] = {}
        self.refresh()

    # -- the shards on disk --------------------------------------------------------------------
    def _shard_files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        for legacy in sorted(self.folder.glob("part-*.npz")):
            _migrate(legacy)
        return sorted(p for p in self.folder.glob("part-*") if p.is_dir())

    def refresh(self) -> int:
        """Index shards written since this store was opened (by other processes); forget removed ones.

        Returns the number of new shards.
        """
        on_disk = self._shard_files()
        present = set(on_disk)
        self._shards = [sh for sh in self._shards if sh.path in present]
        self._own &= present
        known = {sh.path for sh in self._shards}
        new = [_Shard(p) for p in on_disk if p not in known]
        self._shards.extend(new)
        return len(new)

    @property
    def shards(self) -> list[Path]:
        return [sh.path for sh in self._shards]

    @property
    def nbytes(self) -> int:
        """Bytes on disk."""
        return sum(sh.nbytes for sh in self._shards)

    # -- lookups ---------------------------------------------------------------------------------
    def _locate(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(shard index, row)`` of each key, ``-1`` where no shard holds it (newest shard wins)."""
        query = encode_keys(list(keys))
        shard = np.full(len(query), -1, dtype=np.int64)
        row = np.full(len(query), -1, dtype=np.int64)
        for i in range(len(self._shards) - 1, -1, -1):
            todo = np.flatnonzero(shard < 0)
            if not len(todo):
                break
            r = self._shards[i].locate(query[todo])
            hit = r >= 0
            shard[todo[hit]] = i
            row[todo[hit]] = r[hit]
        return shard, row

    def __contains__(self, key: str) -> bool:
        return key in self._buffer or bool(self._locate([key])[0][0] >= 0)

    def keys(self) -> set[str]:
        """Every key held (on disk or buffered)."""
        out = set(self._buffer)
        for sh in self._shards:
            out.update(k.decode() for k in sh.keys.tolist())
        return out

    def __len__(self) -> int:
        return len(self.keys())

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys this store lacks, in order (one vectorised lookup for all of them)."""
        keys = [k for k in keys if k not in self._buffer]
        shard, _ = self._locate(keys)
        return [k for k, s in zip(keys, shard, strict=True) if s < 0]

    def get(self, key: str) -> np.ndarray:
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> np.ndarray:
        """The values of ``keys``, stacked; floating-point values come back as float32.

        Raises:
            KeyError: a key is in no shard and not buffered (names it).
        """
        keys = list(keys)
        try:
            return self._get_many(keys)
        except FileNotFoundError:  # another process merged shards since we indexed them
            self.refresh()
            return self._get_many(keys)

    def _get_many(self, keys: list[str]) -> np.ndarray:
        shard, row = self._locate(keys)
        parts: list[np.ndarray | None] = [None] * len(keys)
        for i, k in enumerate(keys):
            if k in self._buffer:
                parts[i] = self._buffer[k]
            elif shard[i] < 0:
                raise KeyError(f"no cached feature for image {k} in {self.folder}")
        for s in np.unique(shard[shard >= 0]):
            idx = np.flatnonzero((shard == s) & np.array([p is None for p in parts]))
            if len(idx):
                values = self._shards[int(s)].read(row[idx])
                for j, i in enumerate(idx):
                    parts[i] = values[j]
        out = np.stack(parts) if parts else np.zeros((0,), dtype=np.float32)
        return out.astype(np.float32) if out.dtype.kind == "f" else out

    # -- writing -------------------------------------------------------------------------------
    def put(self, key: str, value: np.ndarray) -> None:
        value = np.asarray(value)
        if self.dtype is not None and value.dtype.kind == "f":
            value = value.astype(self.dtype)
        self._buffer[key] = value

    def _new_path(self) -> Path:
        tag = f"{self.tag}-" if self.tag else ""
        return self.folder / f"part-{tag}{uuid.uuid4().hex}"

    def flush(self) -> None:
        """Write buffered entries as a new shard; merge this writer's small shards when there are too many."""
        if not self._buffer:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = list(self._buffer)
        path = self._new_path()
        write_shard(path, keys, np.stack([self._buffer[k] for k in keys]))
        self._shards.append(_Shard(path))
        self._own.add(path)
        self._buffer = {}
        if len(self._small(own_only=True)) > self.max_shards:
            self.compact(own_only=True)

    def _small(self, own_only: bool) -> list[_Shard]:
        return [
            sh
            for sh in self._shards
            if sh.nbytes < SHARD_TARGET_BYTES // 2 and (not own_only or sh.path in self._own)
        ]

    def compact(self, own_only: bool = False, force: bool = False) -> int:
        """Merge small shards into shards of up to :data:`SHARD_TARGET_BYTES`.

        Runs when more than ``max_shards`` small shards exist (or ``force``).  Only the shards
        merged are removed, after the merged shard is in place, so a crash leaves duplicates at
        worst, never a loss.  Call with ``own_only=False`` only when no other process is writing.

        Returns:
            The number of shards removed.
        """
        small = self._small(own_only)
        if len(small) < 2 or (len(small) <= self.max_shards and not force):
            return 0
        removed = 0
        for group in (b for b in _bins(small) if len(b) > 1):
            if len({(sh.dtype, sh.row_shape) for sh in group}) > 1:
                continue  # values of different shapes or dtypes cannot share a shard; left as they are
            path = self._new_path()
            _merge(group, path)
            new = _Shard(path)
            gone = {sh.path for sh in group}
            for p in gone:
                _remove_shard(p)
            self._shards = [sh for sh in self._shards if sh.path not in gone] + [new]
            if own_only:
                self._own = (self._own - gone) | {path}
            removed += len(group)
        return removed


def _bins(small: list[_Shard]) -> list[list[_Shard]]:
    """Consecutive small shards grouped into bins of up to :data:`SHARD_TARGET_BYTES`."""
    bins: list[list[_Shard]] = [[]]
    size = 0
    for sh in small:
        if bins[-1] and size + sh.nbytes > SHARD_TARGET_BYTES:
            bins.append([])
            size = 0
        bins[-1].append(sh)
        size += sh.nbytes
    return bins


def _merge(group: list[_Shard], path: Path) -> None:
    """Write the rows of ``group`` as one shard at ``path`` (a key in several shards: the last wins)."""
    where: dict[bytes, tuple[int, int]] = {}  # key -> (shard in group, row); later shards win
    for j, sh in enumerate(group):
        for row, k in enumerate(sh.all_keys().tolist()):
            where[k] = (j, row)
    # one preallocated array, filled shard by shard: at most one merged shard in memory
    values = np.empty((len(where), *group[0].row_shape), dtype=group[0].dtype)
    by_shard: list[list[tuple[int, int]]] = [[] for _ in group]
    for i, (j, row) in enumerate(where.values()):
        by_shard[j].append((i, row))
    for sh, mine in zip(group, by_shard, strict=True):
        if mine:
            pos, rows = zip(*mine, strict=True)
            values[list(pos)] = sh.read(np.array(rows))
    write_shard(path, np.array(list(where), dtype="S"), values)


class MemoryStore(FeatureStore):
    """A store that is never written to disk (scoring with ``cache_dir=None``)."""

    def __init__(self, dtype: str | None = None):
        self.folder = None
        self.dtype = np.dtype(dtype) if dtype else None
        self.tag = ""
        self._data: dict[str, np.ndarray] = {}
        self._buffer: dict[str, np.ndarray] = {}
        self._shards, self._own = [], set()

    def refresh(self) -> int:
        return 0

    def compact(self, own_only: bool = False, force: bool = False) -> int:
        return 0

    def __contains__(self, key: str) -> bool:
        return key in self._data or key in self._buffer

    def keys(self) -> set[str]:
        return set(self._data) | set(self._buffer)

    def __len__(self) -> int:
        return len(self.keys())

    def missing(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in self]

    def get_many(self, keys: Sequence[str]) -> np.ndarray:
        out = np.stack([self._buffer[k] if k in self._buffer else self._data[k] for k in keys])
        return out.astype(np.float32) if out.dtype.kind == "f" else out

    def flush(self) -> None:
        self._data.update(self._buffer)
        self._buffer = {}
