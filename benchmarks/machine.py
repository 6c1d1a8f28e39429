"""The machine a benchmark ran on, in words (every benchmark prints it with its ratios)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe_machine() -> str:
    """CPU model, cores, GPUs (if any), torch version and threads, OS and the current load."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpus = (
            ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            if torch.cuda.is_available()
            else "no GPU"
        )
        torch_info = f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    except ImportError:
        gpus, torch_info = "GPU unknown", "no torch"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}; {os.cpu_count()} cores; {gpus}; {torch_info}; Python {platform.python_version()}; "
        f"{platform.system()} {platform.release()}; load average {load:.2f}"
    )
