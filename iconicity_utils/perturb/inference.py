"""Stage 05's inference: the mean change from the title and a test that matches it (docs/method.md §5.4).

The estimate is a **mean** change over references, so the test is a paired **sign-flip
permutation test** of that mean (:func:`sign_flip_test`): under the null hypothesis that a
reference's change is as likely to be +d as -d, every sign vector is equally likely; the p-value
is the share of sign vectors whose |mean| is at least the observed one.  It keeps zero changes (a
zero is a pair that did not move; it is not dropped, as the Wilcoxon test drops it), and it is
exact for small n (all 2**n sign vectors), Monte Carlo above ``exact_max_pairs``
(``default_rng(seed)``, p = (b + 1) / (m + 1), which is never 0).  :func:`two_sample_test` is the
same idea for two independent groups (the controls arm).  The Benjamini-Hochberg adjustment
(:func:`~iconicity_utils.score.tables.bh_adjust`, shared with stage 06) is applied within a *family*: one metric across every model, variant
and kind of a table.  No test runs below ``perturbation.min_pairs`` pairs (6: the exact test's
smallest two-sided p is 2 / 2**n, which first falls below 0.05 at n = 6), and the row says so.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from iconicity_utils.score.tables import bh_adjust, bootstrap_ci

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = [
    "PAIRED_METRICS",
    "BH_FAMILY",
    "PAIRED_COLUMNS",
    "InferenceSettings",
    "smallest_p",
    "sign_flip_test",
    "two_sample_test",
    "adjust_within_metric",
    "paired_changes",
]

#: the per-reference metrics whose change from the title is tested (docs/method.md §3.4-3.5)
PAIRED_METRICS = ("cra", "vr_all", "crt")
#: the paired table's columns before the noise floor and the coverage counts are joined
PAIRED_COLUMNS = [
    "model", "variant", "kind", "metric", "n_pairs", "n_nonzero", "n_excluded", "mean_title",
    "mean_variant", "mean_change", "ci_low", "ci_high", "n_bootstrap", "bootstrap_seed", "test", "p",
    "p_adjusted", "bh_family", "reason",
]  # fmt: skip
#: the Benjamini-Hochberg family of every p in stage 05's tables
BH_FAMILY = "metric (all models x variants x kinds of the table)"


@dataclass(frozen=True)
class InferenceSettings:
    """The settings of every test and interval of stage 05 (``perturbation`` and ``scoring`` keys)."""

    min_pairs: int = 6
    exact_max_pairs: int = 16
    n_permutations: int = 10000
    seed: int = 0
    n_bootstrap: int = 1000
    bootstrap_seed: int = 0
    level: float = 0.95
    alpha: float = 0.05

    @classmethod
    def from_config(cls, cfg: StudyConfig) -> InferenceSettings:
        p, s = cfg.perturbation, cfg.scoring
        return cls(
            min_pairs=p.min_pairs, exact_max_pairs=p.exact_max_pairs, n_permutations=p.n_permutations,
            seed=p.permutation_seed, n_bootstrap=s.n_bootstrap, bootstrap_seed=s.bootstrap_seed, alpha=p.alpha,
        )  # fmt: skip


def smallest_p(n: int) -> float:
    """The smallest two-sided p the exact sign-flip test can give with n non-zero changes: 2 / 2**n."""
    return min(1.0, 2.0 / 2**n)


def _tolerance(values: np.ndarray) -> float:
    """Ties in |mean| are counted as at least as extreme: float sums of the same values in another
    order differ in the last bits."""
    return 1e-9 * max(1.0, float(np.abs(values).sum()))


def sign_flip_test(
    d, *, exact_max: int = 16, n_permutations: int = 10000, seed: int = 0
) -> tuple[float, str]:
    """Two-sided paired sign-flip permutation test of mean(d) = 0.

    Returns ``(p, method)``: exact over all ``2**n`` sign vectors when ``n <= exact_max``, else
    ``n_permutations`` random sign vectors from ``default_rng(seed)`` with ``p = (b + 1) / (m + 1)``.
    Every change zero gives p = 1 (no sign vector moves the mean).

    Raises:
        ValueError: no changes, or a NaN among them.
    """
    d = np.asarray(d, dtype="float64")
    if d.size == 0 or np.isnan(d).any():
        raise ValueError(f"sign_flip_test needs at least one change and no NaN, got {d.tolist()}")
    n, observed = d.size, abs(d.mean())
    tol = _tolerance(d)
    if n <= exact_max:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        stats = np.abs(signs @ d) / n
        return float(np.mean(stats >= observed - tol)), f"sign-flip, exact (2**{n} sign vectors)"
    rng = np.random.default_rng(seed)
    b = 0
    for start in range(0, n_permutations, 1000):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(1000, n_permutations - start), n))
        b += int(np.sum(np.abs(signs @ d) / n >= observed - tol))
    return (b + 1) / (
        n_permutations + 1
    ), f"sign-flip, Monte Carlo ({n_permutations} sign vectors, seed {seed})"


def two_sample_test(
    x, y, *, exact_max_splits: int = 2**16, n_permutations: int = 10000, seed: int = 0
) -> tuple[float, str]:
    """Two-sided permutation test of mean(x) = mean(y) for two independent groups.

    Exact over every split of the pooled values into groups of ``len(x)`` and ``len(y)`` when there
    are at most ``exact_max_splits`` of them, else ``n_permutations`` random splits
    (``default_rng(seed)``, ``p = (b + 1) / (m + 1)``).

    Raises:
        ValueError: an empty group, or a NaN.
    """
    x, y = np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    if not x.size or not y.size or np.isnan(x).any() or np.isnan(y).any():
        raise ValueError(
            f"two_sample_test needs two non-empty groups without NaN, got {x.tolist()}, {y.tolist()}"
        )
    pooled, n1 = np.concatenate([x, y]), x.size
    observed, tol, total = abs(x.mean() - y.mean()), _tolerance(pooled), pooled.sum()
    splits = math.comb(pooled.size, n1)
    if splits <= exact_max_splits:
        first = np.array(list(itertools.combinations(range(pooled.size), n1)))
        s1 = pooled[first].sum(axis=1)
        stats = np.abs(s1 / n1 - (total - s1) / y.size)
        return float(np.mean(stats >= observed - tol)), f"two-sample permutation, exact ({splits} splits)"
    rng = np.random.default_rng(seed)
    s1 = np.array([pooled[rng.permutation(pooled.size)[:n1]].sum() for _ in range(n_permutations)])
    b = int(np.sum(np.abs(s1 / n1 - (total - s1) / y.size) >= observed - tol))
    return (b + 1) / (
        n_permutations + 1
    ), f"two-sample permutation, Monte Carlo ({n_permutations} splits, seed {seed})"


def _no_test_reason(n: int, n_nonzero: int, min_pairs: int) -> str:
    if n == 0:
        return "no pair in the comparison: no estimate, interval or test"
    if n < min_pairs:
        return (
            f"n = {n} < perturbation.min_pairs = {min_pairs}: no interval or test (the exact sign-flip "
            f"test's smallest p would be {smallest_p(n):.3g})"
        )
    return ""


def _caveat(n_nonzero: int, alpha: float) -> str:
    if n_nonzero == 0:
        return "every change is zero: p = 1 (nothing moved)"
    if smallest_p(n_nonzero) >= alpha:
        return f"only {n_nonzero} non-zero changes: the smallest reachable p is {smallest_p(n_nonzero):.3g}"
    return ""


def _one_test(d: np.ndarray, s: InferenceSettings, index: np.ndarray | None) -> dict:
    """Mean, CI, test and reason of one group's changes ``d``."""
    n, n_nonzero = d.size, int(np.count_nonzero(d))
    out = {"mean_change": float(d.mean()) if n else np.nan, "ci_low": np.nan, "ci_high": np.nan,
           "test": "", "p": np.nan, "reason": _no_test_reason(n, n_nonzero, s.min_pairs)}  # fmt: skip
    if out["reason"]:
        return out
    _, out["ci_low"], out["ci_high"] = bootstrap_ci(d, s.n_bootstrap, s.bootstrap_seed, s.level, index=index)
    out["p"], out["test"] = sign_flip_test(
        d, exact_max=s.exact_max_pairs, n_permutations=s.n_permutations, seed=s.seed
    )
    out["reason"] = _caveat(n_nonzero, s.alpha)
    return out


