"""Atomic writes, tables with provenance, and the record of what ran.

Every output of the study is written atomically (a temporary file in the same folder, then
``os.replace``), so a crash never leaves a half-written file under the final name.  The file gets
the usual permissions of a new file (``0o666`` less the process umask), not the owner-only
``0o600`` of a temporary file, so tables, figures and images can be read by others (a web server,
a colleague).  Tables carry provenance: a ``provenance`` JSON in the parquet schema metadata
(config, package versions, what ran) and, for stand-in runs, a ``note`` column reading
:data:`~iconicity_utils.core.constants.STANDIN_LABEL` on every row.

This module imports only :mod:`~iconicity_utils.core.constants` from the package: what it records of
a study comes from the config object itself (``cfg.is_standin``, ``cfg.revision_record()``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from iconicity_utils.core.constants import STANDIN_LABEL

__all__ = [
    "atomic_path",
    "atomic_dir",
    "new_file_mode",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "with_standin_label",
    "write_table",
    "read_table",
    "package_versions",
    "provenance",
    "utc_now",
]

TRACKED_PACKAGES = (
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "accelerate",
    "open_clip_torch",
    "timm",
    "numpy",
    "pandas",
    "pillow",
    "urllib3",
    "imagehash",
)


def _read_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore, once, at import
    os.umask(old)
    return old


#: the umask when the package was imported
_UMASK = _read_umask()


def new_file_mode(directory: bool = False) -> int:
    """The permissions a new file (``0o666``) or folder (``0o777``) gets under the umask.

    :func:`tempfile.mkstemp` and :func:`tempfile.mkdtemp` create owner-only files (``0o600``) and
    folders (``0o700``); outputs made through them are given this mode before they are renamed.
    """
    return (0o777 if directory else 0o666) & ~_UMASK


def utc_now() -> str:
    """The current UTC time, ISO 8601 with a ``Z``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The file then has the permissions of :func:`new_file_mode` (readable by others under the
    usual umask 022).  On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, new_file_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole.

    The folder gets ``mode`` (default: the usual permissions of a new folder, not ``mkdtemp``'s
    owner-only 0o700).  On an exception the temporary folder is removed and ``path`` is left as
    it was; an existing ``path`` is removed only once the new folder is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        os.chmod(tmp, new_file_mode(directory=True) if mode is None else mode)
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def package_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that decide results (None when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _git_commit(root: Path) -> str | None:
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def provenance(cfg=None, **extra: Any) -> dict[str, Any]:
    """What ran: time, host, package versions, git commit, config name and file, plus ``extra``.

    With a config, ``revisions`` records the resolved revision of every model and encoder it uses
    and its lock (:func:`~iconicity_utils.registry.revision_record`: hub commits from the lock or the
    local cache, never the network; local weights by sha256; what is unresolved says why).
    """
    record: dict[str, Any] = {
        "created_utc": utc_now(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }
    if cfg is not None:
        record.update(
            config=cfg.name,
            config_file=cfg.source,
            git_commit=_git_commit(cfg.root),
            standin=cfg.is_standin,
            revisions=cfg.revision_record(),
        )
        if record["standin"]:
            record["note"] = STANDIN_LABEL
    record.update(extra)
    return record


def with_standin_label(note: Any) -> str:
    """A row's note with the stand-in label added (never replacing it): ``"<note>; <label>"``."""
    text = note if isinstance(note, str) else ""
    if STANDIN_LABEL in text:
        return text
    return f"{text}; {STANDIN_LABEL}" if text.strip() else STANDIN_LABEL


def write_table(df, path: str | Path, cfg=None, **extra: Any) -> Path:
    """Write a DataFrame to parquet atomically, with provenance in the schema metadata.

    For a stand-in config every row's ``note`` gets ``STANDIN_LABEL``, so the label travels with
    any row that is copied out of the table; a row's own note (a reason) is kept before it:
    ``"CRA is constant; <label>"``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = df.copy()
    prov = provenance(cfg, **extra)
    if prov.get("standin"):
        df["note"] = [with_standin_label(n) for n in df["note"]] if "note" in df else STANDIN_LABEL
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"iconicity.provenance"] = json.dumps(prov, default=str).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_table(path: str | Path):
    """Read a parquet table written by :func:`write_table` (provenance in ``df.attrs``)."""
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path} (run the stage that writes it first)")
    table = pq.read_table(path)
    df: pd.DataFrame = table.to_pandas()
    raw = (table.schema.metadata or {}).get(b"iconicity.provenance")
    if raw:
        df.attrs["provenance"] = json.loads(raw)
    return df
