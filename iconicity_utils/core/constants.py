"""The paper's constants and the names of the named modes, each defined once.

Every other module, the config schema and the tests read these; YAML configs only override them.
Where each value comes from (figure, released scripts, or our choice) is in ``docs/method.md``
(§3 for the metrics, §1 for deduplication, §9 for the named modes and their config keys).

This module is the bottom of the package: it imports nothing.
"""

from __future__ import annotations

__all__ = [
    "KINDS",
    "TAU_CRA",
    "TAU_REUSE",
    "GRID",
    "K_GEN",
    "PHASH_MAX_DISTANCE",
    "COMPARISONS",
    "CELL_MODES",
    "POOLS",
    "PRECISIONS",
    "STANDIN_LABEL",
    "BASE_VARIANT",
    "RESEED_VARIANT",
    "RESEED_INDEX_OFFSET",
    "CONTROL_VARIANT",
]

#: reference kinds: ``static`` (artworks, one image) and ``dynamic`` (films and series, several stills)
KINDS = ("static", "dynamic")

#: recognition thresholds τ per reference kind: the figure's 0.70, and the released script's 0.75 for
#: dynamic references (``IC_TAU_STATIC_DEFAULT`` / ``IC_TAU_DYNAMIC_DEFAULT``; docs/method.md §3.2)
TAU_CRA = {"static": 0.70, "dynamic": 0.75}

#: a generated cell is *reused* when its best cosine to any reference cell passes this (§3.3)
TAU_REUSE = 0.60

#: the Visual Reuse grid, ``(rows, cols)``: K = 16 cells (§3.3)
GRID = (4, 4)

#: at most this many generated images per (model, variant, reference), as the scripts' ``K_GEN_DEFAULT``
K_GEN = 50

#: dynamic stills within this 64-bit pHash Hamming distance of a kept still are near-duplicates
#: (``PHASH_DUP_THRESH``, inclusive; §1.1)
PHASH_MAX_DISTANCE = 18

#: the threshold comparison: ``">"`` as the paper's figure (our default), ``">="`` as the released script
COMPARISONS = (">", ">=")

#: how a grid cell is embedded: ``"crop"`` (each cell as its own image, faithful) or ``"tokens"``
#: (one ViT pass, patch tokens pooled into the grid; fast, ours, τ_reuse uncalibrated for it)
CELL_MODES = ("crop", "tokens")

#: how a timm encoder turns ``forward_features`` tokens into one embedding
POOLS = ("mean_all", "cls")

#: encoder precision: fp32 (as the released scripts), or CUDA autocast in fp16 / bf16
PRECISIONS = ("fp32", "fp16", "bf16")

#: the words every table and figure made by a stand-in carries
STANDIN_LABEL = "random-weight stand-in models: not scientific results"

#: the base prompt variant: the reference's bare English title (``label_clean``); stage 05's
#: perturbed variants are compared against it
BASE_VARIANT = "title"

#: stage 05's noise floor: the title's own prompt with new seeds (docs/method.md §5.4); its change
#: from ``title`` is what seed-to-seed variation alone gives
RESEED_VARIANT = "title-reseed"

#: under ``generation.seed_mode: index`` a ``title-reseed`` image ``i`` starts from seed
#: ``base_seed + RESEED_INDEX_OFFSET + i`` instead of the title's ``base_seed + i`` (2**32: above
#: any image index, so no re-seeded image shares its noise with a title image)
RESEED_INDEX_OFFSET = 2**32

#: stage 05's matched-controls arm: the literal description of a non-iconic work of the same kind
#: and genre (``collection.controls``), scored against that work's own reference
CONTROL_VARIANT = "control-literal"
