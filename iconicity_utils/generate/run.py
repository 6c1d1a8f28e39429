"""The run: every pending image of a study, resumably, in one or several processes.

:func:`generate` is the front door.  Per process: list the work units; verify the images already
on disk in parallel and agree on the pending units; per model, cut the pending units into batches
in one canonical order and take this process's share of the *batches*
(:class:`~iconicity_utils.core.launch.Processes`, accelerate's ``split_between_processes`` under
``accelerate launch``); load the model and call the pipeline once per batch with one CPU
``torch.Generator`` per unit (diffusers' reproducibility advice), writing each image atomically
(temporary file, fsync, rename).  Then the main process rebuilds the manifest from the PNGs.

**Resumption.**  A unit whose PNG exists and passes :func:`~iconicity_utils.generate.metadata.check_image`
is skipped; a truncated, unreadable or mismatched file is regenerated.  Killing the process at any
point (SIGKILL included) and running again ends with every unit present exactly once.

**Batching and exactness.**  Several units in one pipeline call get exactly the initial noise they
would get alone, but CPU kernels accumulate in an order that depends on the batch shape, so pixels
can differ from a one-by-one run by float rounding (at most one 8-bit level, in a few pixels; the
tests bound it).  Because batches are formed before they are split, a run with one process and a
run with two give byte-identical images (same threads per process, same machine).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from iconicity_utils.core.io import atomic_write_bytes
from iconicity_utils.core.launch import Processes
from iconicity_utils.generate.manifest import generated_root, rebuild_manifest, remove_orphan_temps
from iconicity_utils.generate.metadata import (
    VERIFY_MODES,
    check_image,
    encode_png,
    expected_metadata,
    run_fields,
    unit_meta,
)
from iconicity_utils.generate.prompts import select_prompts
from iconicity_utils.generate.units import WorkUnit, batches, plan_units
from iconicity_utils.registry import ModelSpec, Registry, load_pipeline

if TYPE_CHECKING:
    import pandas as pd

    from iconicity_utils.config import StudyConfig

__all__ = ["GenerationSummary", "call_kwargs", "generate", "torch_threads"]

logger = logging.getLogger(__name__)


@dataclass
class GenerationSummary:
    """What a :func:`generate` call did (over all processes)."""

    #: units requested
    total: int = 0
    #: images generated and written by this run (includes regenerated ones)
    done: int = 0
    #: units already present and valid, left alone
    skipped: int = 0
    #: units whose image existed but was unreadable, truncated or stale, and so was regenerated
    regenerated: int = 0
    #: units whose pipeline call or write failed (see ``failures``)
    failed: int = 0
    #: ``{"model", "variant", "slug", "index", "error"}`` per failed unit
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: wall time of the whole call
    seconds: float = 0.0
    #: time inside the generate-and-write loop (the slowest process); excludes model loading
    generation_seconds: float = 0.0
    num_processes: int = 1
    #: temporary files from killed writers that were removed
    orphans_removed: int = 0
    #: manifest rows after the run (main process only)
    manifest_rows: int | None = None
    manifest: str | None = None

    @property
    def images_per_second(self) -> float:
        """Images generated per second of the generation loop (0 when nothing was generated)."""
        return self.done / self.generation_seconds if self.generation_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "images_per_second": self.images_per_second}

    def __str__(self) -> str:
        text = (
            f"{self.total} units: {self.done} generated ({self.regenerated} of them replaced a bad file), "
            f"{self.skipped} skipped, {self.failed} failed; {self.seconds:.1f} s in all, "
            f"{self.images_per_second:.2f} images/s in the generation loop "
            f"({self.num_processes} process{'es' if self.num_processes > 1 else ''})"
        )
        if self.manifest is not None:
            text += f"; manifest: {self.manifest_rows} rows in {self.manifest}"
        return text


@dataclass
class _ProcessStats:
    done: int = 0
    regenerated: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# Helpers of the run
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch CPU threads (None: leave torch's setting), then restore the previous setting."""
    import torch

    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def call_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """The pipeline-call arguments the registry entry fixes."""
    kwargs: dict[str, Any] = {
        "num_inference_steps": spec.steps,
        "guidance_scale": spec.guidance,
        "height": spec.height,
        "width": spec.width,
        "output_type": "pil",
    }
    if spec.max_sequence_length is not None:
        kwargs["max_sequence_length"] = spec.max_sequence_length
    return kwargs


