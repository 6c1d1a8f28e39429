"""The CLIP text distance of stage 05: how far each prompt is from its reference's title.

:func:`add_text_distance` adds ``text_encoder`` and ``text_cosine`` to the prompts table, with the
text tower of ``perturbation.text_encoder`` (default ``encoders.recognition``);
:func:`text_features` embeds texts with a loaded open_clip or hf-clip encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from iconicity_utils.registry import Registry
from iconicity_utils.registry.encoders import load_encoder

if TYPE_CHECKING:
    import pandas as pd

    from iconicity_utils.config import StudyConfig

__all__ = ["text_features", "add_text_distance"]


def text_features(
    encoder, texts: Sequence[str], registry: Registry | None = None, batch_size: int = 256
) -> np.ndarray:
    """L2-normalised CLIP text embeddings ``(N, D)`` from a loaded open_clip or hf-clip encoder
    (texts longer than CLIP's 77 tokens are truncated, as in the diffusion models' own encoders).

    Raises:
        ValueError: the encoder has no text tower (timm, sscd).
    """
    import torch

    registry = registry or Registry.load()
    if encoder.backend == "open_clip":
        import open_clip

        tokenizer = open_clip.get_tokenizer(encoder.spec.source)

        def embed(chunk):
            return encoder.model.encode_text(tokenizer(chunk).to(encoder.device))

    elif encoder.backend == "hf-clip":
        from transformers import CLIPTokenizer

        source = registry.resolve_path(encoder.spec.source)
        kwargs = {"revision": encoder.spec.revision} if encoder.spec.revision else {}
        tokenizer = CLIPTokenizer.from_pretrained(source, **kwargs)

        def embed(chunk):
            inputs = tokenizer(chunk, padding=True, truncation=True, return_tensors="pt").to(encoder.device)
            out = encoder.model.get_text_features(**inputs)
            return out if isinstance(out, torch.Tensor) else out.pooler_output

    else:
        raise ValueError(
            f"encoder {encoder.name!r} ({encoder.backend}) has no text tower; set perturbation.text_encoder "
            "to a CLIP encoder (backend open_clip or hf-clip)"
        )
    texts = list(texts)
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            feats = embed(texts[start : start + batch_size])
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def add_text_distance(cfg: StudyConfig, prompts: pd.DataFrame, encoder=None) -> pd.DataFrame:
    """``prompts`` with ``text_encoder`` and ``text_cosine``: the CLIP text cosine between each prompt
    and its reference's title (``perturbation.text_encoder``, default ``encoders.recognition``)."""
    name = cfg.perturbation.text_encoder or cfg.encoders.recognition
    registry = Registry.for_config(cfg)
    ok = prompts["status"] == "ok"
    texts = sorted(set(prompts.loc[ok, "prompt"]) | set(prompts["title"]))
    if encoder is None:
        encoder = load_encoder(name, registry, device=cfg.encoders.device, precision=cfg.encoders.precision)
    feats = dict(zip(texts, text_features(encoder, texts, registry), strict=True))
    cos = [
        float(feats[p] @ feats[t]) if o else np.nan
        for p, t, o in zip(prompts["prompt"], prompts["title"], ok, strict=True)
    ]
    return prompts.assign(text_encoder=name, text_cosine=cos)
