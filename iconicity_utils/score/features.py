"""Decode once, embed in batches, cache on disk: the feature engine behind every scoring front door.

Scoring needs several *features* of every image (generated or reference):

==================  =========================================================  ==============
feature             what                                                       value per image
==================  =========================================================  ==============
``global``          the whole image through an encoder (CRA's f, baselines)    ``(D,)``
``cells-crop``      each grid cell cropped and embedded as its own image (VR)  ``(K, D)``
``cells-tokens``    one ViT pass, patch tokens pooled into the grid (fast VR)  ``(K, D)``
``phash``           64-bit perceptual hash, as 64 bits                         ``(64,)`` uint8
``gray``            square greyscale thumbnail for SSIM                        ``(S, S)`` uint8
==================  =========================================================  ==============

:func:`extract` decodes each image **once** (in :class:`torch.utils.data.DataLoader` workers when
``num_workers > 0``), prepares the inputs of every feature that image still lacks, batches them
across images, and runs the forward passes in the main process under ``torch.inference_mode``.

Every result goes to an :class:`FeatureStore` under ``<cache>/features/``, keyed by the SHA-256 of
the image *file bytes*, in a folder named by the feature (name, grid, pool) and the encoder's
weights fingerprint (:attr:`iconicity_utils.registry.encoders.Encoder.fingerprint`).  A reference image is
therefore embedded once per encoder, whatever the number of models; a re-score (new thresholds)
makes no forward pass at all; and a stopped run keeps every batch it finished (stores are
flushed in atomically written shards), so the next run resumes where it stopped.

Stores read only their keys when opened and fetch values row by row from disk, so memory does not
grow with the study; several processes can fill one store at once, each writing its own shards
(distributed scoring, :mod:`iconicity_utils.score.scoring`).  Floating-point features can be stored as
float16 (``realization.cache_dtype``, docs/method.md §3.8), which halves their size.
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils.core.constants import GRID
from iconicity_utils.core.images import gray_thumbnail, open_rgb, phash_bits, split_grid
from iconicity_utils.core.io import atomic_path
from iconicity_utils.registry.encoders import Encoder, EncoderError

__all__ = [
    "FEATURES",
    "ENCODER_FEATURES",
    "FeatureSpec",
    "FeatureStore",
    "MemoryStore",
    "ScoringInputError",
    "content_hash",
    "extract",
]

FEATURES = ("global", "cells-crop", "cells-tokens", "phash", "gray")
#: the features an encoder computes (batched forward passes); the others are pixel features
ENCODER_FEATURES = ("global", "cells-crop", "cells-tokens")
FLUSH_EVERY = 256  # images between store flushes (a stopped run loses at most this); realization.flush_every
#: small shards are merged into shards of up to about this size (the most a merge holds in memory)
SHARD_TARGET_BYTES = 64 << 20


class ScoringInputError(ValueError):
    """Scoring input is unusable (missing file, empty folder, bad table); names the file or row."""


# --------------------------------------------------------------------------------------------
# Feature specs and the on-disk store
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of an image.

    Args:
        feature: one of :data:`FEATURES`.
        encoder: registry name of the encoder (the :data:`ENCODER_FEATURES`).
        grid: ``(rows, cols)`` for the ``cells-*`` features.
        pool: ``"mean_all"`` or ``"cls"`` (timm encoders; see :func:`~iconicity_utils.registry.encoders.pool_tokens`).
        size: thumbnail side for ``gray``.
    """

    feature: str
    encoder: str | None = None
    grid: tuple[int, int] = GRID
    pool: str = "mean_all"
    size: int = 256

    def __post_init__(self):
        if self.feature not in FEATURES:
            raise ValueError(f"unknown feature {self.feature!r}; expected one of {FEATURES}")
        if self.batched and not self.encoder:
            raise ValueError(f"feature {self.feature!r} needs an encoder")

    @property
    def key(self) -> str:
        """Folder name of this feature in the cache (without the encoder fingerprint)."""
        if self.feature == "global":
            return f"{self.encoder}/global-{self.pool}"
        if self.feature == "cells-crop":
            return f"{self.encoder}/cells-crop-{self.grid[0]}x{self.grid[1]}-{self.pool}"
        if self.feature == "cells-tokens":
            return f"{self.encoder}/cells-tokens-{self.grid[0]}x{self.grid[1]}"
        if self.feature == "phash":
            return "_image/phash64"
        return f"_image/gray{self.size}"

    @property
    def batched(self) -> bool:
        """Whether an encoder computes it, in batched forward passes."""
        return self.feature in ENCODER_FEATURES


