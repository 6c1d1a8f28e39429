"""Revisions: the hub commit, or the sha256 of the local weights, that a run loads.

- :class:`Revision`: the resolved revision of one registry entry (model, encoder or captioner);
- :func:`resolve_hub_revision`: a hub repository's requested revision -> its commit, through
  huggingface_hub's own :meth:`~huggingface_hub.HfApi.resolve_revision` (the hub online, the local
  cache's ``refs/`` under ``HF_HUB_OFFLINE=1``);
- :func:`file_sha256` and :func:`content_digest`: THE file digest and THE folder digest of the
  package (memoised per process); every fingerprint of local weights is made with them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "COMMIT_RE",
    "DIGEST_RE",
    "RevisionError",
    "LockMismatchError",
    "Revision",
    "file_sha256",
    "content_digest",
    "local_digest",
    "resolve_hub_revision",
]

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
        role: ``"model"``, ``"encoder"`` or ``"captioner"``.
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


# --------------------------------------------------------------------------------------------
# Digests of local weights: one for a file, one for a folder
# --------------------------------------------------------------------------------------------

_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex (memoised per process by path, size and mtime)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        with open(path, "rb") as fh:
            _FILE_DIGESTS[key] = hashlib.file_digest(fh, "sha256").hexdigest()
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


def local_digest(name: str, where: Revision, standin: bool = False) -> str:
    """:func:`content_digest` of the local weights ``where`` (of the entry ``name``).

    Raises:
        RevisionError: the weights are not there (with how to build a stand-in's).
    """
    try:
        return content_digest(where.path or where.source)
    except FileNotFoundError as exc:
        hint = (
            "; the stand-in has not been built: run `python -m iconicity_utils demo --config <config>`"
            if standin
            else ""
        )
        raise RevisionError(f"{where.role} {name!r}: its weights are not there: {exc}{hint}") from exc


# --------------------------------------------------------------------------------------------
# Hub revisions
# --------------------------------------------------------------------------------------------

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
