"""The caption corpus of stage 06: its parquet shards, the parts of a split scan, and the demo's corpus.

The shards are the parquet files matching ``correlates.frequency.shards`` (a glob relative to the
data root, or absolute), sorted.  ``--shard i/n`` (1-based) takes every n-th shard from the i-th
(:func:`select_shards`), so n processes or machines can share a corpus.

With ``correlates.frequency.synthetic_corpus: true`` (the demo) a small corpus with counts known by
construction is generated at the shards' place first (:func:`prepare_corpus`).  Its generator is
not science: it is the ``caption_corpus`` provider ``synthetic``, found by name
(:mod:`iconicity_utils.core.plugins`); :func:`compare_expected` sets counts beside the ones it
constructed.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iconicity_utils.core import plugins

__all__ = [
    "shard_glob",
    "list_shards",
    "parse_shard_spec",
    "select_shards",
    "synthetic_corpus",
    "prepare_corpus",
    "compare_expected",
]


def shard_glob(cfg) -> str:
    """``correlates.frequency.shards`` as an absolute glob (relative ones are under the data root)."""
    pattern = cfg.correlates.frequency.shards
    return pattern if os.path.isabs(pattern) else str(cfg.data_dir / pattern)


def list_shards(cfg) -> list[Path]:
    """The parquet shards of the configured corpus, sorted.

    Raises:
        FileNotFoundError: no file matches ``correlates.frequency.shards``.
    """
    pattern = shard_glob(cfg)
    shards = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not shards:
        hint = (
            " (the demo builds its corpus with correlates.frequency.synthetic_corpus: true)"
            if not cfg.correlates.frequency.synthetic_corpus
            else ""
        )
        raise FileNotFoundError(
            f"no caption shards match correlates.frequency.shards = {cfg.correlates.frequency.shards!r} "
            f"(looked for {pattern}){hint}"
        )
    return shards


def parse_shard_spec(spec: str | None) -> tuple[int, int]:
    """``"i/n"`` (1-based, ``1 <= i <= n``) as ``(i, n)``; None is ``(1, 1)``."""
    if spec is None:
        return 1, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not match:
        raise ValueError(f"--shard takes i/n, e.g. 2/8, got {spec!r}")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard {spec}: need 1 <= i <= n (1-based), got i={i}, n={n}")
    return i, n


def select_shards(shards: Sequence[Path], spec: str | None) -> list[Path]:
    """The shards of part ``i`` of ``n``: every n-th shard from the i-th (1-based)."""
    i, n = parse_shard_spec(spec)
    return list(shards[i - 1 :: n])


def synthetic_corpus() -> Any:
    """The ``caption_corpus`` provider ``synthetic``: ``provider(cfg)`` writes the corpus at the shards'
    place (returns its folder); ``provider.compare_expected(cfg, counts)`` checks counts against it."""
    return plugins.provider("caption_corpus", "synthetic")


def prepare_corpus(cfg) -> None:
    """Generate the synthetic corpus when ``correlates.frequency.synthetic_corpus`` is set (kept when
    it is up to date); a real corpus is left as it is."""
    if cfg.correlates.frequency.synthetic_corpus:
        synthetic_corpus()(cfg)


def compare_expected(cfg, counts):
    """The synthetic corpus's counts beside those known by construction (``match`` per reference).

    Args:
        counts: the counts table (``slug``, ``label_clean``, ``caption_count``, ``exact_caption_count``).
    """
    if not cfg.correlates.frequency.synthetic_corpus:
        raise ValueError(
            "only a synthetic corpus has known counts: correlates.frequency.synthetic_corpus is false"
        )
    return synthetic_corpus().compare_expected(cfg, counts)