class _Shard:
    """One ``part-*.npz`` shard on disk: its keys (sorted, for lookups) and where its rows lie.

    Only the keys are read when a shard is opened; values are read row by row when asked for
    (``os.pread`` at the row's offset inside the uncompressed ``values.npy`` member), so a store's
    memory does not grow with the features it holds.
    """

    __slots__ = ("path", "keys", "order", "n", "dtype", "row_shape", "offset", "nbytes")

    def __init__(self, path: Path):
        self.path = path
        try:
            with zipfile.ZipFile(path) as zf:
                info = zf.getinfo("values.npy")
                with zf.open("keys.npy") as fh:
                    keys = np.lib.format.read_array(fh, allow_pickle=False)
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError("its values are compressed; shards are written uncompressed (np.savez)")
            with open(path, "rb") as fh:
                fh.seek(info.header_offset)
                local = fh.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise ValueError("bad zip local header")
                n_name, n_extra = struct.unpack("<HH", local[26:30])
                fh.seek(info.header_offset + 30 + n_name + n_extra)
                version = np.lib.format.read_magic(fh)
                reader = {
                    (1, 0): np.lib.format.read_array_header_1_0,
                    (2, 0): np.lib.format.read_array_header_2_0,
                }.get(version)
                if reader is None:
                    raise ValueError(f"unsupported .npy version {version}")
                shape, fortran, dtype = reader(fh)
                self.offset = fh.tell()
            if fortran or dtype.hasobject or len(shape) < 1 or shape[0] != len(keys):
                raise ValueError(f"values of shape {shape} do not match {len(keys)} keys")
        except Exception as exc:  # a damaged shard: say which, do not guess
            raise ScoringInputError(
                f"cache shard {path} is unreadable ({type(exc).__name__}: {exc}); delete it to recompute"
            ) from exc
        encoded = _encode_keys(keys)
        self.order = np.argsort(encoded, kind="stable")
        self.keys = encoded[self.order]
        self.n = len(keys)
        self.dtype = dtype
        self.row_shape = tuple(shape[1:])
        self.nbytes = path.stat().st_size

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

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
        """The values at ``rows`` (consecutive rows are read in one call)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        if not len(rows):
            return out
        size = self.row_bytes
        flat = out.reshape(len(rows), -1).view(np.uint8).reshape(len(rows), size)
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        breaks = np.flatnonzero(np.diff(srt) != 1) + 1
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for run in np.split(np.arange(len(srt)), breaks):
                first, count = int(srt[run[0]]), len(run)
                data = os.pread(fd, size * count, self.offset + first * size)
                if len(data) != size * count:
                    raise ScoringInputError(f"cache shard {self.path} is truncated; delete it to recompute")
                flat[order[run]] = np.frombuffer(data, dtype=np.uint8).reshape(count, size)
        finally:
            os.close(fd)
        return out


def _encode_keys(keys) -> np.ndarray:
    """Keys as a byte-string array (64 bytes per SHA-256 hex key): what shard lookups compare."""
    arr = np.asarray(keys)
    if arr.dtype.kind == "S":
        return arr
    if arr.size == 0:
        return np.zeros(0, dtype="S1")
    return np.char.encode(arr.astype(str), "utf-8")


def _write_shard(path: Path, keys, values: np.ndarray) -> None:
    """One shard: ``keys`` as UTF-8 bytes (64 bytes per SHA-256 hex key) and ``values`` stacked."""
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, keys=_encode_keys(keys), values=values)


class FeatureStore:
    """Arrays keyed by image content hash, persisted as atomically written ``.npz`` shards.

    ``put`` buffers; ``flush`` writes the buffer as one new shard (temporary file + rename), so a
    crash never leaves a half-written shard and never loses a flushed one.  Opening a store reads
    only the shards' keys; values are read from disk when asked for (:meth:`get_many`), so memory
    stays flat however many images the store holds.  Several processes may write to one store
    folder at once: each writes its own shards (``part-<tag>-<uuid>.npz``).  When more than
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
        return sorted(self.folder.glob("part-*.npz")) if self.folder.is_dir() else []

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
        query = _encode_keys(list(keys))
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
        return self.folder / f"part-{tag}{uuid.uuid4().hex}.npz"

    def flush(self) -> None:
        """Write buffered entries as a new shard; merge this writer's small shards when there are too many."""
        if not self._buffer:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = list(self._buffer)
        path = self._new_path()
        _write_shard(path, keys, np.stack([self._buffer[k] for k in keys]))
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
        bins: list[list[_Shard]] = [[]]
        size = 0
        for sh in small:
            if bins[-1] and size + sh.nbytes > SHARD_TARGET_BYTES:
                bins.append([])
                size = 0
            bins[-1].append(sh)
            size += sh.nbytes
        removed = 0
        for group in (b for b in bins if len(b) > 1):
            if len({(sh.dtype, sh.row_shape) for sh in group}) > 1:
                continue  # values of different shapes or dtypes cannot share a shard; left as they are
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
            path = self._new_path()
            _write_shard(path, np.array(list(where), dtype="S"), values)
            del values
            new = _Shard(path)
            gone = {sh.path for sh in group}
            for p in gone:
                p.unlink(missing_ok=True)
            self._shards = [sh for sh in self._shards if sh.path not in gone] + [new]
            if own_only:
                self._own = (self._own - gone) | {path}
            removed += len(group)
        return removed


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


