"""Running a stage outside the notebook kernel: one process, or several under ``accelerate launch``.

- :func:`launch_command`: the command line for ``python -m iconicity_utils <stage> ...``, wrapped in
  ``accelerate launch --multi_gpu`` when more than one process is asked for.
- :class:`Processes`: this run's processes (accelerate's ``PartialState`` when launched with a
  ``WORLD_SIZE`` over 1, a single process otherwise, with no accelerate import and no process group).
- :func:`free_port`: a free TCP port on the loopback interface (for a rendezvous or a local server).

Seeds never come from the process rank: every stage derives them from the work unit.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence

__all__ = ["Processes", "free_port", "launch_command"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(
    stage: str,
    config: str | os.PathLike,
    num_processes: int = 1,
    args: Sequence[str] = (),
    port: int | None = None,
) -> list[str]:
    """The command that runs ``iconicity <stage> --config <config> [args]``.

    With ``num_processes > 1`` it runs under ``accelerate launch --multi_gpu`` (torchrun underneath;
    gloo on the CPU when the stage's device is ``cpu``, one thread per process unless
    ``OMP_NUM_THREADS`` says otherwise), with a free rendezvous port unless ``port`` is given.

    >>> launch_command("score", "configs/demo.yaml")[1:]
    ['-m', 'iconicity_utils', 'score', '--config', 'configs/demo.yaml']
    >>> launch_command("generate", "c.yaml", 2, port=29500)[1:8]
    ['-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1']
    """
    if num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    entry = ["-m", "iconicity_utils", stage, "--config", str(config), *args]
    if num_processes == 1:
        return [sys.executable, *entry]
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
        str(num_processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(port or free_port()), *entry,
    ]  # fmt: skip


class Processes:
    """The processes of this run: accelerate's ``PartialState`` under ``accelerate launch``
    (``WORLD_SIZE > 1``), a single process otherwise (no accelerate import, no process group).

    Args:
        cpu: run on the CPU (gloo) rather than one GPU per process.
        role: what the device is for, named in errors (``"encoders.device"``).
    """

    def __init__(self, cpu: bool, role: str = "device"):
        self.role = role
        self.state = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import PartialState

            self.state = PartialState(cpu=cpu)

    @property
    def num_processes(self) -> int:
        return self.state.num_processes if self.state else 1

    @property
    def rank(self) -> int:
        return self.state.process_index if self.state else 0

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process if self.state else True

    def device(self, wanted: str) -> str:
        """The device to use: ``wanted``, or accelerate's per-process device of the same type."""
        if self.state is None or not wanted.startswith("cuda"):
            return wanted
        if self.state.device.type != "cuda":
            raise RuntimeError(
                f"accelerate assigned device {self.state.device} but {self.role} is {wanted!r}"
            )
        return str(self.state.device)

    def split(self, items: Sequence) -> list:
        """This process's share of ``items`` (contiguous, in order)."""
        if self.state is None:
            return list(items)
        with self.state.split_between_processes(list(items)) as mine:
            return list(mine)

    def barrier(self) -> None:
        """Wait until every process is here (accelerate's ``wait_for_everyone``); a no-op alone."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def gather(self, items: Sequence) -> list:
        """Every process's list, concatenated in process order, on every process (a barrier)."""
        if self.state is None:
            return list(items)
        from accelerate.utils import gather_object

        return list(gather_object(list(items)))
