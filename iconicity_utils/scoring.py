"""Scoring front doors: a whole study (:func:`score`), a user's folders (:func:`score_folders`), and
re-thresholding from stored similarities (:func:`rescore`, :func:`threshold_sweep`).

One pass computes everything for every generated image: CRA (:mod:`~iconicity_utils.recognition`),
VR/VI (:mod:`~iconicity_utils.realization`) and the similarity baselines
(:mod:`~iconicity_utils.baselines`).  Each image is decoded once; reference images are embedded
once per encoder and cached on disk with every other feature (:mod:`~iconicity_utils.embeddings`),
so a re-score makes no forward pass.

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
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iconicity_utils import baselines as bl
from iconicity_utils.embeddings import FeatureSpec, FeatureStore, ScoringInputError, content_hash, extract
from iconicity_utils.realization import (
    CELL_MODES,
    cell_maxima,
    consistency,
    crt,
    vi_over_recognised,
    vr_stats,
)
from iconicity_utils.recognition import COMPARISONS, KINDS, best_match, passes, similarity_matrix

__all__ = [
    "ScoringOptions",
    "ScoreResult",
    "ReferenceSet",
    "score",
    "score_folders",
    "score_work",
    "rescore",
    "aggregate_references",
    "model_table",
    "bootstrap_ci",
    "threshold_sweep",
    "cell_mode_comparison",
    "norm_slug",
    "main",
    "PER_IMAGE",
    "PER_REFERENCE",
    "PER_MODEL",
    "MANIFEST_COLUMNS",
]

PER_IMAGE = "scores_per_image.parquet"
PER_REFERENCE = "scores_per_reference.parquet"
PER_MODEL = "scores_per_model.parquet"
MANIFEST_COLUMNS = ("model", "variant", "slug", "index", "seed", "prompt", "path")
MODEL_METRICS = ("cra", "vi_mean", "crt", "vr_all", "consistency")


# --------------------------------------------------------------------------------------------
# Options (the named modes, recorded with every result)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringOptions:
    """Every methodological choice of a scoring run; stored in each table's provenance."""

    cra_encoder: str
    vr_encoder: str
    sscd_encoder: str | None = None
    tau_cra_static: float = 0.70
    tau_cra_dynamic: float = 0.75
    tau_reuse: float = 0.60
    comparison: str = ">"
    grid: tuple[int, int] = (4, 4)
    cells: str = "crop"
    pool: str = "mean_all"
    batch_size: int = 32
    num_workers: int = 0
    k_gen: int = 50
    baselines: bool = True
    ssim_size: int = 256
    n_bootstrap: int = 1000
    bootstrap_seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"

    def __post_init__(self):
        if self.comparison not in COMPARISONS:
            raise ValueError(f"unknown comparison {self.comparison!r}; expected one of {COMPARISONS}")
        if self.cells not in CELL_MODES:
            raise ValueError(f"unknown cells mode {self.cells!r}; expected one of {CELL_MODES}")

    @classmethod
    def from_config(cls, cfg, **overrides: Any) -> ScoringOptions:
        """The options a study config asks for (``overrides`` replace single fields)."""
        t, r, e = cfg.thresholds, cfg.realization, cfg.encoders
        base = {
            "cra_encoder": e.recognition,
            "vr_encoder": e.realization,
            "sscd_encoder": e.copy_detection,
            "tau_cra_static": t.tau_cra_static,
            "tau_cra_dynamic": t.tau_cra_dynamic,
            "tau_reuse": t.tau_reuse,
            "comparison": t.comparison,
            "grid": tuple(r.grid),
            "cells": r.cells,
            "pool": r.pool,
            "batch_size": r.batch_size,
            "num_workers": r.num_workers,
            "k_gen": r.k_gen,
            "baselines": r.baselines,
            "ssim_size": r.ssim_size,
            "n_bootstrap": r.n_bootstrap,
            "bootstrap_seed": r.bootstrap_seed,
            "device": e.device,
            "precision": e.precision,
        }
        base.update(overrides)
        return cls(**base)

    def tau_cra(self, kind: str) -> float:
        if kind not in KINDS:
            raise ValueError(f"unknown reference kind {kind!r}; expected one of {KINDS}")
        return self.tau_cra_static if kind == "static" else self.tau_cra_dynamic


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
    options: ScoringOptions
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


# --------------------------------------------------------------------------------------------
# The engine: features -> per-image rows
# --------------------------------------------------------------------------------------------


