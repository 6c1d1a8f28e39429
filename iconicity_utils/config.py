"""Study configuration: one YAML file per run, validated on load.

A study config (``configs/demo.yaml``, ``configs/paper.yaml``) names the diffusion models and
encoders (by registry id, see :mod:`iconicity_utils.registry`), the thresholds, the grid, the
number of images per reference, the seeds, the SPARQL endpoint and the output paths.

Validation is strict, in the spirit of diffusers' "a clear error rather than a silent
correction": an unknown key, a value of the wrong type, or a threshold outside [0, 1] raises
:class:`ConfigError`, whose message names the offending key (as a dotted path) and the file.

Relative paths in a config are resolved against the *project root*, which is the parent of the
folder holding the config file (configs live in ``<root>/configs/``), unless ``paths.root`` says
otherwise (itself relative to the config file's folder).

Example:
    >>> from iconicity_utils.config import load_config
    >>> cfg = load_config("configs/demo.yaml")          # doctest: +SKIP
    >>> cfg.thresholds.tau_cra_static                   # doctest: +SKIP
    0.7
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "ConfigError",
    "StudyConfig",
    "Thresholds",
    "RealizationConfig",
    "GenerationConfig",
    "CollectionConfig",
    "EncoderChoice",
    "PathsConfig",
    "load_config",
    "parse_config",
    "build_dataclass",
]

UNIT = {"range": (0.0, 1.0)}  # field metadata: value must lie in [0, 1]
POSITIVE = {"range": (1, None)}  # field metadata: integer >= 1


class ConfigError(ValueError):
    """A config file (or registry file) is invalid; the message names the key and the file."""

    def __init__(self, file: str | Path | None, key: str, problem: str):
        self.file = str(file) if file is not None else "<dict>"
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: key '{key}': {problem}")


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds of the paper (method.md §3, §9)."""

    tau_cra_static: float = field(default=0.70, metadata=UNIT)
    tau_cra_dynamic: float = field(default=0.75, metadata=UNIT)
    tau_reuse: float = field(default=0.60, metadata=UNIT)
    #: ``">"`` as in the paper's figure (default), ``">="`` as in the authors' released script.
    comparison: Literal[">", ">="] = ">"


@dataclass(frozen=True)
class RealizationConfig:
    """How Visual Reuse cuts and embeds cells (method.md §3.3)."""

    grid: tuple[int, int] = (4, 4)  # (rows, cols)
    #: ``"crop"`` embeds every cell as its own image (faithful); ``"tokens"`` pools ViT tokens (fast, ours).
    cells: Literal["crop", "tokens"] = "crop"
    #: ``"mean_all"`` averages every token of ``forward_features`` (authors' script); ``"cls"`` takes CLS.
    pool: Literal["mean_all", "cls"] = "mean_all"
    #: encoder inputs per forward pass (images are never split across batches)
    batch_size: int = field(default=32, metadata=POSITIVE)
    #: DataLoader workers that decode and crop while the encoders run (0: in the main process)
    num_workers: int = 0
    #: at most this many generated images per (model, variant, reference), in index / file-name order
    k_gen: int = field(default=50, metadata=POSITIVE)
    #: also compute the similarity baselines (global CLIP / DINO / SSCD cosine, pHash, SSIM)
    baselines: bool = True
    #: side of the square greyscale thumbnails SSIM compares
    ssim_size: int = field(default=256, metadata={"range": (7, None)})
    #: bootstrap resamples over references for the model-level 95 % confidence intervals
    n_bootstrap: int = field(default=1000, metadata=POSITIVE)
    bootstrap_seed: int = 0


@dataclass(frozen=True)
class EncoderChoice:
    """Which registered encoder plays which role, and where the encoders run."""

    recognition: str  # CLIP image encoder f (CRA)
    realization: str  # DINO encoder g (VR)
    copy_detection: str | None = None  # SSCD baseline; None skips that baseline, and says so
    #: explicit device for scoring (``"cpu"``, ``"cuda"``, ``"cuda:1"``); nothing is guessed
    device: str = "cpu"
    #: ``"fp32"``; ``"fp16"`` / ``"bf16"`` run the encoders under CUDA autocast (CUDA devices only)
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"


