"""The preflight's checks of the machine and the inputs: ``device``, ``disk``, ``stills``, ``sparql``.

- **device**: the generation and scoring devices exist; a GPU's free memory against the largest
  model's weights (sizes from the ``config`` checks);
- **disk**: free space against the study's estimated images, feature cache, reference images and
  the weights still to download (:func:`estimate_disk`);
- **stills**: every dynamic reference of the references table has a stills folder with images;
- **sparql**: the SPARQL endpoint answers a trivial query (``endpoint: local``: the bundled
  oxigraph server over the snapshot).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from iconicity_utils.collect import sparql
from iconicity_utils.config import StudyConfig
from iconicity_utils.core.http import RequestFailed
from iconicity_utils.core.images import list_images
from iconicity_utils.core.io import read_table
from iconicity_utils.core.plugins import provider
from iconicity_utils.pipeline.preflight_report import FAIL, OK, UNCHECKED, WARN, GiB, Report
from iconicity_utils.registry import Registry
from iconicity_utils.validate.dataset import planned_images

__all__ = ["estimate_disk", "check_devices", "check_disk", "check_stills", "check_sparql"]


#: rough size of one generated PNG, in bytes per pixel (photographic content compresses to ~1/2)
PNG_BYTES_PER_PIXEL = 1.5
#: feature-cache bytes per image: a CLIP vector, a DINO vector per grid cell plus a global one,
#: an SSCD vector (float32, ViT-B widths) and the greyscale SSIM thumbnail
FEATURE_FLOATS = 1024 + 512
#: reference images: bytes per image at collection.image_width, and stills per dynamic reference
REFERENCE_BYTES = 600_000
STILLS_PER_DYNAMIC = 15
#: GPU memory needed, as a multiple of the weights' size (activations, VAE decode, workspace)
GPU_OVERHEAD = 1.25


def _cuda_row(
    report: Report,
    device: str,
    subject: str,
    used_by: str,
    largest: tuple[int, str] | None,
    unknown: list[str],
) -> None:
    """The row of a CUDA device: it exists, and its free memory holds the largest model."""
    import torch

    if not torch.cuda.is_available():
        report.add(
            "device",
            subject,
            FAIL,
            f"torch sees no CUDA device (torch {torch.__version__}, CUDA {torch.version.cuda})",
        )
        return
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        report.add("device", subject, FAIL, f"only {torch.cuda.device_count()} CUDA device(s)")
        return
    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    have = f"{props.name}, {free / GiB:.1f} of {total / GiB:.1f} GiB free"
    if "generation" not in used_by or largest is None:
        status = WARN if "generation" in used_by else OK
        report.add("device", subject, status, have + ("; model sizes unknown" if status == WARN else ""))
        return
    need = largest[0] * GPU_OVERHEAD
    if free < need:
        report.add(
            "device",
            subject,
            FAIL,
            f"{have}; {largest[1]} needs ≈ {need / GiB:.1f} GiB (weights × {GPU_OVERHEAD})",
        )
    else:
        note = f"; sizes unknown for {unknown}" if unknown else ""
        report.add(
            "device",
            subject,
            WARN if unknown else OK,
            f"{have}; largest model {largest[1]} ≈ {need / GiB:.1f} GiB{note}",
        )


def _cpu_row(report: Report, cfg: StudyConfig, registry: Registry, subject: str, used_by: str) -> None:
    """The row of the CPU: its cores and memory; a warning when it generates with real models."""
    pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    have = f"{os.cpu_count()} cores, {pages * page / GiB:.1f} GiB RAM"
    real = [m for m in cfg.models if not registry.model(m).is_standin]
    if "generation" in used_by and real:
        report.add(
            "device", subject, WARN, f"{have}; generating with real models {real} on the CPU takes days"
        )
    else:
        report.add("device", subject, OK, have)


def _other_row(report: Report, device: str, subject: str) -> None:
    """The row of another torch device (``mps``, ``xpu``, ...): a tensor can be made on it."""
    import torch

    try:
        torch.empty(1, device=device)
        report.add("device", subject, OK, "available")
    except Exception as exc:
        report.add("device", subject, FAIL, f"{type(exc).__name__}: {exc}")


def check_devices(
    report: Report, cfg: StudyConfig, registry: Registry, weights: dict[str, int | None]
) -> None:
    """One ``device`` row per device the study uses (generation, scoring), against the model sizes."""
    model_bytes = {m: weights.get(m) for m in cfg.models}
    largest = max(((b, m) for m, b in model_bytes.items() if b), default=None)
    unknown = [m for m, b in model_bytes.items() if b is None]
    roles = {"generation": cfg.generation.device, "scoring": cfg.encoders.device}
    for device in sorted(set(roles.values())):
        used_by = " and ".join(r for r, d in roles.items() if d == device)
        subject = f"{device} ({used_by})"
        if device.startswith("cuda"):
            _cuda_row(report, device, subject, used_by, largest, unknown)
        elif device == "cpu":
            _cpu_row(report, cfg, registry, subject, used_by)
        else:
            _other_row(report, device, subject)


def _n_references(cfg: StudyConfig) -> tuple[int, int, str]:
    """(static, dynamic) reference counts: from the references table when stage 01 ran, else top-K."""
    if cfg.references_table.is_file():
        refs = read_table(cfg.references_table)
        kinds = refs["kind"].value_counts()
        return int(kinds.get("static", 0)), int(kinds.get("dynamic", 0)), "references table"
    return cfg.collection.top_k_static, cfg.collection.top_k_dynamic, "top_k: stage 01 not run yet"


def estimate_disk(cfg: StudyConfig, registry: Registry) -> dict[str, Any]:
    """The study's estimated bytes on disk: generated PNGs, feature cache, reference images, and the
    validation stage's edited images."""
    n_static, n_dynamic, basis = _n_references(cfg)
    n_refs = n_static + n_dynamic
    per_model = cfg.generation.n_images * len(cfg.generation.variants) * n_refs
    png = sum(
        per_model * registry.model(m).height * registry.model(m).width * PNG_BYTES_PER_PIXEL
        for m in cfg.models
    )
    rows, cols = cfg.realization.grid
    n_ref_images = n_static + n_dynamic * STILLS_PER_DYNAMIC
    n_images = per_model * len(cfg.models) + n_ref_images
    per_image = 4 * (FEATURE_FLOATS + 768 * (1 + rows * cols)) + cfg.scoring.ssim_size**2
    n_validation = planned_images(cfg, n_static)  # stage 08's edited images, scored like the rest
    return {
        "references": n_refs,
        "basis": basis,
        "images": per_model * len(cfg.models),
        "generated_png": int(png),
        "feature_cache": int((n_images + n_validation) * per_image),
        "reference_images": int(n_ref_images * REFERENCE_BYTES),
        "validation_images": n_validation,
        "validation_png": int(n_validation * cfg.validation.image_size**2 * PNG_BYTES_PER_PIXEL),
    }