# --------------------------------------------------------------------------------------------
# Content hashes
# --------------------------------------------------------------------------------------------

_HASHES: dict[tuple[str, int, int], str] = {}


def content_hash(path: str | Path) -> str:
    """SHA-256 of an image file's bytes (the cache key); memoised by path, size and mtime.

    Raises:
        ScoringInputError: the file does not exist.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise ScoringInputError(f"image not found: {path}") from exc
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _HASHES[key]


# --------------------------------------------------------------------------------------------
# Decode + prepare (DataLoader side) and forward (main process)
# --------------------------------------------------------------------------------------------


class _Prepare:
    """Picklable per-image preparation: decode once, build every missing feature's inputs."""

    def __init__(self, specs: Sequence[FeatureSpec], encoders: dict[str, Encoder]):
        self.specs = list(specs)
        self.encoders = encoders

    def __call__(self, path: str, wanted: Sequence[int]) -> dict[int, Any]:
        import torch

        image = open_rgb(path)  # ImageReadError names the path
        out: dict[int, Any] = {}
        for i in wanted:
            spec = self.specs[i]
            try:
                if spec.feature == "global":
                    out[i] = self.encoders[spec.encoder].preprocess(image).unsqueeze(0)
                elif spec.feature == "cells-crop":
                    enc = self.encoders[spec.encoder]
                    out[i] = torch.stack([enc.preprocess(c) for c in split_grid(image, spec.grid)])
                elif spec.feature == "cells-tokens":
                    out[i] = self.encoders[spec.encoder].token_input(image).unsqueeze(0)
                elif spec.feature == "phash":
                    out[i] = phash_bits(image)
                else:
                    out[i] = gray_thumbnail(image, spec.size)
            except (EncoderError, ValueError) as exc:
                raise ScoringInputError(f"cannot prepare {spec.key} for image {path}: {exc}") from exc
        return out


class _Dataset:
    def __init__(self, paths: list[str], wanted: list[list[int]], prepare: _Prepare):
        self.paths, self.wanted, self.prepare = paths, wanted, prepare

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return i, self.prepare(self.paths[i], self.wanted[i])


def _collate(items):
    return items


def _worker_init(_):
    import torch

    torch.set_num_threads(1)  # workers decode and crop; the main process owns the cores for forwards


class _Queue:
    """Pending inputs of one batched feature; images are never split across forward passes."""

    def __init__(self):
        self.items: list[tuple[str, str, Any]] = []  # (hash, path, tensor (n_i, 3, H, W))
        self.size = 0

    def add(self, key: str, path: str, x) -> None:
        self.items.append((key, path, x))
        self.size += int(x.shape[0])

    def take(self, batch_size: int):
        taken, n = [], 0
        while self.items and (not taken or n + int(self.items[0][2].shape[0]) <= batch_size):
            item = self.items.pop(0)
            taken.append(item)
            n += int(item[2].shape[0])
        self.size -= n
        return taken