@dataclass(frozen=True)
class GenerationConfig:
    """Images per reference and seeding (method.md §2)."""

    n_images: int = field(default=10, metadata=POSITIVE)
    #: ``"hash"``: seed = stable hash of (variant, slug, index); ``"index"``: seed = base_seed + index.
    seed_mode: Literal["hash", "index"] = "hash"
    base_seed: int = 0
    batch_size: int = field(default=1, metadata=POSITIVE)
    #: explicit device; ``"cuda"`` on a GPU machine, ``"cpu"`` otherwise.  Nothing is guessed.
    device: str = "cpu"
    variants: list[str] = field(default_factory=lambda: ["title"])
    #: how a resumed run checks an existing image: ``"decode"`` decodes it fully; ``"header"`` reads its
    #: metadata and checks the final PNG ``IEND`` chunk only (faster for large runs).
    verify: Literal["decode", "header"] = "decode"
    #: CPU threads per process (``torch.set_num_threads``); null keeps torch's default.  CPU pixel values
    #: depend on it (float accumulation order), so it is recorded in every image.
    num_threads: int | None = field(default=None, metadata=POSITIVE)


@dataclass(frozen=True)
class CollectionConfig:
    """Wikidata collection (stage 01)."""

    #: a SPARQL endpoint URL, or ``"local"`` to serve ``snapshot`` with the bundled oxigraph server.
    endpoint: str = "https://query.wikidata.org/sparql"
    snapshot: str | None = None
    static_classes: list[str] = field(default_factory=lambda: ["Q3305213"])
    dynamic_classes: list[str] = field(default_factory=lambda: ["Q11424", "Q5398426"])
    min_sitelinks: int = 30
    top_k_static: int = field(default=380, metadata=POSITIVE)
    top_k_dynamic: int = field(default=387, metadata=POSITIVE)
    page_size: int = field(default=500, metadata=POSITIVE)
    #: ``"commons"`` downloads P18 files; ``"synthetic"`` draws labelled stand-ins (demo only).
    reference_images: Literal["commons", "synthetic"] = "commons"
    image_width: int = field(default=1024, metadata=POSITIVE)
    #: folder with one sub-folder of user-provided stills per dynamic slug (relative to data root).
    stills_dir: str = "stills"
    phash_threshold: int = 18
    use_saved_responses: bool = False
    timeout_s: float = 60.0
    max_retries: int = 5
    #: exponential backoff between retries: ``min(backoff_cap_s, backoff_base_s * 2**attempt)`` seconds.
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    #: the longest ``Retry-After`` (429/503) honoured; a server asking for more is an error, not a wait.
    retry_after_cap_s: float = 300.0
    #: the MediaWiki API that describes Commons files (``reference_images: commons``).
    commons_api: str = "https://commons.wikimedia.org/w/api.php"
    user_agent: str = "iconicity/0.1 (research compendium; https://arxiv.org/abs/2511.11435) SPARQLWrapper"


@dataclass(frozen=True)
class PathsConfig:
    """Where things are read and written, relative to the project root."""

    data: str = "data"
    results: str = "results"
    figures: str = "figures"
    #: where stand-in models are built (git-ignored)
    standins: str = ".cache/standins"
    cache: str = ".cache"
    #: project root, relative to the config file's folder
    root: str = ".."


