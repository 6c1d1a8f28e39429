"""The preflight's checks of a study's registry entries: ``hub access`` and ``config`` rows.

A hub id (model, encoder or captioner): the id exists at the requested revision, a *gated*
repository grants this token access (``HfApi.auth_check``), and at the resolved (or locked) commit
a model's ``model_index.json`` names the registry's pipeline class and the weight variant exists,
an encoder's or captioner's repository holds the weights file its library loads
(:func:`check_hub_entry`).  Only small metadata files are fetched, never weights.  Stand-ins and
local weights are checked on disk (:func:`check_local_entry`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iconicity_utils.pipeline.preflight_report import FAIL, OK, UNCHECKED, GiB, Report
from iconicity_utils.registry import (
    CaptionerSpec,
    EncoderSpec,
    LockMismatchError,
    ModelSpec,
    Registry,
    RevisionError,
)

__all__ = ["check_hub_entry", "check_local_entry"]

#: the weights file a library loads, by backend (encoders) or role (captioners), best first
WEIGHT_FILES = {
    "timm": ("model.safetensors", "pytorch_model.bin"),
    "open_clip": (
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.bin",
        "open_clip_pytorch_model.safetensors",
    ),
    "hf-clip": ("model.safetensors", "pytorch_model.bin"),
    "captioner": ("model.safetensors", "pytorch_model.bin"),
}


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
    report: Report,
    registry: Registry,
    spec: ModelSpec | EncoderSpec | CaptionerSpec,
    subject: str,
    offline: bool,
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


def _check_weight_files(
    report: Report,
    spec: EncoderSpec | CaptionerSpec,
    commit: str,
    subject: str,
    files: dict[str, int | None],
    cached: dict[str, int | None],
    *,
    weights: dict[str, int | None],
    to_download: dict[str, int | None],
) -> None:
    """An encoder's or captioner's repository must hold the weights file its library loads."""
    wanted = WEIGHT_FILES.get(spec.backend if isinstance(spec, EncoderSpec) else "captioner", ())
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


def check_hub_entry(
    report: Report,
    registry: Registry,
    spec: ModelSpec | EncoderSpec | CaptionerSpec,
    *,
    offline: bool,
    timeout: float,
    weights: dict[str, int | None],
    to_download: dict[str, int | None],
) -> None:
    """The ``hub access`` and ``config`` rows of a hub entry; its weights' size into ``weights`` and
    the bytes still to download into ``to_download`` (None: unknown)."""
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
    _check_weight_files(
        report, spec, commit, subject, files, cached, weights=weights, to_download=to_download
    )


def check_local_entry(
    report: Report, registry: Registry, spec: ModelSpec | EncoderSpec | CaptionerSpec, weights: dict
) -> None:
    """The ``config`` row of a stand-in or local entry, checked on disk; its size into ``weights``."""
    where = registry.weights_location(spec)
    label = "stand-in" if spec.is_standin else where.kind
    subject = f"{spec.name} ({label} {where.source})"
    path = Path(where.path or "")
    if not path.exists():
        hint = (
            "not built: run `python -m iconicity_utils demo --config <config>`"
            if spec.is_standin
            else f"missing: {path} (how to get it: the entry's notes in configs/models.yaml / encoders.yaml / captioners.yaml)"
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
    if isinstance(spec, CaptionerSpec) and not (path / "config.json").is_file():
        report.add(
            "config", subject, FAIL, f"{path / 'config.json'} not found: not a transformers model folder"
        )
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
