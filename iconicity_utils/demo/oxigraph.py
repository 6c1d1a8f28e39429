"""The demo's SPARQL endpoint: the ``oxigraph`` server from PyPI over a Turtle snapshot.

Registered as the ``sparql_endpoint`` provider ``local`` (``pyproject.toml``); stage 01 reaches it
through :func:`iconicity_utils.core.plugins.provider` when ``collection.endpoint: local``.

:class:`LocalOxigraph` loads the snapshot (a hand-written one in Wikidata's vocabulary,
``data/snapshot/wikidata_demo.ttl``) into a temporary store, serves it read-only on 127.0.0.1 at a
free port, is polled until it answers a query, and is always stopped when the ``with`` block ends
(also on errors and KeyboardInterrupt).

Example:
    >>> with LocalOxigraph("data/snapshot/wikidata_demo.ttl") as server:   # doctest: +SKIP
    ...     print(server.endpoint)
    http://127.0.0.1:41234/query
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from iconicity_utils.core.http import EndpointError
from iconicity_utils.core.launch import free_port

__all__ = ["LocalEndpointError", "LocalOxigraph", "find_oxigraph"]


class LocalEndpointError(EndpointError):
    """The local oxigraph server could not be found, loaded or started."""


def find_oxigraph() -> Path:
    """The ``oxigraph`` server binary of the ``oxigraph`` wheel: beside this Python, else on PATH."""
    candidate = Path(sys.executable).parent / "oxigraph"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("oxigraph")
    if found:
        return Path(found)
    raise LocalEndpointError(
        f"the oxigraph server binary was found neither at {candidate} nor on PATH; "
        "install the 'oxigraph' PyPI package into this environment (pip install oxigraph)"
    )


class LocalOxigraph:
    """A read-only oxigraph SPARQL server over a Turtle snapshot, as a context manager.

    ``with LocalOxigraph(snapshot) as server:`` loads the snapshot into a temporary store, starts
    ``oxigraph serve-read-only`` on 127.0.0.1 at a free port, waits until it answers an ASK
    query, and yields itself (``server.endpoint`` is the query URL).  Leaving the block stops the
    server and deletes the store, whatever happened inside.

    Args:
        snapshot: a Turtle (``.ttl``) file.
        binary: the oxigraph binary (default: :func:`find_oxigraph`).
        startup_timeout_s: how long to wait for the server to answer.
    """

    def __init__(
        self, snapshot: str | Path, binary: str | Path | None = None, startup_timeout_s: float = 20.0
    ):
        self.snapshot = Path(snapshot)
        self.binary = Path(binary) if binary else None
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise LocalEndpointError("the local oxigraph server is not running (use it as a context manager)")
        return f"http://127.0.0.1:{self.port}/query"

    def version(self) -> str:
        """``oxigraph --version`` of the binary, e.g. ``"oxigraph 0.5.13"``."""
        binary = self.binary or find_oxigraph()
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip() or out.stderr.strip()

    def _load(self, binary: Path, store: Path) -> None:
        res = subprocess.run(
            [str(binary), "load", "--location", str(store), "--file", str(self.snapshot)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if res.returncode != 0:
            raise LocalEndpointError(
                f"oxigraph could not load the snapshot {self.snapshot}: {res.stderr.strip() or res.stdout.strip()}"
            )

    def _ready(self) -> bool:
        url = f"http://127.0.0.1:{self.port}/query?" + urllib.parse.urlencode({"query": "ASK {}"})
        request = urllib.request.Request(url, headers={"Accept": "application/sparql-results+json"})
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return response.status == 200
        except (OSError, http.client.HTTPException):
            return False

    def start(self) -> LocalOxigraph:
        if not self.snapshot.is_file():
            raise LocalEndpointError(f"snapshot not found: {self.snapshot}")
        binary = self.binary or find_oxigraph()
        self._tmp = tempfile.TemporaryDirectory(prefix="iconicity-oxigraph-")
        store = Path(self._tmp.name) / "store"
        try:
            self._load(binary, store)
            for _ in range(5):  # a free port can be taken between the probe and the bind: retry
                self.port = free_port()
                log_path = Path(self._tmp.name) / f"server-{self.port}.log"
                with open(log_path, "wb") as log:
                    self.process = subprocess.Popen(
                        [
                            str(binary),
                            "serve-read-only",
                            "--location",
                            str(store),
                            "--bind",
                            f"127.0.0.1:{self.port}",
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                deadline = time.monotonic() + self.startup_timeout_s
                while time.monotonic() < deadline:
                    if self.process.poll() is not None:
                        break
                    if self._ready():
                        return self
                    time.sleep(0.05)
                output = log_path.read_text(errors="replace").strip()
                alive = self.process.poll() is None
                self._stop_process()
                if alive:
                    raise LocalEndpointError(
                        f"oxigraph did not answer on 127.0.0.1:{self.port} within {self.startup_timeout_s:g} s: {output}"
                    )
                if "in use" not in output.lower():
                    raise LocalEndpointError(f"oxigraph serve-read-only exited: {output}")
            raise LocalEndpointError("oxigraph could not bind a free port on 127.0.0.1 after 5 tries")
        except BaseException:
            self.stop()
            raise

    def _stop_process(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop(self) -> None:
        """Stop the server (if running) and delete the temporary store."""
        self._stop_process()
        self.port = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalOxigraph:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