def _encoder_names(opts: ScoringOptions) -> list[str]:
    names = {opts.cra_encoder, opts.vr_encoder}
    if opts.baselines and opts.sscd_encoder:
        names.add(opts.sscd_encoder)
    return sorted(names)


def _image_store_version(kind: str) -> str:
    from importlib import metadata

    pkg = "imagehash" if kind == "phash" else "pillow"
    return f"{pkg}-{metadata.version(pkg)}"


def _specs(opts: ScoringOptions, infos: dict[str, dict[str, Any]]) -> dict[str, FeatureSpec]:
    from iconicity_utils.encoders import effective_pool

    vr_pool = effective_pool(infos[opts.vr_encoder]["backend"], opts.pool)
    specs = {
        "cra": FeatureSpec(
            "global", opts.cra_encoder, pool=effective_pool(infos[opts.cra_encoder]["backend"], opts.pool)
        ),
        "vr": FeatureSpec(f"cells-{opts.cells}", opts.vr_encoder, grid=tuple(opts.grid), pool=vr_pool),
    }
    if opts.baselines:
        specs["dino"] = FeatureSpec("global", opts.vr_encoder, pool=vr_pool)
        if opts.sscd_encoder:
            specs["sscd"] = FeatureSpec("global", opts.sscd_encoder, pool="native")
        specs["phash"] = FeatureSpec("phash")
        specs["gray"] = FeatureSpec("gray", size=opts.ssim_size)
    return specs


def _stores(specs: dict[str, FeatureSpec], infos: dict[str, dict[str, Any]], cache_dir: Path | None):
    stores = {}
    for spec in specs.values():
        if spec in stores:
            continue
        version = infos[spec.encoder]["fingerprint"] if spec.encoder else _image_store_version(spec.kind)
        folder = None if cache_dir is None else Path(cache_dir) / "features" / f"{spec.key}@{version}"
        stores[spec] = FeatureStore(folder) if folder is not None else _MemoryStore()
    return stores


class _MemoryStore(FeatureStore):
    """A store that is never written to disk (``cache_dir=None``)."""

    def __init__(self):
        self.folder = None
        self._data, self._buffer = {}, {}

    def flush(self) -> None:
        self._data.update(self._buffer)
        self._buffer = {}


