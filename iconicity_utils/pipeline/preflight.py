"""Preflight: check a study's prerequisites before any heavy work, and say what could not be checked.

::

    python -m iconicity_utils preflight --config configs/paper.yaml [--offline] [--json report.json]

One table, one row per check and subject:

- **lock**: whether the study has a lock (``configs/paper.lock.yaml``) and whether it still holds;
- **hub access** (per hub id: models, encoders and the captioner of the literal prompts): the id exists at the requested revision, and a
  *gated* repository (SD 3.5, FLUX.1-schnell) grants this token access (``HfApi.auth_check``);
- **config** (per model / encoder / captioner): at the resolved (or locked) commit, a model's
  ``model_index.json`` names the registry's pipeline class, the weight variant exists, an encoder's
  or captioner's repository holds the file its library loads.  Only small metadata files are fetched, never weights;
  stand-ins and local files are checked on disk;
- **device**: the generation and scoring devices exist; a GPU's free memory against the largest
  model's weights (sizes from the hub listing or the disk);
- **disk**: free space against the study's estimated images, feature cache, reference images and
  the weights still to download;
- **stills**: every dynamic reference of the references table has a stills folder with images;
- **sparql**: the SPARQL endpoint answers a trivial query (``endpoint: local``: the bundled
  oxigraph server over the snapshot).

Statuses: ``ok``, ``warn``, ``FAIL`` and ``could not check`` (with the reason: offline, the hub
unreachable, the stage that writes the input has not run yet).  **Offline** (``--offline`` or
``HF_HUB_OFFLINE=1``) no network is touched: hub ids are resolved from the local cache only and
what needs the network is reported as not checked.

Modules: this front door (:func:`run_preflight`, the command line :func:`main`);
:mod:`~iconicity_utils.pipeline.preflight_report` (the rows and the table),
:mod:`~iconicity_utils.pipeline.preflight_hub` (hub access, config) and
:mod:`~iconicity_utils.pipeline.preflight_system` (device, disk, stills, SPARQL).

Exit status: 0 when nothing failed and everything was checked; 1 when a check failed; 3 when
nothing failed but some checks could not be run; 2 for a usage or config error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

from iconicity_utils.config import StudyConfig, load_config
from iconicity_utils.core.schema import ConfigError
from iconicity_utils.pipeline.preflight_hub import check_hub_entry, check_local_entry
from iconicity_utils.pipeline.preflight_report import FAIL, OK, UNCHECKED, WARN, Check, Report
from iconicity_utils.pipeline.preflight_system import (
    check_devices,
    check_disk,
    check_sparql,
    check_stills,
    estimate_disk,
)
from iconicity_utils.registry import LockMismatchError, Registry, RevisionError, lock_path
from iconicity_utils.registry.specs import Spec

__all__ = ["OK", "WARN", "FAIL", "UNCHECKED", "Check", "Report", "run_preflight", "estimate_disk", "main"]

#: the groups of checks, in the order they run (``models`` covers hub access and config)
CHECKS = ("lock", "models", "device", "disk", "stills", "sparql")


def _on_hub(registry: Registry, spec: Spec) -> bool:
    try:
        return registry.weights_location(spec).kind == "hub"
    except RevisionError:
        return True  # an unresolvable hub entry still wants pinning


def _is_offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _registry(cfg: StudyConfig, endpoint: str | None) -> tuple[Registry, str | None]:
    """The study's registry (with its lock), or without the lock and the lock's error."""
    try:
        return dataclasses.replace(Registry.for_config(cfg), endpoint=endpoint), None
    except (LockMismatchError, ConfigError) as exc:
        return dataclasses.replace(Registry.for_config(cfg, use_lock=False), endpoint=endpoint), str(exc)


def _lock_row(report: Report, cfg: StudyConfig, registry: Registry, lock_error: str | None) -> None:
    """The ``lock`` row: the lock holds, is broken, is not needed, or is missing."""
    path = lock_path(cfg.source) if cfg.source else None
    if lock_error:
        report.add("lock", str(path), FAIL, lock_error)
    elif registry.lock is not None:
        report.add(
            "lock",
            cfg.relative(path),
            OK,
            f"runs load the locked revisions (sha256 {registry.lock.sha256[:12]})",
        )
    elif not any(_on_hub(registry, s) for s in registry.specs_of(cfg)):
        report.add("lock", "-", OK, "no lock needed to pin hub commits: no hub id (local weights: sha256)")
    else:
        report.add(
            "lock",
            str(cfg.relative(path)) if path else "-",
            WARN,
            "no lock: hub ids resolve to today's commits (recorded in every image); pin them with "
            f"`python -m iconicity_utils registry lock --config {report.config}`",
        )


def _entry_rows(
    report: Report,
    cfg: StudyConfig,
    registry: Registry,
    *,
    offline: bool,
    timeout: float,
    weights: dict[str, int | None],
    to_download: dict[str, int | None],
) -> None:
    """The ``hub access`` and ``config`` rows of every model, encoder and captioner the study uses."""
    for spec in registry.specs_of(cfg):
        try:
            kind = registry.weights_location(spec).kind
        except RevisionError as exc:
            report.add("config", spec.name, FAIL, str(exc))
            continue
        if kind == "hub":
            check_hub_entry(
                report,
                registry,
                spec,
                offline=offline,
                timeout=timeout,
                weights=weights,
                to_download=to_download,
            )
        else:
            check_local_entry(report, registry, spec, weights)


def run_preflight(
    cfg: StudyConfig,
    *,
    endpoint: str | None = None,
    offline: bool | None = None,
    timeout: float = 10.0,
    checks: tuple[str, ...] = CHECKS,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run the checks on ``cfg``; nothing heavy is loaded or downloaded.

    Args:
        cfg: the study config.
        endpoint: the hub API endpoint (default: ``HF_ENDPOINT`` or huggingface.co).
        offline: touch no network (default: ``HF_HUB_OFFLINE``).
        timeout: seconds per network request.
        checks: which groups to run (``models`` covers hub access and config).
        progress: called with the name of each group as it starts.
    """
    offline = _is_offline(offline)
    report = Report(cfg.relative(cfg.source) if cfg.source else "<dict>", offline)
    say = progress or (lambda _s: None)
    registry, lock_error = _registry(cfg, endpoint)
    if "lock" in checks:
        _lock_row(report, cfg, registry, lock_error)
    weights: dict[str, int | None] = {}
    to_download: dict[str, int | None] = {}
    if "models" in checks:
        say("models")
        _entry_rows(
            report, cfg, registry, offline=offline, timeout=timeout, weights=weights, to_download=to_download
        )
    if "device" in checks:
        say("device")
        check_devices(report, cfg, registry, weights)
    if "disk" in checks:
        say("disk")
        check_disk(report, cfg, registry, to_download)
    if "stills" in checks:
        say("stills")
        check_stills(report, cfg)
    if "sparql" in checks:
        say("sparql")
        check_sparql(report, cfg, offline, timeout)
    return report


def main(argv: list[str] | None = None) -> int:
    """``iconicity preflight``: print the report (and write it as JSON); exit with its code."""
    parser = argparse.ArgumentParser(
        prog="iconicity preflight",
        description="Check a study's prerequisites (device, hub access, configs, disk, stills, SPARQL) before running it.",
    )
    parser.add_argument("--config", default="configs/paper.yaml", help="study config (default: %(default)s)")
    parser.add_argument(
        "--offline", action="store_true", help="touch no network (also when HF_HUB_OFFLINE=1)"
    )
    parser.add_argument("--endpoint", help="hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per network request")
    parser.add_argument("--json", help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except (FileNotFoundError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = run_preflight(
        cfg, endpoint=args.endpoint, offline=True if args.offline else None, timeout=args.timeout
    )
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return report.exit_code
