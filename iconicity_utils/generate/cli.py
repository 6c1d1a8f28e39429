"""The command line of this stage (``iconicity generate``): generate a study's images, resumably.

::

    python -m iconicity_utils generate --config configs/demo.yaml
    accelerate launch --multi_gpu --num_processes 2 -m iconicity_utils generate --config configs/paper.yaml

(On CPU, with ``generation.device: cpu``, the processes talk over gloo.)  Exits 1 when a unit failed.
"""

from __future__ import annotations

import argparse
import logging
import sys

from iconicity_utils.config import load_config
from iconicity_utils.core.io import atomic_write_json
from iconicity_utils.generate.manifest import rebuild_manifest
from iconicity_utils.generate.metadata import VERIFY_MODES
from iconicity_utils.generate.run import generate

__all__ = ["main", "quiet_loading_bars"]


def quiet_loading_bars() -> None:
    """Hide diffusers' and transformers' weight-loading bars: the generation bar is the one that counts."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iconicity generate",
        description=(
            "Generate n_images per prompt for every model of a study config (stage 02), resumably. "
            "Runs under `accelerate launch` for several processes or GPUs."
        ),
    )
    parser.add_argument("--config", default="configs/demo.yaml", help="study config (default: %(default)s)")
    parser.add_argument("--models", nargs="+", help="registry names (default: the config's models)")
    parser.add_argument("--variants", nargs="+", help="prompt variants (default: the config's variants)")
    parser.add_argument("--prompts", help="prompt table (.parquet/.csv: slug, variant, prompt)")
    parser.add_argument("--slugs", nargs="+", help="only these references")
    parser.add_argument("--n-images", type=int, help="override generation.n_images")
    parser.add_argument("--batch-size", type=int, help="override generation.batch_size")
    parser.add_argument("--device", help="override generation.device (cpu, cuda)")
    parser.add_argument("--verify", choices=VERIFY_MODES, help="override generation.verify")
    parser.add_argument("--num-threads", type=int, help="override generation.num_threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--manifest-only", action="store_true", help="only rebuild the manifest from disk")
    parser.add_argument("--summary-json", help="also write the summary to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line: ``iconicity generate --config FILE [...]``; exit 1 on failed units."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_loading_bars()

    cfg = load_config(args.config)
    overrides = {
        key: value
        for key, value in {
            "n_images": args.n_images,
            "batch_size": args.batch_size,
            "device": args.device,
            "verify": args.verify,
            "num_threads": args.num_threads,
        }.items()
        if value is not None
    }
    if overrides:
        cfg = cfg.with_overrides(generation=overrides)
    if args.manifest_only:
        df = rebuild_manifest(cfg)
        print(f"manifest: {len(df)} rows in {cfg.relative(cfg.generations_manifest)}")
        return 0
    summary = generate(
        cfg,
        models=args.models,
        variants=args.variants,
        prompts=args.prompts,
        slugs=args.slugs,
        progress=not args.no_progress,
    )
    if summary.manifest is not None:  # the main process
        print(summary, flush=True)
        for failure in summary.failures[:20]:
            print(f"FAILED {failure}", file=sys.stderr)
        if args.summary_json:
            atomic_write_json(args.summary_json, summary.as_dict())
    return 1 if summary.failed else 0
