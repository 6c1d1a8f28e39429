"""Work units and their seeds: what one image is, and the noise it starts from.

A unit is ``(model, variant, slug, index)``; its seed is a function of ``(variant, slug, index)``
only (:func:`unit_seed`), never of the process rank or the order of execution.  Two named modes:

- ``"hash"``: ``seed = (H63(variant, slug, index) + base_seed) mod 2**63``, where ``H63`` is the
  first 8 bytes of the SHA-256 of the JSON text ``[variant, slug, index]``, shifted right by one
  bit: independent noise for every unit.
- ``"index"``: ``seed = base_seed + index``: the same noise for a title and its perturbed
  variants, which pairs each original image with its counterpart.  The one exception is stage
  05's noise floor, ``title-reseed`` (the title's prompt, new seeds): its seed is
  ``base_seed + RESEED_INDEX_OFFSET + index`` (:data:`~iconicity_utils.core.constants.RESEED_INDEX_OFFSET`
  = 2**32), so that it never shares its noise with the title.  In ``"hash"`` mode the variant name
  already changes every seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from iconicity_utils.core.constants import RESEED_INDEX_OFFSET, RESEED_VARIANT

if TYPE_CHECKING:
    import pandas as pd

    from iconicity_utils.config import StudyConfig

__all__ = ["SEED_MODES", "WorkUnit", "batches", "plan_units", "unit_seed"]

SEED_MODES = ("hash", "index")
_SEED_MOD = 2**63


def unit_seed(
    variant: str, slug: str, index: int, mode: Literal["hash", "index"] = "hash", base_seed: int = 0
) -> int:
    """The seed of one work unit: a function of (variant, slug, index) only, never of the rank.

    Args:
        variant: prompt variant (``"title"`` for the base prompt).
        slug: the reference's slug.
        index: image index, ``0 <= index < n_images``.
        mode: ``"hash"``: ``(H63(variant, slug, index) + base_seed) mod 2**63`` with ``H63`` the
            first 8 bytes (big-endian) of ``sha256(json.dumps([variant, slug, index]))`` shifted
            right by one bit; ``"index"``: ``base_seed + index`` (the same noise across prompts),
            plus ``RESEED_INDEX_OFFSET`` for the ``title-reseed`` variant (new noise for the title).
        base_seed: offset added in both modes.

    Returns:
        A non-negative integer below ``2**63`` (fits an int64 column and ``manual_seed``).
    """
    if mode == "hash":
        text = json.dumps([variant, slug, int(index)], ensure_ascii=False)
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        return ((int.from_bytes(digest[:8], "big") >> 1) + int(base_seed)) % _SEED_MOD
    if mode == "index":
        offset = RESEED_INDEX_OFFSET if variant == RESEED_VARIANT else 0
        seed = int(base_seed) + offset + int(index)
        if not 0 <= seed < _SEED_MOD:
            raise ValueError(f"seed base_seed + index (+ offset {offset}) = {seed} is outside [0, 2**63)")
        return seed
    raise ValueError(f"unknown seed_mode {mode!r}; expected one of {SEED_MODES}")


@dataclass(frozen=True, order=True)
class WorkUnit:
    """One image to generate.  Units sort in the canonical order (model, variant, slug, index)."""

    model: str
    variant: str
    slug: str
    index: int
    prompt: str = field(compare=False)
    seed: int = field(compare=False)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.model, self.variant, self.slug, self.index)


def plan_units(
    cfg: StudyConfig,
    models: Sequence[str],
    prompts: pd.DataFrame,
    n_images: int | None = None,
) -> list[WorkUnit]:
    """Every work unit of a run, in the canonical order (model order as given, then variant, slug, index).

    Args:
        cfg: the study config (seed mode and base seed; ``n_images`` unless given).
        models: registry names of the models.
        prompts: a validated prompt table (``slug, variant, prompt``).
        n_images: images per prompt (default ``cfg.generation.n_images``).
    """
    n = cfg.generation.n_images if n_images is None else int(n_images)
    rows = sorted(prompts[["variant", "slug", "prompt"]].itertuples(index=False, name=None))
    units = []
    for model in models:
        for variant, slug, prompt in rows:
            for index in range(n):
                seed = unit_seed(variant, slug, index, cfg.generation.seed_mode, cfg.generation.base_seed)
                units.append(WorkUnit(model, variant, slug, index, prompt, seed))
    return units


def batches(units: list[WorkUnit], size: int) -> list[list[WorkUnit]]:
    """Consecutive batches of ``size`` units (the last may be shorter)."""
    return [units[i : i + size] for i in range(0, len(units), size)]
