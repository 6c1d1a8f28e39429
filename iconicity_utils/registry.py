"""Models and encoders as data: the registry in ``configs/models.yaml`` and ``configs/encoders.yaml``.

One YAML entry per diffusion model (hub id or local path, revision, pipeline class, dtype, steps,
guidance, resolution) and one per encoder (backend, id, weights).  Study configs refer to entries
by name, as open_clip's ``list_models()`` registry does.

An entry with a ``standin:`` block is a tiny random-weight model that
:mod:`iconicity_utils.standins` builds into ``paths.standins/<name>``; its ``source`` is that
folder, so it is opened by exactly the same ``from_pretrained`` call as a hub id.

Source rule: a ``source`` that starts with ``.``, ``/`` or ``~`` is a local path (relative paths
are relative to the project root); anything else is a hub id.

Entries are validated like study configs (:mod:`iconicity_utils.schema`): an unknown key, a wrong
type or a missing required key raises :class:`~iconicity_utils.schema.ConfigError` naming the
registry file and the key (``models.sd15.steps``).  :func:`is_standin_config` says whether a study
config uses any stand-in (it is derived from the registry, never a flag).  This module imports only
:mod:`~iconicity_utils.constants` and :mod:`~iconicity_utils.schema` from the package, so that
:mod:`iconicity_utils.config` can check model ids against it.

Example:
    >>> from iconicity_utils import registry
    >>> registry.list_models()                  # doctest: +SKIP
    ['flux1-schnell', 'sd15', 'sd21', 'sd35-medium', 'sdxl', 'tiny-sd-a', 'tiny-sd-b']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from iconicity_utils.constants import STANDIN_LABEL
from iconicity_utils.schema import ConfigError, Positive, Section, validate

__all__ = [
    "ModelSpec",
    "EncoderSpec",
    "Registry",
    "list_models",
    "list_encoders",
    "get_model",
    "get_encoder",
    "STANDIN_LABEL",
    "is_standin_config",
    "load_pipeline",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DTYPES = ("float32", "float16", "bfloat16")


class ModelSpec(Section):
    """A diffusion model, loaded with ``DiffusionPipeline.from_pretrained``."""

    name: str
    pipeline: str  # diffusers pipeline class name, e.g. "StableDiffusionPipeline"
    steps: Positive
    guidance: float
    height: Positive
    width: Positive
    source: str | None = None  # hub id or local path; stand-ins: derived
    revision: str | None = None
    dtype: Literal[DTYPES] = "float32"  # type: ignore[valid-type]
    variant: str | None = None  # diffusers weight variant, e.g. "fp16"
    scheduler: str | None = None  # diffusers scheduler class to swap in; None keeps the model's own
    max_sequence_length: int | None = None
    standin: dict[str, Any] | None = None
    notes: str = ""

    @property
    def is_standin(self) -> bool:
        return self.standin is not None


class EncoderSpec(Section):
    """An image encoder producing L2-normalised float32 embeddings.

    ``backend``:
      - ``open_clip``: ``source`` is the architecture name, ``weights`` a pretrained tag
        (``openai``) or a checkpoint path; ``model_config_dir`` registers extra architectures.
      - ``hf-clip``: ``source`` is a transformers ``CLIPModel`` hub id or local folder.
      - ``timm``: ``source`` is the timm model name, ``weights`` ``"hub"`` or a checkpoint path.
      - ``sscd``: ``source`` is a TorchScript file.
    """

    name: str
    backend: Literal["open_clip", "hf-clip", "timm", "sscd"]
    source: str | None = None
    weights: str | None = None
    revision: str | None = None
    model_config_dir: str | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    image_size: int | None = Field(None, ge=1)
    standin: dict[str, Any] | None = None
    notes: str = ""

    @property
    def is_standin(self) -> bool:
        return self.standin is not None


def is_local(source: str) -> bool:
    """Whether a registry ``source`` names a local path rather than a hub id."""
    return source.startswith((".", "/", "~"))


@dataclass(frozen=True)
class Registry:
    """The loaded registry files, plus where stand-ins live."""

    models: dict[str, ModelSpec]
    encoders: dict[str, EncoderSpec]
    root: Path = PROJECT_ROOT
    standins_dir: Path = PROJECT_ROOT / ".cache" / "standins"

    @classmethod
    def load(cls, root: str | Path = PROJECT_ROOT, standins_dir: str | Path | None = None) -> Registry:
        root = Path(root)
        models = _load_entries(root / "configs" / "models.yaml", "models", ModelSpec)
        encoders = _load_entries(root / "configs" / "encoders.yaml", "encoders", EncoderSpec)
        sdir = Path(standins_dir) if standins_dir else root / ".cache" / "standins"
        if not sdir.is_absolute():
            sdir = root / sdir
        return cls(models=models, encoders=encoders, root=root, standins_dir=sdir)

    @classmethod
    def for_config(cls, cfg: Any) -> Registry:
        """The registry of a study config's project root, with its ``paths.standins`` folder."""
        return cls.load(cfg.root, cfg.paths.standins)

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise KeyError(f"unknown diffusion model {name!r}; known models: {sorted(self.models)}")
        return self.models[name]

    def encoder(self, name: str) -> EncoderSpec:
        if name not in self.encoders:
            raise KeyError(f"unknown encoder {name!r}; known encoders: {sorted(self.encoders)}")
        return self.encoders[name]

    def standins_for(self, cfg: Any) -> list[ModelSpec | EncoderSpec]:
        """The stand-in entries among the models and encoders a study config uses.

        Raises:
            KeyError: the config names a model or encoder this registry does not know.
        """
        specs: list[ModelSpec | EncoderSpec] = [self.model(m) for m in cfg.models]
        specs += [
            self.encoder(e)
            for e in (cfg.encoders.recognition, cfg.encoders.realization, cfg.encoders.copy_detection)
            if e is not None
        ]
        return [s for s in specs if s.is_standin]

    def standin_path(self, name: str) -> Path:
        return self.standins_dir / name

    def resolve(self, spec: ModelSpec | EncoderSpec) -> str:
        """The string to hand to ``from_pretrained`` (or a file path) for this entry."""
        if spec.is_standin:
            return str(self.standin_path(spec.name))
        if spec.source is None:
            raise ConfigError(self.root / "configs", f"{spec.name}.source", "no source and no standin block")
        return self.resolve_path(spec.source)

    def resolve_path(self, value: str) -> str:
        """Resolve a registry path value: local paths against the root; hub ids unchanged."""
        if not is_local(value):
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (self.root / p).resolve())


