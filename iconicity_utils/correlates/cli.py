"""The command lines of stage 06: ``iconicity correlates`` (the stage's tables) and ``iconicity captions``
(the caption-count scan, resumable and splittable across machines).

::

    python -m iconicity_utils correlates --config configs/demo.yaml [--workers N]
    python -m iconicity_utils captions --config configs/paper.yaml [--shard 2/8] [--workers 16]
    python -m iconicity_utils captions --config configs/paper.yaml --status
"""

from __future__ import annotations

import argparse
import json
import sys

from iconicity_utils.config import load_config
from iconicity_utils.core.http import RequestFailed
from iconicity_utils.correlates.corpus import parse_shard_spec, prepare_corpus
from iconicity_utils.correlates.front_door import run
from iconicity_utils.correlates.pageviews import PageviewsUnavailable
from iconicity_utils.correlates.scan import IncompleteScan, count_captions, scan_status

__all__ = ["captions_main", "main"]


def main(argv: list[str] | None = None) -> int:
    """``iconicity correlates --config FILE [--workers N]``: write the stage 06 tables."""
    parser = argparse.ArgumentParser(
        prog="iconicity correlates",
        description="Stage 06: which references does a model recognise?  Correlates of recognition.",
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="caption-scan processes (default: config)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    try:
        result = run(cfg, workers=args.workers)
    except (FileNotFoundError, ValueError, IncompleteScan, PageviewsUnavailable, RequestFailed) as exc:
        print(f"stage 06 failed: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def _captions_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iconicity captions",
        description="Stage 06: count the references' titles in the captions of a parquet corpus (resumable).",
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument(
        "--shard", default=None, help="scan part i of n of the shard list (1-based), e.g. 2/8"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: config, else every core)"
    )
    parser.add_argument("--status", action="store_true", help="report which shards are done, scan nothing")
    return parser


def captions_main(argv: list[str] | None = None) -> int:
    """``iconicity captions --config FILE [--shard i/n] [--workers N] [--status]``: 0 when done, 2 when
    shards are left (without ``--shard``), 1 on an error."""
    args = _captions_parser().parse_args(argv)
    cfg = load_config(args.config)
    if cfg.correlates.frequency.source != "scan":
        print(
            f"correlates.frequency.source is {cfg.correlates.frequency.source!r}: nothing to scan",
            file=sys.stderr,
        )
        return 1
    try:
        parse_shard_spec(args.shard)
        prepare_corpus(cfg)
        if args.status:
            print(json.dumps(scan_status(cfg), indent=2))
            return 0
        result = count_captions(cfg, shard=args.shard, workers=args.workers)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"caption counts failed: {exc}", file=sys.stderr)
        return 1
    return 0 if result.complete or args.shard else 2