def score_work(
    work,
    references: dict[str, ReferenceSet],
    opts: ScoringOptions,
    *,
    cache_dir: str | Path | None,
    registry=None,
    encoders: dict[str, Any] | None = None,
    progress=None,
    store_path=None,
) -> ScoreResult:
    """Score a table of generated images against their references (the engine behind both front doors).

    Args:
        work: DataFrame with ``model, variant, slug, index, seed, prompt, path`` (as stored) and
            ``abs_path`` (a readable file); one row per generated image.
        references: slug -> :class:`ReferenceSet` (its ``kind`` and the files scoring uses).
        opts: the named choices.
        cache_dir: where features are cached (``None``: in memory only).
        registry: the encoder registry (default: the repository's).
        encoders: already loaded encoders by registry name (default: load those ``opts`` names).
        progress: optional ``progress(done, total)`` callable for feature extraction.
        store_path: how a reference path is written into tables (default: absolute POSIX).

    Returns:
        A :class:`ScoreResult` (tables not written; the front doors write them).
    """
    import pandas as pd

    from iconicity_utils.encoders import describe_encoder, load_encoder
    from iconicity_utils.registry import Registry

    t0 = time.perf_counter()
    registry = registry or Registry.load()
    names = _encoder_names(opts)
    if encoders is None:  # what would run, without loading any model yet
        infos = {n: describe_encoder(n, registry, opts.device, opts.precision) for n in names}
    else:
        absent = [n for n in names if n not in encoders]
        if absent:
            raise ValueError(f"encoders= lacks {absent}, which the options name")
        infos = {n: encoders[n].info for n in names}
    specs = _specs(opts, infos)
    stores = _stores(specs, infos, cache_dir)
    skipped = []
    if not opts.baselines:
        skipped.append("baselines: disabled (realization.baselines = false)")
    elif not opts.sscd_encoder:
        skipped.append("sscd_cos: no copy_detection encoder configured")

    missing = sorted(set(work["slug"]) - set(references))
    if missing:
        raise ScoringInputError(f"generated images for references with no reference images: {missing[:10]}")
    ref_paths = sorted({str(p) for slug in set(work["slug"]) for p in references[slug].paths})
    gen_paths = list(work["abs_path"].astype(str))
    unique = list(dict.fromkeys(specs.values()))
    hashes = {content_hash(p) for p in gen_paths + ref_paths}
    todo = any(stores[s].missing(hashes) for s in unique)
    counts = {"images": 0, **{s.key: 0 for s in unique}}
    forward_calls = 0
    if todo:  # load the encoders only when a feature is missing from the cache
        if encoders is None:
            encoders = {
                n: load_encoder(n, registry, device=opts.device, precision=opts.precision) for n in names
            }
        calls0 = sum(e.calls for e in encoders.values())
        counts = extract(
            gen_paths + ref_paths,
            unique,
            encoders,
            stores,
            batch_size=opts.batch_size,
            num_workers=opts.num_workers,
            progress=progress,
        )
        forward_calls = sum(e.calls for e in encoders.values()) - calls0

    def feats(role: str, paths: Sequence[str]) -> np.ndarray:
        store = stores[specs[role]]
        return np.stack([store.get(content_hash(p)) for p in paths])

    rows, cons = [], []
    work = work.sort_values(["model", "variant", "slug", "index"], kind="stable").reset_index(drop=True)
    for (model, variant, slug), group in work.groupby(["model", "variant", "slug"], sort=True):
        ref = references[slug]
        rpaths = [str(p) for p in ref.paths]
        gpaths = list(group["abs_path"].astype(str))
        tau = opts.tau_cra(ref.kind)
        f_gen, f_ref = feats("cra", gpaths), feats("cra", rpaths)
        s, best = best_match(similarity_matrix(f_gen, f_ref))
        m = cell_maxima(feats("vr", gpaths), feats("vr", rpaths))
        m = m.reshape(len(gpaths), -1)
        st = vr_stats(m, opts.tau_reuse, opts.comparison)
        base: dict[str, np.ndarray] = {}
        if opts.baselines:
            base["clip_cos"] = s
            base["dino_cos"] = bl.best_cosine(feats("dino", gpaths), feats("dino", rpaths))
            if "sscd" in specs:
                base["sscd_cos"] = bl.best_cosine(feats("sscd", gpaths), feats("sscd", rpaths))
            base["phash_dist"] = bl.phash_distance(feats("phash", gpaths), feats("phash", rpaths))
            base["ssim"] = bl.best_ssim(feats("gray", gpaths), feats("gray", rpaths))
        cons.append({"model": model, "variant": variant, "slug": slug, "consistency": consistency(f_gen)})
        stored_refs = [store_path(r) if store_path else Path(r).as_posix() for r in rpaths]
        for i, (_, row) in enumerate(group.iterrows()):
            rec = {
                "model": model,
                "variant": variant,
                "slug": slug,
                "kind": ref.kind,
                "index": int(row["index"]),
                "seed": row["seed"],
                "prompt": row["prompt"],
                "path": row["path"],
                "n_ref": len(rpaths),
                "ref_paths": stored_refs,
                "cra_sim": float(s[i]),
                "cra_ref": stored_refs[int(best[i])],
                "cra_tau": tau,
                "cra_pass": bool(passes(s[i], tau, opts.comparison)),
                "vr": float(st["vr"][i]),
                "vr_tau": opts.tau_reuse,
                "vr_mean": float(st["vr_mean"][i]),
                "vr_max": float(st["vr_max"][i]),
                "vr_p90": float(st["vr_p90"][i]),
                "vi": float(st["vi"][i]),
                "vr_cells": m[i].astype(np.float32).tolist(),
            }
            for col in bl.BASELINES:
                rec[col] = float(base[col][i]) if col in base else float("nan")
            rec.update(
                {
                    "comparison": opts.comparison,
                    "grid": f"{opts.grid[0]}x{opts.grid[1]}",
                    "vr_cells_mode": opts.cells,
                    "vr_pool": specs["vr"].pool,
                    "cra_encoder": opts.cra_encoder,
                    "vr_encoder": opts.vr_encoder,
                    "sscd_encoder": opts.sscd_encoder if "sscd" in specs else None,
                }
            )
            if ref.n_before is not None:
                rec.update(
                    n_ref_before=ref.n_before, n_ref_kept=len(rpaths), n_ref_dups_removed=ref.n_removed
                )
            rows.append(rec)
    per_image = pd.DataFrame(rows)
    if len(per_image):
        per_image["seed"] = per_image["seed"].astype("Int64")
        per_image["phash_dist"] = per_image["phash_dist"].astype("float64")
    consistency_df = pd.DataFrame(cons, columns=["model", "variant", "slug", "consistency"])
    per_reference = aggregate_references(per_image, consistency_df)
    per_model = model_table(per_reference, opts.n_bootstrap, opts.bootstrap_seed)
    return ScoreResult(
        per_image=per_image,
        per_reference=per_reference,
        per_model=per_model,
        options=opts,
        encoders={role: infos[name] for role, name in _roles(opts, specs).items()},
        skipped=skipped,
        counts=counts,
        forward_calls=forward_calls,
        seconds=time.perf_counter() - t0,
    )


