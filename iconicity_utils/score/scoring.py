"""Scoring front doors, and the one engine behind them (stages 03-04).

Three front doors, one per job, all running through the same cached feature engine
(:mod:`iconicity_utils.score.features`) and the same per-group maths (:mod:`~iconicity_utils.metrics.recognition`,
:mod:`~iconicity_utils.metrics.realization`, :mod:`~iconicity_utils.metrics.baselines`):

- :func:`score`: a whole study, from the generation manifest and the references table;
- :func:`score_folders`: a user's folders in the authors' layout (``refdir/<slug>/``,
  ``gendir/<model>/<slug>/``, a prompt CSV);
- :func:`score_images`: a handful of images in memory or on disk against one reference.

Every methodological choice comes from the study config's own sections (``thresholds``,
``realization``, ``encoders``; docs/method.md §9); to change one, pass
``cfg.with_overrides(realization={"cells": "tokens"})``, validated like the file.  Each image is
decoded once; reference images are embedded once per encoder and cached on disk with every other
feature, so a re-score makes no forward pass.  Re-thresholding and aggregation live in
:mod:`iconicity_utils.score.tables`.

**The engine** (:func:`score_work`), in order (docs/method.md §3.8):

1. *Check* every input image once, before any encoder runs (:func:`~iconicity_utils.core.images.check_image_file`:
   missing, empty, not an image, truncated, too large, smaller than the grid); an image whose
   features are all cached already passed this check and is not decoded again.  Problems follow
   ``realization.on_bad_image`` (generated images: skip and record, by default) and
   ``realization.on_bad_reference`` (drop the reference and record why, by default); ``"stop"``
   raises after listing every problem, ``"strict"`` at the first.
2. *Embed* the images the cache lacks, in blocks of ``realization.flush_every`` images.
3. *Score* each (model, variant, reference) group from the cache, one group in memory at a time;
   per-image rows are streamed to disk when the tables are written.

**Several processes or GPUs**: ``accelerate launch [--multi_gpu] --num_processes N -m
iconicity_utils.score.scoring --config ...``.  The checks and the blocks of images to embed are split
between processes (``split_between_processes``); each process writes its own cache shards; the
main process assembles and writes the tables once.  Blocks are formed before they are split, so
one process and N give the same forward batches and identical tables (same threads per process).
A run killed at any point (SIGKILL included) keeps every flushed block; the rerun embeds only
the rest, and the tables are written whole, never appended to.

Outputs (``write=True``), in ``cfg.results_dir`` (or ``out_dir``):

- ``scores_per_image.parquet``: one row per scored generated image, **including** images that
  fail recognition, with ``cra_sim``, ``cra_pass``, ``vr`` (thresholded), ``vr_mean/max/p90``,
  ``vi``, the raw per-cell maxima ``vr_cells`` (list of K floats), the baselines, and the named
  modes and encoder ids that produced them;
- ``scores_per_reference.parquet``: per (model, variant, reference): ``n_images`` (scored),
  ``n_skipped``, ``cra``, ``vi_mean`` (over recognised images), ``crt``, ``consistency`` (ours), ...;
- ``scores_per_model.parquet``: per (model, variant, kind) and metric, the mean over references
  with a bootstrap 95 % CI over references (fixed seed);
- ``scores_skipped.parquet``: every input that was not scored, with its path, the reason
  (:data:`~iconicity_utils.core.images.INPUT_PROBLEMS`, or ``reference_dropped``) and the detail.

Command line::

    python -m iconicity_utils.score.scoring --config configs/demo.yaml
    accelerate launch --multi_gpu --num_processes 4 -m iconicity_utils.score.scoring --config configs/paper.yaml
    python -m iconicity_utils.score.scoring --refdir REF --gendir GEN --prompts prompts.csv --kind static \\
        [--config configs/paper.yaml] [--k-gen 50] [--out scores/]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils.core.constants import CELL_MODES, COMPARISONS, KINDS
from iconicity_utils.core.images import check_image_file, dedup_phash, list_images
from iconicity_utils.core.launch import Processes
from iconicity_utils.metrics import baselines as bl
from iconicity_utils.metrics.realization import cell_maxima, consistency, vr_stats
from iconicity_utils.metrics.recognition import best_match, check_kind, passes, similarity_matrix
from iconicity_utils.registry import PROJECT_ROOT, Registry
from iconicity_utils.score import tables as score_tables
from iconicity_utils.score.features import (
    FeatureSpec,
    FeatureStore,
    MemoryStore,
    ScoringInputError,
    content_hash,
    extract,
)

__all__ = [
    "PER_IMAGE",
    "PER_REFERENCE",
    "PER_MODEL",
    "SKIPPED",
    "SKIPPED_COLUMNS",
    "WORK_COLUMNS",
    "BadInputError",
    "ReferenceSet",
    "ScoreResult",
    "ScoringInputError",
    "reference_files",
    "norm_slug",
    "score_work",
    "score",
    "score_folders",
    "score_images",
    "main",
]

PER_IMAGE = "scores_per_image.parquet"
PER_REFERENCE = "scores_per_reference.parquet"
PER_MODEL = "scores_per_model.parquet"
SKIPPED = "scores_skipped.parquet"
#: the skipped table: one row per input not scored (``role`` is ``"generated"`` or ``"reference"``)
SKIPPED_COLUMNS = ["role", "model", "variant", "slug", "index", "path", "reason", "detail", "action"]
#: the identity of each generated image in a scoring work table (a study's generation manifest,
#: whose full column list is :data:`iconicity_utils.generate.generation.MANIFEST_COLUMNS`, must have these)
WORK_COLUMNS = ("model", "variant", "slug", "index", "seed", "prompt", "path")
#: the study config sections that decide scores (recorded in every table's provenance)
SCORING_SECTIONS = ("thresholds", "realization", "encoders")
#: per-image rows aggregated and written out together (whole groups; the memory of one batch)
ROWS_PER_CHUNK = 1024
#: problems listed in full in an error message or a summary (the skipped table has them all)
LISTED = 20


class BadInputError(ScoringInputError):
    """Inputs failed the check under ``"stop"`` or ``"strict"``; ``problems`` is the skipped table."""

    def __init__(self, message: str, problems=None):
        super().__init__(message)
        self.problems = problems


@dataclass
class ReferenceSet:
    """The reference images one reference is scored against (static: one; dynamic: all stills)."""

    slug: str
    kind: str
    paths: list[Path]
    n_before: int | None = None  # folder scorer, dynamic: before pHash dedup
    n_removed: int | None = None
    #: why there is no image at all (e.g. an empty folder): the reference is dropped or the run stops
    problem: str | None = None
    folder: Path | None = None


class ScoreResult:
    """Tables and a record of what ran.

    ``per_image`` is read back from ``scores_per_image.parquet`` on first access when the tables
    were written (the engine streams it to disk rather than holding the study's rows in memory).
    On the non-main processes of a distributed run the tables are ``None`` (``is_main`` is False).
    """

    def __init__(
        self,
        per_image,
        per_reference,
        per_model,
        config,
        encoders: dict[str, dict[str, Any]] | None = None,
        skipped: list[str] | None = None,
        counts: dict[str, int] | None = None,
        forward_calls: int = 0,
        seconds: float = 0.0,
        paths: dict[str, Path] | None = None,
        skipped_inputs=None,
        input_notes: dict[str, int] | None = None,
        num_processes: int = 1,
        is_main: bool = True,
        per_process: list[dict[str, int]] | None = None,
        timings: dict[str, float] | None = None,
    ):
        self._per_image = per_image
        self._per_image_file: Path | None = None
        self.per_reference = per_reference
        self.per_model = per_model
        self.config = config
        self.encoders = encoders or {}
        #: notes on metrics that were not computed (e.g. "sscd_cos: no copy_detection encoder")
        self.skipped = skipped or []
        self.counts = counts or {}
        self.forward_calls = forward_calls
        self.seconds = seconds
        self.paths = paths or {}
        #: the skipped table (:data:`SKIPPED_COLUMNS`): every input image or reference not scored
        self.skipped_inputs = skipped_inputs
        #: how many usable images were read in a non-trivial way (``"alpha dropped"``: 3, ...)
        self.input_notes = input_notes or {}
        self.num_processes = num_processes
        self.is_main = is_main
        #: what each process computed: ``{"images": decoded, "forward_calls": n}``
        self.per_process = per_process or []
        #: seconds spent checking inputs, embedding (encoder loading included) and writing tables
        self.timings = timings or {}
        #: scored generated images (rows of the per-image table), known without reading it back
        self.n_scored = len(per_image) if per_image is not None else 0

    @property
    def per_image(self):
        if self._per_image is None and self._per_image_file is not None:
            from iconicity_utils.core.io import read_table

            self._per_image = read_table(self._per_image_file)
        return self._per_image

    @per_image.setter
    def per_image(self, value) -> None:
        self._per_image = value

    def skipped_summary(self) -> str:
        """The skipped inputs in words, each with its path and reason (the first :data:`LISTED`)."""
        return _problem_lines(self.skipped_inputs)

    def summary(self) -> str:
        if not self.is_main:
            return f"worker process: decoded {self.counts.get('images', 0)} new images"
        text = (
            f"scored {self.n_scored} generated images of {len(self.per_reference)} "
            f"(model, variant, reference) groups in {self.seconds:.1f} s; decoded {self.counts.get('images', 0)} "
            f"new images, {self.forward_calls} encoder forward passes"
        )
        if self.num_processes > 1:
            shares = " + ".join(str(p["images"]) for p in self.per_process)
            text += f" ({self.num_processes} processes: {shares} images decoded)"
        sk = self.skipped_inputs
        if sk is not None and len(sk):
            n_gen = int((sk["role"] == "generated").sum())
            dropped = sorted(set(sk.loc[sk["action"] == "reference dropped", "slug"]))
            text += f"; not scored: {n_gen} generated images"
            if dropped:
                text += f", {len(dropped)} references dropped ({', '.join(map(str, dropped[:LISTED]))})"
            text += f" (table {SKIPPED}):\n{self.skipped_summary()}"
        return text


def reference_files(folder: str | Path, kind: str) -> list[Path]:
    """The reference images scoring uses: static -> the first file in sorted order; dynamic -> all.

    Raises:
        ScoringInputError: the folder has no image (names the folder).
    """
    check_kind(kind)
    files = list_images(folder)
    if not files:
        raise ScoringInputError(f"no reference image in {folder} (kind {kind})")
    return files[:1] if kind == "static" else files


# --------------------------------------------------------------------------------------------
# Distribution: one process, or several under accelerate launch
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The engine: features of every image, then the maths per (model, variant, reference) group
# --------------------------------------------------------------------------------------------


def _encoder_roles(cfg) -> dict[str, str]:
    """Role -> registry name of every encoder this run needs."""
    e = cfg.encoders
    roles = {"recognition": e.recognition, "realization": e.realization}
    if cfg.realization.baselines and e.copy_detection:
        roles["copy_detection"] = e.copy_detection
    return roles


def _image_store_version(feature: str) -> str:
    from importlib import metadata

    pkg = "imagehash" if feature == "phash" else "pillow"
    return f"{pkg}-{metadata.version(pkg)}"


class _Features:
    """The features one scoring run needs: their specs, their stores, and the encoders behind them.

    Encoders are described (weights fingerprints) without loading; :meth:`compute` loads them
    only when a feature is missing from the cache.
    """

    def __init__(self, cfg, registry: Registry, cache_dir, encoders: dict[str, Any] | None, dist: Processes):
        from iconicity_utils.registry.encoders import describe_encoder, effective_pool

        e, r = cfg.encoders, cfg.realization
        self.roles = _encoder_roles(cfg)
        self.names = sorted(set(self.roles.values()))
        self.registry, self.device, self.precision = registry, dist.device(e.device), e.precision
        self.cache_dtype = r.cache_dtype
        self.encoders = encoders
        if encoders is None:  # what would run, without loading any model yet
            self.infos = {n: describe_encoder(n, registry, self.device, e.precision) for n in self.names}
        else:
            absent = [n for n in self.names if n not in encoders]
            if absent:
                raise ValueError(f"encoders= lacks {absent}, which the config names")
            self.infos = {n: encoders[n].info for n in self.names}
        vr_pool = effective_pool(self.infos[e.realization]["backend"], r.pool)
        self.specs = {
            "cra": FeatureSpec(
                "global", e.recognition, pool=effective_pool(self.infos[e.recognition]["backend"], r.pool)
            ),
            "vr": FeatureSpec(f"cells-{r.cells}", e.realization, grid=tuple(r.grid), pool=vr_pool),
        }
        if r.baselines:
            self.specs["dino"] = FeatureSpec("global", e.realization, pool=vr_pool)
            if "copy_detection" in self.roles:
                self.specs["sscd"] = FeatureSpec("global", e.copy_detection, pool="native")
            self.specs["phash"] = FeatureSpec("phash")
            self.specs["gray"] = FeatureSpec("gray", size=r.ssim_size)
        self.unique = list(dict.fromkeys(self.specs.values()))
        tag = f"p{dist.rank}" if dist.num_processes > 1 else ""
        self.stores = {spec: self._store(spec, cache_dir, tag) for spec in self.unique}

    def _store(self, spec: FeatureSpec, cache_dir, tag: str) -> FeatureStore:
        dtype = self.cache_dtype if spec.batched else None  # pixel features are uint8 already
        if cache_dir is None:
            return MemoryStore(dtype=dtype)
        version = (
            self.infos[spec.encoder]["fingerprint"] if spec.encoder else _image_store_version(spec.feature)
        )
        suffix = f"-{self.cache_dtype}" if spec.batched and self.cache_dtype != "float32" else ""
        return FeatureStore(
            Path(cache_dir) / "features" / f"{spec.key}@{version}{suffix}", dtype=dtype, tag=tag
        )

    def complete(self, keys: Sequence[str]) -> set[str]:
        """The keys whose every feature is cached."""
        lacking: set[str] = set()
        for spec in self.unique:
            lacking.update(self.stores[spec].missing(keys))
        return set(keys) - lacking

    def compute(self, paths: Sequence[str], keys: Sequence[str], cfg, progress=None):
        """Compute what the cache lacks for these images; returns ``(counts, forward_calls)``."""
        from iconicity_utils.registry.encoders import load_encoder

        r = cfg.realization
        counts = {"images": 0, **{s.key: 0 for s in self.unique}}
        if not any(self.stores[s].missing(keys) for s in self.unique):
            return counts, 0
        if self.encoders is None:  # load only when a feature is missing
            self.encoders = {
                n: load_encoder(n, self.registry, device=self.device, precision=self.precision)
                for n in self.names
            }
        calls0 = sum(e.calls for e in self.encoders.values())
        counts = extract(
            paths,
            self.unique,
            self.encoders,
            self.stores,
            r.batch_size,
            r.num_workers,
            progress,
            keys=keys,
            flush_every=r.flush_every,
        )
        return counts, sum(e.calls for e in self.encoders.values()) - calls0

    def refresh(self, compact: bool) -> None:
        """See the shards other processes wrote; merge small shards (only when no one else writes)."""
        for store in self.stores.values():
            store.refresh()
            if compact:
                store.compact()

    def get(self, role: str, keys: Sequence[str]) -> np.ndarray:
        spec = self.specs[role]
        x = self.stores[spec].get_many(keys)
        if spec.batched and self.cache_dtype != "float32":  # rounded on storage: back to unit length
            x = x / np.linalg.norm(x, axis=-1, keepdims=True)
        return x

    def modes(self, cfg) -> dict[str, Any]:
        """The named modes and encoder ids every per-image row records."""
        return {
            "comparison": cfg.thresholds.comparison,
            "grid": "{}x{}".format(*cfg.realization.grid),
            "vr_cells_mode": cfg.realization.cells,
            "vr_pool": self.specs["vr"].pool,
            "cra_encoder": self.roles["recognition"],
            "vr_encoder": self.roles["realization"],
            "sscd_encoder": self.roles.get("copy_detection") if "sscd" in self.specs else None,
            "cache_dtype": self.cache_dtype,
        }

    def skipped(self, cfg) -> list[str]:
        if not cfg.realization.baselines:
            return ["baselines: disabled (realization.baselines = false)"]
        if "sscd" not in self.specs:
            return ["sscd_cos: no copy_detection encoder configured"]
        return []


# -- 1. the input check ------------------------------------------------------------------------


@dataclass
class _Checked:
    """What the check found, the same on every process: content hashes, problems, notes."""

    keys: dict[str, str] = field(default_factory=dict)  # usable path -> content hash
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (reason, detail)
    notes: dict[str, str] = field(default_factory=dict)  # usable path -> how it was read
    cached: set[str] = field(default_factory=set)  # hashes whose every feature is cached


def _check_one(path: str, grid: tuple[int, int]) -> tuple[str | None, str, str]:
    check = check_image_file(path, grid)
    return check.reason, check.detail, check.note


def _check_share(paths: list[tuple[int, str]], strict: set[str], features: _Features, cfg) -> list[tuple]:
    """Check this process's paths: ``(i, key, reason, detail, note, cached)`` per path index ``i``.

    A path whose features are all cached passed this check when they were computed (same bytes,
    same grid) and is not decoded again.  Under ``"strict"`` the paths are checked in order and
    checking stops at the first problem of a strict path.
    """
    grid = tuple(cfg.realization.grid)
    keys: dict[int, str | None] = {}
    unreadable: dict[int, tuple[str, str]] = {}
    for i, path in paths:
        try:
            keys[i] = content_hash(path)
        except ScoringInputError:
            keys[i] = None
            unreadable[i] = ("missing", "no such file")
        except OSError as exc:  # a folder, no permission, ...
            keys[i] = None
            unreadable[i] = ("unreadable", f"{type(exc).__name__}: {exc}")
    cached = features.complete([k for k in keys.values() if k is not None])
    todo = [(i, p) for i, p in paths if keys[i] is not None and keys[i] not in cached]
    workers = cfg.realization.num_workers
    if workers > 0 and not strict:  # Pillow releases the GIL while decoding
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = dict(
                zip((i for i, _ in todo), pool.map(lambda t: _check_one(t[1], grid), todo), strict=True)
            )
    else:
        results = {}
    out: list[tuple] = []
    for i, path in paths:
        key = keys[i]
        if key is None:
            reason, detail, note = *unreadable[i], ""
        elif key in cached:
            reason, detail, note = None, "", ""
        else:
            reason, detail, note = results[i] if i in results else _check_one(path, grid)
        out.append((i, key, reason, detail, note, key in cached))
        if reason is not None and path in strict:
            break
    return out


def _check_inputs(
    work, references: dict[str, ReferenceSet], features: _Features, cfg, dist: Processes
) -> _Checked:
    """Check every input image once (split between processes), before any encoder runs."""
    r = cfg.realization
    ref_paths = [str(p) for slug in sorted(references) for p in references[slug].paths]
    gen_paths = list(work["abs_path"].astype(str))
    paths = list(dict.fromkeys(ref_paths + gen_paths))
    strict = (set(ref_paths) if r.on_bad_reference == "strict" else set()) | (
        set(gen_paths) if r.on_bad_image == "strict" else set()
    )
    mine = dist.split(list(enumerate(paths)))
    found = dist.gather(_check_share(mine, strict, features, cfg))
    checked = _Checked()
    for i, key, reason, detail, note, cached in sorted(found, key=lambda t: t[0]):
        path = paths[i]
        if reason is not None:
            checked.problems[path] = (reason, detail)
            continue
        checked.keys[path] = key
        if note:
            checked.notes[path] = note
        if cached:
            checked.cached.add(key)
    if strict:
        first = next((p for p in paths if p in checked.problems and p in strict), None)
        if first is not None:
            reason, detail = checked.problems[first]
            role = "reference" if first in set(ref_paths) else "generated"
            key = "on_bad_reference" if role == "reference" else "on_bad_image"
            raise BadInputError(
                f"bad {role} image {first}: {reason} ({detail}) (realization.{key} = 'strict')"
            )
    return checked


def _problem_lines(skipped, limit: int = LISTED) -> str:
    if skipped is None or not len(skipped):
        return ""
    lines = []
    for row in skipped.head(limit).itertuples(index=False):
        where = (
            f"reference {row.slug}" if row.role == "reference" else f"{row.model}/{row.variant}/{row.slug}"
        )
        lines.append(f"  {row.path} [{where}]: {row.reason} ({row.detail}) -> {row.action}")
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more (all in {SKIPPED})")
    return "\n".join(lines)


def _apply_policy(work, references, checked: _Checked, cfg, store_path):
    """Drop what the check found bad, as the config says; returns ``(work, references, skipped)``.

    Raises:
        BadInputError: a problem under ``"stop"`` (every problem listed) or ``"strict"``.
    """
    import pandas as pd

    r = cfg.realization
    show = store_path or (lambda p: Path(p).as_posix())
    rows, dropped = [], {}
    for slug in sorted(set(work["slug"])):
        ref = references[slug]
        if not ref.paths:
            dropped[slug] = ("missing", ref.problem or f"reference {slug}: no image")
            folder = show(ref.folder) if ref.folder is not None else None
            rows.append({"role": "reference", "slug": slug, "path": folder, "reason": "missing",
                         "detail": dropped[slug][1], "action": "reference dropped"})  # fmt: skip
        for p in ref.paths:
            if str(p) in checked.problems:
                reason, detail = checked.problems[str(p)]
                dropped.setdefault(slug, (reason, detail))
                rows.append({"role": "reference", "slug": slug, "path": show(p), "reason": reason,
                             "detail": detail, "action": "reference dropped"})  # fmt: skip
    bad_gen = work["abs_path"].astype(str).isin(checked.problems.keys())
    for row in work[bad_gen | work["slug"].isin(dropped.keys())].itertuples(index=False):
        own = checked.problems.get(str(row.abs_path))
        if own is not None:
            reason, detail, action = *own, "image skipped"
        else:
            reason, detail = "reference_dropped", f"reference {row.slug} dropped: {dropped[row.slug][1]}"
            action = "not scored"
        rows.append({"role": "generated", "model": row.model, "variant": row.variant, "slug": row.slug,
                     "index": row.index, "path": row.path, "reason": reason, "detail": detail,
                     "action": action})  # fmt: skip
    skipped = pd.DataFrame(rows, columns=SKIPPED_COLUMNS)
    skipped["index"] = skipped["index"].astype("Int64")
    stops = (dropped and r.on_bad_reference != "drop") or (bad_gen.any() and r.on_bad_image != "skip")
    if stops:
        modes = f"realization.on_bad_image = {r.on_bad_image!r}, on_bad_reference = {r.on_bad_reference!r}"
        raise BadInputError(
            f"{len(skipped)} inputs cannot be scored ({modes}):\n{_problem_lines(skipped)}", skipped
        )
    keep = ~bad_gen & ~work["slug"].isin(dropped.keys())
    if not keep.any():
        raise BadInputError(
            f"nothing to score: every one of the {len(work)} generated images is bad or has a dropped "
            f"reference:\n{_problem_lines(skipped)}",
            skipped,
        )
    kept = work[keep].copy()
    kept["key"] = [checked.keys[str(p)] for p in kept["abs_path"]]
    return kept, {s: ref for s, ref in references.items() if s not in dropped}, skipped


# -- 3. the maths per group ---------------------------------------------------------------------


def _score_group(features: _Features, gen: list[str], ref: list[str], tau_cra: float, cfg) -> dict[str, Any]:
    """CRA, VR and the baselines of one (model, variant, reference) group (images by content hash)."""
    t = cfg.thresholds
    f_gen = features.get("cra", gen)
    s, best = best_match(similarity_matrix(f_gen, features.get("cra", ref)))
    m = cell_maxima(features.get("vr", gen), features.get("vr", ref)).reshape(len(gen), -1)
    out = {"cra_sim": s, "cra_best": best, "cra_pass": passes(s, tau_cra, t.comparison), "m": m}
    out.update(vr_stats(m, t.tau_reuse, t.comparison))
    out["consistency"] = consistency(f_gen)
    if "dino" in features.specs:
        out["clip_cos"] = s
        out["dino_cos"] = bl.best_cosine(features.get("dino", gen), features.get("dino", ref))
        if "sscd" in features.specs:
            out["sscd_cos"] = bl.best_cosine(features.get("sscd", gen), features.get("sscd", ref))
        out["phash_dist"] = bl.phash_distance(features.get("phash", gen), features.get("phash", ref))
        out["ssim"] = bl.best_ssim(features.get("gray", gen), features.get("gray", ref))
    return out


def _image_rows(group, ref: ReferenceSet, scores: dict[str, Any], tau_cra: float, cfg, modes, stored_refs):
    """One per-image row per generated image of a group (the columns of ``scores_per_image``)."""
    rows = []
    for i, row in enumerate(group.itertuples(index=False)):
        rec = {
            "model": row.model,
            "variant": row.variant,
            "slug": row.slug,
            "kind": ref.kind,
            "index": int(row.index),
            "seed": row.seed,
            "prompt": row.prompt,
            "path": row.path,
            "n_ref": len(stored_refs),
            "ref_paths": stored_refs,
            "cra_sim": float(scores["cra_sim"][i]),
            "cra_ref": stored_refs[int(scores["cra_best"][i])],
            "cra_tau": tau_cra,
            "cra_pass": bool(scores["cra_pass"][i]),
            "vr": float(scores["vr"][i]),
            "vr_tau": cfg.thresholds.tau_reuse,
            "vr_mean": float(scores["vr_mean"][i]),
            "vr_max": float(scores["vr_max"][i]),
            "vr_p90": float(scores["vr_p90"][i]),
            "vi": float(scores["vi"][i]),
            "vr_cells": scores["m"][i].astype(np.float32).tolist(),
            **{col: float(scores[col][i]) if col in scores else float("nan") for col in bl.BASELINES},
            **modes,
        }
        if ref.n_before is not None:
            rec.update(
                n_ref_before=ref.n_before, n_ref_kept=len(stored_refs), n_ref_dups_removed=ref.n_removed
            )
        rows.append(rec)
    return rows


def _rows_frame(rows):
    import pandas as pd

    df = pd.DataFrame(rows)
    if len(df):
        df["seed"] = df["seed"].astype("Int64")
        df["phash_dist"] = df["phash_dist"].astype("float64")
    return df


class _PerImageSink:
    """Per-image rows, a batch of groups at a time: kept in memory, or (``path``) streamed to a
    parquet file, written to a temporary file and renamed at the end."""

    def __init__(self, path: Path | None, cfg=None, meta: dict[str, Any] | None = None):
        self.path, self.cfg, self.meta = path, cfg, meta or {}
        self.frames: list[Any] = []
        self.writer = self.schema = self.tmp = None
        self.standin = False
        self.n = 0

    def add(self, df) -> None:
        self.n += len(df)
        if self.path is None:
            self.frames.append(df)
            return
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        from iconicity_utils.core.io import provenance

        if self.writer is None:
            prov = provenance(self.cfg, **self.meta)
            self.standin = bool(prov.get("standin"))
        if self.standin:
            df = df.assign(note=_standin_label())
        table = pa.Table.from_pandas(df, preserve_index=False)
        if self.writer is None:
            meta = dict(table.schema.metadata or {})
            meta[b"iconicity.provenance"] = json.dumps(prov, default=str).encode()
            self.schema = table.schema.with_metadata(meta)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp.parquet", dir=self.path.parent
            )
            os.close(fd)
            self.tmp = Path(tmp)
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        self.writer.write_table(table.cast(self.schema))

    def close(self):
        """The in-memory table, or None once the file is in place."""
        import pandas as pd

        if self.path is None:
            return pd.concat(self.frames, ignore_index=True) if self.frames else _rows_frame([])
        from iconicity_utils.core.io import new_file_mode

        self.writer.close()
        os.chmod(self.tmp, new_file_mode())
        os.replace(self.tmp, self.path)
        self.tmp = None
        return None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.tmp is not None:
            Path(self.tmp).unlink(missing_ok=True)


def _standin_label() -> str:
    from iconicity_utils.registry import STANDIN_LABEL

    return STANDIN_LABEL


def _check_work(work, references: dict[str, ReferenceSet]) -> None:
    missing = sorted(set(work["slug"]) - set(references))
    if missing:
        raise ScoringInputError(f"generated images for references with no reference images: {missing[:10]}")


def _compute(features: _Features, work, references, checked: _Checked, cfg, dist: Processes, progress):
    """Embed what the cache lacks: blocks of ``flush_every`` images, split between processes.

    Returns ``(counts, forward_calls, per_process)``, summed over processes and for each.
    """
    ref_paths = [str(p) for slug in sorted(references) for p in references[slug].paths]
    todo: dict[str, str] = {}
    for p in ref_paths + list(work["abs_path"].astype(str)):
        key = checked.keys[p]
        if key not in checked.cached:
            todo.setdefault(key, p)
    items = list(todo.items())
    step = cfg.realization.flush_every
    blocks = [items[i : i + step] for i in range(0, len(items), step)]
    mine = [kp for block in dist.split(blocks) for kp in block]
    counts, calls = features.compute([p for _, p in mine], [k for k, _ in mine], cfg, progress)
    everyone = dist.gather([(counts, calls)])  # also the barrier: every shard is written after it
    total: Counter = Counter()
    for c, _ in everyone:
        total.update(c)
    per_process = [{"images": c["images"], "forward_calls": n} for c, n in everyone]
    return dict(total), sum(n for _, n in everyone), per_process


def _table_meta(cfg, features, work, skipped, notes, num_processes: int, extra) -> dict[str, Any]:
    """The provenance every written table carries: settings, encoders and the input check."""
    return {
        "stage": "03-04 scoring",
        "settings": cfg.section_dump(*SCORING_SECTIONS),
        "encoders": {role: features.infos[name] for role, name in features.roles.items()},
        "skipped": features.skipped(cfg),
        "input_check": {
            "generated_scored": len(work),
            "generated_skipped": int((skipped["role"] == "generated").sum()),
            "references_dropped": sorted(set(skipped.loc[skipped["role"] == "reference", "slug"])),
            "skipped_by_reason": dict(Counter(skipped["reason"])),
            "read_with_notes": notes,
        },
        "num_processes": num_processes,
        **(extra or {}),
    }


def _flush_groups(batch: list, cons: list, per_ref: list, sink) -> None:
    """Aggregate a batch of whole groups into ``per_ref``, hand its rows to ``sink``, and empty it."""
    import pandas as pd

    df = _rows_frame(batch)
    per_ref.extend(score_tables.aggregate_references(df, pd.DataFrame(cons)).to_dict("records"))
    sink.add(df)
    batch.clear()
    cons.clear()


def _score_groups(work, references, checked, features, cfg, store_path, sink) -> list[dict[str, Any]]:
    """Score every (model, variant, reference) group; per-image rows go to ``sink`` a batch of whole
    groups (about :data:`ROWS_PER_CHUNK` rows) at a time.  Returns the per-reference rows."""
    modes = features.modes(cfg)
    per_ref: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    cons: list[dict[str, Any]] = []
    for (model, variant, slug), group in work.groupby(["model", "variant", "slug"], sort=True):
        ref = references[slug]
        rpaths = [str(p) for p in ref.paths]
        tau_cra = cfg.tau_cra(ref.kind)
        rkeys = [checked.keys[p] for p in rpaths]
        scores = _score_group(features, list(group["key"]), rkeys, tau_cra, cfg)
        stored_refs = [store_path(r) if store_path else Path(r).as_posix() for r in rpaths]
        batch += _image_rows(group, ref, scores, tau_cra, cfg, modes, stored_refs)
        cons.append({"model": model, "variant": variant, "slug": slug, "consistency": scores["consistency"]})
        if len(batch) >= ROWS_PER_CHUNK:
            _flush_groups(batch, cons, per_ref, sink)
    if batch:
        _flush_groups(batch, cons, per_ref, sink)
    return per_ref


def score_work(
    work,
    references: dict[str, ReferenceSet],
    cfg,
    *,
    cache_dir: str | Path | None,
    registry: Registry | None = None,
    encoders: dict[str, Any] | None = None,
    progress=None,
    store_path=None,
    out_dir: str | Path | None = None,
    meta: dict[str, Any] | None = None,
) -> ScoreResult:
    """Score a table of generated images against their references: the engine behind every front door.

    Args:
        work: DataFrame with :data:`WORK_COLUMNS` (as stored) and ``abs_path``; one row per
            generated image.
        references: slug -> :class:`ReferenceSet` (its ``kind`` and the files scoring uses).
        cfg: the study config; its ``thresholds``, ``realization`` and ``encoders`` sections decide.
        cache_dir: where features are cached (``None``: in memory only).
        registry: the encoder registry (default: the repository's).
        encoders: already loaded encoders by registry name (default: load those the config names).
        progress: optional ``progress(done, total)`` callable for feature extraction.
        store_path: how a reference path is written into tables (default: absolute POSIX).
        out_dir: write the four tables here (per-image rows streamed to disk; default: do not write).
        meta: more provenance for the written tables.

    Returns:
        A :class:`ScoreResult`; on the non-main processes of a distributed run, without tables.

    Raises:
        BadInputError: bad inputs under ``"stop"`` / ``"strict"``, or nothing left to score.
        ScoringInputError: a malformed work table (named).
        EncoderLoadError / EncoderError: an encoder cannot load or fails (named, never skipped).
    """
    import pandas as pd

    t0 = time.perf_counter()
    dist = Processes(cpu=cfg.encoders.device == "cpu", role="encoders.device")
    features = _Features(cfg, registry or Registry.load(), cache_dir, encoders, dist)
    _check_work(work, references)
    work = work.sort_values(["model", "variant", "slug", "index"], kind="stable").reset_index(drop=True)
    references = {s: references[s] for s in sorted(set(work["slug"]))}
    t_check = time.perf_counter()
    checked = _check_inputs(work, references, features, cfg, dist)  # 1. before any encoder runs
    work, references, skipped = _apply_policy(work, references, checked, cfg, store_path)
    t_embed = time.perf_counter()
    counts, forward_calls, per_process = _compute(
        features, work, references, checked, cfg, dist, progress
    )  # 2.
    t_tables = time.perf_counter()
    timings = {"check": t_embed - t_check, "embed": t_tables - t_embed}
    notes = dict(Counter(checked.notes.values()))
    done = dict(
        counts=counts,
        forward_calls=forward_calls,
        num_processes=dist.num_processes,
        per_process=per_process,
        timings=timings,
    )
    if not dist.is_main:  # the main process assembles the tables, once
        return ScoreResult(
            None, None, None, cfg, skipped_inputs=skipped, input_notes=notes, is_main=False, **done
        )
    features.refresh(compact=True)  # the shards every process wrote; nobody writes any more

    meta = _table_meta(cfg, features, work, skipped, notes, dist.num_processes, meta)
    out_dir = Path(out_dir) if out_dir is not None else None
    sink = _PerImageSink(out_dir / PER_IMAGE if out_dir else None, cfg, meta)
    try:  # 3. a batch of groups in memory at a time
        per_ref = _score_groups(work, references, checked, features, cfg, store_path, sink)
        per_image = sink.close()
    except BaseException:
        sink.abort()
        raise
    per_reference = score_tables.with_skipped_counts(
        pd.DataFrame(per_ref, columns=score_tables.PER_REFERENCE_COLUMNS), skipped
    )
    r = cfg.realization
    per_model = score_tables.model_table(per_reference, r.n_bootstrap, r.bootstrap_seed)
    result = ScoreResult(
        per_image=per_image,
        per_reference=per_reference,
        per_model=per_model,
        config=cfg,
        encoders=meta["encoders"],
        skipped=meta["skipped"],
        seconds=time.perf_counter() - t0,
        skipped_inputs=skipped,
        input_notes=notes,
        **done,
    )
    result.n_scored = sink.n
    if out_dir is not None:
        result._per_image_file = out_dir / PER_IMAGE
        result.paths = {PER_IMAGE: out_dir / PER_IMAGE, **_write(result, out_dir, meta)}
    end = time.perf_counter()
    result.timings = {**timings, "tables": end - t_tables}
    result.seconds = end - t0
    return result


def _write(result: ScoreResult, out_dir: Path, meta: dict[str, Any]) -> dict[str, Path]:
    """Write the per-reference, per-model and skipped tables (the per-image table is streamed)."""
    from iconicity_utils.core.io import write_table

    tables = (
        (PER_REFERENCE, result.per_reference),
        (PER_MODEL, result.per_model),
        (SKIPPED, result.skipped_inputs),
    )
    return {name: write_table(df, out_dir / name, result.config, **meta) for name, df in tables}


# --------------------------------------------------------------------------------------------
# Front door 1: a whole study (generation manifest + references table)
# --------------------------------------------------------------------------------------------


def _study_work(cfg, variants: Sequence[str] | None):
    """The study's work table (first ``k_gen`` images per group) and its references."""
    import pandas as pd

    from iconicity_utils.core.io import read_table

    manifest = read_table(cfg.generations_manifest)
    lacking = [c for c in WORK_COLUMNS if c not in manifest.columns]
    if lacking:
        raise ScoringInputError(f"{cfg.generations_manifest}: generation manifest lacks columns {lacking}")
    refs_table = read_table(cfg.references_table)
    for col in ("slug", "kind"):
        if col not in refs_table.columns:
            raise ScoringInputError(f"{cfg.references_table}: references table lacks column {col!r}")
    kinds = dict(zip(refs_table["slug"], refs_table["kind"], strict=True))
    work = manifest[manifest["model"].isin(cfg.models)].copy()
    if variants is not None:
        work = work[work["variant"].isin(list(variants))]
    if work.empty:
        raise ScoringInputError(
            f"{cfg.generations_manifest}: no generated image for models {cfg.models}"
            + (f" and variants {list(variants)}" if variants is not None else "")
        )
    unknown = sorted(set(work["slug"]) - set(kinds))
    if unknown:
        raise ScoringInputError(
            f"{cfg.generations_manifest}: slugs {unknown[:10]} are not in the references table {cfg.references_table}"
        )
    work = work.sort_values(["model", "variant", "slug", "index"], kind="stable")
    work = work.groupby(["model", "variant", "slug"], sort=False).head(cfg.realization.k_gen).copy()
    work["abs_path"] = [str(cfg.absolute(p)) for p in work["path"]]  # a missing file: found by the check
    references = {}
    for slug in sorted(set(work["slug"])):
        kind = kinds[slug]
        if kind not in KINDS:
            raise ScoringInputError(
                f"{cfg.references_table}: slug {slug!r} has kind {kind!r}; expected {KINDS}"
            )
        try:
            references[slug] = ReferenceSet(slug, kind, reference_files(cfg.reference_dir(kind, slug), kind))
        except ScoringInputError as exc:  # dropped or stopping, as realization.on_bad_reference says
            references[slug] = ReferenceSet(
                slug, kind, [], problem=str(exc), folder=cfg.reference_dir(kind, slug)
            )
    return pd.DataFrame(work).reset_index(drop=True), references


def score(
    cfg,
    *,
    variants: Sequence[str] | None = None,
    encoders: dict[str, Any] | None = None,
    write: bool = True,
    progress=None,
) -> ScoreResult:
    """Score every generated image of a study: CRA, VR/VI, CRT, consistency and baselines.

    Reads ``cfg.generations_manifest`` and ``cfg.references_table`` (kinds), takes reference
    images from ``cfg.reference_dir(kind, slug)`` (static: first file; dynamic: all), caches
    features under ``cfg.path("cache")``, and writes the four tables to ``cfg.results_dir``.
    Bad or missing images are skipped and recorded (``scores_skipped.parquet``) or stop the run,
    as ``realization.on_bad_image`` / ``on_bad_reference`` say.  Runs on several processes
    under ``accelerate launch`` (only the main process returns tables).

    Args:
        cfg: the study config; to change a choice, pass ``cfg.with_overrides(...)``, e.g.
            ``cfg.with_overrides(realization={"cells": "tokens"})``.
        variants: score only these prompt variants (default: all in the manifest).
        encoders: already loaded encoders by registry name (default: load them).
        write: write the tables.
        progress: optional ``progress(done, total)`` callable.

    Raises:
        ScoringInputError: a missing or malformed manifest / references table (named).
        BadInputError: bad images under ``"stop"`` / ``"strict"``, or none left to score.
        EncoderLoadError / EncoderError: an encoder cannot load or fails (named, never skipped).
    """
    return score_work(
        *_study_work(cfg, variants),  # no name here keeps the manifest alive while the engine runs
        cfg,
        cache_dir=cfg.path("cache"),
        registry=Registry.for_config(cfg),
        encoders=encoders,
        progress=progress,
        store_path=cfg.relative,
        out_dir=cfg.results_dir if write else None,
    )


# --------------------------------------------------------------------------------------------
# Front door 2: the authors' folder layout
# --------------------------------------------------------------------------------------------


def norm_slug(name: str) -> str:
    """The authors' slug normalisation: strip, spaces -> ``_``, lower case."""
    return str(name).strip().replace(" ", "_").lower()


def _slug_dirs(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise ScoringInputError(f"folder not found: {root}")
    return {norm_slug(p.name): p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _whitelist(prompts_csv: Path, slug_col: str) -> dict[str, str]:
    """Normalised slug -> label, from the prompt CSV's whitelist column."""
    import pandas as pd

    if not prompts_csv.is_file():
        raise ScoringInputError(f"prompt CSV not found: {prompts_csv}")
    prompts = pd.read_csv(prompts_csv)
    if slug_col not in prompts.columns:
        raise ScoringInputError(
            f"{prompts_csv}: column {slug_col!r} not found (columns: {list(prompts.columns)})"
        )
    labels: dict[str, str] = {}
    for label in prompts[slug_col].astype(str):
        labels.setdefault(norm_slug(label), label)
    return labels


def _model_dirs(gendir: Path, models: Sequence[str] | None) -> list[Path]:
    if not gendir.is_dir():
        raise ScoringInputError(f"folder not found: {gendir}")
    dirs = sorted(p for p in gendir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if models is None:
        return dirs
    absent = sorted(set(models) - {p.name for p in dirs})
    if absent:
        raise ScoringInputError(f"model folders {absent} not found in {gendir}")
    return [p for p in dirs if p.name in set(models)]


def _folder_refs(folder: Path, slug: str, kind: str, dedup: bool, threshold: int) -> ReferenceSet:
    """A reference folder's images: static -> the first file; dynamic -> all, pHash-deduplicated.

    An unreadable still stays in the list (the authors' dedup keeps a file whose hash fails), so
    the input check finds it and drops the reference or stops, as the config says.
    """
    files = list_images(folder)
    if not files:
        return ReferenceSet(slug, kind, [], problem=f"no reference image in {folder}", folder=folder)
    if kind == "static":
        return ReferenceSet(slug, kind, files[:1])
    if not dedup:
        return ReferenceSet(slug, kind, files, n_before=len(files), n_removed=0)
    res = dedup_phash(files, threshold=threshold)
    kept = sorted(res.kept + [p for p, _ in res.failed])
    return ReferenceSet(slug, kind, kept, n_before=len(files), n_removed=res.n_removed)


def _folder_work(refdir, gendir, labels, kind, cfg, models, variant, dedup):
    """The work table and references of the authors' layout (whitelist ∩ model folder ∩ refdir)."""
    import pandas as pd

    ref_index = _slug_dirs(refdir)
    rows, references = [], {}
    for mdir in _model_dirs(gendir, models):
        gen_index = _slug_dirs(mdir)
        for norm in sorted(set(labels) & set(gen_index) & set(ref_index)):
            files = list_images(gen_index[norm])[: cfg.realization.k_gen]
            if not files:
                continue
            slug = ref_index[norm].name
            if slug not in references:
                references[slug] = _folder_refs(
                    ref_index[norm], slug, kind, dedup, cfg.collection.phash_threshold
                )
            rows += [
                {"model": mdir.name, "variant": variant, "slug": slug, "index": i, "seed": pd.NA,
                 "prompt": labels[norm], "path": f.as_posix(), "abs_path": str(f)}
                for i, f in enumerate(files)
            ]  # fmt: skip
    return pd.DataFrame(rows), references


def _config(config):
    """A study config object, a path to one, or None (the paper config)."""
    from iconicity_utils.config import load_config

    if config is None:
        config = PROJECT_ROOT / "configs" / "paper.yaml"
    return config if hasattr(config, "thresholds") else load_config(config)


def score_folders(
    refdir: str | Path,
    gendir: str | Path,
    prompts_csv: str | Path,
    *,
    kind: str,
    config=None,
    slug_col: str = "label_clean",
    models: Sequence[str] | None = None,
    variant: str = "title",
    dedup: bool = True,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    encoders: dict[str, Any] | None = None,
) -> ScoreResult:
    """Score image sets in the authors' folder layout.

    Layout: ``refdir/<slug>/*`` reference images; ``gendir/<model>/<slug>/*`` generated images;
    ``prompts_csv`` with a ``label_clean`` column (the whitelist).  Folder names and labels are
    matched after :func:`norm_slug`; a reference is scored for a model when it is in the
    whitelist, the model's folder and ``refdir``.  At most ``realization.k_gen`` generated images
    per slug are taken, in sorted file-name order.  Static references use their first file;
    dynamic ones all files, after pHash deduplication (Hamming ``<= collection.phash_threshold``,
    first kept) when ``dedup``, with the counts recorded (``n_ref_before``, ``n_ref_kept``,
    ``n_ref_dups_removed``).  Every image is checked first; a bad generated image is skipped and a
    reference with a bad image dropped, each recorded with its path and reason in
    ``result.skipped_inputs`` (``scores_skipped.parquet``), unless the config says to stop
    (``realization.on_bad_image`` / ``on_bad_reference``).  A skipped image is not replaced by the
    next file: the first ``k_gen`` files are the ones considered.

    Args:
        refdir, gendir, prompts_csv: the three inputs.
        kind: ``"static"`` or ``"dynamic"`` (one kind per call, as the authors' ``--mode``).
        config: a study config (object or path) whose sections decide encoders, thresholds and
            modes (default: ``configs/paper.yaml``); override with ``cfg.with_overrides(...)``.
        slug_col: the whitelist column.
        models: only these model folders (default: every folder in ``gendir``).
        variant: the value written in the ``variant`` column.
        dedup: pHash-deduplicate dynamic references.
        out_dir: write the four tables here (default: do not write).
        cache_dir: feature cache (default: the config's ``paths.cache``).
        encoders: already loaded encoders by registry name.
    """
    check_kind(kind)
    cfg = _config(config)
    refdir, gendir, prompts_csv = Path(refdir), Path(gendir), Path(prompts_csv)
    labels = _whitelist(prompts_csv, slug_col)
    work, references = _folder_work(refdir, gendir, labels, kind, cfg, models, variant, dedup)
    if work.empty:
        raise ScoringInputError(
            f"nothing to score: no slug is in the whitelist ({prompts_csv}), a model folder of {gendir} "
            f"and {refdir} at once"
        )
    inputs = {"refdir": str(refdir), "gendir": str(gendir), "prompts_csv": str(prompts_csv), "kind": kind}
    return score_work(
        work,
        references,
        cfg,
        cache_dir=cache_dir if cache_dir is not None else cfg.path("cache"),
        registry=Registry.for_config(cfg),
        encoders=encoders,
        out_dir=out_dir,
        meta={"inputs": inputs},
    )


# --------------------------------------------------------------------------------------------
# Front door 3: a handful of images against one reference
# --------------------------------------------------------------------------------------------


def _as_files(images, folder: Path, what: str) -> list[tuple[Path, str]]:
    """``(file, name in tables)`` per image: paths as given, a folder's images, and in-memory PIL
    images written to ``folder`` as lossless PNGs (the engine decodes them to the same RGB pixels)."""
    if isinstance(images, str | Path):
        files = list_images(images)
        if not files:
            raise ScoringInputError(f"{what}: no image in {images}")
        return [(f, f.as_posix()) for f in files]
    out = []
    for i, im in enumerate(images):
        if isinstance(im, str | Path):
            out.append((Path(im), Path(im).as_posix()))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        im.convert("RGB").save(folder / f"{i:05d}.png", format="PNG")
        out.append((folder / f"{i:05d}.png", f"<image {i}>"))
    if not out:
        raise ScoringInputError(f"{what}: no images given")
    return out


def score_images(
    generated,
    references,
    *,
    kind: str,
    config=None,
    cache_dir: str | Path | None = None,
    encoders: dict[str, Any] | None = None,
) -> ScoreResult:
    """Score a few generated images against one reference, through the same engine as a study.

    Args:
        generated: image paths and/or PIL images, or a folder of images.
        references: the reference's images (paths, PIL images or a folder).  A static
            reference uses exactly one image (a folder: its first file in sorted order).
        kind: ``"static"`` or ``"dynamic"``.
        config: a study config (object or path; default ``configs/paper.yaml``) whose sections
            decide encoders, thresholds and modes.
        cache_dir: feature cache (default: in memory only).
        encoders: already loaded encoders by registry name.

    Returns:
        A :class:`ScoreResult` whose per-image table has one row per generated image, in order
        (model ``"images"``, slug ``"reference"``), with paths as given (a PIL image: ``<image i>``).

    Example:
        >>> res = score_images(["gen0.png", "gen1.png"], ["ref.png"], kind="static")  # doctest: +SKIP
        >>> res.per_reference["cra"].item(), res.per_image["vr"].tolist()  # doctest: +SKIP
    """
    import pandas as pd

    check_kind(kind)
    cfg = _config(config)
    with tempfile.TemporaryDirectory(prefix="iconicity-images-") as tmp:
        gen = _as_files(generated, Path(tmp) / "generated", "generated images")
        ref = [f for f, _ in _as_files(references, Path(tmp) / "references", "references")]
        if kind == "static" and isinstance(references, str | Path):
            ref = ref[:1]  # a static reference folder: its first file, as the study does
        if kind == "static" and len(ref) != 1:
            raise ValueError(
                f"a static reference uses exactly one image, got {len(ref)}; or say kind='dynamic'"
            )
        work = pd.DataFrame(
            {"model": "images", "variant": "title", "slug": "reference", "index": range(len(gen)),
             "seed": pd.NA, "prompt": "", "path": [name for _, name in gen], "abs_path": [str(f) for f, _ in gen]}
        )  # fmt: skip
        return score_work(
            work,
            {"reference": ReferenceSet("reference", kind, ref)},
            cfg,
            cache_dir=cache_dir,
            registry=Registry.for_config(cfg),
            encoders=encoders,
        )


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m iconicity_utils.score.scoring",
        description=(
            "Score generated images: CRA (recognition), VR/VI (realization), CRT and baselines. "
            "Runs under `accelerate launch` for several processes or GPUs."
        ),
    )
    p.add_argument("--config", help="study config (encoders, thresholds, modes); alone: score the study")
    p.add_argument("--refdir", help="reference images, one folder per slug (authors' layout)")
    p.add_argument("--gendir", help="generated images, <model>/<slug>/*")
    p.add_argument("--prompts", help="prompt CSV with the slug whitelist column")
    p.add_argument(
        "--kind", choices=KINDS, help="static (first reference file) or dynamic (all, deduplicated)"
    )
    p.add_argument("--slug-col", default="label_clean")
    p.add_argument("--k-gen", type=int, help="max generated images per slug (default: realization.k_gen)")
    p.add_argument(
        "--model", action="append", dest="models", help="score only this model folder (repeatable)"
    )
    p.add_argument("--no-dedup", action="store_true", help="do not pHash-deduplicate dynamic references")
    p.add_argument("--out", default="scores", help="output folder for the folder scorer (default: scores/)")
    p.add_argument("--cache", help="feature cache folder (default: the config's paths.cache)")
    p.add_argument("--tau-cra", type=float, help="override the CRA threshold (of --kind for folders)")
    p.add_argument("--tau-reuse", type=float)
    p.add_argument("--comparison", choices=COMPARISONS)
    p.add_argument("--cells", choices=CELL_MODES)
    p.add_argument("--device", help="override encoders.device")
    p.add_argument("--num-workers", type=int)
    p.add_argument(
        "--on-bad-image", choices=("skip", "stop", "strict"), help="override realization.on_bad_image"
    )
    p.add_argument(
        "--on-bad-reference",
        choices=("drop", "stop", "strict"),
        help="override realization.on_bad_reference",
    )
    p.add_argument("--cache-dtype", choices=("float32", "float16"), help="override realization.cache_dtype")
    return p


def _cli_overrides(args) -> dict[str, dict[str, Any]]:
    """Command-line options -> config section overrides (validated by ``with_overrides``)."""
    thresholds: dict[str, Any] = {}
    realization: dict[str, Any] = {}
    encoders: dict[str, Any] = {}
    if args.tau_cra is not None:
        kinds = [args.kind] if args.kind else list(KINDS)
        thresholds.update({f"tau_cra_{k}": args.tau_cra for k in kinds})
    if args.tau_reuse is not None:
        thresholds["tau_reuse"] = args.tau_reuse
    if args.comparison is not None:
        thresholds["comparison"] = args.comparison
    for key in ("cells", "num_workers", "k_gen", "on_bad_image", "on_bad_reference", "cache_dtype"):
        if getattr(args, key) is not None:
            realization[key] = getattr(args, key)
    if args.device is not None:
        encoders["device"] = args.device
        if not args.device.startswith("cuda"):
            encoders["precision"] = "fp32"
    sections = {"thresholds": thresholds, "realization": realization, "encoders": encoders}
    return {name: values for name, values in sections.items() if values}


def main(argv: list[str] | None = None) -> int:
    """``python -m iconicity_utils.score.scoring``: score a study (``--config``) or folders (``--refdir``...)."""
    parser = _parser()
    args = parser.parse_args(argv)
    folder_mode = any(getattr(args, k) for k in ("refdir", "gendir", "prompts"))
    if folder_mode:
        missing = [f"--{k}" for k in ("refdir", "gendir", "prompts", "kind") if not getattr(args, k)]
        if missing:
            parser.error(f"folder scoring needs {', '.join(missing)}")
    elif not args.config:
        parser.error("give --config to score a study, or --refdir/--gendir/--prompts/--kind for folders")
    try:
        cfg = _config(args.config)
        overrides = _cli_overrides(args)
        cfg = cfg.with_overrides(**overrides) if overrides else cfg
        if folder_mode:
            result = score_folders(
                args.refdir,
                args.gendir,
                args.prompts,
                kind=args.kind,
                config=cfg,
                slug_col=args.slug_col,
                models=args.models,
                dedup=not args.no_dedup,
                out_dir=args.out,
                cache_dir=args.cache,
            )
        else:
            result = score(cfg)
    except (ScoringInputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.is_main:  # under accelerate launch, the main process reports
        print(result.summary())
        for path in result.paths.values():
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
