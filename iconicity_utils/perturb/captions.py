"""Captions of reference images by a registered captioner (``configs/captioners.yaml``), for the
``literal`` prompts of stage 05 (``perturbation.literal_source: captioner``).

The captioner loads through :func:`iconicity_utils.registry.load_captioner`, at its resolved (or
locked) hub commit, like every model of a study; its stand-in is built by
``python -m iconicity_utils demo --config <config>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from iconicity_utils.core.images import open_rgb
from iconicity_utils.registry import Registry, load_captioner
from iconicity_utils.registry.load import quiet_transformers

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = ["caption_images"]

#: images per ``generate`` call
BATCH = 8


def caption_images(cfg: StudyConfig, name: str, images: Sequence[str | Path]) -> list[str]:
    """Captions of ``images`` by the registered captioner ``name``, greedy or beam search.

    Loads the captioner (:func:`~iconicity_utils.registry.load.load_captioner`) on
    ``encoders.device`` and calls ``generate(pixel_values=...,
    max_new_tokens=perturbation.captioner_max_new_tokens, num_beams=perturbation.captioner_num_beams,
    do_sample=False)``.

    Raises:
        KeyError: no such captioner in the registry.
        RuntimeError: the captioner cannot be loaded (names it and the cause); nothing else is used.
    """
    import torch

    registry = Registry.for_config(cfg)
    spec = registry.captioner(name)
    model, processor, tokenizer = load_captioner(spec, registry, cfg.encoders.device)
    p = cfg.perturbation
    out: list[str] = []
    with quiet_transformers():
        for start in range(0, len(images), BATCH):
            pils = [open_rgb(path) for path in images[start : start + BATCH]]
            pixels = processor(images=pils, return_tensors="pt")["pixel_values"].to(cfg.encoders.device)
            with torch.inference_mode():
                ids = model.generate(
                    pixel_values=pixels,
                    max_new_tokens=p.captioner_max_new_tokens,
                    num_beams=p.captioner_num_beams,
                    do_sample=False,
                )
            out += [" ".join(t.split()) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out
