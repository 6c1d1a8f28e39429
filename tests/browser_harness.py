"""A Voilà server and Debian's Chromium driven by Playwright, for the explorer's browser test.

Recipe: ../shared/docs/offline-recipes.md §8.  Playwright's own browser download cannot work on
these machines, so the system browser is launched by path (``executable_path``), with the flags
that keep it off the network.  The server listens on 127.0.0.1 on a free port, with a token; its
readiness is polled over HTTP with a deadline, and a cold start that misses the deadline is retried
once.  Every process started here (the server, its kernels) is stopped by its own id.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def find_chromium() -> str | None:
    """``$ICONICITY_CHROMIUM``, else ``chromium`` on the PATH, else ``/usr/bin/chromium``."""
    for candidate in (os.environ.get("ICONICITY_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Descendants of ``pid`` (from /proc), deepest first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, stack = [], [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out[::-1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class VoilaServer:
    """``voila NOTEBOOK`` on 127.0.0.1, a free port and a random token; ``env`` adds variables to
    the server's environment (e.g. ``ICONICITY_EXPLORER_ROOTS``, the folders it may serve)."""

    def __init__(
        self, notebook: Path, log_dir: Path, ready_timeout: float = 90.0, env: dict[str, str] | None = None
    ):
        self.notebook = Path(notebook)
        self.extra_env = dict(env or {})
        self.log_dir = Path(log_dir)
        self.ready_timeout = ready_timeout
        self.token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.started: list[int] = []
        self.startup_s = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, **query: str) -> str:
        from urllib.parse import urlencode

        return f"{self.base}/?{urlencode({'token': self.token, **query})}"

    def _launch(self, attempt: int) -> None:
        self.port = free_port()
        self.log = self.log_dir / f"voila-{attempt}.log"
        cmd = [
            sys.executable, "-m", "voila", str(self.notebook), "--no-browser", f"--port={self.port}",
            "--Voila.ip=127.0.0.1", f"--token={self.token}", "--show_tracebacks=True",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "QUERY_STRING"}
        env.update(self.extra_env)
        self._logfile = open(self.log, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.notebook.parent,
            stdout=self._logfile,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.started.append(self.proc.pid)

    def _wait_ready(self) -> bool:
        """Poll ``/login`` (an answer means the server is up) until the deadline."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/login", timeout=5) as resp:
                    if resp.status < 500:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        return False

    def start(self) -> VoilaServer:
        t0 = time.monotonic()
        for attempt in (1, 2):  # a cold first start may miss the deadline: one retry
            self._launch(attempt)
            if self._wait_ready():
                self.startup_s = time.monotonic() - t0
                return self
            self.stop()
        raise RuntimeError(
            f"voila not ready after two starts of {self.ready_timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and every process under it (its kernels run in their own sessions)."""
        if self.proc is None:
            return
        pids = _children(self.proc.pid)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        for pid in pids:  # kernels exit when their parent goes; make sure, by id
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._logfile.close()
        self.proc = None

    def __enter__(self) -> VoilaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