def _roles(opts: ScoringOptions, specs) -> dict[str, str]:
    roles = {"recognition": opts.cra_encoder, "realization": opts.vr_encoder}
    if "sscd" in specs:
        roles["copy_detection"] = opts.sscd_encoder
    return roles


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def aggregate_references(per_image, consistency_df=None):
    """Per (model, variant, reference): n, CRA, VI over recognised images, CRT, consistency, ...

    ``vi_mean`` is NaN when no image is recognised; ``crt`` = mean(pass x VI) is then 0.
    """
    import pandas as pd

    cols = [
        "model", "variant", "slug", "kind", "n_images", "n_recognised", "cra", "vi_mean", "crt",
        "vr_all", "vr_mean_all", "consistency", "cra_tau", "vr_tau", "comparison", "grid",
        "vr_cells_mode", "vr_pool", "cra_encoder", "vr_encoder",
    ]  # fmt: skip
    if per_image is None or len(per_image) == 0:
        return pd.DataFrame(columns=cols)
    out = []
    for (model, variant, slug), g in per_image.groupby(["model", "variant", "slug"], sort=True):
        p = g["cra_pass"].to_numpy(bool)
        vi = g["vi"].to_numpy(float)
        first = g.iloc[0]
        out.append(
            {
                "model": model,
                "variant": variant,
                "slug": slug,
                "kind": first["kind"],
                "n_images": len(g),
                "n_recognised": int(p.sum()),
                "cra": float(p.mean()),
                "vi_mean": vi_over_recognised(p, vi),
                "crt": crt(p, vi),
                "vr_all": float(g["vr"].mean()),
                "vr_mean_all": float(g["vr_mean"].mean()),
                "consistency": float("nan"),
                "cra_tau": first["cra_tau"],
                "vr_tau": first["vr_tau"],
                "comparison": first["comparison"],
                "grid": first["grid"],
                "vr_cells_mode": first["vr_cells_mode"],
                "vr_pool": first["vr_pool"],
                "cra_encoder": first["cra_encoder"],
                "vr_encoder": first["vr_encoder"],
            }
        )
    df = pd.DataFrame(out, columns=cols)
    if consistency_df is not None and len(consistency_df):
        df = df.drop(columns="consistency").merge(
            consistency_df[["model", "variant", "slug", "consistency"]],
            on=["model", "variant", "slug"],
            how="left",
        )[cols]
    return df


def bootstrap_ci(
    values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95, index=None
) -> tuple[float, float, float]:
    """Mean of ``values`` (NaNs ignored) and its percentile bootstrap CI over the items.

    Args:
        values: one value per reference (NaN = undefined, left out of each resample's mean).
        n_bootstrap: resamples.
        seed: RNG seed (``numpy.random.default_rng``).
        level: CI level.
        index: optional ``(n_bootstrap, n)`` resample indices (shared across metrics).

    Returns:
        ``(mean, low, high)``; NaNs when no value is defined.
    """
    v = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(v)
    if not defined.any():
        return float("nan"), float("nan"), float("nan")
    if index is None:
        index = np.random.default_rng(seed).integers(0, len(v), size=(n_bootstrap, len(v)))
    sample = v[index]
    with np.errstate(invalid="ignore"), _quiet():
        means = np.nanmean(sample, axis=1)
    means = means[~np.isnan(means)]
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha]) if means.size else (np.nan, np.nan)
    return float(np.nanmean(v)), float(low), float(high)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def model_table(per_reference, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95):
    """Model-level means over references, split by kind, with bootstrap CIs (long format).

    One row per (model, variant, kind, metric): ``mean``, ``ci_low``, ``ci_high``, ``n_refs``
    (references where the metric is defined), ``n_bootstrap``, ``seed``.  Each group draws its
    resamples from ``default_rng(seed)``, shared by its metrics (a paired bootstrap).
    """
    import pandas as pd

    cols = [
        "model",
        "variant",
        "kind",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "n_refs",
        "n_bootstrap",
        "seed",
    ]
    out = []
    if per_reference is None or len(per_reference) == 0:
        return pd.DataFrame(columns=cols)
    for (model, variant, kind), g in per_reference.groupby(["model", "variant", "kind"], sort=True):
        index = np.random.default_rng(seed).integers(0, len(g), size=(n_bootstrap, len(g)))
        for metric in MODEL_METRICS:
            v = g[metric].to_numpy(dtype=np.float64)
            mean, low, high = bootstrap_ci(v, n_bootstrap, seed, level, index=index)
            out.append(
                {
                    "model": model,
                    "variant": variant,
                    "kind": kind,
                    "metric": metric,
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "n_refs": int((~np.isnan(v)).sum()),
                    "n_bootstrap": n_bootstrap,
                    "seed": seed,
                }
            )
    return pd.DataFrame(out, columns=cols)


