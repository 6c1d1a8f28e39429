"""The per-image table of scoring (``scores_per_image.parquet``): its columns, its rows, its writer.

One row per scored generated image, **including** images that fail recognition
(:data:`PER_IMAGE_COLUMNS`).  Rows are built a group at a time (:func:`image_rows`) and handed to a
:class:`PerImageWriter`, which keeps them in memory or streams them, a batch of groups at a time,
to a parquet file written under a temporary name and renamed into place at the end, so a study's
rows are never all in memory and a failed run leaves no table.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from iconicity_utils.core.io import new_file_mode, provenance
from iconicity_utils.metrics.baselines import BASELINES
from iconicity_utils.registry import STANDIN_LABEL

__all__ = [
    "PER_IMAGE",
    "PER_IMAGE_COLUMNS",
    "MODE_COLUMNS",
    "DEDUP_COLUMNS",
    "image_rows",
    "rows_frame",
    "PerImageWriter",
]

PER_IMAGE = "scores_per_image.parquet"

#: the named modes and encoder ids that produced a row (one value per run)
MODE_COLUMNS = (
    "comparison", "grid", "vr_cells_mode", "vr_pool", "cra_encoder", "vr_encoder", "sscd_encoder", "cache_dtype",
)  # fmt: skip

#: the per-image table's columns, in order: the image (model, variant, slug, kind, index, seed,
#: prompt, path), its references (``n_ref``, ``ref_paths``), recognition (``cra_sim`` to its best
#: reference ``cra_ref``, the threshold ``cra_tau``, ``cra_pass``), realization (``vr``
#: thresholded at ``vr_tau``; ``vr_mean/max/p90``; ``vi``; the raw per-cell maxima ``vr_cells``,
#: a list of K floats), the baselines (NaN when not computed) and the :data:`MODE_COLUMNS`.
#: Rows of dynamic references scored from folders add :data:`DEDUP_COLUMNS`; stand-in runs a
#: ``note``.
PER_IMAGE_COLUMNS = (
    "model", "variant", "slug", "kind", "index", "seed", "prompt", "path", "n_ref", "ref_paths",
    "cra_sim", "cra_ref", "cra_tau", "cra_pass", "vr", "vr_tau", "vr_mean", "vr_max", "vr_p90", "vi",
    "vr_cells", *BASELINES, *MODE_COLUMNS,
)  # fmt: skip

#: the pHash deduplication of a dynamic reference folder (folder scorer)
DEDUP_COLUMNS = ("n_ref_before", "n_ref_kept", "n_ref_dups_removed")


def image_rows(
    group, ref, scores: dict[str, Any], tau_cra: float, cfg, modes, stored_refs
) -> list[dict[str, Any]]:
    """One row (:data:`PER_IMAGE_COLUMNS`) per generated image of a (model, variant, reference) group.

    Args:
        group: the group's rows of the work table, in order.
        ref: its :class:`~iconicity_utils.score.inputs.ReferenceSet`.
        scores: the group's scores (per-image arrays; ``m`` the per-cell maxima).
        tau_cra: the recognition threshold of the reference's kind.
        cfg: the study config (``thresholds.tau_reuse``).
        modes: the :data:`MODE_COLUMNS` values.
        stored_refs: the reference paths as written in tables.
    """
    shared = {"kind": ref.kind, "n_ref": len(stored_refs), "ref_paths": stored_refs, "cra_tau": tau_cra,
              "vr_tau": cfg.thresholds.tau_reuse, **modes}  # fmt: skip
    dedup = (
        dict(zip(DEDUP_COLUMNS, (ref.n_before, len(stored_refs), ref.n_removed), strict=True))
        if ref.n_before is not None
        else {}
    )
    rows = []
    for i, row in enumerate(group.itertuples(index=False)):
        values = {
            **shared,
            "model": row.model,
            "variant": row.variant,
            "slug": row.slug,
            "index": int(row.index),
            "seed": row.seed,
            "prompt": row.prompt,
            "path": row.path,
            "cra_sim": float(scores["cra_sim"][i]),
            "cra_ref": stored_refs[int(scores["cra_best"][i])],
            "cra_pass": bool(scores["cra_pass"][i]),
            "vr": float(scores["vr"][i]),
            "vr_mean": float(scores["vr_mean"][i]),
            "vr_max": float(scores["vr_max"][i]),
            "vr_p90": float(scores["vr_p90"][i]),
            "vi": float(scores["vi"][i]),
            "vr_cells": scores["m"][i].astype(np.float32).tolist(),
            **{col: float(scores[col][i]) if col in scores else float("nan") for col in BASELINES},
        }
        rows.append({**{col: values[col] for col in PER_IMAGE_COLUMNS}, **dedup})
    return rows


def rows_frame(rows):
    """Per-image rows as a table, with the nullable integer seed and float pHash distances."""
    df = pd.DataFrame(rows)
    if len(df):
        df["seed"] = df["seed"].astype("Int64")
        df["phash_dist"] = df["phash_dist"].astype("float64")
    return df


class PerImageWriter:
    """Per-image rows, a batch of groups at a time: kept in memory, or (``path``) streamed to a
    parquet file, written to a temporary file and renamed at the end."""

    def __init__(self, path: Path | None, cfg=None, meta: dict[str, Any] | None = None):
        self.path, self.cfg, self.meta = path, cfg, meta or {}
        self.frames: list[Any] = []
        self.writer = self.schema = self.tmp = None
        self.standin = False
        self.n = 0

    def add(self, df) -> None:
        self.n += len(df)
        if self.path is None:
            self.frames.append(df)
            return
        if self.writer is None:
            prov = provenance(self.cfg, **self.meta)
            self.standin = bool(prov.get("standin"))
        if self.standin:
            df = df.assign(note=STANDIN_LABEL)
        table = pa.Table.from_pandas(df, preserve_index=False)
        if self.writer is None:
            meta = dict(table.schema.metadata or {})
            meta[b"iconicity.provenance"] = json.dumps(prov, default=str).encode()
            self.schema = table.schema.with_metadata(meta)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp.parquet", dir=self.path.parent
            )
            os.close(fd)
            self.tmp = Path(tmp)
            self.writer = pq.ParquetWriter(self.tmp, self.schema)
        self.writer.write_table(table.cast(self.schema))

    def close(self):
        """The in-memory table, or None once the file is in place."""
        if self.path is None:
            return pd.concat(self.frames, ignore_index=True) if self.frames else rows_frame([])
        self.writer.close()
        os.chmod(self.tmp, new_file_mode())
        os.replace(self.tmp, self.path)
        self.tmp = None
        return None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.tmp is not None:
            Path(self.tmp).unlink(missing_ok=True)
