"""Preflight: check a study's prerequisites before any heavy work, and say what could not be checked.

::

    python -m iconicity_utils.pipeline.preflight --config configs/paper.yaml [--offline] [--json report.json]

One table, one row per check and subject:

- **lock**: whether the study has a lock (``configs/paper.lock.yaml``) and whether it still holds;
- **hub access** (per hub id, models and encoders): the id exists at the requested revision, and a
  *gated* repository (SD 3.5, FLUX.1-schnell) grants this token access (``HfApi.auth_check``);
- **config** (per model / encoder): at the resolved (or locked) commit, a model's
  ``model_index.json`` names the registry's pipeline class, the weight variant exists, an encoder's
  repository holds the file its library loads.  Only small metadata files are fetched, never weights;
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

Exit status: 0 when nothing failed and everything was checked; 1 when a check failed; 3 when
nothing failed but some checks could not be run; 2 for a usage or config error.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from iconicity_utils.config import StudyConfig, load_config
from iconicity_utils.registry import (
    ConfigError,
    EncoderSpec,
    LockMismatchError,
    ModelSpec,
    Registry,
    RevisionError,
    lock_path,
)

__all__ = ["OK", "WARN", "FAIL", "UNCHECKED", "Check", "Report", "run_preflight", "estimate_disk", "main"]

OK, WARN, FAIL, UNCHECKED = "ok", "warn", "FAIL", "could not check"
STATUSES = (OK, WARN, FAIL, UNCHECKED)
GiB = 1024**3

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


@dataclass
class Check:
    """One row of the preflight table."""

    check: str
    subject: str
    status: str
    detail: str


@dataclass
class Report:
    """Every check of one preflight run."""

    config: str
    offline: bool
    rows: list[Check] = field(default_factory=list)

    def add(self, check: str, subject: str, status: str, detail: str) -> Check:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        row = Check(check, subject, status, detail)
        self.rows.append(row)
        return row

    def of(self, check: str) -> list[Check]:
        return [r for r in self.rows if r.check == check]

    @property
    def exit_code(self) -> int:
        statuses = {r.status for r in self.rows}
        if FAIL in statuses:
            return 1
        return 3 if UNCHECKED in statuses else 0

    def table(self) -> str:
        """The report as one plain-text table, then the failures and what was not checked."""
        heads = ("CHECK", "SUBJECT", "STATUS", "DETAIL")
        cells = [(r.check, r.subject, r.status, r.detail) for r in self.rows]
        widths = [
            max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(heads[:3])
        ]
        lines = [
            f"Preflight of {self.config}" + (" (OFFLINE: no network used)" if self.offline else ""),
            "  ".join(h.ljust(w) for h, w in zip(heads[:3], widths, strict=True)) + "  " + heads[3],
        ]
        for c in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(c[:3], widths, strict=True)) + "  " + c[3])
        counts = {s: sum(r.status == s for r in self.rows) for s in STATUSES}
        lines.append("")
        lines.append(
            f"{counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} failed, {counts[UNCHECKED]} could not be checked"
        )
        for r in self.rows:
            if r.status == FAIL:
                lines.append(f"FAILED  {r.check} {r.subject}: {r.detail}")
        for r in self.rows:
            if r.status == UNCHECKED:
                lines.append(f"NOT CHECKED  {r.check} {r.subject}: {r.detail}")
        verdict = {
            0: "READY: every check passed",
            1: "NOT READY: fix the failures above",
            3: "NOT VERIFIED: nothing failed, but the checks above could not be run",
        }[self.exit_code]
        lines.append(verdict)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "offline": self.offline,
            "exit_code": self.exit_code,
            "rows": [asdict(r) for r in self.rows],
        }


# --------------------------------------------------------------------------------------------
# Hub ids: access, and the config at the resolved commit
# --------------------------------------------------------------------------------------------


def _hub_error(exc: BaseException) -> tuple[str, str]:
    """Classify a hub failure: ``(status, reason)``; a network failure is *not checked*, an answer is a FAIL."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
        RevisionResolutionError,
    )

    chain = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, GatedRepoError):
            return (
                FAIL,
                "gated, and this token has no access: accept the conditions on its hub page and log in",
            )
        if isinstance(e, RepositoryNotFoundError):
            return (
                FAIL,
                "not found on the hub (withdrawn, renamed or private?): see the notes in configs/models.yaml",
            )
        if isinstance(e, RevisionNotFoundError):
            return FAIL, f"revision not found: {e}"
        if isinstance(e, RemoteEntryNotFoundError):
            return FAIL, f"file not in the repository: {e}"
    for e in chain:
        name = type(e).__name__
        if "Connect" in name or "Timeout" in name or isinstance(e, ConnectionError | TimeoutError):
            return UNCHECKED, f"hub unreachable: {name}: {e}"
    for e in chain:
        if isinstance(e, OfflineModeIsEnabled | LocalEntryNotFoundError | RevisionResolutionError):
            return UNCHECKED, f"not in the local cache, and the hub was not reached ({type(e).__name__})"
    return FAIL, f"{type(exc).__name__}: {exc}"


