"""The results of stage 08 from the scores table: AUROC with CIs, precision at recall, VR against k, limits.

Every measure is oriented so that a higher value means "closer to the source" (pHash distance is
negated; :data:`~iconicity_utils.validate.measure.MEASURES`).  Two questions (:data:`COMPARISONS`):

- ``replication_vs_transformation``: positives are the replication edits, negatives the
  transformations (the study's claim: does the measure rank a replication above a transformation?);
- ``reuse_vs_independent``: positives are all edits of the source, negatives other source images.

Each is asked over all edits (``subset = "all"``) and per edit, one edit's rows replacing its
side.  Only rows with ``in_auroc`` count: the limit probes and the ends of the ``replace`` series
(k = 0 is the exact copy, k = K another image) are measured apart.

The AUROC is the Mann-Whitney statistic (ties count one half; it equals
``sklearn.metrics.roc_auc_score``).  Its confidence interval is a percentile bootstrap over
*source images*: each resample draws sources with replacement and weighs every row by its
source's count, computed at once for all resamples from the per-source-pair sums of the pairwise
comparison matrix.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from iconicity_utils.validate.measure import MEASURES

__all__ = [
    "COMPARISONS",
    "ENCODER_FREE",
    "AUROC_TABLE",
    "CALIBRATION_TABLE",
    "LIMITS_TABLE",
    "oriented",
    "auroc",
    "roc_curve",
    "bootstrap_auroc",
    "precision_at_recall",
    "comparison_sides",
    "auroc_table",
    "calibration_table",
    "limits_table",
    "summary_table",
]

AUROC_TABLE = "validation_auroc.parquet"
CALIBRATION_TABLE = "validation_calibration.parquet"
LIMITS_TABLE = "validation_limits.parquet"
#: the two questions: name -> (positive families, negative families)
COMPARISONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "replication_vs_transformation": (("replication",), ("transformation",)),
    "reuse_vs_independent": (("replication", "transformation"), ("independent",)),
}
#: measures that need no learned encoder: their values are real even with random-weight stand-ins
ENCODER_FREE = ("phash_dist", "ssim")


def oriented(values, measure: str) -> np.ndarray:
    """A measure's values with "higher = closer to the source" (pHash distance negated)."""
    v = np.asarray(values, dtype=np.float64)
    return v if MEASURES[measure][1] else -v


def auroc(pos, neg) -> float:
    """P(a positive scores above a negative) + ½ P(tie): the Mann-Whitney U over n_pos·n_neg.

    NaN values are left out; NaN when a side is empty.

    Example:
        >>> auroc([0.9, 0.8, 0.4], [0.5, 0.1])
        0.8333333333333334
    """
    p = np.asarray(pos, dtype=np.float64)
    n = np.asarray(neg, dtype=np.float64)
    p, n = p[~np.isnan(p)], n[~np.isnan(n)]
    if not len(p) or not len(n):
        return float("nan")
    ranks = rankdata(np.concatenate([p, n]))
    u = ranks[: len(p)].sum() - len(p) * (len(p) + 1) / 2
    return float(u / (len(p) * len(n)))


