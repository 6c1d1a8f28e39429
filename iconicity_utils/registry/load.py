"""Loading registry entries at the revision a run records: diffusion models and captioners.

- :func:`load_pipeline`: a diffusion model, with ``DiffusionPipeline.from_pretrained``;
- :func:`load_captioner`: an image-to-text model, with transformers ``AutoModelForImageTextToText``,
  ``AutoImageProcessor`` and ``AutoTokenizer``.

Both load a hub id *at* its resolved (or locked) commit (:meth:`Registry.revision`), never "whatever
``main`` is now", and a stand-in from its built folder, by the same call.  Nothing is substituted
silently: any failure raises ``RuntimeError`` naming the entry and the cause.  (Encoders load in
:mod:`iconicity_utils.registry.encoders`.)
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from iconicity_utils.registry.revisions import LockMismatchError, Revision
from iconicity_utils.registry.specs import CaptionerSpec, ModelSpec, Registry

__all__ = ["torch_dtype", "load_pipeline", "load_captioner", "quiet_transformers"]

_BUILD_HINT = "run `python -m iconicity_utils demo --config <config>` (run_all.sh does this)"


def torch_dtype(name: str):
    """The torch dtype of a registry ``dtype`` name (``float32``, ``float16``, ``bfloat16``)."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def _loaded_revision(spec: ModelSpec | CaptionerSpec, registry: Registry, what: str, source: str) -> Revision:
    """The revision to load ``spec`` at; a stand-in must be built, and a revision must resolve."""
    if spec.is_standin and not Path(source).is_dir():
        raise RuntimeError(f"stand-in {what} {spec.name!r} has not been built at {source}; {_BUILD_HINT}")
    try:
        return registry.revision(spec)  # the commit (or digest) that is loaded, and recorded
    except LockMismatchError:
        raise
    except Exception as exc:  # no revision, no load: never "whatever main is now"
        raise RuntimeError(
            f"could not load {what} {spec.name!r} from {source!r}: its revision could not be "
            f"resolved: {type(exc).__name__}: {exc}"
        ) from exc


def _swap_scheduler(pipe, spec: ModelSpec) -> None:
    """Swap in the scheduler class the registry entry names, from the pipeline's own config."""
    import diffusers

    try:
        sched_cls = getattr(diffusers, spec.scheduler)
    except AttributeError as exc:
        raise RuntimeError(f"model {spec.name!r}: unknown scheduler class {spec.scheduler!r}") from exc
    pipe.scheduler = sched_cls.from_config(pipe.scheduler.config)


def load_pipeline(spec: ModelSpec, registry: Registry, device: str = "cpu"):
    """Load a registered diffusion model with ``DiffusionPipeline.from_pretrained``.

    Stand-ins and real models take the same call; only the string differs (a local folder or a
    hub id).  The pipeline class is checked against the registry entry, and a scheduler named in
    the entry is swapped in from the pipeline's own scheduler config.  Nothing is substituted
    silently: any failure raises ``RuntimeError`` naming the model id and the cause.

    Args:
        spec: the registry entry.
        registry: the registry (resolves local paths and stand-in folders).
        device: explicit device, e.g. ``"cpu"`` or ``"cuda"``.
    """
    import diffusers

    source = registry.resolve(spec)
    rev = _loaded_revision(spec, registry, "diffusion model", source)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(spec.dtype)}  # diffusers >= 0.42 name
    if rev.kind == "hub":
        kwargs["revision"] = rev.resolved  # the resolved (or locked) commit, not "main"
    if spec.variant:
        kwargs["variant"] = spec.variant
    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(source, **kwargs)
    except Exception as exc:  # re-raised with the id: never swap in another model
        raise RuntimeError(
            f"could not load diffusion model {spec.name!r} from {source!r} "
            f"(revision={rev.describe()}, dtype={spec.dtype}): {type(exc).__name__}: {exc}"
        ) from exc
    if type(pipe).__name__ != spec.pipeline:
        raise RuntimeError(
            f"model {spec.name!r} loaded as {type(pipe).__name__}, but the registry says {spec.pipeline}"
        )
    if pipe.dtype != torch_dtype(spec.dtype):
        raise RuntimeError(f"model {spec.name!r} loaded in {pipe.dtype}, but the registry says {spec.dtype}")
    if spec.scheduler:
        _swap_scheduler(pipe, spec)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@contextlib.contextmanager
def quiet_transformers():
    """transformers' warnings and weight-loading bars off while a captioner loads and runs; restored after."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_captioner(spec: CaptionerSpec, registry: Registry, device: str = "cpu"):
    """Load a registered captioner: ``(model, image processor, tokenizer)``, the model in eval mode.

    ``AutoModelForImageTextToText``, ``AutoImageProcessor`` and ``AutoTokenizer`` from the entry's
    hub id at its resolved (or locked) commit, or from its local folder (a stand-in: its built folder).

    Raises:
        RuntimeError: the captioner cannot be loaded (names it and the cause); nothing else is used.
        LockMismatchError: the entry disagrees with the study's lock.
    """
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    source = registry.resolve(spec)
    rev = _loaded_revision(spec, registry, "captioner", source)
    kwargs = {"revision": rev.resolved} if rev.kind == "hub" else {}
    with quiet_transformers():
        try:
            model = AutoModelForImageTextToText.from_pretrained(source, **kwargs).eval().to(device)
            processor = AutoImageProcessor.from_pretrained(source, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        except Exception as exc:  # re-raised with the id: never another captioner
            raise RuntimeError(
                f"could not load captioner {spec.name!r} from {source!r} "
                f"(revision={rev.describe()}): {type(exc).__name__}: {exc}"
            ) from exc
    return model, processor, tokenizer