def is_standin_config(cfg: Any) -> bool:
    """Whether a study config's outputs are stand-in outputs (derived, not a flag).

    True when any model or encoder it uses is a random-weight stand-in, or its reference images
    are synthetic (``collection.reference_images: synthetic``).  Such outputs carry
    :data:`STANDIN_LABEL`.
    """
    if cfg.collection.reference_images == "synthetic":
        return True
    return bool(Registry.for_config(cfg).standins_for(cfg))


def _load_entries(path: Path, top: str, cls: type[ModelSpec] | type[EncoderSpec]) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"registry file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, "<yaml>", f"not valid YAML: {exc}") from exc
    if set(data) != {top}:
        raise ConfigError(path, "<top>", f"expected exactly one top-level key {top!r}, got {sorted(data)}")
    entries = data[top]
    if not isinstance(entries, dict):
        raise ConfigError(path, top, "expected a mapping of name -> entry")
    out = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise ConfigError(path, f"{top}.{name}", "expected a mapping")
        if "name" in entry:
            raise ConfigError(path, f"{top}.{name}.name", "unknown key; the entry's name is its key")
        spec = validate(cls, {"name": name, **entry}, path, f"{top}.{name}")
        if spec.source is None and spec.standin is None:
            raise ConfigError(path, f"{top}.{name}.source", "give a hub id / local path, or a standin block")
        out[name] = spec
    return out


def list_models(root: str | Path = PROJECT_ROOT) -> list[str]:
    """Names of the registered diffusion models."""
    return sorted(Registry.load(root).models)


def list_encoders(root: str | Path = PROJECT_ROOT) -> list[str]:
    """Names of the registered encoders."""
    return sorted(Registry.load(root).encoders)


def get_model(name: str, root: str | Path = PROJECT_ROOT) -> ModelSpec:
    return Registry.load(root).model(name)


def get_encoder(name: str, root: str | Path = PROJECT_ROOT) -> EncoderSpec:
    return Registry.load(root).encoder(name)


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def load_pipeline(spec: ModelSpec, registry: Registry, device: str = "cpu"):
    """Load a registered diffusion model with ``DiffusionPipeline.from_pretrained``.

    Stand-ins and real models take the same call; only the string differs (a local folder or a
    hub id).  The pipeline class is checked against the registry entry, and a scheduler named in
    the entry is swapped in from the pipeline's own scheduler config.  Nothing is substituted
    silently: any failure raises ``RuntimeError`` naming the model id and the cause.

    Args:
        spec: the registry entry.
        registry: the registry (resolves local paths and stand-in folders).
        device: explicit device, e.g. ``"cpu"`` or ``"cuda"``.
    """
    import diffusers

    source = registry.resolve(spec)
    if spec.is_standin and not Path(source).is_dir():
        raise RuntimeError(
            f"stand-in model {spec.name!r} has not been built at {source}; "
            "run `python -m iconicity_utils.standins --config <config>` (run_all.sh does this)"
        )
    kwargs: dict[str, Any] = {"dtype": torch_dtype(spec.dtype)}  # diffusers >= 0.42 name
    if spec.revision:
        kwargs["revision"] = spec.revision
    if spec.variant:
        kwargs["variant"] = spec.variant
    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(source, **kwargs)
    except Exception as exc:  # re-raised with the id: never swap in another model
        raise RuntimeError(
            f"could not load diffusion model {spec.name!r} from {source!r} "
            f"(revision={spec.revision}, dtype={spec.dtype}): {type(exc).__name__}: {exc}"
        ) from exc
    if type(pipe).__name__ != spec.pipeline:
        raise RuntimeError(
            f"model {spec.name!r} loaded as {type(pipe).__name__}, but the registry says {spec.pipeline}"
        )
    if pipe.dtype != torch_dtype(spec.dtype):
        raise RuntimeError(f"model {spec.name!r} loaded in {pipe.dtype}, but the registry says {spec.dtype}")
    if spec.scheduler:
        try:
            sched_cls = getattr(diffusers, spec.scheduler)
        except AttributeError as exc:
            raise RuntimeError(f"model {spec.name!r}: unknown scheduler class {spec.scheduler!r}") from exc
        pipe.scheduler = sched_cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
