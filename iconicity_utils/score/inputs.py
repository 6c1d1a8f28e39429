"""The input check of scoring and the bad-input policy: which images and references are scored.

Before any encoder runs, every input image is checked once (:func:`check_inputs`, split between
processes: :func:`~iconicity_utils.core.images.check_image_file`: missing, empty, not an image,
truncated, too large, smaller than the grid); an image whose features are all cached already
passed this check and is not decoded again.  :func:`apply_policy` then follows
``scoring.on_bad_image`` (generated images: skip and record, by default) and
``scoring.on_bad_reference`` (drop the reference and record why, by default); ``"stop"``
raises after listing every problem, ``"strict"`` at the first.  What was not scored is the
skipped table (:data:`SKIPPED_COLUMNS`, written as :data:`SKIPPED`).

Also here: the references one slug is scored against (:class:`ReferenceSet`,
:func:`reference_files`) and the columns a scoring work table must have (:data:`WORK_COLUMNS`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from iconicity_utils.core.images import check_image_file, list_images
from iconicity_utils.core.launch import Processes
from iconicity_utils.metrics.recognition import check_kind
from iconicity_utils.score.errors import BadInputError, ScoringInputError
from iconicity_utils.score.features import content_hash

__all__ = [
    "SKIPPED",
    "SKIPPED_COLUMNS",
    "WORK_COLUMNS",
    "LISTED",
    "ReferenceSet",
    "Checked",
    "reference_files",
    "check_work",
    "check_inputs",
    "apply_policy",
    "problem_lines",
]

SKIPPED = "scores_skipped.parquet"
#: the skipped table: one row per input not scored (``role`` is ``"generated"`` or ``"reference"``)
SKIPPED_COLUMNS = ["role", "model", "variant", "slug", "index", "path", "reason", "detail", "action"]


#: the identity of each generated image in a scoring work table (a study's generation manifest,
#: whose full column list is :data:`iconicity_utils.generate.manifest.MANIFEST_COLUMNS`, must have these)
WORK_COLUMNS = ("model", "variant", "slug", "index", "seed", "prompt", "path")


#: problems listed in full in an error message or a summary (the skipped table has them all)
LISTED = 20


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


def check_work(work, references: dict[str, ReferenceSet]) -> None:
    missing = sorted(set(work["slug"]) - set(references))
    if missing:
        raise ScoringInputError(f"generated images for references with no reference images: {missing[:10]}")


@dataclass
class Checked:
    """What the check found, the same on every process: content hashes, problems, notes."""

    keys: dict[str, str] = field(default_factory=dict)  # usable path -> content hash
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (reason, detail)
    notes: dict[str, str] = field(default_factory=dict)  # usable path -> how it was read
    cached: set[str] = field(default_factory=set)  # hashes whose every feature is cached


def _check_one(path: str, grid: tuple[int, int]) -> tuple[str | None, str, str]:
    check = check_image_file(path, grid)
    return check.reason, check.detail, check.note


def _check_share(paths: list[tuple[int, str]], strict: set[str], features, cfg) -> list[tuple]:
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
    workers = cfg.scoring.num_workers
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


def check_inputs(work, references: dict[str, ReferenceSet], features, cfg, dist: Processes) -> Checked:
    """Check every input image once (split between processes), before any encoder runs."""
    r = cfg.scoring
    ref_paths = [str(p) for slug in sorted(references) for p in references[slug].paths]
    gen_paths = list(work["abs_path"].astype(str))
    paths = list(dict.fromkeys(ref_paths + gen_paths))
    strict = (set(ref_paths) if r.on_bad_reference == "strict" else set()) | (
        set(gen_paths) if r.on_bad_image == "strict" else set()
    )
    mine = dist.split(list(enumerate(paths)))
    found = dist.gather(_check_share(mine, strict, features, cfg))
    checked = Checked()
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


def problem_lines(skipped, limit: int = LISTED) -> str:
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


def apply_policy(work, references, checked: Checked, cfg, store_path):
    """Drop what the check found bad, as the config says; returns ``(work, references, skipped)``.

    Raises:
        BadInputError: a problem under ``"stop"`` (every problem listed) or ``"strict"``.
    """

    r = cfg.scoring
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
        modes = f"scoring.on_bad_image = {r.on_bad_image!r}, on_bad_reference = {r.on_bad_reference!r}"
        raise BadInputError(
            f"{len(skipped)} inputs cannot be scored ({modes}):\n{problem_lines(skipped)}", skipped
        )
    keep = ~bad_gen & ~work["slug"].isin(dropped.keys())
    if not keep.any():
        raise BadInputError(
            f"nothing to score: every one of the {len(work)} generated images is bad or has a dropped "
            f"reference:\n{problem_lines(skipped)}",
            skipped,
        )
    kept = work[keep].copy()
    kept["key"] = [checked.keys[str(p)] for p in kept["abs_path"]]
    return kept, {s: ref for s, ref in references.items() if s not in dropped}, skipped
