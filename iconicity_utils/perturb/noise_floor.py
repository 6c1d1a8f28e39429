"""Stage 05's noise floor: every change from the title read against the title's own re-seeded change.

The ``title-reseed`` variant is the title's prompt with new seeds
(:data:`~iconicity_utils.core.constants.RESEED_VARIANT`; under ``seed_mode: index`` its seeds are
offset, :func:`iconicity_utils.generate.units.unit_seed`).  Its change from ``title`` is what
seed-to-seed variation alone gives, with the prompt held fixed; with a few images per reference
most CRA changes are multiples of 1/n and many are 0.  :func:`add_noise_floor` joins, to every
row of the paired table, the re-seeded arm's change for the same model, kind and metric (mean,
mean |change|, CI) and a paired sign-flip test of *variant − re-seeded title* on the references
that have both: a variant lies ``beyond_floor`` when that test's BH-adjusted p (within each metric)
is below ``perturbation.alpha``.  :func:`add_persistence_floor` does the same for persistence:
the share of title-reusing references that still reuse under new seeds alone, which is what
regression to the mean gives with no perturbation at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import RESEED_VARIANT
from iconicity_utils.perturb.inference import (
    PAIRED_METRICS,
    InferenceSettings,
    adjust_within_metric,
    sign_flip_test,
    smallest_p,
)

__all__ = ["FLOOR_COLUMNS", "add_noise_floor", "add_persistence_floor"]

#: the columns :func:`add_noise_floor` adds to the paired table
FLOOR_COLUMNS = [
    "floor_n", "floor_mean_change", "floor_mean_abs_change", "floor_ci_low", "floor_ci_high",
    "n_vs_floor", "mean_vs_floor", "p_vs_floor", "p_vs_floor_adjusted", "beyond_floor", "floor_reason",
]  # fmt: skip
_KEYS = ["model", "kind", "metric"]


def _floor_test(v: pd.DataFrame, r: pd.DataFrame, metric: str, s: InferenceSettings) -> dict:
    """variant − re-seeded title on the references in both comparisons."""
    both = v.merge(r, on="slug", suffixes=("", "_floor"))
    d = (both[f"{metric}_variant"] - both[f"{metric}_variant_floor"]).to_numpy(float)
    out = {"n_vs_floor": d.size, "mean_vs_floor": float(d.mean()) if d.size else np.nan, "p_vs_floor": np.nan}
    if d.size < s.min_pairs:
        out["floor_reason"] = (
            f"{d.size} references have both the variant and the re-seeded title (< perturbation.min_pairs "
            f"= {s.min_pairs}): no test against the floor"
        )
        return out
    out["p_vs_floor"], _ = sign_flip_test(
        d, exact_max=s.exact_max_pairs, n_permutations=s.n_permutations, seed=s.seed
    )
    nonzero = int(np.count_nonzero(d))
    out["floor_reason"] = (
        "" if smallest_p(nonzero) < s.alpha else f"only {nonzero} non-zero differences from the floor"
    )
    return out


def _floor_rows(paired: pd.DataFrame, pairs: pd.DataFrame, s: InferenceSettings) -> pd.DataFrame:
    floor = paired[paired["variant"] == RESEED_VARIANT].set_index(_KEYS)
    used = pairs[pairs["in_comparison"]]
    rows = []
    for row in paired.itertuples(index=False):
        key = (row.model, row.kind, row.metric)
        out: dict = {}
        if row.variant == RESEED_VARIANT:
            out["floor_reason"] = "this row is the noise floor (the title with new seeds)"
        elif key not in floor.index:
            out["floor_reason"] = f"no {RESEED_VARIANT} arm for this model and kind (perturbation.variants)"
        else:
            f = floor.loc[key]
            r = used[
                (used["model"] == row.model)
                & (used["kind"] == row.kind)
                & (used["variant"] == RESEED_VARIANT)
            ]
            v = used[
                (used["model"] == row.model) & (used["kind"] == row.kind) & (used["variant"] == row.variant)
            ]
            out = {"floor_n": int(f["n_pairs"]), "floor_mean_change": f["mean_change"],
                   "floor_mean_abs_change": float(np.abs(r[f"{row.metric}_change"]).mean()) if len(r) else np.nan,
                   "floor_ci_low": f["ci_low"], "floor_ci_high": f["ci_high"],
                   **_floor_test(v[["slug", f"{row.metric}_variant"]], r[["slug", f"{row.metric}_variant"]], row.metric, s)}  # fmt: skip
        rows.append(out)
    return pd.DataFrame(rows, index=paired.index).reindex(
        columns=[c for c in FLOOR_COLUMNS if c != "beyond_floor"]
    )


def add_noise_floor(
    paired: pd.DataFrame, pairs: pd.DataFrame, settings: InferenceSettings | None = None
) -> pd.DataFrame:
    """The paired table (:func:`~iconicity_utils.perturb.inference.paired_changes`) with the noise
    floor's columns (:data:`FLOOR_COLUMNS`).

    ``floor_*``: the ``title-reseed`` row of the same model, kind and metric (its n, mean change,
    mean |change| over its pairs, and CI).  ``n_vs_floor``, ``mean_vs_floor``, ``p_vs_floor``: the
    paired sign-flip test of the variant's value minus the re-seeded title's, on the references in
    both comparisons; ``p_vs_floor_adjusted``: BH within each metric; ``beyond_floor``: that
    adjusted p is below ``alpha`` (NA where no test ran); ``floor_reason``: why a floor column is
    NaN, or a caveat.
    """
    s = settings or InferenceSettings()
    for metric in PAIRED_METRICS:
        if f"{metric}_variant" not in pairs:
            raise ValueError(f"the pairs table lacks column {metric}_variant")
    out = pd.concat([paired, _floor_rows(paired, pairs, s)], axis=1)
    out["floor_reason"] = out["floor_reason"].fillna("")
    out = adjust_within_metric(out, "p_vs_floor", "p_vs_floor_adjusted")
    beyond = pd.array(
        [pd.NA if np.isnan(q) else bool(q < s.alpha) for q in out["p_vs_floor_adjusted"]], dtype="boolean"
    )
    out["beyond_floor"] = beyond
    return out[list(paired.columns) + FLOOR_COLUMNS]


def add_persistence_floor(persistence: pd.DataFrame) -> pd.DataFrame:
    """The persistence table with the re-seeded title's persistence for the same model and kind:
    ``floor_n_title_reuse``, ``floor_share`` (title-reusing references that still reuse under new
    seeds alone), ``floor_ci_low``, ``floor_ci_high``; ``reason`` says why ``share`` is NaN and
    ``floor_reason`` why the floor is."""
    out = persistence.copy()
    floor = persistence[persistence["variant"] == RESEED_VARIANT].set_index(["model", "kind"])
    cols = {
        "n_title_reuse": "floor_n_title_reuse",
        "share": "floor_share",
        "ci_low": "floor_ci_low",
        "ci_high": "floor_ci_high",
    }
    for src, dst in cols.items():
        out[dst] = [
            floor.at[(m, k), src] if (m, k) in floor.index and v != RESEED_VARIANT else np.nan
            for m, k, v in zip(out["model"], out["kind"], out["variant"], strict=True)
        ]
    out["reason"] = np.select(
        [out["n_pairs"] == 0, out["n_title_reuse"] == 0],
        ["no pair in the comparison: no share", "no title image group reuses the reference: no share"],
        "",
    )
    out["floor_reason"] = [
        "this row is the noise floor" if v == RESEED_VARIANT
        else f"no {RESEED_VARIANT} arm for this model and kind" if (m, k) not in floor.index
        else "no title image group reuses the reference: no share" if n == 0 else ""
        for m, k, v, n in zip(out["model"], out["kind"], out["variant"], out["floor_n_title_reuse"].fillna(0), strict=True)
    ]  # fmt: skip
    return out
