"""Models and encoders as data: the registry in ``configs/models.yaml`` and ``configs/encoders.yaml``.

One YAML entry per diffusion model (hub id or local path, revision, pipeline class, dtype, steps,
guidance, resolution) and one per encoder (backend, id, weights).  Study configs refer to entries
by name, as open_clip's ``list_models()`` registry does.

An entry with a ``standin:`` block is a tiny random-weight model that
:mod:`iconicity_utils.demo.standins` builds into ``paths.standins/<name>``; its ``source`` is that
folder, so it is opened by exactly the same ``from_pretrained`` call as a hub id.

Source rule: a ``source`` that starts with ``.``, ``/`` or ``~`` is a local path (relative paths
are relative to the project root); anything else is a hub id.

Entries are validated like study configs (:mod:`iconicity_utils.core.schema`): an unknown key, a wrong
type or a missing required key raises :class:`~iconicity_utils.core.schema.ConfigError` naming the
registry file and the key (``models.sd15.steps``).

**Revisions: what was actually loaded.**  :meth:`Registry.revision` resolves an entry to what a
run loads: for weights on the Hugging Face hub, the *commit* its requested revision (``main``)
points to, through huggingface_hub's own :meth:`~huggingface_hub.HfApi.resolve_revision` (the hub
when online, the local cache's ``refs/`` under ``HF_HUB_OFFLINE=1``); for local weights (stand-ins,
the SSCD TorchScript file, a local folder) ``sha256:<hex>`` of the file, or of every file of the
folder.  An encoder's hub repository is the one its library downloads from (open_clip's ``hf_hub``
for a pretrained tag, timm's ``hf_hub_id``).  Diffusion models are then loaded *at* that commit.

**The lock.**  ``python -m iconicity_utils.registry lock --config configs/paper.yaml`` resolves every
model and encoder of a study and writes ``configs/paper.lock.yaml`` (:func:`lock_path`).  When a
study's lock exists, :meth:`Registry.for_config` reads it (and logs that it does): diffusion models
load at the locked commit, an encoder's current commit and every local digest must equal the
locked ones, and an entry that is missing from the lock or whose source or requested revision
changed is a :class:`LockMismatchError`, never a silent re-resolution.
``python -m iconicity_utils.registry check --config ...`` verifies a lock without running anything.
(The command lives here, in the base layer, because the resolution it shares with
:func:`load_pipeline` does; it reads only the ``models``, ``encoders`` and ``paths`` keys of the
study file, exactly as :class:`~iconicity_utils.config.study.StudyConfig` resolves them.)

:func:`is_standin_config` says whether a study config uses any stand-in (it is derived from the
registry, never a flag).  This module imports only :mod:`~iconicity_utils.core.constants` and
:mod:`~iconicity_utils.core.schema` from the package, so that :mod:`iconicity_utils.config.study` can check
model ids against it.

Example:
    >>> from iconicity_utils import registry
    >>> registry.list_models()                  # doctest: +SKIP
    ['flux1-schnell', 'sd15', 'sd21', 'sd35-medium', 'sdxl', 'tiny-sd-a', 'tiny-sd-b']
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import yaml
from pydantic import Field

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.core.schema import ConfigError, Positive, Section, validate

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
    "Revision",
    "RevisionError",
    "LockMismatchError",
    "Lock",
    "content_digest",
    "file_sha256",
    "load_entries",
    "resolve_hub_revision",
    "lock_path",
    "write_lock",
    "check_lock",
    "revision_record",
    "main",
]

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

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
    #: the study's lock, when it has one (:meth:`for_config`); revisions then come from it
    lock: Lock | None = None
    #: the hub API endpoint (None: huggingface_hub's, i.e. ``HF_ENDPOINT`` or huggingface.co)
    endpoint: str | None = None
    _revisions: dict[tuple[str, str], Revision] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def load(cls, root: str | Path = PROJECT_ROOT, standins_dir: str | Path | None = None) -> Registry:
        root = Path(root)
        models = load_entries(root / "configs" / "models.yaml", "models", ModelSpec)
        encoders = load_entries(root / "configs" / "encoders.yaml", "encoders", EncoderSpec)
        sdir = Path(standins_dir) if standins_dir else root / ".cache" / "standins"
        if not sdir.is_absolute():
            sdir = root / sdir
        return cls(models=models, encoders=encoders, root=root, standins_dir=sdir)

    @classmethod
    def for_config(cls, cfg: Any, use_lock: bool = True) -> Registry:
        """The registry of a study config's project root, with its ``paths.standins`` folder.

        When the config file has a lock (:func:`lock_path`), it is read and applied (``use_lock``
        False ignores it: the ``lock`` command itself).

        Raises:
            LockMismatchError: the lock lacks a model or encoder the config uses.
            ConfigError: the lock file is malformed.
        """
        registry = cls.load(cfg.root, cfg.paths.standins)
        path = lock_path(cfg.source) if (use_lock and getattr(cfg, "source", None)) else None
        if path is None or not path.is_file():
            return registry
        lock = Lock.read(path)
        lock.require(cfg)
        _say_once(f"using the lock {path} ({len(lock.models)} models, {len(lock.encoders)} encoders)")
        return dataclasses.replace(registry, lock=lock)

    def relative(self, path: str | Path) -> str:
        """A local path as recorded: relative to the project root (POSIX) when inside it, else absolute."""
        resolved = Path(path).expanduser().resolve()
        root = self.root.resolve()
        return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else resolved.as_posix()

    def revision(self, spec: ModelSpec | EncoderSpec, local_only: bool = False) -> Revision:
        """What a run loads for ``spec``: its hub commit, or the sha256 of its local file or folder.

        With a lock, hub models take the locked commit; a hub encoder's current commit (which its
        library loads) and every local digest must equal the locked value.  Results are memoised
        per registry.

        Args:
            spec: a registry entry (model or encoder).
            local_only: resolve hub revisions from the local cache only (never the network), as
                table provenance does; a commit already resolved online in this process is reused.

        Raises:
            RevisionError: the revision cannot be resolved (names the entry, the id and the cause).
            LockMismatchError: the entry disagrees with the lock.
        """
        role = "model" if isinstance(spec, ModelSpec) else "encoder"
        key = (role, spec.name)
        if key in self._revisions:
            return self._revisions[key]
        where = self.weights_location(spec)
        if self.lock is not None:
            rev = self.lock.apply(self, spec, role, where, local_only)
        elif where.kind == "hub":
            commit = resolve_hub_revision(
                where.source, where.requested, endpoint=self.endpoint, local_only=local_only, who=spec.name
            )
            rev = Revision(spec.name, role, where.source, "hub", where.requested, commit)
        else:
            rev = Revision(
                spec.name,
                role,
                where.source,
                where.kind,
                None,
                _local_digest(spec.name, where, spec.is_standin),
            )
        if not local_only:
            self._revisions[key] = rev  # a cache-only answer does not stand in for a full resolution
        return rev

    def weights_location(self, spec: ModelSpec | EncoderSpec) -> Revision:
        """Where ``spec``'s weights come from, before resolution (``resolved`` is empty).

        ``kind`` is ``"hub"`` (``source`` the repository, ``requested`` its revision), or ``"file"``
        / ``"folder"`` (``source`` the path as recorded, see :meth:`relative`).
        """
        role = "model" if isinstance(spec, ModelSpec) else "encoder"
        hub = _hub_repo(spec, self)
        if hub is not None:
            repo, requested = hub
            return Revision(spec.name, role, repo, "hub", requested, "")
        path, kind = _local_weights(spec, self)
        return Revision(spec.name, role, self.relative(path), kind, None, "", path=str(path))

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
            "run `python -m iconicity_utils.demo.standins --config <config>` (run_all.sh does this)"
        )
    try:
        rev = registry.revision(spec)  # the commit (or digest) that is loaded, and recorded
    except LockMismatchError:
        raise
    except Exception as exc:  # no revision, no load: never "whatever main is now"
        raise RuntimeError(
            f"could not load diffusion model {spec.name!r} from {source!r}: its revision could not be "
            f"resolved: {type(exc).__name__}: {exc}"
        ) from exc
    kwargs: dict[str, Any] = {"dtype": torch_dtype(spec.dtype)}  # diffusers >= 0.42 name
    if rev.kind == "hub":
        kwargs["revision"] = rev.resolved  # the resolved (or locked) commit, not "main"
    if spec.variant:
        kwargs["variant"] = spec.variant
    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(source, **kwargs)
    except Exception as exc:  # re-raised with the id: never swap in another model
        raise RuntimeError(
            f"could not load diffusion model {spec.name!r} from {source!r} "
            f"(revision={rev.describe()}, dtype={spec.dtype}): {type(exc).__name__}: {exc}"
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


# --------------------------------------------------------------------------------------------
# Revisions: the hub commit, or the sha256 of local weights, that a run loads
# --------------------------------------------------------------------------------------------

#: a full git commit hash, as the hub answers it
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
#: a content digest of local weights
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


class RevisionError(RuntimeError):
    """A revision could not be resolved; the message names the entry, the id and the cause."""


class LockMismatchError(RuntimeError):
    """A study's lock disagrees with the registry or with the weights on disk."""


