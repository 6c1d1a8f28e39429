"""The command line of the registry (``iconicity registry lock|check --config FILE``).

``lock`` writes ``<config>.lock.yaml`` (:func:`~iconicity_utils.registry.lock.write_lock`);
``check`` verifies it (:func:`~iconicity_utils.registry.lock.check_lock`).  The command lives in
the base layer because the resolution it shares with the loaders does; it reads only the
``models``, ``encoders``, ``perturbation`` (its captioner) and ``paths`` keys of the study file
(:func:`read_study_entries`), exactly as :class:`~iconicity_utils.config.study.StudyConfig`
resolves them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

from iconicity_utils.core.schema import ConfigError
from iconicity_utils.registry.lock import check_lock, write_lock
from iconicity_utils.registry.lockfile import TABLES, Lock, lock_path
from iconicity_utils.registry.revisions import RevisionError

__all__ = ["read_study_entries", "main"]


def _perturbation(data: dict) -> SimpleNamespace:
    """``perturbation.literal_source`` (default ``wikidata``) and ``perturbation.captioner``."""
    p = data.get("perturbation") or {}
    return SimpleNamespace(literal_source=p.get("literal_source", "wikidata"), captioner=p.get("captioner"))


def read_study_entries(config: str | Path) -> SimpleNamespace:
    """The parts of a study config file the lock needs, read as :class:`~iconicity_utils.config.study.StudyConfig`
    reads them: ``models``, ``encoders`` (roles), ``perturbation`` (``literal_source``,
    ``captioner``), ``paths.root`` (relative to the file's folder, default ``..``) and
    ``paths.standins`` (default ``.cache/standins``).  The registry sits below the config layer,
    so it cannot use it; tests check both agree on every shipped config.

    Raises:
        FileNotFoundError: no such file.  ConfigError: a missing or mistyped key.
    """
    path = Path(config).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"study config not found: {config}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    models = data.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ConfigError(path, "models", "expected a list of model ids")
    enc = data.get("encoders")
    if not isinstance(enc, dict) or not isinstance(enc.get("recognition"), str):
        raise ConfigError(
            path, "encoders", "expected a mapping with recognition / realization / copy_detection"
        )
    paths = data.get("paths") or {}
    encoders = SimpleNamespace(
        recognition=enc.get("recognition"),
        realization=enc.get("realization"),
        copy_detection=enc.get("copy_detection"),
    )
    return SimpleNamespace(
        source=str(path),
        root=(path.parent / str(paths.get("root", ".."))).resolve(),
        models=models,
        encoders=encoders,
        perturbation=_perturbation(data),
        paths=SimpleNamespace(standins=str(paths.get("standins", ".cache/standins"))),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iconicity registry",
        description="Pin every model, encoder and captioner of a study to its resolved hub commit / local sha256.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("lock", "resolve every id of the config and write <config>.lock.yaml"),
        (
            "check",
            "verify the config's lock against the registry and the weights (HF_HUB_OFFLINE=1: the cache)",
        ),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--config", required=True, help="study config, e.g. configs/paper.yaml")
        cmd.add_argument("--endpoint", help="hub endpoint (default: HF_ENDPOINT or huggingface.co)")
        if name == "lock":
            cmd.add_argument("--output", help="lock file (default: <config>.lock.yaml)")
    return parser


def _lock(cfg: SimpleNamespace, args: argparse.Namespace) -> int:
    try:
        path = write_lock(cfg, args.output, endpoint=args.endpoint)
    except (RevisionError, ConfigError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    lock = Lock.read(path)
    print(f"wrote {path}")
    for role in TABLES:
        for name, entry in lock.table(role).items():
            asked = f"{entry.requested} -> " if entry.requested else ""
            print(f"  {role:9s} {name:28s} {entry.source}  {asked}{entry.resolved}")
    return 0


def _check(cfg: SimpleNamespace, args: argparse.Namespace) -> int:
    try:
        problems = check_lock(cfg, endpoint=args.endpoint)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    if not problems:
        print(f"{lock_path(cfg.source)} holds for {args.config}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """``lock``: write ``<config>.lock.yaml``; ``check``: verify it.  Exit 0 ok, 1 problems, 2 usage."""
    args = _parser().parse_args(argv)
    try:
        cfg = read_study_entries(args.config)
    except (FileNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return _lock(cfg, args) if args.command == "lock" else _check(cfg, args)