def _free_bytes(path: Path) -> tuple[int, int]:
    """(free bytes, device id) of the filesystem holding ``path`` (its nearest existing ancestor)."""
    p = path.resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free, p.stat().st_dev


def check_disk(
    report: Report, cfg: StudyConfig, registry: Registry, to_download: dict[str, int | None]
) -> None:
    """One ``disk`` row per filesystem: its free space against what the study will write there."""
    from huggingface_hub import constants

    est = estimate_disk(cfg, registry)
    needs: dict[int, list[tuple[str, int]]] = {}
    free_of: dict[int, tuple[int, Path]] = {}
    for label, path, amount in (
        ("generated images", cfg.path("data", "generated"), est["generated_png"]),
        ("feature cache", cfg.path("cache"), est["feature_cache"]),
        ("reference images", cfg.data_dir, est["reference_images"]),
        ("validation images", cfg.path("data", "validation"), est["validation_png"]),
        ("weights to download", Path(constants.HF_HUB_CACHE), sum(b for b in to_download.values() if b)),
    ):
        free, dev = _free_bytes(path)
        needs.setdefault(dev, []).append((label, amount))
        free_of.setdefault(dev, (free, path))  # named by the first path on that filesystem
    unknown = [m for m, b in to_download.items() if b is None]
    for dev, items in needs.items():
        free, path = free_of[dev]
        need = sum(a for _, a in items)
        parts = ", ".join(f"{label} {a / GiB:.1f}" for label, a in items if a)
        detail = (
            f"{free / GiB:.1f} GiB free at {path}; needs ≈ {need / GiB:.1f} GiB ({parts or 'nothing'}) for "
            f"{est['images']} images of {est['references']} references ({est['basis']})"
        )
        if unknown and any(label == "weights to download" for label, _ in items):
            detail += f"; weights of {unknown} not counted (sizes unknown)"
        status = FAIL if free < need else WARN if free < 1.25 * need else OK
        report.add("disk", str(path), status, detail)