# --------------------------------------------------------------------------------------------
# Re-thresholding from stored similarities (no encoder)
# --------------------------------------------------------------------------------------------


def _cells_matrix(per_image) -> np.ndarray:
    return np.stack([np.asarray(c, dtype=np.float32) for c in per_image["vr_cells"]])


def rescore(
    per_image,
    *,
    tau_cra_static: float | None = None,
    tau_cra_dynamic: float | None = None,
    tau_reuse: float | None = None,
    comparison: str | None = None,
    consistency_df=None,
):
    """Re-apply thresholds to a per-image table from its stored ``cra_sim`` and ``vr_cells``.

    No image is decoded and no encoder runs.  Arguments left ``None`` keep the table's values.

    Returns:
        ``(per_image, per_reference)`` recomputed.
    """
    df = per_image.copy()
    if comparison is not None:
        if comparison not in COMPARISONS:
            raise ValueError(f"unknown comparison {comparison!r}; expected one of {COMPARISONS}")
        df["comparison"] = comparison
    static = df["kind"] == "static"
    if tau_cra_static is not None:
        df.loc[static, "cra_tau"] = float(tau_cra_static)
    if tau_cra_dynamic is not None:
        df.loc[~static, "cra_tau"] = float(tau_cra_dynamic)
    if tau_reuse is not None:
        df["vr_tau"] = float(tau_reuse)
    cmp = df["comparison"].to_numpy()
    sim = df["cra_sim"].to_numpy(np.float32)
    ctau = df["cra_tau"].to_numpy(np.float32)
    df["cra_pass"] = np.where(cmp == ">", sim > ctau, sim >= ctau)
    m = _cells_matrix(df)
    vtau = df["vr_tau"].to_numpy(np.float32)[:, None]
    reused = np.where((cmp == ">")[:, None], m > vtau, m >= vtau)
    df["vr"] = reused.mean(axis=1)
    df["vi"] = 1.0 - df["vr"]
    return df, aggregate_references(df, consistency_df)