@dataclass(frozen=True)
class Revision:
    """The resolved revision of one registry entry.

    Attributes:
        name: the registry entry.
        role: ``"model"`` or ``"encoder"``.
        source: the hub repository the weights come from, or the local path (:meth:`Registry.relative`).
        kind: ``"hub"``, ``"file"`` or ``"folder"``.
        requested: the hub revision asked for (``"main"``, a tag or a commit); None for local weights.
        resolved: the 40-hex commit (hub) or ``"sha256:<hex>"`` (local); what was loaded.
        locked: taken from, or checked against, the study's lock.
        path: the local path, absolute (local kinds only; not recorded).
    """

    name: str
    role: str
    source: str
    kind: str
    requested: str | None
    resolved: str
    locked: bool = False
    path: str | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The entry as written to a lock and to provenance."""
        out: dict[str, Any] = {"source": self.source, "kind": self.kind}
        if self.requested is not None:
            out["requested"] = self.requested
        out["resolved"] = self.resolved
        return out

    def describe(self) -> str:
        if self.kind == "hub":
            return f"{self.requested} -> {self.resolved}" if self.resolved else str(self.requested)
        return self.resolved or "(not resolved)"


_MESSAGES_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """Log ``message`` at INFO once per process (for_config runs once per table written)."""
    if message not in _MESSAGES_SAID:
        _MESSAGES_SAID.add(message)
        logger.info(message)


def _hub_repo(spec: ModelSpec | EncoderSpec, registry: Registry) -> tuple[str, str] | None:
    """``(repository, requested revision)`` of the hub repository ``spec``'s weights come from; None if local."""
    if spec.is_standin:
        return None
    if isinstance(spec, ModelSpec) or spec.backend == "hf-clip":
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
    if spec.backend == "timm" and spec.weights == "hub":
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(spec.source)
        hub = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not hub:
            raise RevisionError(
                f"encoder {spec.name!r}: timm has no hub weights for {spec.source!r}; give a checkpoint path"
            )
        repo, _, pinned = hub.partition("@")
        return repo, pinned or spec.revision or "main"
    raise RevisionError(f"encoder {spec.name!r}: weights {spec.weights!r} are neither 'hub' nor a local path")