def _listing(api, repo: str, commit: str, offline: bool, timeout: float) -> tuple[dict[str, int | None], Any]:
    """The files of ``repo`` at ``commit`` with their sizes (hub listing, or the cached snapshot offline)."""
    if offline:
        from huggingface_hub import constants

        snap = Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--")) / "snapshots" / commit
        if not snap.is_dir():
            return {}, None
        return {
            p.relative_to(snap).as_posix(): p.stat().st_size for p in snap.rglob("*") if p.is_file()
        }, None
    info = api.model_info(repo, revision=commit, files_metadata=True, timeout=timeout)
    return {s.rfilename: getattr(s, "size", None) for s in (info.siblings or [])}, info


def _weights_bytes(
    files: dict[str, int | None], components: list[str] | None, variant: str | None
) -> int | None:
    """Bytes of the weight files a loader reads (per component folder, honouring the variant)."""
    total, seen = 0, False
    for name, size in files.items():
        if not name.endswith((".safetensors", ".bin", ".pt", ".pth")):
            continue
        folder = name.split("/")[0] if "/" in name else ""
        if components is not None and folder not in components:
            continue
        infixes = [f".{v}." for v in ("fp16", "bf16", "fp32") if f".{v}." in name]
        if variant and f".{variant}." not in name:
            continue
        if not variant and infixes:
            continue
        if name.endswith(".bin") and any(
            n.startswith(name.rsplit(".", 1)[0]) and n.endswith(".safetensors") for n in files
        ):
            continue  # safetensors preferred
        if size is None:
            return None
        total += size
        seen = True
    return total if seen else None


def _resolve_hub_revision(
    report: Report, registry: Registry, spec: ModelSpec | EncoderSpec, subject: str, offline: bool
):
    """The spec's revision, or ``None`` (rows added) when it is locked to another or cannot be resolved."""
    try:
        return registry.revision(spec)
    except LockMismatchError as exc:
        report.add("config", subject, FAIL, str(exc))
        return None
    except RevisionError as exc:
        status, reason = _hub_error(exc)
        if offline:
            from huggingface_hub import constants

            status, reason = UNCHECKED, f"offline, and not in the local hub cache ({constants.HF_HUB_CACHE})"
        report.add("hub access", subject, status, reason)
        report.add("config", subject, UNCHECKED, "its revision could not be resolved")
        return None


def _check_hub_access(
    report: Report, api, repo: str, commit: str, subject: str, pinned: str, *, offline: bool, timeout: float
) -> dict[str, int | None] | None:
    """Add the ``hub access`` row; the repository's files, or ``None`` (rows added) when access failed."""
    if offline:
        report.add("hub access", subject, UNCHECKED, f"offline: access not checked ({pinned} from the cache)")
        return _listing(api, repo, commit, True, timeout)[0]
    try:
        files, info = _listing(api, repo, commit, False, timeout)
        gated = getattr(info, "gated", False)
        if gated:
            api.auth_check(repo)
            report.add("hub access", subject, OK, f"gated ({gated}), access granted; {pinned}")
        else:
            report.add("hub access", subject, OK, f"not gated; {pinned}")
        return files
    except Exception as exc:
        status, reason = _hub_error(exc)
        report.add("hub access", subject, status, reason)
        if status == FAIL:
            report.add("config", subject, UNCHECKED, "no access to the repository")
            return None
        return _listing(api, repo, commit, True, timeout)[0]


