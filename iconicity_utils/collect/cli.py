"""The command line of stage 01: ``python -m iconicity_utils collect --config configs/demo.yaml``."""

from __future__ import annotations

import argparse
import json
import sys

from iconicity_utils.collect.collection import collect_references
from iconicity_utils.collect.recording import SavedResponseError
from iconicity_utils.config import load_config
from iconicity_utils.core.http import EndpointError, RequestFailed

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m iconicity_utils collect --config configs/demo.yaml [--use-saved-responses]``."""
    parser = argparse.ArgumentParser(
        prog="iconicity collect",
        description="Stage 01: collect references from Wikidata (or the local snapshot) and their images.",
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument(
        "--use-saved-responses",
        action="store_true",
        default=None,
        help="rebuild from the latest complete run of saved raw responses, without querying",
    )
    parser.add_argument("--raw-run", default=None, help="with --use-saved-responses: the run id to replay")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    try:
        refs = collect_references(cfg, use_saved_responses=args.use_saved_responses, raw_run=args.raw_run)
    except (RequestFailed, SavedResponseError, EndpointError) as exc:
        print(f"stage 01 failed: {exc}", file=sys.stderr)
        return 1
    counts = refs.groupby("kind").size().to_dict() if len(refs) else {}
    print(json.dumps({"references": len(refs), "per_kind": counts}, indent=None))
    return 0