@dataclass(frozen=True)
class StudyConfig:
    """One run of the study.  Build it with :func:`load_config`."""

    name: str
    models: list[str]
    encoders: EncoderChoice
    description: str = ""
    thresholds: Thresholds = field(default_factory=Thresholds)
    realization: RealizationConfig = field(default_factory=RealizationConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    collection: CollectionConfig = field(default_factory=CollectionConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    #: the config file this came from (set by :func:`load_config`, not a YAML key)
    source: str | None = field(default=None, metadata={"internal": True})

    # -- derived paths -----------------------------------------------------------------------
    @property
    def root(self) -> Path:
        base = Path(self.source).resolve().parent if self.source else Path.cwd()
        return (base / self.paths.root).resolve()

    def path(self, which: str, *parts: str) -> Path:
        """Absolute path under one of the configured roots (``data``, ``results``, ...)."""
        base = Path(getattr(self.paths, which))
        if not base.is_absolute():
            base = self.root / base
        return base.joinpath(*parts)

    @property
    def data_dir(self) -> Path:
        return self.path("data")

    @property
    def results_dir(self) -> Path:
        return self.path("results")

    @property
    def figures_dir(self) -> Path:
        return self.path("figures")

    # -- the layout every stage shares (data/README.md) ---------------------------------------
    @property
    def references_table(self) -> Path:
        """Stage 01 output: one row per reference."""
        return self.path("data", "processed", "references.parquet")

    def reference_dir(self, kind: str, slug: str) -> Path:
        """Stage 01 output: the reference images of one reference (authors' ``refdir/<slug>``)."""
        return self.path("data", "references", kind, slug)

    def generated_path(self, model: str, variant: str, slug: str, index: int) -> Path:
        """Stage 02 output: one generated image."""
        return self.path("data", "generated", model, variant, slug, f"{index}.png")

    @property
    def generations_manifest(self) -> Path:
        """Stage 02 output: one row per generated image (work unit)."""
        return self.path("results", "generations.parquet")

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the project root (as stored in tables), POSIX style.

        A path outside the root (a data root configured elsewhere) is returned absolute.
        """
        resolved = Path(path).resolve()
        if resolved.is_relative_to(self.root):
            return resolved.relative_to(self.root).as_posix()
        return resolved.as_posix()

    def absolute(self, stored: str | Path) -> Path:
        """Inverse of :meth:`relative`: a path as stored in a table -> an absolute path."""
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    def tau_cra(self, kind: str) -> float:
        """The recognition threshold for a reference kind (``static`` or ``dynamic``)."""
        if kind == "static":
            return self.thresholds.tau_cra_static
        if kind == "dynamic":
            return self.thresholds.tau_cra_dynamic
        raise ValueError(f"unknown reference kind {kind!r}; expected 'static' or 'dynamic'")

    def with_overrides(self, **sections: dict[str, Any]) -> StudyConfig:
        """A copy with some section values replaced, validated like the file itself.

        Example: ``cfg.with_overrides(generation={"n_images": 4})``.
        """
        raw = dataclasses.asdict(self)
        raw.pop("source")
        for section, values in sections.items():
            if isinstance(values, dict) and isinstance(raw.get(section), dict):
                raw[section] = {**raw[section], **values}
            else:
                raw[section] = values
        return parse_config(raw, source=self.source)


# --------------------------------------------------------------------------------------------
# Generic validation: dataclass + type hints -> checked instance
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str, file: str | None) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (lists -> tuples where declared)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _coerce(option, value, key, file)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(file, key, f"expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(file, key, f"expected null, got {value!r}")
    if origin is Literal:
        if value in args and type(value) is type(args[args.index(value)]):
            return value
        raise ConfigError(file, key, f"expected one of {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key, file)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(file, key, f"expected a list, got {type(value).__name__} {value!r}")
        return [_coerce(args[0], v, f"{key}[{i}]", file) for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(file, key, f"expected a list of {len(args)} items, got {value!r}")
        return tuple(
            _coerce(a, v, f"{key}[{i}]", file) for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(file, key, f"expected a mapping, got {type(value).__name__} {value!r}")
        return {
            _coerce(args[0], k, f"{key}", file): _coerce(args[1], v, f"{key}.{k}", file)
            for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported annotation {tp!r} for {key}")
    raise ConfigError(file, key, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _check_range(f: dataclasses.Field, value: Any, key: str, file: str | None) -> None:
    bounds = f.metadata.get("range")
    if bounds is None or value is None:
        return
    lo, hi = bounds
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        where = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ConfigError(file, key, f"value {value!r} is outside {where}")


def build_dataclass(cls: type, data: Any, where: str, file: str | None) -> Any:
    """Build the dataclass ``cls`` from a mapping, checking keys, types and ranges.

    Args:
        cls: a dataclass type whose fields carry type hints (and optional ``range`` metadata).
        data: the mapping read from YAML.
        where: the dotted key path of ``data`` (``""`` at the top level), used in messages.
        file: the file the mapping came from, used in messages.

    Raises:
        ConfigError: naming the key and the file, for an unknown key, a missing required key,
            a wrong type, or a value out of range.
    """
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        raise ConfigError(file, where or "<top>", f"expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(file, f"{prefix}{key}", f"unknown key; known keys are {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(file, f"{prefix}{name}", "required key is missing")
            continue
        value = _coerce(hints[name], data[name], f"{prefix}{name}", file)
        _check_range(f, value, f"{prefix}{name}", file)
        kwargs[name] = value
    return cls(**kwargs)


def _check_semantics(cfg: StudyConfig, file: str | None) -> None:
    rows, cols = cfg.realization.grid
    if rows < 1 or cols < 1:
        raise ConfigError(file, "realization.grid", f"rows and cols must be >= 1, got {cfg.realization.grid}")
    if cfg.realization.num_workers < 0:
        raise ConfigError(file, "realization.num_workers", f"must be >= 0, got {cfg.realization.num_workers}")
    if cfg.encoders.precision != "fp32" and not cfg.encoders.device.startswith("cuda"):
        raise ConfigError(
            file,
            "encoders.precision",
            f"{cfg.encoders.precision!r} autocast needs a CUDA device, but encoders.device is "
            f"{cfg.encoders.device!r}; use 'fp32' on CPU",
        )
    if not cfg.models:
        raise ConfigError(file, "models", "at least one diffusion model is required")
    if len(set(cfg.models)) != len(cfg.models):
        raise ConfigError(file, "models", f"duplicate model ids in {cfg.models}")
    if cfg.collection.endpoint == "local" and not cfg.collection.snapshot:
        raise ConfigError(file, "collection.snapshot", "endpoint 'local' needs a snapshot file")
    if not 0 <= cfg.collection.phash_threshold <= 64:
        raise ConfigError(file, "collection.phash_threshold", "a 64-bit pHash distance lies in [0, 64]")


def parse_config(data: dict[str, Any], source: str | Path | None = None) -> StudyConfig:
    """Validate a mapping as a :class:`StudyConfig`; ``source`` names it in error messages."""
    file = str(source) if source is not None else None
    cfg = build_dataclass(StudyConfig, data, "", file)
    cfg = dataclasses.replace(cfg, source=file)
    _check_semantics(cfg, file)
    # Model and encoder ids must exist in the registry: checked here so a typo fails at load.
    from iconicity_utils import registry

    reg = registry.Registry.for_config(cfg)
    for i, model in enumerate(cfg.models):
        if model not in reg.models:
            raise ConfigError(file, f"models[{i}]", f"unknown model {model!r}; known: {sorted(reg.models)}")
    for role in ("recognition", "realization", "copy_detection"):
        enc = getattr(cfg.encoders, role)
        if enc is not None and enc not in reg.encoders:
            raise ConfigError(
                file, f"encoders.{role}", f"unknown encoder {enc!r}; known: {sorted(reg.encoders)}"
            )
    return cfg


def load_config(path: str | Path) -> StudyConfig:
    """Load and validate a study config file.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: the YAML is malformed or does not match the schema; names key and file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(path, "<yaml>", f"not valid YAML: {exc}") from exc
    if data is None:
        raise ConfigError(path, "<top>", "the file is empty")
    return parse_config(data, source=path.resolve())