def _check_model_index(
    report: Report,
    registry: Registry,
    spec: ModelSpec,
    repo: str,
    commit: str,
    subject: str,
    files: dict[str, int | None],
    cached: dict[str, int | None],
    *,
    offline: bool,
    weights: dict[str, int | None],
    to_download: dict[str, int | None],
) -> None:
    """A model's ``model_index.json``: the pipeline class and the weight variant, and the weights' size."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo, "model_index.json", revision=commit, endpoint=registry.endpoint)
    except Exception as exc:
        status, reason = _hub_error(exc)
        report.add("config", subject, UNCHECKED if offline else status, f"model_index.json: {reason}")
        return
    index = json.loads(Path(path).read_text())
    components = [k for k, v in index.items() if isinstance(v, list) and v and v[0] is not None]
    size = _weights_bytes(files, components, spec.variant)
    weights[spec.name] = size
    to_download[spec.name] = (
        0 if size is not None and _weights_bytes(cached, components, spec.variant) == size else size
    )
    if index.get("_class_name") != spec.pipeline:
        report.add(
            "config",
            subject,
            FAIL,
            f"model_index.json names {index.get('_class_name')}, the registry {spec.pipeline}",
        )
        return
    if files and spec.variant and size is None:
        report.add(
            "config",
            subject,
            FAIL,
            f"no {spec.variant!r} weight files in the repository at {commit[:12]}",
        )
        return
    shown = f", weights ≈ {size / GiB:.1f} GiB" if size else ""
    report.add(
        "config", subject, OK, f"{index['_class_name']} at {commit[:12]}{shown} (no weights downloaded)"
    )


def _check_encoder_files(
    report: Report,
    spec: EncoderSpec,
    commit: str,
    subject: str,
    files: dict[str, int | None],
    cached: dict[str, int | None],
    *,
    weights: dict[str, int | None],
    to_download: dict[str, int | None],
) -> None:
    """An encoder's repository must hold the weights file its library loads."""
    wanted = {
        "timm": ("model.safetensors", "pytorch_model.bin"),
        "open_clip": (
            "open_clip_model.safetensors",
            "open_clip_pytorch_model.bin",
            "open_clip_pytorch_model.safetensors",
        ),
        "hf-clip": ("model.safetensors", "pytorch_model.bin"),
    }.get(spec.backend, ())
    if not files:
        report.add("config", subject, UNCHECKED, "offline and not in the local cache: its files are unknown")
        return
    found = [n for n in wanted if n in files]
    if not found:
        report.add("config", subject, FAIL, f"none of {list(wanted)} in the repository at {commit[:12]}")
        return
    weights[spec.name] = files[found[0]]
    to_download[spec.name] = 0 if found[0] in cached else files[found[0]]
    report.add("config", subject, OK, f"{found[0]} at {commit[:12]}")


def _check_hub_entry(
    report: Report,
    registry: Registry,
    spec: ModelSpec | EncoderSpec,
    *,
    offline: bool,
    timeout: float,
    weights: dict[str, int | None],
    to_download: dict[str, int | None],
) -> None:
    from huggingface_hub import HfApi

    where = registry.weights_location(spec)
    repo, subject = where.source, f"{spec.name} ({where.source})"
    rev = _resolve_hub_revision(report, registry, spec, subject, offline)
    if rev is None:
        return
    commit = rev.resolved
    pinned = f"{'locked ' if rev.locked else ''}{rev.requested} -> {commit[:12]}"
    api = HfApi(endpoint=registry.endpoint)
    files = _check_hub_access(report, api, repo, commit, subject, pinned, offline=offline, timeout=timeout)
    if files is None:
        return
    cached = _listing(api, repo, commit, True, timeout)[0]
    if isinstance(spec, ModelSpec):
        _check_model_index(
            report,
            registry,
            spec,
            repo,
            commit,
            subject,
            files,
            cached,
            offline=offline,
            weights=weights,
            to_download=to_download,
        )
        return
    _check_encoder_files(
        report, spec, commit, subject, files, cached, weights=weights, to_download=to_download
    )