def roc_curve(pos, neg) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every threshold, from (0, 0) to (1, 1)."""
    p = np.asarray(pos, dtype=np.float64)
    n = np.asarray(neg, dtype=np.float64)
    p, n = p[~np.isnan(p)], n[~np.isnan(n)]
    thresholds = np.unique(np.concatenate([p, n]))[::-1]
    tpr = np.array([0.0, *[(p >= t).mean() for t in thresholds]])
    fpr = np.array([0.0, *[(n >= t).mean() for t in thresholds]])
    return fpr, tpr


def _source_pair_sums(pos, neg, pos_src, neg_src, n_src):
    """Per (positive source, negative source): the summed pairwise wins (ties ½)."""
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    gp = np.zeros((n_src, len(pos)))
    gp[pos_src, np.arange(len(pos))] = 1.0
    gn = np.zeros((n_src, len(neg)))
    gn[neg_src, np.arange(len(neg))] = 1.0
    return gp @ wins @ gn.T, gp.sum(axis=1), gn.sum(axis=1)


def bootstrap_auroc(
    pos, neg, pos_source, neg_source, *, n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the AUROC, resampling source images with replacement.

    Args:
        pos, neg: the oriented scores.
        pos_source, neg_source: each row's source image (the resampled unit).
    """
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    keep_p, keep_n = ~np.isnan(pos), ~np.isnan(neg)
    if not keep_p.any() or not keep_n.any():
        return float("nan"), float("nan")
    sources, codes = np.unique(np.concatenate([np.asarray(pos_source)[keep_p], np.asarray(neg_source)[keep_n]]),
                               return_inverse=True)  # fmt: skip
    n_src = len(sources)
    pair, n_pos, n_neg = _source_pair_sums(
        pos[keep_p], neg[keep_n], codes[: keep_p.sum()], codes[keep_p.sum() :], n_src
    )
    counts = np.random.default_rng(seed).multinomial(n_src, np.full(n_src, 1.0 / n_src), size=n_bootstrap)
    num = np.einsum("bi,ij,bj->b", counts, pair, counts)
    den = (counts @ n_pos) * (counts @ n_neg)
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = np.where(den > 0, num / den, np.nan)
    alpha = (1.0 - level) / 2
    lo, hi = np.nanquantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def precision_at_recall(pos, neg, recall: float) -> tuple[float, float]:
    """Precision at the highest threshold whose recall is at least ``recall``, and that threshold.

    Example:
        >>> precision_at_recall([0.9, 0.8, 0.4], [0.5, 0.1], 0.6)
        (1.0, 0.8)
    """
    p = np.sort(np.asarray(pos, dtype=np.float64)[~np.isnan(np.asarray(pos, dtype=np.float64))])[::-1]
    n = np.asarray(neg, dtype=np.float64)
    n = n[~np.isnan(n)]
    if not len(p) or not len(n):
        return float("nan"), float("nan")
    t = p[max(1, math.ceil(recall * len(p))) - 1]
    tp, fp = int((p >= t).sum()), int((n >= t).sum())
    return tp / (tp + fp), float(t)


def comparison_sides(scores: pd.DataFrame, comparison: str) -> list[tuple[str, pd.Series, pd.Series]]:
    """``(subset, positive mask, negative mask)`` rows of one comparison: ``all``, then per edit."""
    pos_fam, neg_fam = COMPARISONS[comparison]
    usable = scores["in_auroc"].astype(bool)
    pos = usable & scores["family"].isin(pos_fam)
    neg = usable & scores["family"].isin(neg_fam)
    sides = [("all", pos, neg)]
    for edit in scores.loc[pos, "edit"].drop_duplicates():
        sides.append((edit, pos & (scores["edit"] == edit), neg))
    if comparison == "replication_vs_transformation":
        for edit in scores.loc[neg, "edit"].drop_duplicates():
            sides.append((edit, pos, neg & (scores["edit"] == edit)))
    return sides


def _auroc_row(scores, measure, pos, neg, cfg) -> dict:
    v = cfg.validation
    values = oriented(scores[measure], measure)
    p, n = values[pos.to_numpy()], values[neg.to_numpy()]
    lo, hi = bootstrap_auroc(
        p, n, scores.loc[pos, "source"].to_numpy(), scores.loc[neg, "source"].to_numpy(),
        n_bootstrap=v.n_bootstrap, seed=v.bootstrap_seed, level=v.ci_level,
    )  # fmt: skip
    precision, t = precision_at_recall(p, n, v.recall)
    return {"auroc": auroc(p, n), "ci_low": lo, "ci_high": hi, "n_pos": int(np.isfinite(p).sum()),
            "n_neg": int(np.isfinite(n).sum()), "n_sources": int(scores.loc[pos | neg, "source"].nunique()),
            "recall": v.recall, "precision_at_recall": precision,
            "threshold": t if MEASURES[measure][1] else -t}  # fmt: skip


def auroc_table(scores: pd.DataFrame, cfg) -> pd.DataFrame:
    """Per comparison, subset and measure: AUROC, its CI over sources, precision at ``validation.recall``.

    ``threshold`` is the decision threshold at that recall, in the measure's own units (for
    pHash distance, the largest distance counted as close).  ``encoder_free`` marks the measures
    whose values need no learned encoder (real even with random-weight stand-ins).
    """
    rows = []
    for comparison in COMPARISONS:
        for subset, pos, neg in comparison_sides(scores, comparison):
            edit_family = scores.loc[scores["edit"] == subset, "family"]
            for measure, (label, _) in MEASURES.items():
                if measure not in scores.columns:
                    continue
                rows.append({"comparison": comparison, "subset": subset,
                             "subset_family": edit_family.iloc[0] if len(edit_family) else "all",
                             "measure": measure, "label": label, "encoder_free": measure in ENCODER_FREE,
                             **_auroc_row(scores, measure, pos, neg, cfg)})  # fmt: skip
    return pd.DataFrame(rows)


