"""The lock file of a study, read and applied: ``configs/paper.yaml`` -> ``configs/paper.lock.yaml``.

:class:`Lock` reads and validates a lock (:func:`lock_path`), checks that it covers every model,
encoder and captioner a study uses (:func:`study_names`), and gives an entry's locked revision
after checking it still describes the registry and the weights on disk (:meth:`Lock.apply`).
Writing and checking a lock: :mod:`iconicity_utils.registry.lock`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from iconicity_utils.core.schema import ConfigError, Section, validate
from iconicity_utils.registry.revisions import (
    COMMIT_RE,
    DIGEST_RE,
    LockMismatchError,
    Revision,
    local_digest,
    resolve_hub_revision,
)

__all__ = [
    "LOCK_FORMAT",
    "TABLES",
    "LockEntry",
    "LockFile",
    "Lock",
    "lock_path",
    "relock_hint",
    "study_names",
]

LOCK_FORMAT = 1
#: role of a registry entry -> its table in the lock (and in provenance)
TABLES = {"model": "models", "encoder": "encoders", "captioner": "captioners"}


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
    captioners: dict[str, LockEntry] = Field(default_factory=dict)


def lock_path(config: str | Path) -> Path:
    """The lock of a study config: ``configs/paper.yaml`` -> ``configs/paper.lock.yaml``."""
    config = Path(config)
    return config.with_name(config.name.removesuffix(".yaml").removesuffix(".yml") + ".lock.yaml")


def relock_hint(config: str | Path | None) -> str:
    """How to re-pin a study's lock (the end of every mismatch message)."""
    target = config or "<config>"
    return f"rerun `python -m iconicity_utils registry lock --config {target}` to re-pin it"


def study_names(cfg: Any) -> dict[str, list[str]]:
    """The registry names a study uses, by role: its models, its encoders (each role once) and the
    captioner of its literal prompts (``perturbation.literal_source: captioner``)."""
    roles = (cfg.encoders.recognition, cfg.encoders.realization, cfg.encoders.copy_detection)
    p = getattr(cfg, "perturbation", None)
    captioner = p is not None and p.literal_source == "captioner" and p.captioner
    return {
        "model": list(cfg.models),
        "encoder": list(dict.fromkeys(e for e in roles if e is not None)),
        "captioner": [p.captioner] if captioner else [],
    }


def _check_revisions(path: Path, lock: LockFile) -> None:
    """Every resolved revision must be a commit (hub) or a sha256 digest (local)."""
    for table in TABLES.values():
        for name, entry in getattr(lock, table).items():
            pattern = COMMIT_RE if entry.kind == "hub" else DIGEST_RE
            if not pattern.fullmatch(entry.resolved):
                want = "a 40-hex commit" if entry.kind == "hub" else "sha256:<64 hex>"
                raise ConfigError(
                    path, f"{table}.{name}.resolved", f"expected {want}, got {entry.resolved!r}"
                )


@dataclass(frozen=True)
class Lock:
    """A study's lock file (``<config>.lock.yaml``), read and validated."""

    path: Path
    models: dict[str, LockEntry]
    encoders: dict[str, LockEntry]
    sha256: str
    config: str = ""
    captioners: dict[str, LockEntry] = field(default_factory=dict)

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
        _check_revisions(path, lock)
        return cls(
            path,
            dict(lock.models),
            dict(lock.encoders),
            hashlib.sha256(raw).hexdigest(),
            lock.config,
            dict(lock.captioners),
        )

    def table(self, role: str) -> dict[str, LockEntry]:
        """The locked entries of one role (``"model"``, ``"encoder"``, ``"captioner"``)."""
        return getattr(self, TABLES[role])

    def require(self, cfg: Any) -> None:
        """Every model, encoder and captioner ``cfg`` uses must be in the lock.

        Raises:
            LockMismatchError: naming the entries that are not.
        """
        missing = [
            f"{role} {name!r}"
            for role, names in study_names(cfg).items()
            for name in names
            if name not in self.table(role)
        ]
        if missing:
            raise LockMismatchError(
                f"{self.path}: the lock lacks {', '.join(missing)}, which {cfg.source} uses; "
                f"{relock_hint(cfg.source)}"
            )

    def entry(self, role: str, name: str) -> LockEntry:
        table = self.table(role)
        if name not in table:
            raise LockMismatchError(
                f"{self.path}: the lock has no {role} {name!r}; {relock_hint(self.config)}"
            )
        return table[name]

    def apply(self, registry: Any, spec: Any, role: str, where: Revision, local_only: bool) -> Revision:
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
                    f"now gives {now!r}; {relock_hint(self.config)}"
                )
        if where.kind != "hub":
            now = local_digest(spec.name, where, spec.is_standin)
            if now != entry.resolved:
                raise LockMismatchError(
                    f"{self.path}: {role} {spec.name!r}: {where.source} has changed since it was locked "
                    f"({entry.resolved} -> {now}); restore the locked file or {relock_hint(self.config)}"
                )
        elif role == "encoder" and not COMMIT_RE.fullmatch(where.requested or ""):
            self._check_encoder_commit(registry, spec, where, entry, local_only)
        return Revision(
            spec.name, role, where.source, where.kind, where.requested, entry.resolved, True, where.path
        )

    def _check_encoder_commit(
        self, registry: Any, spec: Any, where: Revision, entry: LockEntry, local_only: bool
    ) -> None:
        """open_clip / timm / transformers load the requested revision, not the locked commit:
        the commit it points to now must be the locked one."""
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
                f"{relock_hint(self.config)}"
            )

    def describe(self) -> dict[str, Any]:
        return {"path": self.path.as_posix(), "sha256": self.sha256}
