"""Atomic writes, tables with provenance, and the record of what ran.

Every output of the study is written atomically (a temporary file in the same folder, then
``os.replace``), so a crash never leaves a half-written file under the final name.  Tables carry
provenance: a ``provenance`` JSON in the parquet schema metadata (config, package versions,
what ran) and, for stand-in runs, a ``note`` column reading
:data:`~iconicity_utils.registry.STANDIN_LABEL` on every row.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from iconicity_utils.registry import STANDIN_LABEL

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "write_table",
    "read_table",
    "package_versions",
    "provenance",
    "utc_now",
    "is_standin_config",
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
    "SPARQLWrapper",
    "imagehash",
)


def utc_now() -> str:
    """The current UTC time, ISO 8601 with a ``Z``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
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
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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


def is_standin_config(cfg) -> bool:
    """Whether any model or encoder a config uses is a random-weight stand-in (derived, not a flag)."""
    from iconicity_utils.standins import standins_for_config

    return bool(standins_for_config(cfg)) or cfg.collection.reference_images == "synthetic"


def provenance(cfg=None, **extra: Any) -> dict[str, Any]:
    """What ran: time, host, package versions, git commit, config name and file, plus ``extra``."""
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
            standin=is_standin_config(cfg),
        )
        if record["standin"]:
            record["note"] = STANDIN_LABEL
    record.update(extra)
    return record


def write_table(df, path: str | Path, cfg=None, **extra: Any) -> Path:
    """Write a DataFrame to parquet atomically, with provenance in the schema metadata.

    For a stand-in config every row gets ``note = STANDIN_LABEL``, so the label travels with
    any row that is copied out of the table.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = df.copy()
    prov = provenance(cfg, **extra)
    if prov.get("standin"):
        df["note"] = STANDIN_LABEL
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
