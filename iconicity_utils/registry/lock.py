"""Writing and checking a study's lock, and the revision record of its provenance.

``python -m iconicity_utils registry lock --config configs/paper.yaml`` resolves every model,
encoder and captioner of a study and writes ``configs/paper.lock.yaml`` (:func:`write_lock`);
``... registry check`` verifies it (:func:`check_lock`).  :func:`revision_record` is what every
table's provenance records.  The lock file itself: :mod:`iconicity_utils.registry.lockfile`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from iconicity_utils.core.schema import ConfigError
from iconicity_utils.registry.lockfile import LOCK_FORMAT, TABLES, Lock, lock_path, study_names
from iconicity_utils.registry.revisions import LockMismatchError, RevisionError
from iconicity_utils.registry.specs import Registry

__all__ = ["revision_record", "write_lock", "check_lock"]

_HEADER = (
    "# The lock of {config}: every model, encoder and captioner pinned to the hub commit (or the\n"
    "# sha256 of the local weights) it resolved to.  Runs of that config load these revisions and stop\n"
    "# on any mismatch.  Written by `python -m iconicity_utils registry lock`; regenerate it, do not edit it.\n"
)


def _tables(cfg: Any) -> dict[str, dict[str, Any]]:
    """Empty tables of the roles the study has: models, encoders, and captioners when it uses one."""
    names = study_names(cfg)
    return {TABLES[role]: {} for role in TABLES if role != "captioner" or names["captioner"]}


def revision_record(cfg: Any, local_only: bool = True) -> dict[str, Any]:
    """The revisions of every model, encoder and captioner ``cfg`` uses, and its lock, for provenance.

    Hub revisions come from the lock, from this process's earlier resolutions, or (``local_only``,
    the default) from the local hub cache only, never the network; what cannot be resolved is
    recorded with its reason under ``error`` (the run itself refuses to load it).  The
    ``captioners`` table is there only when the study uses one.
    """
    try:
        registry = Registry.for_config(cfg)
    except (LockMismatchError, ConfigError) as exc:
        return {"lock": {"path": str(lock_path(cfg.source)), "error": str(exc)}, "models": {}, "encoders": {}}
    out: dict[str, Any] = {"lock": registry.lock.describe() if registry.lock else None, **_tables(cfg)}
    for spec in registry.specs_of(cfg):
        table = out[TABLES[spec.role]]
        try:
            rev = registry.revision(spec, local_only=local_only)
            table[spec.name] = {**rev.as_dict(), "locked": rev.locked}
        except Exception as exc:  # recorded, not raised: provenance must not stop a table being written
            table[spec.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _write_atomically(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` through a temporary file renamed into place (mode 0644)."""
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


def write_lock(cfg: Any, path: str | Path | None = None, *, endpoint: str | None = None) -> Path:
    """Resolve every model, encoder and captioner of ``cfg`` and write the lock (default
    :func:`~iconicity_utils.registry.lockfile.lock_path`).

    An existing lock is ignored while resolving and replaced atomically.  Nothing is written unless
    every entry resolves.  A ``captioners`` table is written only when the study uses a captioner.

    Raises:
        RevisionError: naming every entry that could not be resolved.
    """
    registry = dataclasses.replace(Registry.for_config(cfg, use_lock=False), endpoint=endpoint)
    target = Path(path) if path is not None else lock_path(cfg.source)
    entries = _tables(cfg)
    errors = []
    for spec in registry.specs_of(cfg):
        try:
            rev = registry.revision(spec)
        except (RevisionError, ConfigError) as exc:
            errors.append(f"  {spec.name}: {exc}")
            continue
        entries[TABLES[rev.role]][spec.name] = rev.as_dict()
    if errors:
        raise RevisionError(f"cannot lock {cfg.source}; no lock written:\n" + "\n".join(errors))
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    data = {
        "lock_format": LOCK_FORMAT,
        "config": registry.relative(cfg.source) if cfg.source else "<dict>",
        "created_utc": created,
        "huggingface_hub": metadata.version("huggingface_hub"),
        **entries,
    }
    text = _HEADER.format(config=data["config"]) + yaml.safe_dump(data, sort_keys=False, width=120)
    _write_atomically(target, text)
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
    for spec in registry.specs_of(cfg):
        try:
            registry.revision(spec, local_only=local_only)
        except (LockMismatchError, RevisionError) as exc:
            problems.append(str(exc))
    return problems