def _local_weights(spec: ModelSpec | EncoderSpec, registry: Registry) -> tuple[Path, str]:
    """The local file or folder that holds ``spec``'s weights, and its kind (``"file"``/``"folder"``)."""
    if spec.is_standin:
        return registry.standin_path(spec.name), "folder"
    if isinstance(spec, ModelSpec) or spec.backend == "hf-clip":
        return Path(registry.resolve(spec)), "folder"
    value = spec.source if spec.backend == "sscd" else spec.weights
    if value is None:
        raise RevisionError(f"encoder {spec.name!r} names no weights")
    return Path(registry.resolve_path(value)), "file"


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex (memoised per process by path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]


def content_digest(path: str | Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes, or of a folder (every file's relative POSIX path and sha256,
    in sorted order).  Memoised per file by path, size and modification time.

    Raises:
        FileNotFoundError: the path does not exist (or the folder holds no file).
    """
    path = Path(path)
    if path.is_file():
        return "sha256:" + file_sha256(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or folder: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(f"folder {path} holds no file")
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + file_sha256(f).encode() + b"\n")
    return "sha256:" + h.hexdigest()


def _local_digest(name: str, where: Revision, standin: bool = False) -> str:
    try:
        return content_digest(where.path or where.source)
    except FileNotFoundError as exc:
        hint = (
            "; the stand-in has not been built: run `python -m iconicity_utils.demo.standins --config <config>`"
            if standin
            else ""
        )
        raise RevisionError(f"{where.role} {name!r}: its weights are not there: {exc}{hint}") from exc


#: hub resolutions of this process: (endpoint, cache, repo, requested) -> (commit, resolved online)
_HUB: dict[tuple[str | None, str, str, str], tuple[str, bool]] = {}


def resolve_hub_revision(
    repo_id: str,
    revision: str = "main",
    *,
    endpoint: str | None = None,
    local_only: bool = False,
    who: str | None = None,
) -> str:
    """The commit ``revision`` of hub repository ``repo_id`` points to, by huggingface_hub's own
    :meth:`~huggingface_hub.HfApi.resolve_revision`: asked of the hub when online, read from the
    local cache's ``refs/`` under ``HF_HUB_OFFLINE=1`` (or ``local_only``), a commit hash as is.

    Memoised per process (so every image of a run records the same commit).

    Raises:
        RevisionError: not found, gated without access, or neither reachable nor cached; names
            ``who`` (the registry entry), the repository, the revision and the cause.
    """
    from huggingface_hub import HfApi, constants

    key = (endpoint, str(constants.HF_HUB_CACHE), repo_id, revision)
    hit = _HUB.get(key)
    if hit is not None and (hit[1] or local_only):
        return hit[0]
    offline = bool(constants.HF_HUB_OFFLINE)
    cache_only = local_only or offline  # offline: straight to refs/, without a "could not reach" warning
    try:
        rev = HfApi(endpoint=endpoint).resolve_revision(
            repo_id, revision=revision, local_files_only=cache_only
        )
    except Exception as exc:  # RepositoryNotFound, GatedRepo, RevisionNotFound, RevisionResolution, HTTP
        label = f"{who!r} " if who else ""
        where = " from the local cache" + (" (HF_HUB_OFFLINE=1)" if offline else "") if cache_only else ""
        raise RevisionError(
            f"{label}cannot resolve revision {revision!r} of hub repository {repo_id!r}{where}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    commit = str(rev.resolved)
    if not COMMIT_RE.fullmatch(commit):
        raise RevisionError(
            f"hub repository {repo_id!r}: revision {revision!r} resolved to {commit!r}, not a commit"
        )
    _HUB[key] = (commit, not cache_only)
    return commit


# --------------------------------------------------------------------------------------------
# The lock: every id of a study pinned to its resolved revision
# --------------------------------------------------------------------------------------------

LOCK_FORMAT = 1


class LockEntry(Section):
    source: str
    kind: Literal["hub", "file", "folder"]
    requested: str | None = None
    resolved: str


class LockFile(Section):
    lock_format: Literal[1]  # type: ignore[valid-type]
    config: str
    created_utc: str
    huggingface_hub: str | None = None
    models: dict[str, LockEntry]
    encoders: dict[str, LockEntry] = Field(default_factory=dict)


def lock_path(config: str | Path) -> Path:
    """The lock of a study config: ``configs/paper.yaml`` -> ``configs/paper.lock.yaml``."""
    config = Path(config)
    return config.with_name(config.name.removesuffix(".yaml").removesuffix(".yml") + ".lock.yaml")


@dataclass(frozen=True)
class Lock:
    """A study's lock file (``<config>.lock.yaml``), read and validated."""

    path: Path
    models: dict[str, LockEntry]
    encoders: dict[str, LockEntry]
    sha256: str
    config: str = ""

    @classmethod
    def read(cls, path: str | Path) -> Lock:
        """Read and validate a lock file.

        Raises:
            ConfigError: malformed (names the key and the file), or a revision that is not a
                commit (hub) or a sha256 digest (local).
        """
        path = Path(path)
        raw = path.read_bytes()
        try:
            data = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(path, "<yaml>", f"not valid YAML: {exc}") from exc
        lock = validate(LockFile, data, path)
        for role, entries in (("models", lock.models), ("encoders", lock.encoders)):
            for name, entry in entries.items():
                pattern = COMMIT_RE if entry.kind == "hub" else DIGEST_RE
                if not pattern.fullmatch(entry.resolved):
                    want = "a 40-hex commit" if entry.kind == "hub" else "sha256:<64 hex>"
                    raise ConfigError(
                        path, f"{role}.{name}.resolved", f"expected {want}, got {entry.resolved!r}"
                    )
        return cls(path, dict(lock.models), dict(lock.encoders), hashlib.sha256(raw).hexdigest(), lock.config)

    def require(self, cfg: Any) -> None:
        """Every model and encoder ``cfg`` uses must be in the lock.

        Raises:
            LockMismatchError: naming the entries that are not.
        """
        missing = [f"model {m!r}" for m in cfg.models if m not in self.models]
        missing += [f"encoder {e!r}" for e in _encoder_names(cfg) if e not in self.encoders]
        if missing:
            raise LockMismatchError(
                f"{self.path}: the lock lacks {', '.join(missing)}, which {cfg.source} uses; "
                f"{_relock_hint(cfg.source)}"
            )

    def entry(self, role: str, name: str) -> LockEntry:
        table = self.models if role == "model" else self.encoders
        if name not in table:
            raise LockMismatchError(
                f"{self.path}: the lock has no {role} {name!r}; {_relock_hint(self.config)}"
            )
        return table[name]

    def apply(
        self, registry: Registry, spec: ModelSpec | EncoderSpec, role: str, where: Revision, local_only: bool
    ):
        """The locked revision of ``spec``, after checking it still describes the registry and the disk."""
        entry = self.entry(role, spec.name)
        for what, locked, now in (
            ("source", entry.source, where.source),
            ("kind", entry.kind, where.kind),
            ("requested revision", entry.requested, where.requested),
        ):
            if locked != now:
                raise LockMismatchError(
                    f"{self.path}: {role} {spec.name!r} was locked with {what} {locked!r}, but the registry "
                    f"now gives {now!r}; {_relock_hint(self.config)}"
                )
        if where.kind != "hub":
            now = _local_digest(spec.name, where, spec.is_standin)
            if now != entry.resolved:
                raise LockMismatchError(
                    f"{self.path}: {role} {spec.name!r}: {where.source} has changed since it was locked "
                    f"({entry.resolved} -> {now}); restore the locked file or {_relock_hint(self.config)}"
                )
        elif role == "encoder" and not COMMIT_RE.fullmatch(where.requested or ""):
            # open_clip / timm / transformers load the requested revision, not the locked commit:
            # the commit it points to now must be the locked one
            now = resolve_hub_revision(
                where.source,
                where.requested or "main",
                endpoint=registry.endpoint,
                local_only=local_only,
                who=spec.name,
            )
            if now != entry.resolved:
                raise LockMismatchError(
                    f"{self.path}: encoder {spec.name!r}: {where.source}@{where.requested} is now commit {now}, "
                    f"but the lock says {entry.resolved}; its library loads {where.requested!r}, so the locked "
                    f"weights cannot be guaranteed: pin `revision` in configs/encoders.yaml or "
                    f"{_relock_hint(self.config)}"
                )
        return Revision(
            spec.name, role, where.source, where.kind, where.requested, entry.resolved, True, where.path
        )

    def describe(self) -> dict[str, Any]:
        return {"path": self.path.as_posix(), "sha256": self.sha256}


def _relock_hint(config: str | Path | None) -> str:
    target = config or "<config>"
    return f"rerun `python -m iconicity_utils.registry lock --config {target}` to re-pin it"


def _encoder_names(cfg: Any) -> list[str]:
    roles = (cfg.encoders.recognition, cfg.encoders.realization, cfg.encoders.copy_detection)
    return list(dict.fromkeys(e for e in roles if e is not None))


def _specs_of(cfg: Any, registry: Registry) -> list[ModelSpec | EncoderSpec]:
    return [registry.model(m) for m in cfg.models] + [registry.encoder(e) for e in _encoder_names(cfg)]


def revision_record(cfg: Any, local_only: bool = True) -> dict[str, Any]:
    """The revisions of every model and encoder ``cfg`` uses, and its lock, for provenance.

    Hub revisions come from the lock, from this process's earlier resolutions, or (``local_only``,
    the default) from the local hub cache only, never the network; what cannot be resolved is
    recorded with its reason under ``error`` (the run itself refuses to load it).
    """
    try:
        registry = Registry.for_config(cfg)
    except (LockMismatchError, ConfigError) as exc:
        return {"lock": {"path": str(lock_path(cfg.source)), "error": str(exc)}, "models": {}, "encoders": {}}
    out: dict[str, Any] = {
        "lock": registry.lock.describe() if registry.lock else None,
        "models": {},
        "encoders": {},
    }
    for spec in _specs_of(cfg, registry):
        table = out["models"] if isinstance(spec, ModelSpec) else out["encoders"]
        try:
            rev = registry.revision(spec, local_only=local_only)
            table[spec.name] = {**rev.as_dict(), "locked": rev.locked}
        except Exception as exc:  # recorded, not raised: provenance must not stop a table being written
            table[spec.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def write_lock(cfg: Any, path: str | Path | None = None, *, endpoint: str | None = None) -> Path:
    """Resolve every model and encoder of ``cfg`` and write the lock (default :func:`lock_path`).

    An existing lock is ignored while resolving and replaced atomically.  Nothing is written unless
    every entry resolves.

    Raises:
        RevisionError: naming every entry that could not be resolved.
    """
    from importlib import metadata

    registry = dataclasses.replace(Registry.for_config(cfg, use_lock=False), endpoint=endpoint)
    target = Path(path) if path is not None else lock_path(cfg.source)
    entries: dict[str, dict[str, Any]] = {"models": {}, "encoders": {}}
    errors = []
    for spec in _specs_of(cfg, registry):
        try:
            rev = registry.revision(spec)
        except (RevisionError, ConfigError) as exc:
            errors.append(f"  {spec.name}: {exc}")
            continue
        entries["models" if rev.role == "model" else "encoders"][spec.name] = rev.as_dict()
    if errors:
        raise RevisionError(f"cannot lock {cfg.source}; no lock written:\n" + "\n".join(errors))
    data = {
        "lock_format": LOCK_FORMAT,
        "config": registry.relative(cfg.source) if cfg.source else "<dict>",
        "created_utc": _dt.datetime.now(_dt.timezone.utc)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z"),
        "huggingface_hub": metadata.version("huggingface_hub"),
        **entries,
    }
    header = (
        f"# The lock of {data['config']}: every model and encoder pinned to the hub commit (or the sha256\n"
        "# of the local weights) it resolved to.  Runs of that config load these revisions and stop on any\n"
        "# mismatch.  Written by `python -m iconicity_utils.registry lock`; regenerate it, do not edit it.\n"
    )
    text = header + yaml.safe_dump(data, sort_keys=False, width=120)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    Lock.read(target)  # what was written reads back
    return target


def check_lock(cfg: Any, *, endpoint: str | None = None, local_only: bool = False) -> list[str]:
    """Problems between ``cfg``'s lock and the registry / the weights; an empty list means it holds.

    Raises:
        FileNotFoundError: the config has no lock.
    """
    path = lock_path(cfg.source)
    if not path.is_file():
        raise FileNotFoundError(f"{cfg.source} has no lock ({path}); write one with the `lock` command")
    try:
        registry = dataclasses.replace(Registry.for_config(cfg), endpoint=endpoint)
    except (LockMismatchError, ConfigError) as exc:
        return [str(exc)]
    problems = []
    for spec in _specs_of(cfg, registry):
        try:
            registry.revision(spec, local_only=local_only)
        except (LockMismatchError, RevisionError) as exc:
            problems.append(str(exc))
    return problems


# --------------------------------------------------------------------------------------------
# Command line: python -m iconicity_utils.registry lock|check --config FILE
# --------------------------------------------------------------------------------------------


def read_study_entries(config: str | Path) -> SimpleNamespace:
    """The parts of a study config file the lock needs, read as :class:`~iconicity_utils.config.study.StudyConfig`
    reads them: ``models``, ``encoders`` (roles), ``paths.root`` (relative to the file's folder,
    default ``..``) and ``paths.standins`` (default ``.cache/standins``).  The registry module sits
    below the config module, so it cannot use it; tests check both agree on every shipped config.

    Raises:
        FileNotFoundError: no such file.  ConfigError: a missing or mistyped key.
    """
    path = Path(config).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"study config not found: {config}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    models = data.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ConfigError(path, "models", "expected a list of model ids")
    enc = data.get("encoders")
    if not isinstance(enc, dict) or not isinstance(enc.get("recognition"), str):
        raise ConfigError(
            path, "encoders", "expected a mapping with recognition / realization / copy_detection"
        )
    paths = data.get("paths") or {}
    root = (path.parent / str(paths.get("root", ".."))).resolve()
    encoders = SimpleNamespace(
        recognition=enc.get("recognition"),
        realization=enc.get("realization"),
        copy_detection=enc.get("copy_detection"),
    )
    return SimpleNamespace(
        source=str(path),
        root=root,
        models=models,
        encoders=encoders,
        paths=SimpleNamespace(standins=str(paths.get("standins", ".cache/standins"))),
    )


def main(argv: list[str] | None = None) -> int:
    """``lock``: write ``<config>.lock.yaml``; ``check``: verify it.  Exit 0 ok, 1 problems, 2 usage."""
    parser = argparse.ArgumentParser(
        prog="python -m iconicity_utils.registry",
        description="Pin every model and encoder of a study to its resolved hub commit / local sha256.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("lock", "resolve every id of the config and write <config>.lock.yaml"),
        (
            "check",
            "verify the config's lock against the registry and the weights (HF_HUB_OFFLINE=1: the cache)",
        ),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", required=True, help="study config, e.g. configs/paper.yaml")
        cmd.add_argument("--endpoint", help="hub endpoint (default: HF_ENDPOINT or huggingface.co)")
        if name == "lock":
            cmd.add_argument("--output", help="lock file (default: <config>.lock.yaml)")
    args = parser.parse_args(argv)
    try:
        cfg = read_study_entries(args.config)
    except (FileNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "lock":
        try:
            path = write_lock(cfg, args.output, endpoint=args.endpoint)
        except (RevisionError, ConfigError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        lock = Lock.read(path)
        print(f"wrote {path}")
        for role, entries in (("model", lock.models), ("encoder", lock.encoders)):
            for name, entry in entries.items():
                asked = f"{entry.requested} -> " if entry.requested else ""
                print(f"  {role:7s} {name:28s} {entry.source}  {asked}{entry.resolved}")
        return 0
    try:
        problems = check_lock(cfg, endpoint=args.endpoint)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    if not problems:
        print(f"{lock_path(cfg.source)} holds for {args.config}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