def paired_changes(pairs: pd.DataFrame, settings: InferenceSettings | None = None) -> pd.DataFrame:
    """Per (model, variant, kind, metric): the mean change from the title over the pairs in the
    comparison, its paired bootstrap CI, the sign-flip test and the BH-adjusted p (columns
    :data:`PAIRED_COLUMNS`).

    The bootstrap resamples *references* (percentile, :func:`~iconicity_utils.score.tables.bootstrap_ci`,
    one set of resamples per group shared by its metrics).  Below ``min_pairs`` the mean is given
    but the CI, test and p are NaN; ``reason`` says why, or gives a caveat (every change zero, too
    few non-zero changes to reach ``alpha``).  ``p_adjusted``: BH within each metric.
    """
    s = settings or InferenceSettings()
    out = []
    for (model, variant, kind), g in pairs.groupby(["model", "variant", "kind"], sort=True):
        use = g[g["in_comparison"]]
        n = len(use)
        index = np.random.default_rng(s.bootstrap_seed).integers(0, n, size=(s.n_bootstrap, n)) if n else None
        for metric in PAIRED_METRICS:
            d = use[f"{metric}_change"].to_numpy(float)
            row = {"model": model, "variant": variant, "kind": kind, "metric": metric, "n_pairs": n,
                   "n_nonzero": int(np.count_nonzero(d)), "n_excluded": int(len(g) - n),
                   "mean_title": float(use[f"{metric}_title"].mean()) if n else np.nan,
                   "mean_variant": float(use[f"{metric}_variant"].mean()) if n else np.nan,
                   "n_bootstrap": s.n_bootstrap, "bootstrap_seed": s.bootstrap_seed, "bh_family": BH_FAMILY}  # fmt: skip
            out.append({**row, **_one_test(d, s, index)})
    table = pd.DataFrame(out, columns=[c for c in PAIRED_COLUMNS if c != "p_adjusted"])
    return adjust_within_metric(table, "p", "p_adjusted")[PAIRED_COLUMNS]


def adjust_within_metric(table: pd.DataFrame, p: str, adjusted: str) -> pd.DataFrame:
    """``table[adjusted]``: BH of ``table[p]`` within each ``metric`` (the family)."""
    table = table.copy()
    table[adjusted] = np.nan
    for _, g in table.groupby("metric", sort=False):
        table.loc[g.index, adjusted] = bh_adjust(g[p].to_numpy(float))
    return table