def threshold_sweep(
    per_image, taus: Sequence[float] | None = None, *, metric: str = "cra", vary: str | None = None
):
    """Model-level means (over references) as one threshold varies: the sensitivity curves.

    Args:
        per_image: the per-image table.
        taus: thresholds to try (default 0.30..0.95 in steps of 0.025).
        metric: ``"cra"``, ``"vr"`` (mean VR over all images) or ``"crt"``.
        vary: ``"tau_cra"`` (the same value for static and dynamic) or ``"tau_reuse"``; default
            ``"tau_reuse"`` for ``vr`` and ``"tau_cra"`` otherwise.  The other threshold keeps
            the table's value.

    Returns:
        DataFrame ``model, variant, kind, tau, metric, vary, value``.
    """
    import pandas as pd

    if metric not in ("cra", "vr", "crt"):
        raise ValueError(f"unknown metric {metric!r}; expected 'cra', 'vr' or 'crt'")
    vary = vary or ("tau_reuse" if metric == "vr" else "tau_cra")
    if vary not in ("tau_cra", "tau_reuse"):
        raise ValueError(f"unknown vary {vary!r}; expected 'tau_cra' or 'tau_reuse'")
    taus = np.round(np.arange(0.30, 0.9501, 0.025), 4) if taus is None else np.asarray(taus, dtype=float)
    sim = per_image["cra_sim"].to_numpy(np.float32)
    m = _cells_matrix(per_image)
    cmp = per_image["comparison"].to_numpy()
    strict = cmp == ">"
    keys = per_image[["model", "variant", "kind", "slug"]].reset_index(drop=True)
    out = []
    for tau in taus:
        t = np.float32(tau)
        ctau = np.full(len(sim), t) if vary == "tau_cra" else per_image["cra_tau"].to_numpy(np.float32)
        vtau = (np.full(len(sim), t) if vary == "tau_reuse" else per_image["vr_tau"].to_numpy(np.float32))[
            :, None
        ]
        p = np.where(strict, sim > ctau, sim >= ctau)
        vr = np.where(strict[:, None], m > vtau, m >= vtau).mean(axis=1)
        value = {"cra": p.astype(float), "vr": vr, "crt": p * (1.0 - vr)}[metric]
        frame = keys.assign(value=value)
        per_ref = frame.groupby(["model", "variant", "kind", "slug"], sort=True)["value"].mean().reset_index()
        per_model = per_ref.groupby(["model", "variant", "kind"], sort=True)["value"].mean().reset_index()
        out.append(per_model.assign(tau=float(tau), metric=metric, vary=vary))
    cols = ["model", "variant", "kind", "tau", "metric", "vary", "value"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def cell_mode_comparison(crop, tokens, tau: float | None = None, comparison: str | None = None):
    """Compare the ``cells="crop"`` and ``cells="tokens"`` per-image tables of the same images.

    Args:
        crop, tokens: per-image tables (or :class:`ScoreResult`) scored with each cell mode.
        tau, comparison: the reuse threshold and comparison (default: the crop table's).

    Returns:
        ``(summary, per_image)``: :func:`~iconicity_utils.realization.cell_mode_agreement` over all
        images, and a table with ``vr_crop``, ``vr_tokens``, ``vr_mean_crop``, ``vr_mean_tokens``.
    """
    from iconicity_utils.realization import cell_mode_agreement

    a = getattr(crop, "per_image", crop)
    b = getattr(tokens, "per_image", tokens)
    keys = ["model", "variant", "slug", "index"]
    if set(a["vr_cells_mode"]) != {"crop"} or set(b["vr_cells_mode"]) != {"tokens"}:
        raise ValueError("pass a crop-mode table first and a tokens-mode table second")
    merged = a[[*keys, "kind", "vr", "vr_mean", "vr_cells"]].merge(
        b[[*keys, "vr", "vr_mean", "vr_cells"]], on=keys, suffixes=("_crop", "_tokens"), validate="one_to_one"
    )
    if len(merged) != len(a) or len(merged) != len(b):
        raise ValueError(
            f"the two tables cover different images ({len(a)} vs {len(b)}, {len(merged)} shared)"
        )
    tau = float(a["vr_tau"].iloc[0]) if tau is None else tau
    comparison = str(a["comparison"].iloc[0]) if comparison is None else comparison
    summary = cell_mode_agreement(
        np.stack(merged["vr_cells_crop"]), np.stack(merged["vr_cells_tokens"]), tau, comparison
    )
    return summary, merged.drop(columns=["vr_cells_crop", "vr_cells_tokens"])


# --------------------------------------------------------------------------------------------
# Front door 1: a whole study (generation manifest + references table)
# --------------------------------------------------------------------------------------------


def _study_work(cfg, opts: ScoringOptions, variants: Sequence[str] | None):
    import pandas as pd

    from iconicity_utils.io import read_table
    from iconicity_utils.recognition import reference_files

    manifest = read_table(cfg.generations_manifest)
    lacking = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
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
    work = work.groupby(["model", "variant", "slug"], sort=False).head(opts.k_gen).copy()
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
        try:
            paths = reference_files(cfg.reference_dir(kind, slug), kind)
        except FileNotFoundError as exc:
            raise ScoringInputError(str(exc)) from exc
        references[slug] = ReferenceSet(slug, kind, paths)
    return pd.DataFrame(work).reset_index(drop=True), references


def _write(result: ScoreResult, out_dir: Path, cfg, **extra) -> dict[str, Path]:
    from iconicity_utils.io import write_table

    meta = {
        "stage": "03-04 scoring",
        "options": asdict(result.options),
        "encoders": result.encoders,
        "skipped": result.skipped,
        **extra,
    }
    paths = {}
    for name, df in (
        (PER_IMAGE, result.per_image),
        (PER_REFERENCE, result.per_reference),
        (PER_MODEL, result.per_model),
    ):
        paths[name] = write_table(df, out_dir / name, cfg, **meta)
    return paths


def score(
    cfg,
    *,
    variants: Sequence[str] | None = None,
    encoders: dict[str, Any] | None = None,
    write: bool = True,
    progress=None,
    **overrides: Any,
) -> ScoreResult:
    """Score every generated image of a study: CRA, VR/VI, CRT, consistency and baselines.

    Reads ``cfg.generations_manifest`` and ``cfg.references_table`` (kinds), takes reference
    images from ``cfg.reference_dir(kind, slug)`` (static: first file; dynamic: all), caches
    features under ``cfg.path("cache")``, and writes the three tables to ``cfg.results_dir``.

    Args:
        cfg: the study config.
        variants: score only these prompt variants (default: all in the manifest).
        encoders: already loaded encoders by registry name (default: load them).
        write: write the tables.
        progress: optional ``progress(done, total)`` callable.
        **overrides: replace single :class:`ScoringOptions` fields (e.g. ``cells="tokens"``).

    Raises:
        ScoringInputError: a missing or malformed manifest / references table / image (named).
        EncoderLoadError / EncoderError: an encoder cannot load or fails (named, never skipped).
    """
    from iconicity_utils.registry import Registry

    opts = ScoringOptions.from_config(cfg, **overrides)
    work, references = _study_work(cfg, opts, variants)
    result = score_work(
        work,
        references,
        opts,
        cache_dir=cfg.path("cache"),
        registry=Registry.for_config(cfg),
        encoders=encoders,
        progress=progress,
        store_path=cfg.relative,
    )
    if write:
        result.paths = _write(result, cfg.results_dir, cfg)
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


def score_folders(
    refdir: str | Path,
    gendir: str | Path,
    prompts_csv: str | Path,
    *,
    kind: str,
    k_gen: int = 50,
    slug_col: str = "label_clean",
    models: Sequence[str] | None = None,
    variant: str = "title",
    dedup: bool = True,
    phash_threshold: int = 18,
    config=None,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    encoders: dict[str, Any] | None = None,
    **overrides: Any,
) -> ScoreResult:
    """Score image sets in the authors' folder layout.

    Layout: ``refdir/<slug>/*`` reference images; ``gendir/<model>/<slug>/*`` generated images;
    ``prompts_csv`` with a ``label_clean`` column (the whitelist).  Folder names and labels are
    matched after :func:`norm_slug`; a reference is scored for a model when it is in the
    whitelist, the model's folder and ``refdir``.  At most ``k_gen`` generated images per slug are
    taken, in sorted file-name order.  Static references use their first file; dynamic ones all
    files, after pHash deduplication (Hamming ``<= phash_threshold``, first kept) when ``dedup``,
    with the counts recorded (``n_ref_before``, ``n_ref_kept``, ``n_ref_dups_removed``).

    Args:
        refdir, gendir, prompts_csv: the three inputs.
        kind: ``"static"`` or ``"dynamic"`` (one kind per call, as the authors' ``--mode``).
        k_gen: max generated images per slug (the scripts' default 50).
        slug_col: the whitelist column.
        models: only these model folders (default: every folder in ``gendir``).
        variant: the value written in the ``variant`` column.
        dedup: pHash-deduplicate dynamic references.
        phash_threshold: dedup Hamming threshold (the scripts' 18).
        config: a study config (object or path) supplying encoders, thresholds and modes
            (default: ``configs/paper.yaml``).
        out_dir: write the three tables here (default: do not write).
        cache_dir: feature cache (default: the config's ``paths.cache``).
        encoders: already loaded encoders by registry name.
        **overrides: replace single :class:`ScoringOptions` fields (``tau_reuse=0.5``, ...).
    """
    import pandas as pd

    from iconicity_utils.config import load_config
    from iconicity_utils.images import dedup_phash, list_images
    from iconicity_utils.registry import PROJECT_ROOT, Registry

    if kind not in KINDS:
        raise ValueError(f"unknown reference kind {kind!r}; expected one of {KINDS}")
    if config is None:
        config = PROJECT_ROOT / "configs" / "paper.yaml"
    cfg = config if hasattr(config, "thresholds") else load_config(config)
    opts = ScoringOptions.from_config(cfg, k_gen=k_gen, **overrides)
    refdir, gendir, prompts_csv = Path(refdir), Path(gendir), Path(prompts_csv)
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
    ref_index = _slug_dirs(refdir)
    if not gendir.is_dir():
        raise ScoringInputError(f"folder not found: {gendir}")
    model_dirs = sorted(p for p in gendir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if models is not None:
        absent = sorted(set(models) - {p.name for p in model_dirs})
        if absent:
            raise ScoringInputError(f"model folders {absent} not found in {gendir}")
        model_dirs = [p for p in model_dirs if p.name in set(models)]
    rows, references = [], {}
    for mdir in model_dirs:
        gen_index = _slug_dirs(mdir)
        for norm in sorted(set(labels) & set(gen_index) & set(ref_index)):
            files = list_images(gen_index[norm])[:k_gen]
            if not files:
                continue
            slug = ref_index[norm].name
            if slug not in references:
                references[slug] = _folder_refs(
                    ref_index[norm], slug, kind, dedup, phash_threshold, dedup_phash
                )
            for i, f in enumerate(files):
                rows.append(
                    {
                        "model": mdir.name,
                        "variant": variant,
                        "slug": slug,
                        "index": i,
                        "seed": pd.NA,
                        "prompt": labels[norm],
                        "path": f.as_posix(),
                        "abs_path": str(f),
                    }
                )
    if not rows:
        raise ScoringInputError(
            f"nothing to score: no slug is in the whitelist ({prompts_csv}), a model folder of {gendir} "
            f"and {refdir} at once"
        )
    work = pd.DataFrame(rows)
    result = score_work(
        work,
        references,
        opts,
        cache_dir=cache_dir if cache_dir is not None else cfg.path("cache"),
        registry=Registry.for_config(cfg),
        encoders=encoders,
    )
    if out_dir is not None:
        result.paths = _write(
            result,
            Path(out_dir),
            cfg,
            inputs={
                "refdir": str(refdir),
                "gendir": str(gendir),
                "prompts_csv": str(prompts_csv),
                "kind": kind,
            },
        )
    return result


def _folder_refs(
    folder: Path, slug: str, kind: str, dedup: bool, threshold: int, dedup_phash
) -> ReferenceSet:
    from iconicity_utils.images import list_images

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


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m iconicity_utils.scoring``: score a study (``--config``) or folders (``--refdir``...)."""
    parser = argparse.ArgumentParser(
        prog="python -m iconicity_utils.scoring",
        description="Score generated images: CRA (recognition), VR/VI (realization), CRT and baselines.",
    )
    parser.add_argument("--config", help="study config (encoders, thresholds, modes); alone: score the study")
    parser.add_argument("--refdir", help="reference images, one folder per slug (authors' layout)")
    parser.add_argument("--gendir", help="generated images, <model>/<slug>/*")
    parser.add_argument("--prompts", help="prompt CSV with the slug whitelist column")
    parser.add_argument(
        "--kind", choices=KINDS, help="static (first reference file) or dynamic (all, deduplicated)"
    )
    parser.add_argument("--slug-col", default="label_clean")
    parser.add_argument("--k-gen", type=int, default=50, help="max generated images per slug (default 50)")
    parser.add_argument(
        "--model", action="append", dest="models", help="score only this model folder (repeatable)"
    )
    parser.add_argument("--no-dedup", action="store_true", help="do not pHash-deduplicate dynamic references")
    parser.add_argument(
        "--out", default="scores", help="output folder for the folder scorer (default: scores/)"
    )
    parser.add_argument("--cache", help="feature cache folder (default: the config's paths.cache)")
    parser.add_argument("--tau-cra", type=float, help="override the CRA threshold of --kind")
    parser.add_argument("--tau-reuse", type=float)
    parser.add_argument("--comparison", choices=COMPARISONS)
    parser.add_argument("--cells", choices=CELL_MODES)
    parser.add_argument("--device", help="override encoders.device")
    parser.add_argument("--num-workers", type=int)
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {}
    for key in ("tau_reuse", "comparison", "cells", "device", "num_workers"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if overrides.get("device") and not str(overrides["device"]).startswith("cuda"):
        overrides["precision"] = "fp32"
    folder_mode = any(getattr(args, k) for k in ("refdir", "gendir", "prompts"))
    try:
        if folder_mode:
            missing = [f"--{k}" for k in ("refdir", "gendir", "prompts", "kind") if not getattr(args, k)]
            if missing:
                parser.error(f"folder scoring needs {', '.join(missing)}")
            if args.tau_cra is not None:
                overrides[f"tau_cra_{args.kind}"] = args.tau_cra
            result = score_folders(
                args.refdir,
                args.gendir,
                args.prompts,
                kind=args.kind,
                k_gen=args.k_gen,
                slug_col=args.slug_col,
                models=args.models,
                dedup=not args.no_dedup,
                config=args.config,
                out_dir=args.out,
                cache_dir=args.cache,
                **overrides,
            )
        else:
            if not args.config:
                parser.error(
                    "give --config to score a study, or --refdir/--gendir/--prompts/--kind for folders"
                )
            from iconicity_utils.config import load_config

            if args.tau_cra is not None:
                overrides.update(tau_cra_static=args.tau_cra, tau_cra_dynamic=args.tau_cra)
            result = score(load_config(args.config), **overrides)
    except (ScoringInputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    for path in result.paths.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
