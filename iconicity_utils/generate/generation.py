"""Stage 02: a resumable, deterministic, distributed image-generation harness on diffusers.

One front door, :func:`generate`, turns prompts into ``n_images`` PNGs per prompt for every model
of a study config.  The same code runs in a notebook kernel's subprocess, on the command line and
under ``accelerate launch`` for several processes or GPUs::

    python -m iconicity_utils.generate.generation --config configs/demo.yaml
    accelerate launch --multi_gpu --num_processes 2 -m iconicity_utils.generate.generation --config ...

(On CPU, with ``generation.device: cpu``, the two processes talk over gloo.)

**Work units.**  A unit is ``(model, variant, slug, index)``.  Its prompt comes from the prompt
table (the base variant ``title`` is the reference's ``label_clean``, see :func:`title_prompts`;
stage 05 passes further ``(slug, variant, prompt)`` rows).  Its seed is a function of the unit
only (:func:`unit_seed`), never of the process rank or the order of execution, and drives a CPU
``torch.Generator`` (diffusers' reproducibility advice).  Two named seed modes:

- ``"hash"``: ``seed = (H63(variant, slug, index) + base_seed) mod 2**63``, where ``H63`` is the
  first 8 bytes of the SHA-256 of the JSON text ``[variant, slug, index]``, shifted right by one
  bit: independent noise for every unit.
- ``"index"``: ``seed = base_seed + index``: the same noise for a title and its perturbed
  variants, which pairs each original image with its counterpart.

**Output.**  Each image is ``cfg.generated_path(model, variant, slug, index)``, written atomically
(temporary file, fsync, rename).  Its PNG text chunks hold everything about the unit and the run
(prompt, seed, model id, revision, pipeline class, steps, guidance, scheduler, dtype, device,
package versions; :data:`PNG_FIELDS`), in a fixed order and without a time stamp, so the same
unit on the same machine gives the same bytes.  **The PNGs are the source of truth**: the manifest
``cfg.generations_manifest`` is derived from them (:func:`rebuild_manifest`) by the main process
once every process has finished, so a crash can never leave a manifest row without an image or a
duplicated row.

**Resumption.**  On a rerun, a unit whose PNG exists, decodes, ends with the PNG ``IEND`` chunk and
whose metadata matches the unit (:data:`IDENTITY_FIELDS`) is skipped; a truncated, unreadable or
mismatched file is regenerated.  Killing the process at any point (SIGKILL included) and running
again ends with every unit present exactly once.  Leftover temporary files are removed.

**Distribution.**  Every process scans the same files before any is written; the existing files
are verified in parallel (``split_between_processes``) and the verdicts gathered, so all
processes agree on the pending units.  The pending units of a model are cut into batches in one
canonical order, and the *batches* are split between processes with accelerate's
``PartialState().split_between_processes``.  Every process writes its own units; no gather of
images is needed.

**Batching and exactness.**  Several units in one pipeline call get exactly the initial noise they
would get alone (one generator per unit), but CPU kernels accumulate in an order that depends on
the batch shape, so pixels can differ from a one-by-one run by float rounding (at most one 8-bit
level, and only in a few pixels; the tests bound it).  Because batches are formed before they are
split, a run with one process and a run with two give byte-identical images (same threads per
process, same machine).  ``batch_size: 1`` makes every image independent of its batch.

Example:
    >>> from iconicity_utils.config import load_config            # doctest: +SKIP
    >>> from iconicity_utils.generate.generation import generate            # doctest: +SKIP
    >>> summary = generate(load_config("configs/demo.yaml"))       # doctest: +SKIP
    >>> print(summary)                                             # doctest: +SKIP
    160 units: 160 generated (0 of them replaced a bad file), 0 skipped, 0 failed; 21.3 s in all,
    9.06 images/s in the generation loop (1 process); manifest: 160 rows in results/demo/generations.parquet
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import hashlib
import io
import json
import logging
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from iconicity_utils.core.io import atomic_write_bytes, atomic_write_json, read_table, write_table
from iconicity_utils.core.launch import launch_command
from iconicity_utils.registry import STANDIN_LABEL, ModelSpec, Registry, is_local, load_pipeline

if TYPE_CHECKING:
    import pandas as pd

    from iconicity_utils.config import StudyConfig

__all__ = [
    "SEED_MODES",
    "VERIFY_MODES",
    "PNG_FIELDS",
    "IDENTITY_FIELDS",
    "MANIFEST_COLUMNS",
    "BASE_VARIANT",
    "WorkUnit",
    "GenerationSummary",
    "unit_seed",
    "title_prompts",
    "load_prompts",
    "plan_units",
    "expected_metadata",
    "read_png_metadata",
    "check_image",
    "encode_png",
    "rebuild_manifest",
    "generate",
    "run_subprocess",
    "gallery_figure",
    "main",
]

logger = logging.getLogger(__name__)

SEED_MODES = ("hash", "index")
#: ``"decode"`` decodes every existing image on resume; ``"header"`` reads its metadata and checks
#: that the file ends with the PNG ``IEND`` chunk (catches truncation, not corruption inside).
VERIFY_MODES = ("decode", "header")
#: the variant whose prompt is the reference's bare English title (``label_clean``)
BASE_VARIANT = "title"
#: the format tag written into every PNG
FORMAT = "iconicity-generation/1"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_SEED_MOD = 2**63

#: PNG text chunks, in the order written, with their types.  A field whose value is None is omitted.
PNG_FIELDS: dict[str, type] = {
    "format": str,
    "prompt": str,
    "model": str,
    "variant": str,
    "slug": str,
    "index": int,
    "seed": int,
    "seed_mode": str,
    "model_id": str,
    "revision": str,
    "pipeline": str,
    "scheduler": str,
    "steps": int,
    "guidance": float,
    "height": int,
    "width": int,
    "dtype": str,
    "device": str,
    "device_name": str,
    "num_threads": int,
    "batch_size": int,
    "diffusers": str,
    "torch": str,
    "transformers": str,
    "note": str,
}
#: the fields that must match the unit (and the model's current settings) for a file to count as done;
#: the others (device, versions, scheduler class, batch size) record what ran.
IDENTITY_FIELDS = (
    "format",
    "prompt",
    "model",
    "variant",
    "slug",
    "index",
    "seed",
    "seed_mode",
    "model_id",
    "revision",
    "steps",
    "guidance",
    "height",
    "width",
    "dtype",
)
#: manifest columns (``path`` is relative to the project root, POSIX); ``write_table`` adds ``note``
#: for stand-in configs.
MANIFEST_COLUMNS = [
    "model",
    "variant",
    "slug",
    "index",
    "seed",
    "seed_mode",
    "prompt",
    "path",
    "model_id",
    "revision",
    "pipeline",
    "scheduler",
    "steps",
    "guidance",
    "height",
    "width",
    "dtype",
    "device",
    "device_name",
    "num_threads",
    "batch_size",
    "diffusers",
    "torch",
    "transformers",
]

_SAFE_NAME = re.compile(r"^[^/\\\x00]+$")


# --------------------------------------------------------------------------------------------
# Seeds and work units
# --------------------------------------------------------------------------------------------


def unit_seed(
    variant: str, slug: str, index: int, mode: Literal["hash", "index"] = "hash", base_seed: int = 0
) -> int:
    """The seed of one work unit: a function of (variant, slug, index) only, never of the rank.

    Args:
        variant: prompt variant (``"title"`` for the base prompt).
        slug: the reference's slug.
        index: image index, ``0 <= index < n_images``.
        mode: ``"hash"``: ``(H63(variant, slug, index) + base_seed) mod 2**63`` with ``H63`` the
            first 8 bytes (big-endian) of ``sha256(json.dumps([variant, slug, index]))`` shifted
            right by one bit; ``"index"``: ``base_seed + index`` (the same noise across prompts).
        base_seed: offset added in both modes.

    Returns:
        A non-negative integer below ``2**63`` (fits an int64 column and ``manual_seed``).
    """
    if mode == "hash":
        text = json.dumps([variant, slug, int(index)], ensure_ascii=False)
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        return ((int.from_bytes(digest[:8], "big") >> 1) + int(base_seed)) % _SEED_MOD
    if mode == "index":
        seed = int(base_seed) + int(index)
        if not 0 <= seed < _SEED_MOD:
            raise ValueError(f"seed base_seed + index = {seed} is outside [0, 2**63)")
        return seed
    raise ValueError(f"unknown seed_mode {mode!r}; expected one of {SEED_MODES}")


@dataclass(frozen=True, order=True)
class WorkUnit:
    """One image to generate.  Units sort in the canonical order (model, variant, slug, index)."""

    model: str
    variant: str
    slug: str
    index: int
    prompt: str = field(compare=False)
    seed: int = field(compare=False)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.model, self.variant, self.slug, self.index)


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------


def title_prompts(cfg: StudyConfig) -> pd.DataFrame:
    """The base prompts: one row ``(slug, variant="title", prompt=label_clean)`` per reference.

    Raises:
        FileNotFoundError: the references table (stage 01 output) does not exist.
        ValueError: a required column is missing, or a row has an empty title (names the slug).
    """
    import pandas as pd

    path = cfg.references_table
    refs = read_table(path)
    missing = [c for c in ("slug", "label_clean") if c not in refs.columns]
    if missing:
        raise ValueError(f"{path}: references table lacks column(s) {missing}; found {list(refs.columns)}")
    out = pd.DataFrame(
        {"slug": refs["slug"].astype(object), "variant": BASE_VARIANT, "prompt": refs["label_clean"]}
    )
    return _validate_prompts(out, str(path))


def _validate_prompts(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a prompt table: columns, non-empty strings, safe names, one prompt per (slug, variant)."""
    missing = [c for c in ("slug", "variant", "prompt") if c not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: prompt table lacks column(s) {missing}; "
            f"expected slug, variant, prompt, found {list(df.columns)}"
        )
    df = df[["slug", "variant", "prompt"]].reset_index(drop=True)
    for i, row in enumerate(df.itertuples(index=False)):
        for name in ("slug", "variant"):
            value = getattr(row, name)
            if not isinstance(value, str) or not _SAFE_NAME.match(value) or value.startswith("."):
                raise ValueError(
                    f"{source}: row {i}: {name} {value!r} is not a usable folder name "
                    "(a non-empty string without '/', '\\' or a leading '.')"
                )
        if not isinstance(row.prompt, str) or not row.prompt.strip():
            raise ValueError(
                f"{source}: row {i} (slug {row.slug!r}, variant {row.variant!r}): empty or missing prompt"
            )
    dup = df.duplicated(["slug", "variant"], keep=False)
    if dup.any():
        pairs = sorted({(s, v) for s, v in df.loc[dup, ["slug", "variant"]].itertuples(index=False)})
        raise ValueError(f"{source}: more than one prompt for (slug, variant) {pairs[:5]}")
    return df