def check_stills(report: Report, cfg: StudyConfig) -> None:
    """The ``stills`` row: every dynamic reference has a stills folder with images."""
    subject = str(cfg.path("data", cfg.collection.stills_dir))
    if cfg.collection.reference_images == "synthetic":
        report.add("stills", subject, OK, "synthetic references: stage 01 draws the stills")
        return
    if not cfg.references_table.is_file():
        report.add(
            "stills",
            subject,
            UNCHECKED,
            f"no references table yet ({cfg.relative(cfg.references_table)}): run stage 01 (notebook 01) once to "
            "learn the dynamic slugs, put their stills in place, then rerun this preflight",
        )
        return
    refs = read_table(cfg.references_table)
    dynamic = sorted(refs.loc[refs["kind"] == "dynamic", "slug"])
    counts = {slug: len(list_images(cfg.path("data", cfg.collection.stills_dir, slug))) for slug in dynamic}
    missing = [s for s, n in counts.items() if n == 0]
    if missing:
        report.add(
            "stills",
            subject,
            FAIL,
            f"{len(missing)} of {len(dynamic)} dynamic references have no stills: {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
            + f" (put images into {subject}/<slug>/)",
        )
    else:
        few = sorted(counts.values())[0] if counts else 0
        report.add("stills", subject, OK, f"{len(dynamic)} dynamic references, each with >= {few} stills")


def check_sparql(report: Report, cfg: StudyConfig, offline: bool, timeout: float) -> None:
    """The ``sparql`` row: the endpoint (or the local oxigraph server) answers a trivial query."""
    c = cfg.collection
    query = "SELECT ?x WHERE { BIND(1 AS ?x) }"
    policy = c.http.model_copy(update={"max_retries": 0, "timeout_s": min(timeout, c.http.timeout_s)})
    if c.endpoint == "local":
        snapshot = Path(c.snapshot)
        snapshot = snapshot if snapshot.is_absolute() else cfg.root / snapshot
        subject = f"local oxigraph ({cfg.relative(snapshot)})"
        if not snapshot.is_file():
            report.add("sparql", subject, FAIL, f"snapshot not found: {snapshot}")
            return
        try:
            t0 = time.perf_counter()
            with provider("sparql_endpoint", "local")(snapshot) as server:
                sparql.SparqlClient(server.endpoint, policy).select("preflight", query)
                report.add("sparql", subject, OK, f"started and answered in {time.perf_counter() - t0:.1f} s")
        except Exception as exc:
            report.add("sparql", subject, FAIL, f"{type(exc).__name__}: {exc}")
        return
    if c.use_saved_responses:
        report.add(
            "sparql", c.endpoint, OK, "not needed: collection.use_saved_responses replays saved answers"
        )
        return
    if offline:
        report.add("sparql", c.endpoint, UNCHECKED, "offline: the endpoint was not contacted")
        return
    t0 = time.perf_counter()
    try:
        sparql.SparqlClient(c.endpoint, policy).select("preflight", query)
    except RequestFailed as exc:
        report.add(
            "sparql",
            c.endpoint,
            FAIL,
            f"did not answer: {exc.reason} ({'HTTP ' + str(exc.status) if exc.status else 'no HTTP answer'})",
        )
        return
    report.add("sparql", c.endpoint, OK, f"answered in {time.perf_counter() - t0:.2f} s")
