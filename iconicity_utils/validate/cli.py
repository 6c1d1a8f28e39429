"""The command line of stage 08: ``python -m iconicity_utils validate --config FILE``."""

from __future__ import annotations

import argparse
import sys

from iconicity_utils.config import load_config
from iconicity_utils.score import ScoringInputError
from iconicity_utils.validate.front_door import validate

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Build the edits, score them and write the validation tables of a study config."""
    parser = argparse.ArgumentParser(
        prog="iconicity validate",
        description="stage 08: does Visual Reuse tell replication from transformation, and better than the baselines?",
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument("--no-write", action="store_true", help="compute the tables, write none")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    try:
        result = validate(cfg, write=not args.no_write)
    except (FileNotFoundError, ValueError, RuntimeError, ScoringInputError) as exc:
        print(f"stage 08 failed: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    for name, path in result.paths.items():
        print(f"  {name}: {cfg.relative(path)}")
    return 0
