"""The scoring engine behind every front door: features of every image, then the maths per group.

:func:`score_work` scores a work table of generated images (:data:`~iconicity_utils.score.inputs.WORK_COLUMNS`)
against their references, in order (docs/method.md §3.8):

1. *Check* every input image once, before any encoder runs, and apply the bad-input policy
   (:mod:`iconicity_utils.score.inputs`).
2. *Embed* the images the cache lacks (:class:`FeatureSet`, through the feature engine
   :mod:`iconicity_utils.score.features`), in blocks of ``scoring.flush_every`` images.
3. *Score* each (model, variant, reference) group from the cache, one batch of groups in memory
   at a time (:mod:`~iconicity_utils.metrics.recognition`, :mod:`~iconicity_utils.metrics.realization`,
   :mod:`~iconicity_utils.metrics.baselines`); per-image rows are streamed to disk
   (:mod:`iconicity_utils.score.writer`) and aggregated (:mod:`iconicity_utils.score.tables`).

**Several processes or GPUs** (:class:`~iconicity_utils.core.launch.Processes`, under
``accelerate launch``): the checks and the blocks of images to embed are split between processes;
each process writes its own cache shards; the main process assembles and writes the tables once.
Blocks are formed before they are split, so one process and N give the same forward batches and
identical tables (same threads per process).  A run killed at any point (SIGKILL included) keeps
every flushed block; the rerun embeds only the rest, and the tables are written whole.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iconicity_utils.core.io import write_table
from iconicity_utils.core.launch import Processes
from iconicity_utils.metrics import baselines as bl
from iconicity_utils.metrics.realization import cell_maxima, consistency, vr_stats
from iconicity_utils.metrics.recognition import best_match, passes, similarity_matrix
from iconicity_utils.registry import Registry
from iconicity_utils.registry.encoders import describe_encoder, effective_pool, load_encoder
from iconicity_utils.score import tables as score_tables
from iconicity_utils.score.features import FeatureSpec, extract
from iconicity_utils.score.inputs import (
    SKIPPED,
    Checked,
    ReferenceSet,
    apply_policy,
    check_inputs,
    check_work,
)
from iconicity_utils.score.result import ScoreResult
from iconicity_utils.score.store import FeatureStore, MemoryStore
from iconicity_utils.score.writer import PER_IMAGE, PerImageWriter, image_rows, rows_frame

__all__ = ["score_work"]

#: the study config sections that decide scores (recorded in every table's provenance)
SCORING_SECTIONS = ("thresholds", "realization", "scoring", "encoders")
#: per-image rows aggregated and written out together (whole groups; the memory of one batch)
ROWS_PER_CHUNK = 1024


def _encoder_roles(cfg) -> dict[str, str]:
    """Role -> registry name of every encoder this run needs."""
    e = cfg.encoders
    roles = {"recognition": e.recognition, "realization": e.realization}
    if cfg.scoring.baselines and e.copy_detection:
        roles["copy_detection"] = e.copy_detection
    return roles


def _image_store_version(feature: str) -> str:
    pkg = "imagehash" if feature == "phash" else "pillow"
    return f"{pkg}-{metadata.version(pkg)}"


class FeatureSet:
    """The features one scoring run needs: their specs, their stores, and the encoders behind them.

    Encoders are described (weights fingerprints) without loading; :meth:`compute` loads them
    only when a feature is missing from the cache.
    """

    def __init__(self, cfg, registry: Registry, cache_dir, encoders: dict[str, Any] | None, dist: Processes):
        e, r = cfg.encoders, cfg.realization
        self.roles = _encoder_roles(cfg)
        self.names = sorted(set(self.roles.values()))
        self.registry, self.device, self.precision = registry, dist.device(e.device), e.precision
        self.cache_dtype = cfg.scoring.cache_dtype
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
        if cfg.scoring.baselines:
            self.specs["dino"] = FeatureSpec("global", e.realization, pool=vr_pool)
            if "copy_detection" in self.roles:
                self.specs["sscd"] = FeatureSpec("global", e.copy_detection, pool="native")
            self.specs["phash"] = FeatureSpec("phash")
            self.specs["gray"] = FeatureSpec("gray", size=cfg.scoring.ssim_size)
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
        s = cfg.scoring
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
            s.batch_size,
            s.num_workers,
            progress,
            keys=keys,
            flush_every=s.flush_every,
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
        if not cfg.scoring.baselines:
            return ["baselines: disabled (scoring.baselines = false)"]
        if "sscd" not in self.specs:
            return ["sscd_cos: no copy_detection encoder configured"]
        return []


def _score_group(features: FeatureSet, gen: list[str], ref: list[str], tau_cra: float, cfg) -> dict[str, Any]:
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


def _compute(features: FeatureSet, work, references, checked: Checked, cfg, dist: Processes, progress):
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
    step = cfg.scoring.flush_every
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
    df = rows_frame(batch)
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
        batch += image_rows(group, ref, scores, tau_cra, cfg, modes, stored_refs)
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
    t0 = time.perf_counter()
    dist = Processes(cpu=cfg.encoders.device == "cpu", role="encoders.device")
    features = FeatureSet(cfg, registry or Registry.load(), cache_dir, encoders, dist)
    check_work(work, references)
    work = work.sort_values(["model", "variant", "slug", "index"], kind="stable").reset_index(drop=True)
    references = {s: references[s] for s in sorted(set(work["slug"]))}
    t_check = time.perf_counter()
    checked = check_inputs(work, references, features, cfg, dist)  # 1. before any encoder runs
    work, references, skipped = apply_policy(work, references, checked, cfg, store_path)
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
        input_notes=notes,
    )
    if not dist.is_main:  # the main process assembles the tables, once
        return ScoreResult(None, None, None, cfg, skipped_inputs=skipped, is_main=False, **done)
    features.refresh(compact=True)  # the shards every process wrote; nobody writes any more
    meta = _table_meta(cfg, features, work, skipped, notes, dist.num_processes, meta)
    result = _tables(work, references, checked, features, cfg, skipped, store_path, out_dir, meta, done)
    end = time.perf_counter()
    result.timings = {**timings, "tables": end - t_tables}
    result.seconds = end - t0
    return result


def _tables(
    work, references, checked, features, cfg, skipped, store_path, out_dir, meta, done
) -> ScoreResult:
    """Score every group (3.), aggregate, and write the tables when ``out_dir`` is given."""
    out_dir = Path(out_dir) if out_dir is not None else None
    sink = PerImageWriter(out_dir / PER_IMAGE if out_dir else None, cfg, meta)
    try:  # 3. a batch of groups in memory at a time
        per_ref = _score_groups(work, references, checked, features, cfg, store_path, sink)
        per_image = sink.close()
    except BaseException:
        sink.abort()
        raise
    per_reference = score_tables.with_skipped_counts(
        pd.DataFrame(per_ref, columns=score_tables.PER_REFERENCE_COLUMNS), skipped
    )
    per_model = score_tables.model_table(per_reference, cfg.scoring.n_bootstrap, cfg.scoring.bootstrap_seed)
    result = ScoreResult(
        per_image=per_image,
        per_reference=per_reference,
        per_model=per_model,
        config=cfg,
        encoders=meta["encoders"],
        skipped=meta["skipped"],
        skipped_inputs=skipped,
        **done,
    )
    result.n_scored = sink.n
    if out_dir is not None:
        result.per_image_file = out_dir / PER_IMAGE
        result.paths = {PER_IMAGE: out_dir / PER_IMAGE, **write_tables(result, out_dir, meta)}
    return result


def write_tables(result: ScoreResult, out_dir: Path, meta: dict[str, Any]) -> dict[str, Path]:
    """Write the per-reference, per-model and skipped tables (the per-image table is streamed)."""
    tables = (
        (score_tables.PER_REFERENCE, result.per_reference),
        (score_tables.PER_MODEL, result.per_model),
        (SKIPPED, result.skipped_inputs),
    )
    return {name: write_table(df, out_dir / name, result.config, **meta) for name, df in tables}