def _mean_ci(values: pd.Series, sources: pd.Series, cfg) -> tuple[float, float, float]:
    """Mean over rows and its percentile bootstrap CI over sources (one row per source here)."""
    v = cfg.validation
    per_source = values.groupby(sources.to_numpy()).mean().to_numpy(dtype=np.float64)
    per_source = per_source[~np.isnan(per_source)]
    if not len(per_source):
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(v.bootstrap_seed)
    boots = rng.choice(per_source, size=(v.n_bootstrap, len(per_source)), replace=True).mean(axis=1)
    alpha = (1.0 - v.ci_level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return float(per_source.mean()), float(lo), float(hi)


def calibration_table(scores: pd.DataFrame, cfg) -> pd.DataFrame:
    """The ``replace`` series: per k and measure, the mean over sources with a bootstrap CI.

    ``expected`` is (K - k) / K: what VR is when kept cells match and foreign ones do not.
    """
    n_cells = cfg.realization.grid[0] * cfg.realization.grid[1]
    series = scores[scores["edit"] == "replace"]
    rows = []
    for k, group in series.groupby("strength", sort=True):
        for measure in [m for m in MEASURES if m in scores.columns]:
            mean, lo, hi = _mean_ci(group[measure], group["source"], cfg)
            rows.append({"k": int(k), "measure": measure, "mean": mean, "ci_low": lo, "ci_high": hi,
                         "n_sources": int(group["source"].nunique()),
                         "expected": (n_cells - k) / n_cells if measure == "vr" else float("nan")})  # fmt: skip
    return pd.DataFrame(rows)


def limits_table(scores: pd.DataFrame) -> pd.DataFrame:
    """VR's known limits, measured: cell shuffles and shifts against the exact copy.

    Per limit edit (``shuffle-*``, ``shift-*``) and measure: the copy's and the edit's mean, the
    difference, ``auroc_vs_copy`` (copy as positive, the edit as negative: 0.5 means the measure
    cannot tell the edit from a copy; for a shuffle, a transformation, a good measure is near 1;
    for a shift, a replication, near 0.5), ``auroc_vs_transformation`` (the edit as positive, the
    transformations as negative, as if it were a replication) and ``share_vr_full`` (the share of
    the edit's images with VR = 1).
    """
    copy = scores[scores["edit"] == "copy"]
    transformations = scores[(scores["family"] == "transformation") & scores["in_auroc"].astype(bool)]
    probes = scores[scores["edit"].isin(["shuffle", "shift"])]
    rows = []
    for edit_id, group in probes.groupby("edit_id", sort=True):
        for measure in [m for m in MEASURES if m in scores.columns]:
            c, e = oriented(copy[measure], measure), oriented(group[measure], measure)
            t = oriented(transformations[measure], measure)
            rows.append({"limit": "cell shuffle" if group["edit"].iloc[0] == "shuffle" else "shift",
                         "edit_id": edit_id, "strength": float(group["strength"].iloc[0]), "measure": measure,
                         "copy_mean": float(copy[measure].mean()), "edit_mean": float(group[measure].mean()),
                         "delta": float(group[measure].mean() - copy[measure].mean()),
                         "auroc_vs_copy": auroc(c, e), "auroc_vs_transformation": auroc(e, t),
                         "share_vr_full": float((group["vr"] >= 1.0).mean())})  # fmt: skip
    return pd.DataFrame(rows)


def summary_table(auroc: pd.DataFrame, standin: bool) -> pd.DataFrame:
    """The AUROC table over all edits: one row per measure and comparison, with its CI, the
    precision at the fixed recall, and ``meaningful`` (False for a learned encoder's measure when
    the encoders are random-weight stand-ins: its AUROC then says nothing about the method)."""
    rows = auroc[auroc["subset"] == "all"].copy()
    rows["meaningful"] = rows["encoder_free"] | (not standin)
    cols = ["comparison", "measure", "label", "auroc", "ci_low", "ci_high", "recall", "precision_at_recall",
            "threshold", "n_pos", "n_neg", "n_sources", "meaningful"]  # fmt: skip
    return rows[cols].reset_index(drop=True)