def _resolve_device(cfg: StudyConfig, processes: Processes):
    """The explicit device: the config's, or accelerate's per-process device of the same type."""
    import torch

    wanted = torch.device(cfg.generation.device)
    if wanted.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"{cfg.source}: generation.device is {cfg.generation.device!r} but torch sees no CUDA device"
        )
    return torch.device(processes.device(cfg.generation.device))


def _verify_existing(
    cfg: StudyConfig,
    processes: Processes,
    units: list[WorkUnit],
    specs: dict[str, ModelSpec],
    registry: Registry,
) -> tuple[set[tuple], dict[tuple, str]]:
    """Check the units whose file exists, in parallel; every process gets the same verdicts.

    Every process lists the existing files before any process writes (the gather below is a
    barrier), so all of them see the same files.

    Returns:
        The keys of the existing units that count as done, and ``{key: reason}`` for the others.
    """
    existing = [u for u in units if cfg.generated_path(*u.key).is_file()]
    verdicts = []
    for unit in processes.split(existing):
        expected = expected_metadata(cfg, specs[unit.model], registry, unit)
        reason = check_image(cfg.generated_path(*unit.key), expected, cfg.generation.verify)
        verdicts.append((unit.key, reason))
    verdicts = processes.gather(verdicts)
    valid = {tuple(key) for key, reason in verdicts if reason is None}
    bad = {tuple(key): reason for key, reason in verdicts if reason is not None}
    return valid, bad


def _share_batches(
    processes: Processes, models: Sequence[str], pending: list[WorkUnit], size: int
) -> dict[str, list[list[WorkUnit]]]:
    """Per model, this process's share of the pending units' batches (cut before they are split)."""
    return {name: processes.split(batches([u for u in pending if u.model == name], size)) for name in models}


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _run_model(
    cfg: StudyConfig,
    spec: ModelSpec,
    registry: Registry,
    device,
    plan: list[list[WorkUnit]],
    replacing: dict[tuple, str],
    stats: _ProcessStats,
    bar,
) -> None:
    """Load one model and run this process's batches of it, writing every image atomically.

    A batch whose pipeline call or write raises is recorded in ``stats.failures`` (the images of
    the batch written before the error are kept) and the loop goes on with the next batch.
    """
    import torch

    pipe = load_pipeline(spec, registry, device=str(device))  # raises naming the id and the cause
    run = run_fields(cfg, spec, registry, pipe, device)
    kwargs = call_kwargs(spec)
    bar.set_postfix_str(spec.name)
    t0 = time.perf_counter()
    for batch in plan:
        written = set()
        try:
            generators = [torch.Generator("cpu").manual_seed(unit.seed) for unit in batch]
            images = pipe([unit.prompt for unit in batch], generator=generators, **kwargs).images
            if len(images) != len(batch):
                raise RuntimeError(f"the pipeline returned {len(images)} images for {len(batch)} prompts")
            for unit, image in zip(batch, images, strict=True):
                png = encode_png(image, unit_meta(cfg, run, unit, len(batch)))
                atomic_write_bytes(cfg.generated_path(*unit.key), png)
                written.add(unit.key)
        except Exception as exc:  # recorded, counted and reported; the CLI exits non-zero
            error = f"{type(exc).__name__}: {exc}"
            logger.error("model %s: a batch of %d units failed: %s", spec.name, len(batch), error)
            for unit in batch:
                if unit.key not in written:
                    names = ("model", "variant", "slug", "index")
                    stats.failures.append({**dict(zip(names, unit.key, strict=True)), "error": error})
        stats.done += len(written)
        stats.regenerated += len(written & replacing.keys())
        bar.update(len(batch))
    stats.seconds += time.perf_counter() - t0
    del pipe
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _run_plans(
    cfg: StudyConfig,
    processes: Processes,
    specs: dict[str, ModelSpec],
    registry: Registry,
    device,
    plans: dict[str, list[list[WorkUnit]]],
    replacing: dict[tuple, str],
    progress: bool,
) -> _ProcessStats:
    """Run this process's batches, model after model, with the config's threads and a progress bar."""
    n_mine = sum(len(batch) for plan in plans.values() for batch in plan)
    rank, n = processes.rank, processes.num_processes
    desc = "generate" if n == 1 else f"generate [{rank + 1}/{n}]"
    stats = _ProcessStats()
    with (
        torch_threads(cfg.generation.num_threads),
        tqdm(total=n_mine, desc=desc, unit="img", disable=not progress, position=rank) as bar,
    ):
        for name, plan in plans.items():
            if plan:
                _run_model(cfg, specs[name], registry, device, plan, replacing, stats, bar)
    return stats


