"""One command line for every stage: ``python -m iconicity_utils <command> ...`` (or ``iconicity``).

Each command is one stage's own ``main``; ``iconicity <command> --help`` shows its options.
``accelerate launch [--multi_gpu] --num_processes N -m iconicity_utils generate|score ...`` runs a
stage on several processes or GPUs.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["COMMANDS", "main"]

#: command -> (module, function, one line of help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "collect": (
        "iconicity_utils.collect.cli",
        "main",
        "stage 01: query Wikidata, fetch the reference images",
    ),
    "generate": ("iconicity_utils.generate.cli", "main", "stage 02: generate images for every reference"),
    "score": ("iconicity_utils.score.cli", "main", "stages 03-04: CRA, VR/VI, CRT and baselines"),
    "perturb": (
        "iconicity_utils.perturb.cli",
        "main",
        "stage 05: prompt variants, their images and comparison",
    ),
    "captions": (
        "iconicity_utils.correlates.cli",
        "captions_main",
        "stage 06: count titles in a caption corpus",
    ),
    "correlates": ("iconicity_utils.correlates.cli", "main", "stage 06: correlates of recognition"),
    "validate": (
        "iconicity_utils.validate.cli",
        "main",
        "stage 08: does VR tell replication from transformation, and better than the baselines?",
    ),
    "registry": (
        "iconicity_utils.registry.cli",
        "main",
        "list models and encoders; write or check a study's lock",
    ),
    "preflight": (
        "iconicity_utils.pipeline.cli",
        "preflight_main",
        "check a study's prerequisites before a run",
    ),
    "run": ("iconicity_utils.pipeline.cli", "run_main", "run the numbered notebooks (what run_all.sh calls)"),
    "demo": ("iconicity_utils.demo.cli", "main", "build the demo's random-weight stand-in models"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items())
    return f"usage: iconicity <command> [options]  (or python -m iconicity_utils <command>)\n\ncommands:\n{rows}\n"


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv[0]`` to its stage's ``main(argv[1:])``; ``--help`` lists the commands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), end="")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"iconicity: unknown command {command!r}\n\n{_usage()}", end="", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[command]
    return int(getattr(importlib.import_module(module), function)(rest) or 0)
