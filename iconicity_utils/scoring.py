"""Scoring front doors, and the one engine behind them (stages 03-04).

Three front doors, one per job, all running through the same cached feature engine
(:mod:`iconicity_utils.features`) and the same per-group maths (:mod:`~iconicity_utils.recognition`,
:mod:`~iconicity_utils.realization`, :mod:`~iconicity_utils.baselines`):

- :func:`score`: a whole study, from the generation manifest and the references table;
- :func:`score_folders`: a user's folders in the authors' layout (``refdir/<slug>/``,
  ``gendir/<model>/<slug>/``, a prompt CSV);
- :func:`score_images`: a handful of images in memory or on disk against one reference.

Every methodological choice comes from the study config's own sections (``thresholds``,
``realization``, ``encoders``; docs/method.md §9); to change one, pass
``cfg.with_overrides(realization={"cells": "tokens"})``, validated like the file.  Each image is
decoded once; reference images are embedded once per encoder and cached on disk with every other
feature, so a re-score makes no forward pass.  Re-thresholding and aggregation live in
:mod:`iconicity_utils.score_tables`.

Outputs (``write=True``), in ``cfg.results_dir`` (or ``out_dir``):

- ``scores_per_image.parquet``: one row per generated image, **including** images that fail
  recognition, with ``cra_sim``, ``cra_pass``, ``vr`` (thresholded), ``vr_mean/max/p90``, ``vi``,
  the raw per-cell maxima ``vr_cells`` (list of K floats), the baselines, and the named modes and
  encoder ids that produced them;
- ``scores_per_reference.parquet``: per (model, variant, reference): ``n_images``, ``cra``,
  ``vi_mean`` (over recognised images), ``crt``, ``consistency`` (ours), ...;
- ``scores_per_model.parquet``: per (model, variant, kind) and metric, the mean over references
  with a bootstrap 95 % CI over references (fixed seed).

Command line::

    python -m iconicity_utils.scoring --config configs/demo.yaml
    python -m iconicity_utils.scoring --refdir REF --gendir GEN --prompts prompts.csv --kind static \\
        [--config configs/paper.yaml] [--k-gen 50] [--out scores/]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils import baselines as bl
from iconicity_utils import score_tables
from iconicity_utils.constants import CELL_MODES, COMPARISONS, KINDS
from iconicity_utils.features import (
    FeatureSpec,
    FeatureStore,
    MemoryStore,
    ScoringInputError,
    content_hash,
    extract,
)
from iconicity_utils.images import dedup_phash, list_images
from iconicity_utils.realization import cell_maxima, consistency, vr_stats
from iconicity_utils.recognition import best_match, check_kind, passes, similarity_matrix
from iconicity_utils.registry import PROJECT_ROOT, Registry

__all__ = [
    "PER_IMAGE",
    "PER_REFERENCE",
    "PER_MODEL",
    "WORK_COLUMNS",
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
#: the identity of each generated image in a scoring work table (a study's generation manifest,
#: whose full column list is :data:`iconicity_utils.generation.MANIFEST_COLUMNS`, must have these)
WORK_COLUMNS = ("model", "variant", "slug", "index", "seed", "prompt", "path")
#: the study config sections that decide scores (recorded in every table's provenance)
SCORING_SECTIONS = ("thresholds", "realization", "encoders")


@dataclass
class ReferenceSet:
    """The reference images one reference is scored against (static: one; dynamic: all stills)."""

    slug: str
    kind: str
    paths: list[Path]
    n_before: int | None = None  # folder scorer, dynamic: before pHash dedup
    n_removed: int | None = None


@dataclass
class ScoreResult:
    """Tables and a record of what ran."""

    per_image: Any
    per_reference: Any
    per_model: Any
    config: Any  # the StudyConfig whose sections decided every score
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    forward_calls: int = 0
    seconds: float = 0.0
    paths: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"scored {len(self.per_image)} generated images of {len(self.per_reference)} "
            f"(model, variant, reference) groups in {self.seconds:.1f} s; decoded {self.counts.get('images', 0)} "
            f"new images, {self.forward_calls} encoder forward passes"
        )


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

    def __init__(self, cfg, registry: Registry, cache_dir, encoders: dict[str, Any] | None):
        from iconicity_utils.encoders import describe_encoder, effective_pool

        e, r = cfg.encoders, cfg.realization
        self.roles = _encoder_roles(cfg)
        self.names = sorted(set(self.roles.values()))
        self.registry, self.device, self.precision = registry, e.device, e.precision
        self.encoders = encoders
        if encoders is None:  # what would run, without loading any model yet
            self.infos = {n: describe_encoder(n, registry, e.device, e.precision) for n in self.names}
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
        self.stores = {spec: self._store(spec, cache_dir) for spec in self.unique}

    def _store(self, spec: FeatureSpec, cache_dir) -> FeatureStore:
        if cache_dir is None:
            return MemoryStore()
        version = (
            self.infos[spec.encoder]["fingerprint"] if spec.encoder else _image_store_version(spec.feature)
        )
        return FeatureStore(Path(cache_dir) / "features" / f"{spec.key}@{version}")

    def compute(self, paths: Sequence[str], batch_size: int, num_workers: int, progress=None):
        """Compute what the cache lacks; returns ``(counts, forward_calls)``."""
        from iconicity_utils.encoders import load_encoder

        counts = {"images": 0, **{s.key: 0 for s in self.unique}}
        hashes = {content_hash(p) for p in paths}
        if not any(self.stores[s].missing(hashes) for s in self.unique):
            return counts, 0
        if self.encoders is None:  # load only when a feature is missing
            self.encoders = {
                n: load_encoder(n, self.registry, device=self.device, precision=self.precision)
                for n in self.names
            }
        calls0 = sum(e.calls for e in self.encoders.values())
        counts = extract(paths, self.unique, self.encoders, self.stores, batch_size, num_workers, progress)
        return counts, sum(e.calls for e in self.encoders.values()) - calls0

    def get(self, role: str, paths: Sequence[str]) -> np.ndarray:
        store = self.stores[self.specs[role]]
        return np.stack([store.get(content_hash(p)) for p in paths])

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
        }

    def skipped(self, cfg) -> list[str]:
        if not cfg.realization.baselines:
            return ["baselines: disabled (realization.baselines = false)"]
        if "sscd" not in self.specs:
            return ["sscd_cos: no copy_detection encoder configured"]
        return []


def _score_group(features: _Features, gen: list[str], ref: list[str], tau_cra: float, cfg) -> dict[str, Any]:
    """CRA, VR and the baselines of one (model, variant, reference) group of generated images."""
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


def _check_work(work, references: dict[str, ReferenceSet]) -> None:
    missing = sorted(set(work["slug"]) - set(references))
    if missing:
        raise ScoringInputError(f"generated images for references with no reference images: {missing[:10]}")


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
) -> ScoreResult:
    """Score a table of generated images against their references: the engine behind every front door.

    Args:
        work: DataFrame with :data:`WORK_COLUMNS` (as stored) and ``abs_path`` (a readable file);
            one row per generated image.
        references: slug -> :class:`ReferenceSet` (its ``kind`` and the files scoring uses).
        cfg: the study config; its ``thresholds``, ``realization`` and ``encoders`` sections decide.
        cache_dir: where features are cached (``None``: in memory only).
        registry: the encoder registry (default: the repository's).
        encoders: already loaded encoders by registry name (default: load those the config names).
        progress: optional ``progress(done, total)`` callable for feature extraction.
        store_path: how a reference path is written into tables (default: absolute POSIX).

    Returns:
        A :class:`ScoreResult` (tables not written; the front doors write them).
    """
    import pandas as pd

    t0 = time.perf_counter()
    features = _Features(cfg, registry or Registry.load(), cache_dir, encoders)
    _check_work(work, references)
    ref_paths = sorted({str(p) for slug in set(work["slug"]) for p in references[slug].paths})
    paths = list(work["abs_path"].astype(str)) + ref_paths
    counts, forward_calls = features.compute(
        paths, cfg.realization.batch_size, cfg.realization.num_workers, progress
    )

    modes = features.modes(cfg)
    rows, cons = [], []
    work = work.sort_values(["model", "variant", "slug", "index"], kind="stable").reset_index(drop=True)
    for (model, variant, slug), group in work.groupby(["model", "variant", "slug"], sort=True):
        ref = references[slug]
        rpaths = [str(p) for p in ref.paths]
        tau_cra = cfg.tau_cra(ref.kind)
        scores = _score_group(features, list(group["abs_path"].astype(str)), rpaths, tau_cra, cfg)
        stored_refs = [store_path(r) if store_path else Path(r).as_posix() for r in rpaths]
        rows += _image_rows(group, ref, scores, tau_cra, cfg, modes, stored_refs)
        cons.append({"model": model, "variant": variant, "slug": slug, "consistency": scores["consistency"]})

    per_image = pd.DataFrame(rows)
    if len(per_image):
        per_image["seed"] = per_image["seed"].astype("Int64")
        per_image["phash_dist"] = per_image["phash_dist"].astype("float64")
    per_reference = score_tables.aggregate_references(
        per_image, pd.DataFrame(cons, columns=["model", "variant", "slug", "consistency"])
    )
    r = cfg.realization
    return ScoreResult(
        per_image=per_image,
        per_reference=per_reference,
        per_model=score_tables.model_table(per_reference, r.n_bootstrap, r.bootstrap_seed),
        config=cfg,
        encoders={role: features.infos[name] for role, name in features.roles.items()},
        skipped=features.skipped(cfg),
        counts=counts,
        forward_calls=forward_calls,
        seconds=time.perf_counter() - t0,
    )


def _write(result: ScoreResult, out_dir: Path, **extra) -> dict[str, Path]:
    from iconicity_utils.io import write_table

    cfg = result.config
    meta = {
        "stage": "03-04 scoring",
        "settings": cfg.section_dump(*SCORING_SECTIONS),
        "encoders": result.encoders,
        "skipped": result.skipped,
        **extra,
    }
    tables = (
        (PER_IMAGE, result.per_image),
        (PER_REFERENCE, result.per_reference),
        (PER_MODEL, result.per_model),
    )
    return {name: write_table(df, out_dir / name, cfg, **meta) for name, df in tables}


# --------------------------------------------------------------------------------------------
# Front door 1: a whole study (generation manifest + references table)
# --------------------------------------------------------------------------------------------


def _study_work(cfg, variants: Sequence[str] | None):
    """The study's work table (first ``k_gen`` images per group) and its references."""
    import pandas as pd

    from iconicity_utils.io import read_table

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
    work["abs_path"] = [str(cfg.absolute(p)) for p in work["path"]]
    for row in work.itertuples():
        if not Path(row.abs_path).is_file():
            raise ScoringInputError(
                f"generated image missing: {row.abs_path} (manifest row model={row.model}, "
                f"variant={row.variant}, slug={row.slug}, index={row.index})"
            )
    references = {}
    for slug in sorted(set(work["slug"])):
        kind = kinds[slug]
        if kind not in KINDS:
            raise ScoringInputError(
                f"{cfg.references_table}: slug {slug!r} has kind {kind!r}; expected {KINDS}"
            )
        references[slug] = ReferenceSet(slug, kind, reference_files(cfg.reference_dir(kind, slug), kind))
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
    features under ``cfg.path("cache")``, and writes the three tables to ``cfg.results_dir``.

    Args:
        cfg: the study config; to change a choice, pass ``cfg.with_overrides(...)``, e.g.
            ``cfg.with_overrides(realization={"cells": "tokens"})``.
        variants: score only these prompt variants (default: all in the manifest).
        encoders: already loaded encoders by registry name (default: load them).
        write: write the tables.
        progress: optional ``progress(done, total)`` callable.

    Raises:
        ScoringInputError: a missing or malformed manifest / references table / image (named).
        EncoderLoadError / EncoderError: an encoder cannot load or fails (named, never skipped).
    """
    work, references = _study_work(cfg, variants)
    result = score_work(
        work,
        references,
        cfg,
        cache_dir=cfg.path("cache"),
        registry=Registry.for_config(cfg),
        encoders=encoders,
        progress=progress,
        store_path=cfg.relative,
    )
    if write:
        result.paths = _write(result, cfg.results_dir)
    return result


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
    """A reference folder's images: static -> the first file; dynamic -> all, pHash-deduplicated."""
    files = list_images(folder)
    if not files:
        raise ScoringInputError(f"no reference image in {folder}")
    if kind == "static":
        return ReferenceSet(slug, kind, files[:1])
    if not dedup:
        return ReferenceSet(slug, kind, files, n_before=len(files), n_removed=0)
    res = dedup_phash(files, threshold=threshold)
    if res.failed:
        raise ScoringInputError(f"unreadable reference images: {[f'{p}: {why}' for p, why in res.failed]}")
    return ReferenceSet(slug, kind, res.kept, n_before=len(files), n_removed=res.n_removed)


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
    ``n_ref_dups_removed``).

    Args:
        refdir, gendir, prompts_csv: the three inputs.
        kind: ``"static"`` or ``"dynamic"`` (one kind per call, as the authors' ``--mode``).
        config: a study config (object or path) whose sections decide encoders, thresholds and
            modes (default: ``configs/paper.yaml``); override with ``cfg.with_overrides(...)``.
        slug_col: the whitelist column.
        models: only these model folders (default: every folder in ``gendir``).
        variant: the value written in the ``variant`` column.
        dedup: pHash-deduplicate dynamic references.
        out_dir: write the three tables here (default: do not write).
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
    result = score_work(
        work,
        references,
        cfg,
        cache_dir=cache_dir if cache_dir is not None else cfg.path("cache"),
        registry=Registry.for_config(cfg),
        encoders=encoders,
    )
    if out_dir is not None:
        inputs = {"refdir": str(refdir), "gendir": str(gendir), "prompts_csv": str(prompts_csv), "kind": kind}
        result.paths = _write(result, Path(out_dir), inputs=inputs)
    return result


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
        prog="python -m iconicity_utils.scoring",
        description="Score generated images: CRA (recognition), VR/VI (realization), CRT and baselines.",
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
    for key in ("cells", "num_workers", "k_gen"):
        if getattr(args, key) is not None:
            realization[key] = getattr(args, key)
    if args.device is not None:
        encoders["device"] = args.device
        if not args.device.startswith("cuda"):
            encoders["precision"] = "fp32"
    sections = {"thresholds": thresholds, "realization": realization, "encoders": encoders}
    return {name: values for name, values in sections.items() if values}


def main(argv: list[str] | None = None) -> int:
    """``python -m iconicity_utils.scoring``: score a study (``--config``) or folders (``--refdir``...)."""
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
    print(result.summary())
    for path in result.paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
