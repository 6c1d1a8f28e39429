"""Study configuration: one YAML file per run, validated on load.

A study config (``configs/demo.yaml``, ``configs/paper.yaml``) names the diffusion models and
encoders (by registry id, see :mod:`iconicity_utils.registry`), the thresholds, the grid, the
number of images per reference, the seeds, the SPARQL endpoint and the output paths.  The paper's
constants (thresholds, grid, ``k_gen``, the pHash distance) are the schema's defaults, taken from
:mod:`iconicity_utils.core.constants`; a config only states a value to override it (docs/method.md §9).

Validation is strict, in the spirit of diffusers' "a clear error rather than a silent
correction": an unknown key, a value of the wrong type, or a threshold outside [0, 1] raises
:class:`ConfigError`, whose message names the offending key (as a dotted path) and the file.
Each section is a frozen pydantic model (:class:`~iconicity_utils.core.schema.Section`); model and
encoder ids are checked against the registry when the file is loaded.

Relative paths in a config are resolved against the *project root*, which is the parent of the
folder holding the config file (configs live in ``<root>/configs/``), unless ``paths.root`` says
otherwise (itself relative to the config file's folder).

Example:
    >>> from iconicity_utils.config import load_config
    >>> from iconicity_utils.registry import PROJECT_ROOT
    >>> cfg = load_config(PROJECT_ROOT / "configs" / "demo.yaml")
    >>> cfg.thresholds.tau_cra_static, cfg.thresholds.tau_cra_dynamic, cfg.realization.grid
    (0.7, 0.75, (4, 4))
    >>> cfg.is_standin
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, PrivateAttr, field_validator

from iconicity_utils.config.analysis import CorrelatesConfig, PerturbationConfig, ValidationConfig
from iconicity_utils.config.sections import (
    CollectionConfig,
    EncoderChoice,
    GenerationConfig,
    PathsConfig,
    RealizationConfig,
    ScoringConfig,
    Thresholds,
)
from iconicity_utils.core.constants import KINDS
from iconicity_utils.core.schema import ConfigError, Section, validate
from iconicity_utils.registry import Registry, is_standin_config, revision_record

__all__ = ["ConfigError", "StudyConfig", "load_config", "merge_sections", "parse_config"]


class StudyConfig(Section):
    """One run of the study.  Build it with :func:`load_config` (or :func:`parse_config`)."""

    name: str
    models: list[str]
    encoders: EncoderChoice
    description: str = ""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    realization: RealizationConfig = Field(default_factory=RealizationConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    collection: CollectionConfig = Field(default_factory=CollectionConfig)
    correlates: CorrelatesConfig = Field(default_factory=CorrelatesConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    perturbation: PerturbationConfig = Field(default_factory=PerturbationConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    #: the config file this came from (set by :func:`parse_config`, not a YAML key)
    _source: str | None = PrivateAttr(default=None)

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, models: list[str]) -> list[str]:
        if not models:
            raise ValueError("at least one diffusion model is required")
        if len(set(models)) != len(models):
            raise ValueError(f"duplicate model ids in {models}")
        return models

    @property
    def is_standin(self) -> bool:
        """Whether this study's outputs are stand-in outputs (:func:`~iconicity_utils.registry.is_standin_config`)."""
        return is_standin_config(self)

    def revision_record(self) -> dict[str, Any]:
        """The resolved revision of every model and encoder, for provenance (:func:`~iconicity_utils.registry.revision_record`)."""
        return revision_record(self)

    @property
    def source(self) -> str | None:
        """The config file this came from (None for a config built from a mapping)."""
        return self._source

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

    @property
    def controls_table(self) -> Path:
        """Stage 01 output (``collection.controls``): matched works with few sitelinks, one row each,
        the references table's columns plus ``control_for`` (the slug of the iconic reference matched) and ``matched_genre``; their
        images' table: ``<data>/processed/control_images.parquet``."""
        return self.path("data", "processed", "controls.parquet")

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
        """The recognition threshold for a reference kind (one of ``constants.KINDS``)."""
        if kind not in KINDS:
            raise ValueError(f"unknown reference kind {kind!r}; expected one of {KINDS}")
        return getattr(self.thresholds, f"tau_cra_{kind}")

    # -- copies and records --------------------------------------------------------------------
    def with_overrides(self, **sections: Any) -> StudyConfig:
        """A copy with some section values replaced, validated like the file itself.

        Mappings are merged key by key, nested ones too; any other value replaces the key.

        Example: ``cfg.with_overrides(generation={"n_images": 4}, collection={"http": {"max_retries": 0}})``.
        """
        raw = merge_sections(self.model_dump(), sections)
        return parse_config(raw, source=self.source)

    def section_dump(self, *names: str) -> dict[str, Any]:
        """Some top-level keys as JSON-ready data, e.g. to record them in a table's provenance.

        With no names, the whole config.  ``cfg.section_dump("thresholds", "realization")``.

        Raises:
            KeyError: a name is not a top-level key of the config.
        """
        unknown = [n for n in names if n not in type(self).model_fields]
        if unknown:
            raise KeyError(f"unknown config section(s) {unknown}; known: {sorted(type(self).model_fields)}")
        return self.model_dump(mode="json", include=set(names) if names else None)


def merge_sections(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``updates`` merged in: nested mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_sections(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _check_registry_ids(cfg: StudyConfig, file: str | None) -> None:
    """Model and encoder ids must exist in the registry: checked at load so a typo fails early."""
    reg = Registry.for_config(cfg)
    for i, model in enumerate(cfg.models):
        if model not in reg.models:
            raise ConfigError(file, f"models[{i}]", f"unknown model {model!r}; known: {sorted(reg.models)}")
    for role in ("recognition", "realization", "copy_detection"):
        enc = getattr(cfg.encoders, role)
        if enc is not None and enc not in reg.encoders:
            raise ConfigError(
                file, f"encoders.{role}", f"unknown encoder {enc!r}; known: {sorted(reg.encoders)}"
            )


def parse_config(data: dict[str, Any], source: str | Path | None = None) -> StudyConfig:
    """Validate a mapping as a :class:`StudyConfig`; ``source`` names it in error messages.

    Raises:
        ConfigError: naming the key and the file, for an unknown or missing key, a wrong type,
            a value out of range, or a model / encoder id the registry does not know.
    """
    file = str(source) if source is not None else None
    cfg = validate(StudyConfig, data, file)
    cfg._source = file
    _check_registry_ids(cfg, file)
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