def load_prompts(prompts: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A prompt table from a DataFrame or a ``.parquet`` / ``.csv`` file, validated.

    The table has one row per ``(slug, variant)`` with columns ``slug, variant, prompt`` (extra
    columns are ignored).  This is how stage 05 hands its perturbed prompts to :func:`generate`.
    """
    import pandas as pd

    if isinstance(prompts, pd.DataFrame):
        return _validate_prompts(prompts, "<prompts DataFrame>")
    path = Path(prompts)
    if not path.is_file():
        raise FileNotFoundError(f"prompt table not found: {path}")
    if path.suffix == ".parquet":
        df = read_table(path)
    elif path.suffix == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        raise ValueError(f"{path}: a prompt table must be .parquet or .csv")
    return _validate_prompts(df, str(path))


def _select_prompts(
    cfg: StudyConfig,
    prompts: pd.DataFrame | str | Path | None,
    variants: Sequence[str] | None,
    slugs: Sequence[str] | None,
) -> pd.DataFrame:
    """The (slug, variant, prompt) rows of this run."""
    if prompts is None:
        wanted = list(variants) if variants is not None else list(cfg.generation.variants)
        others = [v for v in wanted if v != BASE_VARIANT]
        if others:
            raise ValueError(
                f"variant(s) {others} have no prompts: only {BASE_VARIANT!r} comes from the references "
                "table; pass a prompt table (prompts=..., --prompts FILE) with slug, variant, prompt"
            )
        table = title_prompts(cfg) if wanted else title_prompts(cfg).iloc[0:0]
    else:
        table = load_prompts(prompts)
        if variants is not None:
            unknown = sorted(set(variants) - set(table["variant"]))
            if unknown:
                raise ValueError(
                    f"variant(s) {unknown} are not in the prompt table; it has {sorted(set(table['variant']))}"
                )
            table = table[table["variant"].isin(list(variants))]
    if slugs is not None:
        unknown = sorted(set(slugs) - set(table["slug"]))
        if unknown:
            raise ValueError(f"slug(s) {unknown[:10]} have no prompt in this run")
        table = table[table["slug"].isin(list(slugs))]
    return table.reset_index(drop=True)


def plan_units(
    cfg: StudyConfig,
    models: Sequence[str],
    prompts: pd.DataFrame,
    n_images: int | None = None,
) -> list[WorkUnit]:
    """Every work unit of a run, in the canonical order (model order as given, then variant, slug, index).

    Args:
        cfg: the study config (seed mode and base seed; ``n_images`` unless given).
        models: registry names of the models.
        prompts: a validated prompt table (``slug, variant, prompt``).
        n_images: images per prompt (default ``cfg.generation.n_images``).
    """
    n = cfg.generation.n_images if n_images is None else int(n_images)
    rows = sorted(prompts[["variant", "slug", "prompt"]].itertuples(index=False, name=None))
    units = []
    for model in models:
        for variant, slug, prompt in rows:
            for index in range(n):
                seed = unit_seed(variant, slug, index, cfg.generation.seed_mode, cfg.generation.base_seed)
                units.append(WorkUnit(model, variant, slug, index, prompt, seed))
    return units


# --------------------------------------------------------------------------------------------
# PNG metadata: write, read, verify
# --------------------------------------------------------------------------------------------


def _model_id(cfg: StudyConfig, spec: ModelSpec, registry: Registry) -> str:
    """What ``from_pretrained`` was given: a hub id, or a local path relative to the project root."""
    source = registry.resolve(spec)
    return cfg.relative(source) if is_local(source) else source


def _unit_fields(cfg: StudyConfig, unit: WorkUnit) -> dict[str, Any]:
    """The fields that identify one work unit in its PNG."""
    return {
        "format": FORMAT,
        "prompt": unit.prompt,
        "model": unit.model,
        "variant": unit.variant,
        "slug": unit.slug,
        "index": unit.index,
        "seed": unit.seed,
        "seed_mode": cfg.generation.seed_mode,
    }


def expected_metadata(
    cfg: StudyConfig, spec: ModelSpec, registry: Registry, unit: WorkUnit
) -> dict[str, Any]:
    """The identity fields (:data:`IDENTITY_FIELDS`) a finished image of ``unit`` must carry.

    ``revision`` is the *resolved* revision (:meth:`Registry.revision`: the hub commit, or the
    sha256 of a local model), so an image made from other weights is stale and is regenerated.
    """
    return {
        **_unit_fields(cfg, unit),
        "model_id": _model_id(cfg, spec, registry),
        "revision": registry.revision(spec).resolved,
        "steps": spec.steps,
        "guidance": float(spec.guidance),
        "height": spec.height,
        "width": spec.width,
        "dtype": spec.dtype,
    }


def encode_png(image, meta: dict[str, Any]) -> bytes:
    """PNG bytes of ``image`` with ``meta`` as text chunks in :data:`PNG_FIELDS` order (None omitted).

    No time stamp or other run-dependent chunk is written, so equal pixels and metadata give
    equal bytes.
    """
    from PIL import PngImagePlugin

    unknown = set(meta) - set(PNG_FIELDS)
    if unknown:
        raise ValueError(f"unknown PNG metadata field(s) {sorted(unknown)}; known: {list(PNG_FIELDS)}")
    info = PngImagePlugin.PngInfo()
    for name in PNG_FIELDS:
        value = meta.get(name)
        if value is not None:
            info.add_text(name, repr(value) if isinstance(value, float) else str(value))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _parse_fields(text: dict[str, Any], path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in PNG_FIELDS.items():
        raw = text.get(name)
        if raw is None:
            out[name] = None
            continue
        try:
            out[name] = kind(str(raw))
        except ValueError as exc:
            raise ValueError(f"{path}: PNG text field {name!r} = {raw!r} is not a {kind.__name__}") from exc
    return out


def read_png_metadata(path: str | Path, decode: bool = False) -> dict[str, Any]:
    """The typed :data:`PNG_FIELDS` of a generated image (missing fields are None).

    Args:
        path: the PNG file.
        decode: also decode the pixels (catches corruption anywhere in the file).

    Raises:
        OSError: the file is missing, not a PNG, truncated (no final ``IEND`` chunk) or, with
            ``decode``, does not decode; ValueError: a field does not parse.  Both name the path.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() < len(_IEND):
                raise OSError("file is too short to be a PNG")
            fh.seek(-len(_IEND), os.SEEK_END)
            if fh.read() != _IEND:
                raise OSError("the PNG does not end with an IEND chunk (truncated?)")
        with Image.open(path) as im:
            if im.format != "PNG":
                raise OSError(f"not a PNG but {im.format}")
            if decode:
                im.load()
            text = dict(im.info)
            text["_size"] = im.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise OSError(f"cannot read generated image {path}: {type(exc).__name__}: {exc}") from exc
    meta = _parse_fields(text, path)
    meta["_size"] = text["_size"]
    return meta


def check_image(path: str | Path, expected: dict[str, Any], mode: str = "decode") -> str | None:
    """Why the image at ``path`` does not count as a finished unit, or None if it does.

    Args:
        path: the PNG file.
        expected: identity fields, from :func:`expected_metadata`.
        mode: ``"decode"`` (decode the pixels) or ``"header"`` (metadata and ``IEND`` only).
    """
    if mode not in VERIFY_MODES:
        raise ValueError(f"unknown verify mode {mode!r}; expected one of {VERIFY_MODES}")
    try:
        meta = read_png_metadata(path, decode=mode == "decode")
    except (OSError, ValueError) as exc:
        return str(exc)
    for name, want in expected.items():
        if meta.get(name) != want:
            return f"{path}: metadata {name!r} is {meta.get(name)!r}, expected {want!r}"
    size = (expected.get("width"), expected.get("height"))
    if None not in size and meta["_size"] != size:
        return f"{path}: image size {meta['_size']} differs from the model's {size}"
    return None


# --------------------------------------------------------------------------------------------
# The manifest, derived from the PNGs on disk
# --------------------------------------------------------------------------------------------


def _generated_root(cfg: StudyConfig) -> Path:
    return cfg.path("data", "generated")


def _scan_pngs(root: Path) -> Iterable[Path]:
    """``<model>/<variant>/<slug>/<index>.png`` under ``root`` (hidden files skipped), sorted."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*/*/*/*.png") if not p.name.startswith("."))


def rebuild_manifest(cfg: StudyConfig, write: bool = True) -> pd.DataFrame:
    """Derive the generation manifest from the PNGs on disk (one row per image) and write it.

    Every ``<model>/<variant>/<slug>/<index>.png`` under the generated-images folder is read
    (metadata only, with the ``IEND`` truncation check).  A file that cannot be read, or whose
    metadata names another unit than its path, is left out with a warning: it is not a finished
    unit, and the next :func:`generate` regenerates it.

    Args:
        cfg: the study config.
        write: write the table to ``cfg.generations_manifest`` (atomically, with provenance).

    Returns:
        The manifest, sorted by (model, variant, slug, index), with :data:`MANIFEST_COLUMNS`.
    """
    import pandas as pd

    rows = []
    for path in _scan_pngs(_generated_root(cfg)):
        model, variant, slug = path.parts[-4:-1]
        try:
            meta = read_png_metadata(path)
        except (OSError, ValueError) as exc:
            logger.warning("manifest: skipping %s", exc)
            continue
        where = (meta["model"], meta["variant"], meta["slug"], str(meta["index"]))
        if where != (model, variant, slug, path.stem):
            logger.warning("manifest: skipping %s: its metadata names unit %s", path, where)
            continue
        row = {name: meta.get(name) for name in MANIFEST_COLUMNS if name != "path"}
        row["path"] = cfg.relative(path)
        rows.append(row)
    df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    df = df.sort_values(["model", "variant", "slug", "index"], kind="stable").reset_index(drop=True)
    for name in ("index", "seed", "steps", "height", "width", "num_threads", "batch_size"):
        df[name] = df[name].astype("int64")
    df["guidance"] = df["guidance"].astype("float64")
    if df.duplicated(["model", "variant", "slug", "index"]).any():  # pragma: no cover - one path per unit
        raise RuntimeError("manifest: duplicated units; this is a bug")
    if write:
        write_table(df, cfg.generations_manifest, cfg, stage="02_generation", images=len(df))
    return df


def _remove_orphan_temps(root: Path) -> int:
    """Delete temporary files left by a killed writer (``.<index>.png.*.tmp.png``); return how many."""
    if not root.is_dir():
        return 0
    removed = 0
    for tmp in root.glob("*/*/*/.*.tmp.png"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


# --------------------------------------------------------------------------------------------
# What ran
# --------------------------------------------------------------------------------------------


def _device_name(device) -> str:
    """The GPU's name, or the CPU model (from /proc/cpuinfo where there is one)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _run_fields(cfg: StudyConfig, spec: ModelSpec, registry: Registry, pipe, device) -> dict[str, Any]:
    """The PNG fields that describe the run of one model (the same for all its units)."""
    import diffusers
    import torch
    import transformers

    return {
        "model_id": _model_id(cfg, spec, registry),
        "revision": registry.revision(spec).resolved,  # what load_pipeline loaded: commit or sha256
        "pipeline": type(pipe).__name__,
        "scheduler": type(pipe.scheduler).__name__,
        "steps": spec.steps,
        "guidance": float(spec.guidance),
        "height": spec.height,
        "width": spec.width,
        "dtype": spec.dtype,
        "device": device.type,
        "device_name": _device_name(device),
        "num_threads": torch.get_num_threads(),
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "note": STANDIN_LABEL if spec.is_standin else None,
    }


def _call_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """The pipeline-call arguments the registry entry fixes."""
    kwargs: dict[str, Any] = {
        "num_inference_steps": spec.steps,
        "guidance_scale": spec.guidance,
        "height": spec.height,
        "width": spec.width,
        "output_type": "pil",
    }
    if spec.max_sequence_length is not None:
        kwargs["max_sequence_length"] = spec.max_sequence_length
    return kwargs


# --------------------------------------------------------------------------------------------
# The front door
# --------------------------------------------------------------------------------------------


@dataclass
class GenerationSummary:
    """What a :func:`generate` call did (over all processes)."""

    #: units requested
    total: int = 0
    #: images generated and written by this run (includes regenerated ones)
    done: int = 0
    #: units already present and valid, left alone
    skipped: int = 0
    #: units whose image existed but was unreadable, truncated or stale, and so was regenerated
    regenerated: int = 0
    #: units whose pipeline call or write failed (see ``failures``)
    failed: int = 0
    #: ``{"model", "variant", "slug", "index", "error"}`` per failed unit
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: wall time of the whole call
    seconds: float = 0.0
    #: time inside the generate-and-write loop (the slowest process); excludes model loading
    generation_seconds: float = 0.0
    num_processes: int = 1
    #: temporary files from killed writers that were removed
    orphans_removed: int = 0
    #: manifest rows after the run (main process only)
    manifest_rows: int | None = None
    manifest: str | None = None

    @property
    def images_per_second(self) -> float:
        """Images generated per second of the generation loop (0 when nothing was generated)."""
        return self.done / self.generation_seconds if self.generation_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "images_per_second": self.images_per_second}

    def __str__(self) -> str:
        text = (
            f"{self.total} units: {self.done} generated ({self.regenerated} of them replaced a bad file), "
            f"{self.skipped} skipped, {self.failed} failed; {self.seconds:.1f} s in all, "
            f"{self.images_per_second:.2f} images/s in the generation loop "
            f"({self.num_processes} process{'es' if self.num_processes > 1 else ''})"
        )
        if self.manifest is not None:
            text += f"; manifest: {self.manifest_rows} rows in {self.manifest}"
        return text


