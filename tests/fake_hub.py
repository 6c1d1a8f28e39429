"""Offline stand-ins for the Hugging Face hub: a hand-built hub cache, and a tiny hub API on 127.0.0.1.

- :func:`hub_cache` writes what huggingface_hub's cache holds after a download
  (``models--org--name/refs/<ref>`` and ``snapshots/<commit>/<files>``), so that the real
  resolution code (``HfApi.resolve_revision``, ``hf_hub_download``, diffusers' ``from_pretrained``)
  finds it under ``HF_HUB_OFFLINE=1``.
- :class:`FakeHub` answers the few hub API routes the registry and the preflight use
  (``/api/models/<repo>[/revision/<rev>]``, ``/api/models/<repo>/auth-check``,
  ``/<repo>/resolve/<rev>/<file>``) with the status codes and ``X-Error-Code`` headers of the real
  hub (``RepoNotFound``, ``RevisionNotFound``, ``GatedRepo``), and logs every request.  It binds
  127.0.0.1 only; no test contacts a real host.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def commit(text: str) -> str:
    """A 40-hex commit id made from ``text`` (stable across runs)."""
    return hashlib.sha1(text.encode()).hexdigest()


def hub_cache(cache: Path, repo_id: str, sha: str, files: dict[str, bytes] | Path, ref: str = "main") -> Path:
    """Write a hub cache entry for ``repo_id`` at commit ``sha`` (with ``refs/<ref>`` -> ``sha``).

    ``files`` is a mapping of relative paths to bytes, or a folder copied in whole (a saved
    pipeline).  Real caches hold blobs and symlinks; plain files are read the same way.
    """
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / ref).write_text(sha)
    snap = folder / "snapshots" / sha
    if isinstance(files, Path):
        shutil.copytree(files, snap, dirs_exist_ok=True)
    else:
        for name, data in files.items():
            (snap / name).parent.mkdir(parents=True, exist_ok=True)
            (snap / name).write_bytes(data)
    return snap


@dataclass
class Repo:
    sha: str
    files: dict[str, bytes] = field(default_factory=dict)
    gated: bool | str = False
    access: bool = True  # with gating: whether the caller has accepted the conditions
    sizes: dict[str, int] = field(default_factory=dict)  # listed sizes (default: len of the bytes)


class FakeHub:
    """A hub API on 127.0.0.1 serving ``repos`` (``{"org/name": Repo}``); ``requests`` logs (method, path)."""

    def __init__(self, repos: dict[str, Repo]):
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._answer(self, head=True)

            def do_GET(self):
                hub._answer(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- routing ------------------------------------------------------------------------------
    def _send(self, h, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head=False):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _error(self, h, status: int, code: str, message: str, head=False):
        body = json.dumps({"error": message}).encode()
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        self._send(h, status, body, headers, head)

    def _answer(self, h, head: bool) -> None:
        path = urllib.parse.urlsplit(h.path).path
        self.requests.append((h.command, path))
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            repo = self.repos.get(repo_id)
            if repo is None:
                return self._error(h, 404, "RepoNotFound", "Repository not found", head)
            if rest == ["auth-check"]:
                if repo.gated and not repo.access:
                    return self._error(h, 403, "GatedRepo", f"Access to model {repo_id} is restricted", head)
                return self._send(h, 200, b"{}", {"Content-Type": "application/json"}, head)
            revision = rest[1] if rest[:1] == ["revision"] and len(rest) > 1 else "main"
            if revision not in ("main", repo.sha):
                return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
            info = {
                "_id": repo_id,
                "id": repo_id,
                "modelId": repo_id,
                "sha": repo.sha,
                "private": False,
                "gated": repo.gated,
                "disabled": False,
                "tags": [],
                "siblings": [
                    {"rfilename": name, "size": repo.sizes.get(name, len(data))}
                    for name, data in sorted(repo.files.items())
                ],
            }
            return self._send(h, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            repo = self.repos.get(repo_id)
            if repo is None:
                return self._error(h, 404, "RepoNotFound", "Repository not found", head)
            if revision not in ("main", repo.sha):
                return self._error(h, 404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
            if repo.gated and not repo.access:
                return self._error(h, 403, "GatedRepo", f"Access to model {repo_id} is restricted", head)
            if name not in repo.files:
                return self._error(h, 404, "EntryNotFound", f"{name} does not exist", head)
            body = repo.files[name]
            headers = {
                "X-Repo-Commit": repo.sha,
                "ETag": '"' + hashlib.sha1(body).hexdigest() + '"',
                "Content-Type": "application/octet-stream",
            }
            return self._send(h, 200, body, headers, head)
        return self._error(h, 404, "EntryNotFound", f"no route {path}", head)
