"""Tiny random-weight stand-in models, built from configs and saved to a local folder.

No weights can be downloaded in the offline workplace, so the demo and the tests use tiny models
with random weights.  Each is built from a config with a fixed seed and saved with
``save_pretrained`` / ``state_dict`` into ``<paths.standins>/<name>/``; the loaders then open that
folder exactly as they would open a hub id.  **Nothing a stand-in produces is a scientific
result** (see :data:`iconicity_utils.core.constants.STANDIN_LABEL`).

Builders (named by ``standin.builder`` in the registry):

- ``tiny-sd``: a Stable-Diffusion pipeline (UNet, VAE, CLIP text encoder, DDIM scheduler) whose
  tokenizer is the *real* 49,408-token CLIP BPE vocabulary, rebuilt from the BPE file open_clip
  ships, so that token ids match ``open_clip.tokenize``.
- ``tiny-open-clip``: an open_clip model from an architecture JSON registered with
  ``open_clip.add_model_config``; weights saved as a state dict.
- ``tiny-timm-vit``: a DINOv2-style ViT from timm; weights saved as a state dict.
- ``tiny-sscd``: a small CNN descriptor saved as TorchScript, standing in for SSCD.
- ``tiny-captioner``: an image-to-text ``VisionEncoderDecoderModel`` (stage 05 literal prompts;
  registered in ``configs/captioners.yaml``; the command builds every stand-in captioner of the
  registry with a config's stand-ins, :func:`build_captioner_standins`).

Building is idempotent: a ``standin.json`` stamp records the spec; a folder whose stamp matches
is left alone, and a build happens in a temporary folder renamed into place when complete.

Modules: :mod:`~iconicity_utils.demo.tokenizers` (the real CLIP and T5 tokenizers),
:mod:`~iconicity_utils.demo.tiny_pipelines` (diffusion pipelines),
:mod:`~iconicity_utils.demo.tiny_encoders` (encoders and the captioner); this one builds them.

Command line::

    python -m iconicity_utils demo --config configs/demo.yaml
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

from iconicity_utils.core.io import atomic_dir
from iconicity_utils.demo.tiny_encoders import (
    build_tiny_captioner,
    build_tiny_open_clip,
    build_tiny_sscd,
    build_tiny_timm_vit,
)
from iconicity_utils.demo.tiny_pipelines import (
    build_tiny_flux,
    build_tiny_sd,
    build_tiny_sd3,
    build_tiny_sdxl,
)
from iconicity_utils.registry import EncoderSpec, ModelSpec, Registry

__all__ = ["BUILDERS", "STAMP", "build_captioner_standins", "build_for_config", "build_standin"]

STAMP = "standin.json"
FORMAT_VERSION = 1

BUILDERS: dict[str, Callable[..., None]] = {
    "tiny-sd": build_tiny_sd,
    "tiny-open-clip": build_tiny_open_clip,
    "tiny-timm-vit": build_tiny_timm_vit,
    "tiny-sscd": build_tiny_sscd,
    "tiny-sdxl": build_tiny_sdxl,
    "tiny-sd3": build_tiny_sd3,
    "tiny-flux": build_tiny_flux,
    "tiny-captioner": build_tiny_captioner,
}


# --------------------------------------------------------------------------------------------
# Idempotent, atomic building
# --------------------------------------------------------------------------------------------


def _fingerprint(spec: ModelSpec | EncoderSpec) -> str:
    """What determines a stand-in's weights: the builder params and the architecture fields."""
    fields = spec.model_dump()
    fields.pop("notes", None)
    blob = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _quiet():
    """Silence the expected noise of building random-weight models (and only that).

    open_clip warns that no pretrained weights were loaded (that is the point of a stand-in),
    torch warns that TorchScript is deprecated (SSCD ships as TorchScript), and transformers
    draws a progress bar per saved shard.
    """
    import logging

    from transformers.utils import logging as hf_logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning
            )
            yield
    finally:
        root.setLevel(level)
        hf_logging.enable_progress_bar()


def build_standin(spec: ModelSpec | EncoderSpec, registry: Registry, force: bool = False) -> Path:
    """Build one stand-in (if its folder is missing or stale) and return the folder.

    Raises:
        ValueError: ``spec`` is not a stand-in, or names an unknown builder.
    """
    if not spec.is_standin:
        raise ValueError(f"{spec.name!r} is not a stand-in (it has no standin block)")
    params = dict(spec.standin)
    builder_name = params.pop("builder", None)
    if builder_name not in BUILDERS:
        raise ValueError(
            f"{spec.name!r}: unknown stand-in builder {builder_name!r}; known: {sorted(BUILDERS)}"
        )
    target = registry.standin_path(spec.name)
    fingerprint = _fingerprint(spec)
    stamp = target / STAMP
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text()).get("fingerprint") == fingerprint:
                return target
        except (OSError, json.JSONDecodeError):
            pass  # unreadable stamp: rebuild
    with atomic_dir(target) as tmp:
        with _quiet():
            BUILDERS[builder_name](spec, params, tmp, registry)
        (tmp / STAMP).write_text(
            json.dumps(
                {
                    "name": spec.name,
                    "builder": builder_name,
                    "params": params,
                    "fingerprint": fingerprint,
                    "note": "random-weight stand-in: not a scientific model",
                },
                indent=2,
            )
        )
    return target


def standins_for_config(cfg) -> list[ModelSpec | EncoderSpec]:
    """The stand-in registry entries a study config uses (:meth:`Registry.standins_for`)."""
    return Registry.for_config(cfg).standins_for(cfg)


def build_captioner_standins(cfg, force: bool = False) -> list[Path]:
    """Build (idempotently) every stand-in captioner of the registry into ``paths.standins``
    (stage 05's literal prompts; notebook 05 shows one even when the study's literal source is not
    a captioner)."""
    registry = Registry.for_config(cfg)
    specs = [s for s in registry.captioners.values() if s.is_standin]
    return [build_standin(spec, registry, force=force) for spec in specs]  # type: ignore[arg-type]


def build_for_config(cfg, force: bool = False) -> list[Path]:
    """Build every stand-in that ``cfg`` uses; a no-op for configs with real models only."""
    reg = Registry.for_config(cfg)
    return [build_standin(spec, reg, force=force) for spec in standins_for_config(cfg)]