def _resolve_device(cfg: StudyConfig, state):
    """The explicit device: the config's, or accelerate's per-process device of the same type."""
    import torch

    wanted = torch.device(cfg.generation.device)
    if wanted.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"{cfg.source}: generation.device is {cfg.generation.device!r} but torch sees no CUDA device"
        )
    if state.num_processes > 1:
        if state.device.type != wanted.type:
            raise RuntimeError(
                f"accelerate assigned device {state.device} but generation.device is {cfg.generation.device!r}"
            )
        return torch.device("cpu") if wanted.type == "cpu" else state.device
    return wanted


def _verify_existing(
    cfg: StudyConfig,
    state,
    units: list[WorkUnit],
    specs: dict[str, ModelSpec],
    registry: Registry,
) -> tuple[set[tuple], dict[tuple, str]]:
    """Check the units whose file exists, in parallel; every process gets the same verdicts.

    Every process lists the existing files before any process writes (the gather below is a
    barrier), so all of them see the same files.

    Returns:
        The keys of the existing units that count as done, and ``{key: reason}`` for the others.
    """
    from accelerate.utils import gather_object

    existing = [u for u in units if cfg.generated_path(*u.key).is_file()]
    verdicts = []
    with state.split_between_processes(existing) as mine:
        for unit in mine:
            expected = expected_metadata(cfg, specs[unit.model], registry, unit)
            reason = check_image(cfg.generated_path(*unit.key), expected, cfg.generation.verify)
            verdicts.append((unit.key, reason))
    if state.num_processes > 1:
        verdicts = gather_object(verdicts)
    valid = {tuple(key) for key, reason in verdicts if reason is None}
    bad = {tuple(key): reason for key, reason in verdicts if reason is not None}
    return valid, bad


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (None: leave torch's setting), then restore the previous setting."""
    import torch

    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _batches(units: list[WorkUnit], size: int) -> list[list[WorkUnit]]:
    """Consecutive batches of ``size`` units (the last may be shorter)."""
    return [units[i : i + size] for i in range(0, len(units), size)]


@dataclass
class _ProcessStats:
    done: int = 0
    regenerated: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _unit_meta(cfg: StudyConfig, run: dict[str, Any], unit: WorkUnit, batch_size: int) -> dict[str, Any]:
    """Every PNG field of one image: the run's fields plus the unit's."""
    return {
        **run,
        **_unit_fields(cfg, unit),
        "batch_size": batch_size,
    }


def _run_model(
    cfg: StudyConfig,
    spec: ModelSpec,
    registry: Registry,
    device,
    batches: list[list[WorkUnit]],
    replacing: dict[tuple, str],
    stats: _ProcessStats,
    bar,
) -> None:
    """Load one model and run this process's batches of it, writing every image atomically.

    A batch whose pipeline call or write raises is recorded in ``stats.failures`` (the images of
    the batch written before the error are kept) and the loop goes on with the next batch.
    """
    import torch

    pipe = load_pipeline(spec, registry, device=str(device))  # raises naming the id and the cause
    run = _run_fields(cfg, spec, registry, pipe, device)
    kwargs = _call_kwargs(spec)
    bar.set_postfix_str(spec.name)
    t0 = time.perf_counter()
    for batch in batches:
        written = set()
        try:
            generators = [torch.Generator("cpu").manual_seed(unit.seed) for unit in batch]
            images = pipe([unit.prompt for unit in batch], generator=generators, **kwargs).images
            if len(images) != len(batch):
                raise RuntimeError(f"the pipeline returned {len(images)} images for {len(batch)} prompts")
            for unit, image in zip(batch, images, strict=True):
                png = encode_png(image, _unit_meta(cfg, run, unit, len(batch)))
                atomic_write_bytes(cfg.generated_path(*unit.key), png)
                written.add(unit.key)
        except Exception as exc:  # recorded, counted and reported; the CLI exits non-zero
            error = f"{type(exc).__name__}: {exc}"
            logger.error("model %s: a batch of %d units failed: %s", spec.name, len(batch), error)
            for unit in batch:
                if unit.key not in written:
                    names = ("model", "variant", "slug", "index")
                    stats.failures.append({**dict(zip(names, unit.key, strict=True)), "error": error})
        stats.done += len(written)
        stats.regenerated += len(written & replacing.keys())
        bar.update(len(batch))
    stats.seconds += time.perf_counter() - t0
    del pipe
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def generate(
    cfg: StudyConfig,
    models: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    prompts: pd.DataFrame | str | Path | None = None,
    slugs: Sequence[str] | None = None,
    *,
    progress: bool = True,
    registry: Registry | None = None,
) -> GenerationSummary:
    """Generate every pending image of a run, resumably, in one or several processes.

    The loop, per process: list the units; verify the images already on disk (in parallel) and
    agree on the pending units; per model, cut the pending units into batches in canonical order,
    take this process's share of the batches (``split_between_processes``), load the model, and
    for every batch call the pipeline with one CPU generator per unit and write each image
    atomically.  Then the main process rebuilds the manifest from the PNGs on disk.

    Args:
        cfg: the study config (``generation``: ``n_images``, ``seed_mode``, ``base_seed``,
            ``batch_size``, ``device``, ``verify``, ``num_threads``).
        models: registry names (default: ``cfg.models``).
        variants: prompt variants (default: ``cfg.generation.variants`` when ``prompts`` is None,
            else every variant of the prompt table).
        prompts: a prompt table (DataFrame, or .parquet/.csv with ``slug, variant, prompt``) that
            *replaces* the default title prompts (:func:`title_prompts`); concatenate the two to
            run both.
        slugs: restrict the run to these references.
        progress: show a tqdm bar with ETA.
        registry: the model registry (default: the config's).

    Returns:
        The summary over all processes (``manifest_rows`` is set on the main process).

    Raises:
        KeyError: an unknown model name (the message lists the known ones).
        RuntimeError: a model that cannot be loaded (names the id and the cause), or a device
            that is not there.  Images already written are kept.
        FileNotFoundError, ValueError: a missing or invalid prompt or references table.
    """
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    registry = registry or Registry.for_config(cfg)
    models = list(models) if models is not None else list(cfg.models)
    if len(set(models)) != len(models):
        raise ValueError(f"duplicate model names in {models}")
    specs = {name: registry.model(name) for name in models}  # KeyError lists the known models
    if cfg.generation.verify not in VERIFY_MODES:
        raise ValueError(f"{cfg.source}: generation.verify must be one of {VERIFY_MODES}")
    state = PartialState(cpu=cfg.generation.device == "cpu")
    device = _resolve_device(cfg, state)

    units = plan_units(cfg, models, _select_prompts(cfg, prompts, variants, slugs))
    valid, bad = _verify_existing(cfg, state, units, specs, registry)
    if state.is_main_process:
        for reason in bad.values():
            logger.warning("regenerating: %s", reason)
    pending = [unit for unit in units if unit.key not in valid]

    plans: dict[str, list[list[WorkUnit]]] = {}
    for name in models:
        batches = _batches([u for u in pending if u.model == name], cfg.generation.batch_size)
        with state.split_between_processes(batches) as mine:
            plans[name] = list(mine)
    n_mine = sum(len(batch) for batches in plans.values() for batch in batches)
    rank = state.process_index
    desc = "generate" if state.num_processes == 1 else f"generate [{rank + 1}/{state.num_processes}]"
    stats = _ProcessStats()
    with (
        _torch_threads(cfg.generation.num_threads),
        tqdm(total=n_mine, desc=desc, unit="img", disable=not progress, position=rank) as bar,
    ):
        for name in models:
            if plans[name]:
                _run_model(cfg, specs[name], registry, device, plans[name], bad, stats, bar)

    everyone = gather_object([stats]) if state.num_processes > 1 else [stats]
    failures = [f for s in everyone for f in s.failures]
    summary = GenerationSummary(
        total=len(units),
        done=sum(s.done for s in everyone),
        skipped=len(valid),
        regenerated=sum(s.regenerated for s in everyone),
        failed=len(failures),
        failures=failures,
        generation_seconds=max(s.seconds for s in everyone),
        num_processes=state.num_processes,
    )
    if state.is_main_process:
        summary.orphans_removed = _remove_orphan_temps(_generated_root(cfg))
        manifest = rebuild_manifest(cfg)
        summary.manifest_rows = len(manifest)
        summary.manifest = cfg.relative(cfg.generations_manifest)
    state.wait_for_everyone()
    summary.seconds = time.perf_counter() - t_start
    return summary


# --------------------------------------------------------------------------------------------
# Running outside the kernel: the command line, accelerate launch, and a subprocess helper
# --------------------------------------------------------------------------------------------


def run_subprocess(
    cfg: StudyConfig,
    num_processes: int = 1,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    echo: bool = True,
) -> GenerationSummary:
    """Run the generation CLI in a subprocess (heavy work stays out of the notebook kernel).

    The subprocess's output (progress bar included) is streamed to this process's stdout.

    Args:
        cfg: the study config (its file is passed to the subprocess).
        num_processes: processes to start (``> 1`` uses ``accelerate launch``).
        args: further CLI arguments, e.g. ``["--models", "tiny-sd-a"]``.
        env: extra environment variables.
        echo: stream the subprocess's output.

    Returns:
        The summary the subprocess wrote.

    Raises:
        RuntimeError: the subprocess failed; the message holds the end of its output.
    """
    if cfg.source is None:
        raise ValueError("run_subprocess needs a config loaded from a file (cfg.source is None)")
    summary_path = cfg.path("cache", "generation", f"summary-{os.getpid()}-{time.time_ns()}.json")
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = launch_command("generate", cfg.source, num_processes, [*args, "--summary-json", str(summary_path)])
    proc = subprocess.Popen(
        cmd,
        cwd=str(cfg.root),
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    tail = bytearray()
    while chunk := proc.stdout.read1(4096):  # type: ignore[union-attr]
        tail = (tail + chunk)[-8000:]
        if echo:
            sys.stdout.write(chunk.decode("utf-8", errors="replace"))
            sys.stdout.flush()
    code = proc.wait()
    text = tail.decode("utf-8", errors="replace")
    if code != 0 or not summary_path.is_file():
        raise RuntimeError(f"generation subprocess {' '.join(cmd)} exited with status {code}:\n{text}")
    data = json.loads(summary_path.read_text())
    summary_path.unlink(missing_ok=True)
    data.pop("images_per_second", None)
    return GenerationSummary(**data)


def _quiet_loading_bars() -> None:
    """Hide diffusers' and transformers' weight-loading bars: the generation bar is the one that counts."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m iconicity_utils.generate.generation --config FILE [...]``; exit 1 on failed units."""
    from iconicity_utils.config import load_config

    parser = argparse.ArgumentParser(
        prog="python -m iconicity_utils.generate.generation",
        description=(
            "Generate n_images per prompt for every model of a study config (stage 02), resumably. "
            "Runs under `accelerate launch` for several processes or GPUs."
        ),
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument("--models", nargs="+", help="registry names (default: the config's models)")
    parser.add_argument("--variants", nargs="+", help="prompt variants (default: the config's variants)")
    parser.add_argument("--prompts", help="prompt table (.parquet/.csv: slug, variant, prompt)")
    parser.add_argument("--slugs", nargs="+", help="only these references")
    parser.add_argument("--n-images", type=int, help="override generation.n_images")
    parser.add_argument("--batch-size", type=int, help="override generation.batch_size")
    parser.add_argument("--device", help="override generation.device (cpu, cuda)")
    parser.add_argument("--verify", choices=VERIFY_MODES, help="override generation.verify")
    parser.add_argument("--num-threads", type=int, help="override generation.num_threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--manifest-only", action="store_true", help="only rebuild the manifest from disk")
    parser.add_argument("--summary-json", help="also write the summary to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _quiet_loading_bars()

    cfg = load_config(args.config)
    overrides = {
        key: value
        for key, value in {
            "n_images": args.n_images,
            "batch_size": args.batch_size,
            "device": args.device,
            "verify": args.verify,
            "num_threads": args.num_threads,
        }.items()
        if value is not None
    }
    if overrides:
        cfg = cfg.with_overrides(generation=overrides)
    if args.manifest_only:
        df = rebuild_manifest(cfg)
        print(f"manifest: {len(df)} rows in {cfg.relative(cfg.generations_manifest)}")
        return 0
    summary = generate(
        cfg,
        models=args.models,
        variants=args.variants,
        prompts=args.prompts,
        slugs=args.slugs,
        progress=not args.no_progress,
    )
    if summary.manifest is not None:  # the main process
        print(summary, flush=True)
        for failure in summary.failures[:20]:
            print(f"FAILED {failure}", file=sys.stderr)
        if args.summary_json:
            atomic_write_json(args.summary_json, summary.as_dict())
    return 1 if summary.failed else 0


# --------------------------------------------------------------------------------------------
# A gallery for the notebook
# --------------------------------------------------------------------------------------------


def gallery_figure(cfg: StudyConfig, manifest: pd.DataFrame, n_refs: int = 6, variant: str = BASE_VARIANT):
    """A grid of generated images: one row per (model, index), one column per reference.

    Args:
        cfg: the study config (resolves the manifest's paths).
        manifest: the generation manifest.
        n_refs: how many references (the first ``n_refs`` slugs in sorted order).
        variant: which prompt variant to show.
    """
    import matplotlib.pyplot as plt

    from iconicity_utils.core.images import open_rgb

    rows = manifest[manifest["variant"] == variant]
    if rows.empty:
        raise ValueError(f"the manifest has no images of variant {variant!r}")
    slugs = sorted(rows["slug"].unique())[:n_refs]
    rows = rows[rows["slug"].isin(slugs)]
    lines = sorted({(m, int(i)) for m, i in rows[["model", "index"]].itertuples(index=False)})
    fig, axes = plt.subplots(
        len(lines), len(slugs), figsize=(1.6 * len(slugs) + 1, 1.6 * len(lines) + 0.8), squeeze=False
    )
    by_key = {(r.model, int(r.index), r.slug): r for r in rows.itertuples(index=False)}
    for i, (model, index) in enumerate(lines):
        for j, slug in enumerate(slugs):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            row = by_key.get((model, index, slug))
            if row is not None:
                ax.imshow(open_rgb(cfg.absolute(row.path)), interpolation="nearest")
            if i == 0:
                prompt = rows.loc[rows["slug"] == slug, "prompt"].iloc[0]
                ax.set_title(prompt if len(prompt) <= 18 else prompt[:17] + "…", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{model}\n#{index}", fontsize=7)
    fig.suptitle(f"Generated images, variant {variant!r}", y=0.95, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


if __name__ == "__main__":
    sys.exit(main())