def _summarize(
    everyone: list[_ProcessStats], total: int, skipped: int, num_processes: int
) -> GenerationSummary:
    """The summary over every process's stats."""
    failures = [f for s in everyone for f in s.failures]
    return GenerationSummary(
        total=total,
        done=sum(s.done for s in everyone),
        skipped=skipped,
        regenerated=sum(s.regenerated for s in everyone),
        failed=len(failures),
        failures=failures,
        generation_seconds=max(s.seconds for s in everyone),
        num_processes=num_processes,
    )


# --------------------------------------------------------------------------------------------
# The front door
# --------------------------------------------------------------------------------------------


def generate(
    cfg: StudyConfig,
    models: Sequence[str] | None = None,
    variants: Sequence[str] | None = None,
    prompts: pd.DataFrame | str | Path | None = None,
    slugs: Sequence[str] | None = None,
    *,
    progress: bool = True,
    registry: Registry | None = None,
) -> GenerationSummary:
    """Generate every pending image of a run, resumably, in one or several processes.

    The loop, per process: list the units; verify the images already on disk (in parallel) and
    agree on the pending units; per model, cut the pending units into batches in canonical order,
    take this process's share of the batches (``split_between_processes``), load the model, and
    for every batch call the pipeline with one CPU generator per unit and write each image
    atomically.  Then the main process rebuilds the manifest from the PNGs on disk.

    Args:
        cfg: the study config (``generation``: ``n_images``, ``seed_mode``, ``base_seed``,
            ``batch_size``, ``device``, ``verify``, ``num_threads``).
        models: registry names (default: ``cfg.models``).
        variants: prompt variants (default: ``cfg.generation.variants`` when ``prompts`` is None,
            else every variant of the prompt table).
        prompts: a prompt table (DataFrame, or .parquet/.csv with ``slug, variant, prompt``) that
            *replaces* the default title prompts (``title_prompts``); concatenate the two to
            run both.
        slugs: restrict the run to these references.
        progress: show a tqdm bar with ETA.
        registry: the model registry (default: the config's).

    Returns:
        The summary over all processes (``manifest_rows`` is set on the main process).

    Raises:
        KeyError: an unknown model name (the message lists the known ones).
        RuntimeError: a model that cannot be loaded (names the id and the cause), or a device
            that is not there.  Images already written are kept.
        FileNotFoundError, ValueError: a missing or invalid prompt or references table.
    """
    t_start = time.perf_counter()
    registry = registry or Registry.for_config(cfg)
    models = list(models) if models is not None else list(cfg.models)
    if len(set(models)) != len(models):
        raise ValueError(f"duplicate model names in {models}")
    specs = {name: registry.model(name) for name in models}  # KeyError lists the known models
    if cfg.generation.verify not in VERIFY_MODES:
        raise ValueError(f"{cfg.source}: generation.verify must be one of {VERIFY_MODES}")
    processes = Processes(cpu=cfg.generation.device == "cpu", role="generation.device")
    device = _resolve_device(cfg, processes)

    units = plan_units(cfg, models, select_prompts(cfg, prompts, variants, slugs))
    valid, bad = _verify_existing(cfg, processes, units, specs, registry)
    if processes.is_main:
        for reason in bad.values():
            logger.warning("regenerating: %s", reason)
    pending = [unit for unit in units if unit.key not in valid]
    plans = _share_batches(processes, models, pending, cfg.generation.batch_size)
    stats = _run_plans(cfg, processes, specs, registry, device, plans, bad, progress)

    everyone = processes.gather([stats])
    summary = _summarize(everyone, len(units), len(valid), processes.num_processes)
    if processes.is_main:
        summary.orphans_removed = remove_orphan_temps(generated_root(cfg))
        manifest = rebuild_manifest(cfg)
        summary.manifest_rows = len(manifest)
        summary.manifest = cfg.relative(cfg.generations_manifest)
    processes.barrier()  # every process returns once the manifest is written
    summary.seconds = time.perf_counter() - t_start
    return summary
