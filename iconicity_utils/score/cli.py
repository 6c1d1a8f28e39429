"""The command line of this stage (``iconicity score``): score a study (``--config``) or folders.

::

    python -m iconicity_utils score --config configs/demo.yaml
    accelerate launch --multi_gpu --num_processes 4 -m iconicity_utils score --config configs/paper.yaml
    python -m iconicity_utils score --refdir REF --gendir GEN --prompts prompts.csv --kind static \\
        [--config configs/paper.yaml] [--k-gen 50] [--out scores/]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from iconicity_utils.core.constants import CELL_MODES, COMPARISONS, KINDS
from iconicity_utils.score.errors import ScoringInputError
from iconicity_utils.score.front_doors import score, score_folders, study_config

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iconicity score",
        description=(
            "Score generated images: CRA (recognition), VR/VI (realization), CRT and baselines. "
            "Runs under `accelerate launch` for several processes or GPUs."
        ),
    )
    p.add_argument("--config", help="study config (encoders, thresholds, modes); alone: score the study")
    p.add_argument("--refdir", help="reference images, one folder per slug (authors' layout)")
    p.add_argument("--gendir", help="generated images, <model>/<slug>/*")
    p.add_argument("--prompts", help="prompt CSV with the slug whitelist column")
    p.add_argument(
        "--kind", choices=KINDS, help="static (first reference file) or dynamic (all, deduplicated)"
    )
    p.add_argument("--slug-col", default="label_clean")
    p.add_argument("--k-gen", type=int, help="max generated images per slug (default: realization.k_gen)")
    p.add_argument(
        "--model", action="append", dest="models", help="score only this model folder (repeatable)"
    )
    p.add_argument("--no-dedup", action="store_true", help="do not pHash-deduplicate dynamic references")
    p.add_argument("--out", default="scores", help="output folder for the folder scorer (default: scores/)")
    p.add_argument("--cache", help="feature cache folder (default: the config's paths.cache)")
    p.add_argument("--tau-cra", type=float, help="override the CRA threshold (of --kind for folders)")
    p.add_argument("--tau-reuse", type=float)
    p.add_argument("--comparison", choices=COMPARISONS)
    p.add_argument("--cells", choices=CELL_MODES)
    p.add_argument("--device", help="override encoders.device")
    p.add_argument("--num-workers", type=int)
    p.add_argument("--on-bad-image", choices=("skip", "stop", "strict"), help="override scoring.on_bad_image")
    p.add_argument(
        "--on-bad-reference",
        choices=("drop", "stop", "strict"),
        help="override scoring.on_bad_reference",
    )
    p.add_argument("--cache-dtype", choices=("float32", "float16"), help="override scoring.cache_dtype")
    return p


def _cli_overrides(args) -> dict[str, dict[str, Any]]:
    """Command-line options -> config section overrides (validated by ``with_overrides``)."""
    thresholds: dict[str, Any] = {}
    realization: dict[str, Any] = {}
    scoring: dict[str, Any] = {}
    encoders: dict[str, Any] = {}
    if args.tau_cra is not None:
        kinds = [args.kind] if args.kind else list(KINDS)
        thresholds.update({f"tau_cra_{k}": args.tau_cra for k in kinds})
    if args.tau_reuse is not None:
        thresholds["tau_reuse"] = args.tau_reuse
    if args.comparison is not None:
        thresholds["comparison"] = args.comparison
    for key in ("cells", "k_gen"):
        if getattr(args, key) is not None:
            realization[key] = getattr(args, key)
    for key in ("num_workers", "on_bad_image", "on_bad_reference", "cache_dtype"):
        if getattr(args, key) is not None:
            scoring[key] = getattr(args, key)
    if args.device is not None:
        encoders["device"] = args.device
        if not args.device.startswith("cuda"):
            encoders["precision"] = "fp32"
    sections = {
        "thresholds": thresholds,
        "realization": realization,
        "scoring": scoring,
        "encoders": encoders,
    }
    return {name: values for name, values in sections.items() if values}


def main(argv: list[str] | None = None) -> int:
    """``python -m iconicity_utils score``: score a study (``--config``) or folders (``--refdir``...)."""
    parser = _parser()
    args = parser.parse_args(argv)
    folder_mode = any(getattr(args, k) for k in ("refdir", "gendir", "prompts"))
    if folder_mode:
        missing = [f"--{k}" for k in ("refdir", "gendir", "prompts", "kind") if not getattr(args, k)]
        if missing:
            parser.error(f"folder scoring needs {', '.join(missing)}")
    elif not args.config:
        parser.error("give --config to score a study, or --refdir/--gendir/--prompts/--kind for folders")
    try:
        cfg = study_config(args.config)
        overrides = _cli_overrides(args)
        cfg = cfg.with_overrides(**overrides) if overrides else cfg
        if folder_mode:
            result = score_folders(
                args.refdir,
                args.gendir,
                args.prompts,
                kind=args.kind,
                config=cfg,
                slug_col=args.slug_col,
                models=args.models,
                dedup=not args.no_dedup,
                out_dir=args.out,
                cache_dir=args.cache,
            )
        else:
            result = score(cfg)
    except (ScoringInputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.is_main:  # under accelerate launch, the main process reports
        print(result.summary())
        for path in result.paths.values():
            print(f"wrote {path}")
    return 0
