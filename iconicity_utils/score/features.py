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

Every result goes to a :class:`~iconicity_utils.score.store.FeatureStore` under ``<cache>/features/``, keyed by the SHA-256 of
the image *file bytes*, in a folder named by the feature (name, grid, pool) and the encoder's
weights fingerprint (:attr:`iconicity_utils.registry.encoders.Encoder.fingerprint`).  A reference image is
therefore embedded once per encoder, whatever the number of models; a re-score (new thresholds)
makes no forward pass at all; and a stopped run keeps every batch it finished (stores are
flushed in atomically written shards), so the next run resumes where it stopped.

Stores (:mod:`iconicity_utils.score.store`) read only their keys when opened and fetch values row
by row from disk, so memory does not grow with the study; several processes can fill one store at
once, each writing its own shards (distributed scoring, :mod:`iconicity_utils.score.engine`).  Floating-point features can be stored as
float16 (``scoring.cache_dtype``, docs/method.md §3.8), which halves their size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils.core.constants import GRID
from iconicity_utils.core.images import gray_thumbnail, open_rgb, phash_bits, split_grid
from iconicity_utils.registry.encoders import Encoder, EncoderError
from iconicity_utils.score.errors import ScoringInputError
from iconicity_utils.score.store import FeatureStore

__all__ = ["FEATURES", "ENCODER_FEATURES", "FeatureSpec", "content_hash", "extract"]

FEATURES = ("global", "cells-crop", "cells-tokens", "phash", "gray")
#: the features an encoder computes (batched forward passes); the others are pixel features
ENCODER_FEATURES = ("global", "cells-crop", "cells-tokens")
FLUSH_EVERY = 256  # images between store flushes (a stopped run loses at most this); scoring.flush_every

# --------------------------------------------------------------------------------------------
# Feature specs
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
    specs = list(specs)
    flush_every = flush_every or FLUSH_EVERY
    if keys is None:
        keys = [content_hash(p) for p in paths]
    elif len(keys) != len(paths):
        raise ValueError(f"{len(keys)} keys for {len(paths)} paths")
    todo_paths, todo_keys, wanted = _todo(paths, keys, specs, stores)
    counts = {"images": len(todo_paths), **{s.key: 0 for s in specs}}
    if not todo_paths:
        return counts
    loader = _loader(_Dataset(todo_paths, wanted, _Prepare(specs, encoders)), num_workers, encoders)
    forward = _Forward(specs, encoders, stores, batch_size)
    since_flush = done = 0
    try:
        for batch in loader:
            for idx, prepared in batch:
                forward.add(todo_keys[idx], todo_paths[idx], prepared, counts)
            done += len(batch)
            since_flush += len(batch)
            forward.run(full_only=True)
            if since_flush >= flush_every:  # drain partial batches too, so every image so far is complete
                forward.run(full_only=False)
                forward.flush()
                since_flush = 0
            if progress is not None:
                progress(done, len(todo_paths))
        forward.run(full_only=False)
    finally:
        forward.flush()  # keep everything already computed, also when stopping on an error
    return counts


def _todo(paths, keys, specs: list[FeatureSpec], stores) -> tuple[list[str], list[str], list[list[int]]]:
    """The distinct images (by content hash) that lack a feature: ``(paths, keys, specs wanted)``."""
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
    return todo_paths, todo_keys, wanted


def _loader(dataset: _Dataset, num_workers: int, encoders: dict[str, Encoder]):
    """One image per item, decoded in order (in ``num_workers`` worker processes when > 0)."""
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset,
        batch_size=1,  # one image per item; forward batches are assembled across items
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        persistent_workers=False,
        # page-locked batches let embed_batch's non_blocking copies overlap with compute on CUDA
        pin_memory=any(str(e.device).startswith("cuda") for e in encoders.values()),
    )


class _Forward:
    """Prepared inputs queued per batched feature, run through their encoder in batches, results stored."""

    def __init__(self, specs: list[FeatureSpec], encoders, stores, batch_size: int):
        self.specs, self.encoders, self.stores, self.batch_size = specs, encoders, stores, batch_size
        self.queues = {i: _Queue() for i, s in enumerate(specs) if s.batched}

    def add(self, key: str, path: str, prepared: dict[int, Any], counts: dict[str, int]) -> None:
        """Queue an image's encoder inputs; store its pixel features at once."""
        for i, value in prepared.items():
            spec = self.specs[i]
            counts[spec.key] += 1
            if spec.batched:
                self.queues[i].add(key, path, value)
            else:
                self.stores[spec].put(key, value)

    def run(self, full_only: bool) -> None:
        """Run the full batches (``full_only``) or everything queued."""
        for i, q in self.queues.items():
            spec = self.specs[i]
            while (q.size >= self.batch_size) if full_only else q.items:
                _run(spec, self.encoders[spec.encoder], q.take(self.batch_size), self.stores[spec])

    def flush(self) -> None:
        for spec in self.specs:
            self.stores[spec].flush()
