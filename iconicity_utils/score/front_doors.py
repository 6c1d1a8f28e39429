"""The three scoring front doors, one per job, all running through one engine (:func:`~iconicity_utils.score.engine.score_work`).

- :func:`score`: a whole study, from the generation manifest and the references table;
- :func:`score_folders`: a user's folders in the authors' layout (``refdir/<slug>/``,
  ``gendir/<model>/<slug>/``, a prompt CSV);
- :func:`score_images`: a handful of images in memory or on disk against one reference.

Every methodological choice comes from the study config's own sections (``thresholds``,
``realization``, ``encoders``; docs/method.md §9); to change one, pass
``cfg.with_overrides(realization={"cells": "tokens"})``, validated like the file.  Each image is
decoded once; reference images are embedded once per encoder and cached on disk with every other
feature, so a re-score makes no forward pass.  Bad or missing images are skipped and recorded, or
stop the run, as ``scoring.on_bad_image`` / ``on_bad_reference`` say
(:mod:`iconicity_utils.score.inputs`).  Re-thresholding and aggregation live in
:mod:`iconicity_utils.score.tables`.

Outputs (``write=True``), in ``cfg.results_dir`` (or ``out_dir``):

- ``scores_per_image.parquet``: one row per scored generated image, **including** images that
  fail recognition (:data:`~iconicity_utils.score.writer.PER_IMAGE_COLUMNS`);
- ``scores_per_reference.parquet``: per (model, variant, reference): ``n_images`` (scored),
  ``n_skipped``, ``cra``, ``vi_mean`` (over recognised images), ``crt``, ``consistency`` (ours), ...;
- ``scores_per_model.parquet``: per (model, variant, kind) and metric, the mean over references
  with a bootstrap 95 % CI over references (fixed seed);
- ``scores_skipped.parquet``: every input that was not scored, with its path, the reason
  (:data:`~iconicity_utils.core.images.INPUT_PROBLEMS`, or ``reference_dropped``) and the detail.

Command line (:mod:`iconicity_utils.score.cli`)::

    python -m iconicity_utils score --config configs/demo.yaml
    accelerate launch --multi_gpu --num_processes 4 -m iconicity_utils score --config configs/paper.yaml
    python -m iconicity_utils score --refdir REF --gendir GEN --prompts prompts.csv --kind static \\
        [--config configs/paper.yaml] [--k-gen 50] [--out scores/]
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from iconicity_utils.config import load_config
from iconicity_utils.core.constants import KINDS
from iconicity_utils.core.images import dedup_phash, list_images
from iconicity_utils.core.io import read_table
from iconicity_utils.metrics.recognition import check_kind
from iconicity_utils.registry import PROJECT_ROOT, Registry
from iconicity_utils.score.engine import score_work
from iconicity_utils.score.errors import ScoringInputError
from iconicity_utils.score.inputs import WORK_COLUMNS, ReferenceSet, reference_files
from iconicity_utils.score.result import ScoreResult

__all__ = ["study_config", "norm_slug", "score", "score_folders", "score_images"]


def study_config(config):
    """A study config object, a path to one, or None (the paper config)."""
    if config is None:
        config = PROJECT_ROOT / "configs" / "paper.yaml"
    return config if hasattr(config, "thresholds") else load_config(config)


def _control_kinds(cfg, kinds: dict[str, str]) -> dict[str, str]:
    """The kinds of stage 01's matched controls (``cfg.controls_table``, when it exists): stage 05's
    ``control-literal`` images are scored against the controls' own references."""
    if not cfg.controls_table.exists():
        return {}
    table = read_table(cfg.controls_table)
    for col in ("slug", "kind"):
        if col not in table.columns:
            raise ScoringInputError(f"{cfg.controls_table}: controls table lacks column {col!r}")
    out = dict(zip(table["slug"], table["kind"], strict=True))
    clash = sorted(s for s in set(out) & set(kinds) if out[s] != kinds[s])
    if clash:
        raise ScoringInputError(
            f"{cfg.controls_table}: slugs {clash[:5]} have another kind in {cfg.references_table}"
        )
    return out


def _study_work(cfg, variants: Sequence[str] | None):
    """The study's work table (first ``k_gen`` images per group) and its references."""
    manifest = read_table(cfg.generations_manifest)
    lacking = [c for c in WORK_COLUMNS if c not in manifest.columns]
    if lacking:
        raise ScoringInputError(f"{cfg.generations_manifest}: generation manifest lacks columns {lacking}")
    refs_table = read_table(cfg.references_table)
    for col in ("slug", "kind"):
        if col not in refs_table.columns:
            raise ScoringInputError(f"{cfg.references_table}: references table lacks column {col!r}")
    kinds = dict(zip(refs_table["slug"], refs_table["kind"], strict=True))
    kinds.update(_control_kinds(cfg, kinds))
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
            " (nor in the controls table)"
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
        except ScoringInputError as exc:  # dropped or stopping, as scoring.on_bad_reference says
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
    as ``scoring.on_bad_image`` / ``on_bad_reference`` say.  Runs on several processes
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


def norm_slug(name: str) -> str:
    """The authors' slug normalisation: strip, spaces -> ``_``, lower case."""
    return str(name).strip().replace(" ", "_").lower()


def _slug_dirs(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise ScoringInputError(f"folder not found: {root}")
    return {norm_slug(p.name): p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def _whitelist(prompts_csv: Path, slug_col: str) -> dict[str, str]:
    """Normalised slug -> label, from the prompt CSV's whitelist column."""
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
    (``scoring.on_bad_image`` / ``on_bad_reference``).  A skipped image is not replaced by the
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
    cfg = study_config(config)
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

    Example (on the demo's random-weight stand-ins: only the encoder-free numbers are real):
        >>> from PIL import Image
        >>> from skimage import data
        >>> from iconicity_utils.registry import PROJECT_ROOT
        >>> ref = Image.fromarray(data.astronaut())
        >>> res = score_images([ref, ref.rotate(90)], [ref], kind="static",
        ...                    config=PROJECT_ROOT / "configs" / "demo.yaml")
        >>> res.per_image[["cra_sim", "vr", "phash_dist"]].iloc[0].round(6).tolist()  # the exact copy
        [1.0, 1.0, 0.0]
        >>> int(res.per_image["phash_dist"].iloc[1])  # the rotation, 24 of 64 bits apart
        24
    """
    check_kind(kind)
    cfg = study_config(config)
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
