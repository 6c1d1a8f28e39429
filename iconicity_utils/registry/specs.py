"""Registry entries as data: models, encoders and captioners, and the :class:`Registry` that holds them.

One YAML entry per diffusion model (``configs/models.yaml``: hub id or local path, revision,
pipeline class, dtype, steps, guidance, resolution), per image encoder (``configs/encoders.yaml``:
backend, id, weights) and per image-to-text captioner of stage 05 (``configs/captioners.yaml``).
:func:`load_entries` validates them like study configs; :class:`Registry` looks them up, resolves
their sources and stand-in folders, and resolves each to the revision a run loads
(:meth:`Registry.revision`, with the study's lock when it has one).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field

from iconicity_utils.core.schema import ConfigError, Positive, Section, validate
from iconicity_utils.registry.lockfile import Lock, lock_path, study_names
from iconicity_utils.registry.revisions import Revision, RevisionError, local_digest, resolve_hub_revision

__all__ = [
    "PROJECT_ROOT",
    "DTYPES",
    "ModelSpec",
    "EncoderSpec",
    "CaptionerSpec",
    "Spec",
    "Registry",
    "is_local",
    "is_standin_config",
    "load_entries",
    "list_models",
    "list_encoders",
    "list_captioners",
    "get_model",
    "get_encoder",
    "get_captioner",
]

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

DTYPES = ("float32", "float16", "bfloat16")


class ModelSpec(Section):
    """A diffusion model, loaded with ``DiffusionPipeline.from_pretrained``."""

    role: ClassVar[str] = "model"

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

    role: ClassVar[str] = "encoder"

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


class CaptionerSpec(Section):
    """An image-to-text model (stage 05's literal prompts), loaded with transformers
    ``AutoModelForImageTextToText`` (:func:`iconicity_utils.registry.load.load_captioner`)."""

    role: ClassVar[str] = "captioner"

    name: str
    source: str | None = None  # hub id or local path; stand-ins: derived
    revision: str | None = None
    standin: dict[str, Any] | None = None
    notes: str = ""

    @property
    def is_standin(self) -> bool:
        return self.standin is not None


#: any registry entry
Spec = ModelSpec | EncoderSpec | CaptionerSpec


def is_local(source: str) -> bool:
    """Whether a registry ``source`` names a local path rather than a hub id."""
    return source.startswith((".", "/", "~"))


def load_entries(path: Path, top: str, cls: type[Section]) -> dict[str, Any]:
    """The entries of a registry file (``top: {name: entry}``), each validated as ``cls``.

    ``cls`` is a :class:`~iconicity_utils.core.schema.Section` with ``name``, ``source`` and
    ``standin`` fields (models, encoders, captioners).  Errors name the file and the key.
    """
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


_MESSAGES_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """Log ``message`` at INFO once per process (for_config runs once per table written)."""
    if message not in _MESSAGES_SAID:
        _MESSAGES_SAID.add(message)
        logger.info(message)


@dataclass(frozen=True)
class Registry:
    """The loaded registry files, plus where stand-ins live."""

    models: dict[str, ModelSpec]
    encoders: dict[str, EncoderSpec]
    root: Path = PROJECT_ROOT
    standins_dir: Path = PROJECT_ROOT / ".cache" / "standins"
    #: the study's lock, when it has one (:meth:`for_config`); revisions then come from it
    lock: Lock | None = None
    #: the hub API endpoint (None: huggingface_hub's, i.e. ``HF_ENDPOINT`` or huggingface.co)
    endpoint: str | None = None
    #: the captioners of ``configs/captioners.yaml`` (empty when a project has none)
    captioners: dict[str, CaptionerSpec] = field(default_factory=dict)
    _revisions: dict[tuple[str, str], Revision] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def load(cls, root: str | Path = PROJECT_ROOT, standins_dir: str | Path | None = None) -> Registry:
        root = Path(root)
        models = load_entries(root / "configs" / "models.yaml", "models", ModelSpec)
        encoders = load_entries(root / "configs" / "encoders.yaml", "encoders", EncoderSpec)
        captioners_file = root / "configs" / "captioners.yaml"
        captioners = (
            load_entries(captioners_file, "captioners", CaptionerSpec) if captioners_file.is_file() else {}
        )
        sdir = Path(standins_dir) if standins_dir else root / ".cache" / "standins"
        if not sdir.is_absolute():
            sdir = root / sdir
        return cls(models=models, encoders=encoders, root=root, standins_dir=sdir, captioners=captioners)

    @classmethod
    def for_config(cls, cfg: Any, use_lock: bool = True) -> Registry:
        """The registry of a study config's project root, with its ``paths.standins`` folder.

        When the config file has a lock (:func:`~iconicity_utils.registry.lockfile.lock_path`), it
        is read and applied (``use_lock`` False ignores it: the ``lock`` command itself).

        Raises:
            LockMismatchError: the lock lacks a model, encoder or captioner the config uses.
            ConfigError: the lock file is malformed.
        """
        registry = cls.load(cfg.root, cfg.paths.standins)
        path = lock_path(cfg.source) if (use_lock and getattr(cfg, "source", None)) else None
        if path is None or not path.is_file():
            return registry
        lock = Lock.read(path)
        lock.require(cfg)
        counts = f"{len(lock.models)} models, {len(lock.encoders)} encoders"
        if lock.captioners:
            counts += f", {len(lock.captioners)} captioners"
        _say_once(f"using the lock {path} ({counts})")
        return dataclasses.replace(registry, lock=lock)

    def relative(self, path: str | Path) -> str:
        """A local path as recorded: relative to the project root (POSIX) when inside it, else absolute."""
        resolved = Path(path).expanduser().resolve()
        root = self.root.resolve()
        return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else resolved.as_posix()

    def revision(self, spec: Spec, local_only: bool = False) -> Revision:
        """What a run loads for ``spec``: its hub commit, or the sha256 of its local file or folder.

        With a lock, hub models and captioners take the locked commit; a hub encoder's current
        commit (which its library loads) and every local digest must equal the locked value.
        Results are memoised per registry.

        Args:
            spec: a registry entry (model, encoder or captioner).
            local_only: resolve hub revisions from the local cache only (never the network), as
                table provenance does; a commit already resolved online in this process is reused.

        Raises:
            RevisionError: the revision cannot be resolved (names the entry, the id and the cause).
            LockMismatchError: the entry disagrees with the lock.
        """
        key = (spec.role, spec.name)
        if key in self._revisions:
            return self._revisions[key]
        where = self.weights_location(spec)
        if self.lock is not None:
            rev = self.lock.apply(self, spec, spec.role, where, local_only)
        elif where.kind == "hub":
            commit = resolve_hub_revision(
                where.source, where.requested, endpoint=self.endpoint, local_only=local_only, who=spec.name
            )
            rev = Revision(spec.name, spec.role, where.source, "hub", where.requested, commit)
        else:
            digest = local_digest(spec.name, where, spec.is_standin)
            rev = Revision(spec.name, spec.role, where.source, where.kind, None, digest)
        if not local_only:
            self._revisions[key] = rev  # a cache-only answer does not stand in for a full resolution
        return rev

    def weights_location(self, spec: Spec) -> Revision:
        """Where ``spec``'s weights come from, before resolution (``resolved`` is empty).

        ``kind`` is ``"hub"`` (``source`` the repository, ``requested`` its revision), or ``"file"``
        / ``"folder"`` (``source`` the path as recorded, see :meth:`relative`).
        """
        hub = _hub_repo(spec, self)
        if hub is not None:
            repo, requested = hub
            return Revision(spec.name, spec.role, repo, "hub", requested, "")
        path, kind = _local_weights(spec, self)
        return Revision(spec.name, spec.role, self.relative(path), kind, None, "", path=str(path))

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise KeyError(f"unknown diffusion model {name!r}; known models: {sorted(self.models)}")
        return self.models[name]

    def encoder(self, name: str) -> EncoderSpec:
        if name not in self.encoders:
            raise KeyError(f"unknown encoder {name!r}; known encoders: {sorted(self.encoders)}")
        return self.encoders[name]

    def captioner(self, name: str) -> CaptionerSpec:
        if name not in self.captioners:
            raise KeyError(
                f"unknown captioner {name!r} (perturbation.captioner); known: {sorted(self.captioners)}"
            )
        return self.captioners[name]

    def specs_of(self, cfg: Any) -> list[Spec]:
        """Every entry a study config uses: its models, encoders and captioner (:func:`study_names`).

        Raises:
            KeyError: the config names an entry this registry does not know.
        """
        lookup = {"model": self.model, "encoder": self.encoder, "captioner": self.captioner}
        return [lookup[role](name) for role, names in study_names(cfg).items() for name in names]

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

    def resolve(self, spec: Spec) -> str:
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


def _hub_repo(spec: Spec, registry: Registry) -> tuple[str, str] | None:
    """``(repository, requested revision)`` of the hub repository ``spec``'s weights come from; None if local."""
    if spec.is_standin:
        return None
    if spec.role != "encoder" or spec.backend == "hf-clip":
        if spec.source is None or is_local(spec.source):
            return None
        return spec.source, spec.revision or "main"
    if spec.backend == "sscd" or (spec.weights is not None and is_local(spec.weights)):
        return None
    if spec.revision is not None:  # open_clip and timm take no revision argument: it would be a lie
        raise RevisionError(
            f"encoder {spec.name!r}: `revision` is not supported for backend {spec.backend} (its library "
            "loads the repository's default branch); the study lock pins and checks its commit instead"
        )
    if spec.backend == "open_clip":
        return _open_clip_repo(spec, registry)
    if spec.backend == "timm" and spec.weights == "hub":
        return _timm_repo(spec)
    raise RevisionError(f"encoder {spec.name!r}: weights {spec.weights!r} are neither 'hub' nor a local path")


def _open_clip_repo(spec: EncoderSpec, registry: Registry) -> tuple[str, str]:
    """The hub repository open_clip downloads a pretrained tag from (its ``hf_hub``)."""
    import open_clip

    if spec.model_config_dir:
        open_clip.add_model_config(registry.resolve_path(spec.model_config_dir))
    cfg = open_clip.get_pretrained_cfg(spec.source, spec.weights or "")
    hub = (cfg or {}).get("hf_hub")
    if not hub:
        raise RevisionError(
            f"encoder {spec.name!r}: open_clip's weights {spec.source}/{spec.weights} do not come from the "
            f"hub ({(cfg or {}).get('url') or 'no such pretrained tag'}); no revision can be recorded. "
            "Download them and give the checkpoint path as `weights` (its sha256 is recorded)."
        )
    repo = "/".join(hub.strip("/").split("/")[:2])
    return repo, (cfg or {}).get("hf_revision") or spec.revision or "main"


def _timm_repo(spec: EncoderSpec) -> tuple[str, str]:
    """The hub repository timm downloads a model's weights from (its ``hf_hub_id``)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.source)
    hub = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub:
        raise RevisionError(
            f"encoder {spec.name!r}: timm has no hub weights for {spec.source!r}; give a checkpoint path"
        )
    repo, _, pinned = hub.partition("@")
    return repo, pinned or spec.revision or "main"


def _local_weights(spec: Spec, registry: Registry) -> tuple[Path, str]:
    """The local file or folder that holds ``spec``'s weights, and its kind (``"file"``/``"folder"``)."""
    if spec.is_standin:
        return registry.standin_path(spec.name), "folder"
    if spec.role != "encoder" or spec.backend == "hf-clip":
        return Path(registry.resolve(spec)), "folder"
    value = spec.source if spec.backend == "sscd" else spec.weights
    if value is None:
        raise RevisionError(f"encoder {spec.name!r} names no weights")
    return Path(registry.resolve_path(value)), "file"


def is_standin_config(cfg: Any) -> bool:
    """Whether a study config's outputs are stand-in outputs (derived, not a flag).

    True when any model or encoder it uses is a random-weight stand-in, or its reference images
    are synthetic (``collection.reference_images: synthetic``).  Such outputs carry
    :data:`~iconicity_utils.core.constants.STANDIN_LABEL`.
    """
    if cfg.collection.reference_images == "synthetic":
        return True
    return bool(Registry.for_config(cfg).standins_for(cfg))


def list_models(root: str | Path = PROJECT_ROOT) -> list[str]:
    """Names of the registered diffusion models."""
    return sorted(Registry.load(root).models)


def list_encoders(root: str | Path = PROJECT_ROOT) -> list[str]:
    """Names of the registered encoders."""
    return sorted(Registry.load(root).encoders)


def list_captioners(root: str | Path = PROJECT_ROOT) -> list[str]:
    """Names of the registered captioners."""
    return sorted(Registry.load(root).captioners)


def get_model(name: str, root: str | Path = PROJECT_ROOT) -> ModelSpec:
    return Registry.load(root).model(name)


def get_encoder(name: str, root: str | Path = PROJECT_ROOT) -> EncoderSpec:
    return Registry.load(root).encoder(name)


def get_captioner(name: str, root: str | Path = PROJECT_ROOT) -> CaptionerSpec:
    return Registry.load(root).captioner(name)
