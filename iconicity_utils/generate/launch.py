"""Running generation outside the notebook kernel: the command line in a subprocess.

:func:`run_subprocess` starts ``python -m iconicity_utils generate`` (under ``accelerate launch``
for several processes, :func:`~iconicity_utils.core.launch.launch_command`), streams its output
and returns the summary it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from iconicity_utils.core.launch import launch_command
from iconicity_utils.generate.run import GenerationSummary

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = ["run_subprocess"]


def run_subprocess(
    cfg: StudyConfig,
    num_processes: int = 1,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    echo: bool = True,
) -> GenerationSummary:
    """Run the generation CLI in a subprocess (heavy work stays out of the notebook kernel).

    The subprocess's output (progress bar included) is streamed to this process's stdout.

    Args:
        cfg: the study config (its file is passed to the subprocess).
        num_processes: processes to start (``> 1`` uses ``accelerate launch``).
        args: further CLI arguments, e.g. ``["--models", "tiny-sd-a"]``.
        env: extra environment variables.
        echo: stream the subprocess's output.

    Returns:
        The summary the subprocess wrote.

    Raises:
        RuntimeError: the subprocess failed; the message holds the end of its output.
    """
    if cfg.source is None:
        raise ValueError("run_subprocess needs a config loaded from a file (cfg.source is None)")
    summary_path = cfg.path("cache", "generation", f"summary-{os.getpid()}-{time.time_ns()}.json")
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = launch_command("generate", cfg.source, num_processes, [*args, "--summary-json", str(summary_path)])
    proc = subprocess.Popen(
        cmd,
        cwd=str(cfg.root),
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    tail = bytearray()
    while chunk := proc.stdout.read1(4096):  # type: ignore[union-attr]
        tail = (tail + chunk)[-8000:]
        if echo:
            sys.stdout.write(chunk.decode("utf-8", errors="replace"))
            sys.stdout.flush()
    code = proc.wait()
    text = tail.decode("utf-8", errors="replace")
    if code != 0 or not summary_path.is_file():
        raise RuntimeError(f"generation subprocess {' '.join(cmd)} exited with status {code}:\n{text}")
    data = json.loads(summary_path.read_text())
    summary_path.unlink(missing_ok=True)
    data.pop("images_per_second", None)
    return GenerationSummary(**data)