def _check_local_entry(
    report: Report, registry: Registry, spec: ModelSpec | EncoderSpec, weights: dict
) -> None:
    where = registry.weights_location(spec)
    label = "stand-in" if spec.is_standin else where.kind
    subject = f"{spec.name} ({label} {where.source})"
    path = Path(where.path or "")
    if not path.exists():
        hint = (
            "not built: run `python -m iconicity_utils.demo.standins --config <config>`"
            if spec.is_standin
            else f"missing: {path} (how to get it: the entry's notes in configs/encoders.yaml / models.yaml)"
        )
        report.add("config", subject, FAIL, hint)
        return
    if isinstance(spec, ModelSpec):
        index_file = path / "model_index.json"
        if not index_file.is_file():
            report.add("config", subject, FAIL, f"{index_file} not found: not a diffusers pipeline folder")
            return
        cls = json.loads(index_file.read_text()).get("_class_name")
        if cls != spec.pipeline:
            report.add("config", subject, FAIL, f"model_index.json names {cls}, the registry {spec.pipeline}")
            return
    try:
        rev = registry.revision(spec)
    except (LockMismatchError, RevisionError) as exc:
        report.add("config", subject, FAIL, str(exc))
        return
    size = (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
    weights[spec.name] = size
    report.add("config", subject, OK, f"{'locked ' if rev.locked else ''}{rev.resolved[:19]}…")


# --------------------------------------------------------------------------------------------
# Device, disk, stills, SPARQL
# --------------------------------------------------------------------------------------------


def _check_devices(
    report: Report, cfg: StudyConfig, registry: Registry, weights: dict[str, int | None]
) -> None:
    import torch

    model_bytes = {m: weights.get(m) for m in cfg.models}
    largest = max(((b, m) for m, b in model_bytes.items() if b), default=None)
    unknown = [m for m, b in model_bytes.items() if b is None]
    roles = {"generation": cfg.generation.device, "scoring": cfg.encoders.device}
    for device in sorted(set(roles.values())):
        used_by = " and ".join(r for r, d in roles.items() if d == device)
        subject = f"{device} ({used_by})"
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                report.add(
                    "device",
                    subject,
                    FAIL,
                    f"torch sees no CUDA device (torch {torch.__version__}, CUDA {torch.version.cuda})",
                )
                continue
            index = int(device.split(":")[1]) if ":" in device else 0
            if index >= torch.cuda.device_count():
                report.add("device", subject, FAIL, f"only {torch.cuda.device_count()} CUDA device(s)")
                continue
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            have = f"{props.name}, {free / GiB:.1f} of {total / GiB:.1f} GiB free"
            if "generation" not in used_by or largest is None:
                status = WARN if "generation" in used_by else OK
                report.add(
                    "device", subject, status, have + ("; model sizes unknown" if status == WARN else "")
                )
                continue
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
        elif device == "cpu":
            pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            have = f"{os.cpu_count()} cores, {pages * page / GiB:.1f} GiB RAM"
            real = [m for m in cfg.models if not registry.model(m).is_standin]
            if "generation" in used_by and real:
                report.add(
                    "device",
                    subject,
                    WARN,
                    f"{have}; generating with real models {real} on the CPU takes days",
                )
            else:
                report.add("device", subject, OK, have)
        else:
            try:
                torch.empty(1, device=device)
                report.add("device", subject, OK, "available")
            except Exception as exc:
                report.add("device", subject, FAIL, f"{type(exc).__name__}: {exc}")


def _n_references(cfg: StudyConfig) -> tuple[int, int, str]:
    """(static, dynamic) reference counts: from the references table when stage 01 ran, else top-K."""
    from iconicity_utils.core.io import read_table

    if cfg.references_table.is_file():
        refs = read_table(cfg.references_table)
        kinds = refs["kind"].value_counts()
        return int(kinds.get("static", 0)), int(kinds.get("dynamic", 0)), "references table"
    return cfg.collection.top_k_static, cfg.collection.top_k_dynamic, "top_k: stage 01 not run yet"


def estimate_disk(cfg: StudyConfig, registry: Registry) -> dict[str, Any]:
    """The study's estimated bytes on disk: generated PNGs, feature cache, reference images."""
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
    per_image = 4 * (FEATURE_FLOATS + 768 * (1 + rows * cols)) + cfg.realization.ssim_size**2
    return {
        "references": n_refs,
        "basis": basis,
        "images": per_model * len(cfg.models),
        "generated_png": int(png),
        "feature_cache": int(n_images * per_image),
        "reference_images": int(n_ref_images * REFERENCE_BYTES),
    }


def _free_bytes(path: Path) -> tuple[int, int]:
    """(free bytes, device id) of the filesystem holding ``path`` (its nearest existing ancestor)."""
    p = path.resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free, p.stat().st_dev


def _check_disk(
    report: Report, cfg: StudyConfig, registry: Registry, to_download: dict[str, int | None]
) -> None:
    from huggingface_hub import constants

    est = estimate_disk(cfg, registry)
    needs: dict[int, list[tuple[str, int]]] = {}
    free_of: dict[int, tuple[int, Path]] = {}
    for label, path, amount in (
        ("generated images", cfg.path("data", "generated"), est["generated_png"]),
        ("feature cache", cfg.path("cache"), est["feature_cache"]),
        ("reference images", cfg.data_dir, est["reference_images"]),
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


def _check_stills(report: Report, cfg: StudyConfig) -> None:
    from iconicity_utils.core.images import list_images
    from iconicity_utils.core.io import read_table

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


def _check_sparql(report: Report, cfg: StudyConfig, offline: bool, timeout: float) -> None:
    from iconicity_utils.collect import sparql

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
            with sparql.LocalOxigraph(snapshot) as server:
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
    except sparql.RequestFailed as exc:
        report.add(
            "sparql",
            c.endpoint,
            FAIL,
            f"did not answer: {exc.reason} ({'HTTP ' + str(exc.status) if exc.status else 'no HTTP answer'})",
        )
        return
    report.add("sparql", c.endpoint, OK, f"answered in {time.perf_counter() - t0:.2f} s")


# --------------------------------------------------------------------------------------------
# The front door
# --------------------------------------------------------------------------------------------


def _specs(cfg: StudyConfig, registry: Registry) -> list[ModelSpec | EncoderSpec]:
    roles = (cfg.encoders.recognition, cfg.encoders.realization, cfg.encoders.copy_detection)
    return [registry.model(m) for m in cfg.models] + [registry.encoder(e) for e in dict.fromkeys(roles) if e]


def _on_hub(registry: Registry, spec: ModelSpec | EncoderSpec) -> bool:
    try:
        return registry.weights_location(spec).kind == "hub"
    except RevisionError:
        return True  # an unresolvable hub entry still wants pinning


def _is_offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def run_preflight(
    cfg: StudyConfig,
    *,
    endpoint: str | None = None,
    offline: bool | None = None,
    timeout: float = 10.0,
    checks: tuple[str, ...] = ("lock", "models", "device", "disk", "stills", "sparql"),
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
    import dataclasses

    offline = _is_offline(offline)
    report = Report(cfg.relative(cfg.source) if cfg.source else "<dict>", offline)
    say = progress or (lambda _s: None)
    try:
        registry = dataclasses.replace(Registry.for_config(cfg), endpoint=endpoint)
        lock_error = None
    except (LockMismatchError, ConfigError) as exc:
        registry = dataclasses.replace(Registry.for_config(cfg, use_lock=False), endpoint=endpoint)
        lock_error = str(exc)
    if "lock" in checks:
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
        elif not any(_on_hub(registry, s) for s in _specs(cfg, registry)):
            report.add(
                "lock", "-", OK, "no lock needed to pin hub commits: no hub id (local weights: sha256)"
            )
        else:
            report.add(
                "lock",
                str(cfg.relative(path)) if path else "-",
                WARN,
                "no lock: hub ids resolve to today's commits (recorded in every image); pin them with "
                f"`python -m iconicity_utils.registry lock --config {report.config}`",
            )
    weights: dict[str, int | None] = {}
    to_download: dict[str, int | None] = {}
    if "models" in checks:
        say("models")
        for spec in _specs(cfg, registry):
            try:
                kind = registry.weights_location(spec).kind
            except RevisionError as exc:
                report.add("config", spec.name, FAIL, str(exc))
                continue
            if kind == "hub":
                _check_hub_entry(
                    report,
                    registry,
                    spec,
                    offline=offline,
                    timeout=timeout,
                    weights=weights,
                    to_download=to_download,
                )
            else:
                _check_local_entry(report, registry, spec, weights)
    if "device" in checks:
        say("device")
        _check_devices(report, cfg, registry, weights)
    if "disk" in checks:
        say("disk")
        _check_disk(report, cfg, registry, to_download)
    if "stills" in checks:
        say("stills")
        _check_stills(report, cfg)
    if "sparql" in checks:
        say("sparql")
        _check_sparql(report, cfg, offline, timeout)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iconicity_utils.pipeline.preflight",
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


if __name__ == "__main__":
    raise SystemExit(main())