def _run(spec: FeatureSpec, encoder: Encoder, items, store: FeatureStore) -> None:
    import torch

    x = torch.cat([it[2] for it in items])
    try:
        if spec.feature == "cells-tokens":
            emb = encoder.token_cells(x, spec.grid).numpy()
        else:
            emb = encoder.embed_batch(x, pool=spec.pool).numpy()
    except Exception as exc:
        paths = [it[1] for it in items]
        raise EncoderError(
            f"encoder {encoder.name!r} failed computing {spec.key} for images {paths}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    start = 0
    for key, _path, xi in items:
        n = int(xi.shape[0])
        # global: (D,) per image; cells-crop: K rows of (D,); cells-tokens: one (K, D) per image
        value = emb[start : start + n] if spec.feature == "cells-crop" else emb[start]
        store.put(key, value.astype(np.float32, copy=False))  # the store casts to its storage dtype
        start += n


def extract(
    paths: Sequence[str | Path],
    specs: Sequence[FeatureSpec],
    encoders: dict[str, Encoder],
    stores: dict[FeatureSpec, FeatureStore],
    batch_size: int = 32,
    num_workers: int = 0,
    progress=None,
    *,
    keys: Sequence[str] | None = None,
    flush_every: int | None = None,
) -> dict[str, int]:
    """Compute every feature in ``specs`` that the stores lack, for every image in ``paths``.

    Each image is decoded once; identical files (same bytes) are computed once.  Results are put
    into ``stores``, which are flushed every ``flush_every`` images and on the way out (also on
    error).  At each flush the partial forward batches are run first, so every image before a
    flush is complete, and the forward batches depend only on the images since the last flush:
    cutting the work into blocks of ``flush_every`` images and giving the blocks to different
    processes forms the same batches as one process (the tables of one and two processes agree
    to the bit).

    Args:
        paths: image files.
        specs: features to compute.
        encoders: loaded encoders by registry name (those the specs name).
        stores: one store per spec.
        batch_size: encoder inputs per forward pass (a crop-mode image brings ``rows*cols`` inputs).
        num_workers: DataLoader workers that decode and prepare while the main process embeds.
        progress: optional callable ``progress(done, total)``.
        keys: the content hashes of ``paths`` when already known (default: computed here).
        flush_every: images between flushes (default :data:`FLUSH_EVERY`).

    Returns:
        ``{"images": decoded images, "<spec.key>": images computed for that feature}``.

    Raises:
        ScoringInputError: an image file is missing (names it).
        ImageReadError: an image cannot be decoded (names it).
        EncoderError: an encoder fails (names the encoder and the images of that batch).
    """
    from torch.utils.data import DataLoader

    specs = list(specs)
    flush_every = flush_every or FLUSH_EVERY
    if keys is None:
        keys = [content_hash(p) for p in paths]
    elif len(keys) != len(paths):
        raise ValueError(f"{len(keys)} keys for {len(paths)} paths")
    by_hash: dict[str, str] = {}
    for key, p in zip(keys, paths, strict=True):
        by_hash.setdefault(key, str(p))
    lacking = {i: set(stores[s].missing(by_hash)) for i, s in enumerate(specs)}
    todo_paths, todo_keys, wanted = [], [], []
    for key, path in by_hash.items():
        need = [i for i in range(len(specs)) if key in lacking[i]]
        if need:
            todo_paths.append(path)
            todo_keys.append(key)
            wanted.append(need)
    counts = {"images": len(todo_paths), **{s.key: 0 for s in specs}}
    if not todo_paths:
        return counts

    prepare = _Prepare(specs, encoders)
    dataset = _Dataset(todo_paths, wanted, prepare)
    loader = DataLoader(
        dataset,
        batch_size=1,  # one image per item; forward batches are assembled across items below
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        persistent_workers=False,
        # page-locked batches let embed_batch's non_blocking copies overlap with compute on CUDA
        pin_memory=any(str(e.device).startswith("cuda") for e in encoders.values()),
    )
    queues = {i: _Queue() for i, s in enumerate(specs) if s.batched}
    since_flush = 0
    done = 0
    try:
        for batch in loader:
            for idx, prepared in batch:
                key, path = todo_keys[idx], todo_paths[idx]
                for i, value in prepared.items():
                    spec = specs[i]
                    counts[spec.key] += 1
                    if spec.batched:
                        queues[i].add(key, path, value)
                    else:
                        stores[spec].put(key, value)
                done += 1
                since_flush += 1
            for i, q in queues.items():
                while q.size >= batch_size:
                    _run(specs[i], encoders[specs[i].encoder], q.take(batch_size), stores[specs[i]])
            if since_flush >= flush_every:  # drain partial batches too, so every image so far is complete
                for i, q in queues.items():
                    while q.items:
                        _run(specs[i], encoders[specs[i].encoder], q.take(batch_size), stores[specs[i]])
                for s in specs:
                    stores[s].flush()
                since_flush = 0
            if progress is not None:
                progress(done, len(todo_paths))
        for i, q in queues.items():
            while q.items:
                _run(specs[i], encoders[specs[i].encoder], q.take(batch_size), stores[specs[i]])
    finally:
        for s in specs:  # keep everything already computed, also when stopping on an error
            stores[s].flush()
    return counts
