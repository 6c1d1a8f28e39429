"""What every generated PNG says about itself: its text chunks, written, read and checked.

Each image's PNG text chunks hold everything about its unit and its run (prompt, seed, model id,
revision, pipeline class, steps, guidance, scheduler, dtype, device, package versions;
:data:`PNG_FIELDS`), in a fixed order and without a time stamp, so the same unit on the same
machine gives the same bytes.  A file counts as a finished unit when it ends with the PNG ``IEND``
chunk, decodes (``verify: decode``) and carries the unit's identity (:data:`IDENTITY_FIELDS`,
:func:`check_image`).
"""

from __future__ import annotations

import io
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.registry import ModelSpec, Registry, is_local

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig
    from iconicity_utils.generate.units import WorkUnit

__all__ = [
    "IDENTITY_FIELDS",
    "PNG_FIELDS",
    "VERIFY_MODES",
    "check_image",
    "encode_png",
    "expected_metadata",
    "read_png_metadata",
    "run_fields",
    "unit_meta",
]

#: ``"decode"`` decodes every existing image on resume; ``"header"`` reads its metadata and checks
#: that the file ends with the PNG ``IEND`` chunk (catches truncation, not corruption inside).
VERIFY_MODES = ("decode", "header")
#: the format tag written into every PNG
FORMAT = "iconicity-generation/1"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"

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


# --------------------------------------------------------------------------------------------
# The fields of a unit and of a run
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


def run_fields(cfg: StudyConfig, spec: ModelSpec, registry: Registry, pipe, device) -> dict[str, Any]:
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


def unit_meta(cfg: StudyConfig, run: dict[str, Any], unit: WorkUnit, batch_size: int) -> dict[str, Any]:
    """Every PNG field of one image: the run's fields (:func:`run_fields`) plus the unit's."""
    return {
        **run,
        **_unit_fields(cfg, unit),
        "batch_size": batch_size,
    }


# --------------------------------------------------------------------------------------------
# Write, read, verify
# --------------------------------------------------------------------------------------------


def encode_png(image, meta: dict[str, Any]) -> bytes:
    """PNG bytes of ``image`` with ``meta`` as text chunks in :data:`PNG_FIELDS` order (None omitted).

    No time stamp or other run-dependent chunk is written, so equal pixels and metadata give
    equal bytes.
    """
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
