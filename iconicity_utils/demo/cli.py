"""``iconicity demo --config FILE``: build the tiny random-weight stand-ins a config uses."""

from __future__ import annotations

import argparse
import sys

from iconicity_utils.config import load_config
from iconicity_utils.demo.standins import build_captioner_standins, build_for_config

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Build every stand-in model and encoder ``--config`` uses, and the registry's stand-in captioners."""
    parser = argparse.ArgumentParser(
        prog="iconicity demo", description="Build the tiny random-weight stand-in models a config uses."
    )
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ValueError) as exc:  # ConfigError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in build_for_config(cfg, force=args.force) + build_captioner_standins(cfg, force=args.force):
        print(f"stand-in ready: {path}")
    return 0
