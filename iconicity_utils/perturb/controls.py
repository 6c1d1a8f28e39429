"""Stage 05's matched-controls arm: what does a literal description alone buy?

A literal description of *The Starry Night* ("a landscape painting depicting a church, the Moon
and the sky") may bring a model near the reference because the model remembers the work, or only
because the description describes the picture.  Stage 01 (``collection.controls``) collects, for
each iconic reference, works of the same kind and genre with few sitelinks: works a model is
unlikely to remember.  Their literal descriptions are made by the same functions as the iconic
references' (:func:`~iconicity_utils.perturb.literal.literal_rows`), checked for leaks of their own
title and creator, generated as the ``control-literal`` variant and scored against *their own*
reference images (:func:`control_prompts`).  :func:`compare_controls` then sets the literal arm's
CRA, VR and CRT on the iconic references beside the same on their controls, per model and kind:
a matched-pair sign-flip test where at least ``min_pairs`` iconic references have both, else a
two-sample permutation test, BH within each metric, with n and the reason for every NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import CONTROL_VARIANT
from iconicity_utils.core.io import read_table
from iconicity_utils.perturb.inference import (
    PAIRED_METRICS,
    InferenceSettings,
    adjust_within_metric,
    sign_flip_test,
    two_sample_test,
)
from iconicity_utils.perturb.leaks import flag_rows
from iconicity_utils.perturb.literal import literal_rows

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = ["CONTROL_COLUMNS", "CONTROLS_BH_FAMILY", "read_controls", "control_prompts", "compare_controls"]

#: the family within which the controls table's p values are BH-adjusted
CONTROLS_BH_FAMILY = "metric (all models x kinds of the controls table)"
#: the columns stage 05 needs in the controls table (stage 01 writes the references' columns too)
CONTROL_COLUMNS = ("slug", "kind", "label_clean", "control_for")


def read_controls(cfg: StudyConfig, iconic_slugs) -> pd.DataFrame:
    """The controls of the given iconic references (``control_for``), from ``cfg.controls_table``.

    Raises:
        FileNotFoundError: no controls table (run stage 01 with ``collection.controls: true``).
        ValueError: a column is missing, or a control's slug is also an iconic reference's.
    """
    path = cfg.controls_table
    if not path.exists():
        raise FileNotFoundError(
            f"perturbation.controls is true but there is no controls table {path}: run stage 01 with "
            f"collection.controls: true (python -m iconicity_utils collect --config {cfg.source})"
        )
    controls = read_table(path)
    lacking = [c for c in CONTROL_COLUMNS if c not in controls]
    if lacking:
        raise ValueError(f"{path}: the controls table lacks column(s) {lacking}")
    clash = sorted(set(controls["slug"]) & set(iconic_slugs))
    if clash:
        raise ValueError(f"{path}: control slug(s) {clash[:5]} are iconic references too")
    for col in ("creator", "depicts", "genre", "main_subject", "class_qid"):
        if col not in controls:
            controls[col] = None
    return controls[controls["control_for"].isin(set(iconic_slugs))].reset_index(drop=True)


def control_prompts(cfg: StudyConfig, iconic_slugs, wn, known_slugs=()) -> pd.DataFrame:
    """The ``control-literal`` rows of the prompts table: one per control of the given iconic
    references, with the same columns as the other rows (text distance aside: the prompts table
    adds it), the leak check against the control's own title and creator, and the named check of
    :func:`~iconicity_utils.perturb.literal.literal_rows` (``perturbation.exclude_named``).
    ``known_slugs``: the iconic references' slugs that a ``literal_csv`` may name besides the
    controls' (a control with no row in it is missing).

    Raises:
        FileNotFoundError, ValueError: as :func:`read_controls`.
    """
    controls = read_controls(cfg, iconic_slugs)
    known = [*known_slugs, *controls["slug"]]
    rows = literal_rows(cfg, controls, known, wn) if len(controls) else []
    columns = ["slug", "prompt", "source", "method", "reason", "named_words", "named", "standin"]
    df = pd.DataFrame(rows, columns=columns)
    info = controls.set_index("slug")
    df["variant"] = CONTROL_VARIANT
    df["kind"] = [info.at[s, "kind"] for s in df["slug"]]
    df["title"] = [info.at[s, "label_clean"] for s in df["slug"]]
    return flag_rows(df, dict(zip(controls["slug"], controls["creator"], strict=True)), cfg, wn)


def _arm(per_ref: pd.DataFrame, prompts: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The per-reference metrics of one arm's prompts in the comparison."""
    used = prompts[(prompts["variant"] == variant) & prompts["in_comparison"]]
    return per_ref.merge(used[["slug", "variant"]], on=["slug", "variant"], how="inner")


def _test(
    iconic: pd.DataFrame, control: pd.DataFrame, matched: pd.DataFrame, metric: str, s: InferenceSettings
) -> dict:
    x, y = iconic[metric].to_numpy(float), control[metric].to_numpy(float)
    out = {"n_iconic": x.size, "n_control": y.size, "n_matched": len(matched),
           "mean_iconic": float(x.mean()) if x.size else np.nan, "mean_control": float(y.mean()) if y.size else np.nan,
           "test": "", "p": np.nan, "reason": ""}  # fmt: skip
    out["difference"] = out["mean_iconic"] - out["mean_control"]
    kw = {"n_permutations": s.n_permutations, "seed": s.seed}
    if len(matched) >= s.min_pairs:
        d = (matched[f"{metric}_iconic"] - matched[f"{metric}_control"]).to_numpy(float)
        out["mean_iconic"] = float(matched[f"{metric}_iconic"].mean())  # the estimate the test tests
        out["mean_control"] = float(matched[f"{metric}_control"].mean())
        out["difference"] = float(d.mean())
        out["p"], out["test"] = sign_flip_test(d, exact_max=s.exact_max_pairs, **kw)
        out["test"] = "matched pairs (iconic − mean of its controls): " + out["test"]
    elif min(x.size, y.size) >= s.min_pairs:
        out["p"], out["test"] = two_sample_test(x, y, exact_max_splits=2**s.exact_max_pairs, **kw)
    elif not x.size or not y.size:
        out["reason"] = f"no {'iconic literal' if not x.size else 'control'} reference in the comparison"
    else:
        out["reason"] = (
            f"{len(matched)} matched pairs and groups of {x.size} and {y.size} (< perturbation.min_pairs "
            f"= {s.min_pairs}): no test"
        )
    return out


def compare_controls(
    per_ref: pd.DataFrame,
    prompts: pd.DataFrame,
    controls: pd.DataFrame,
    settings: InferenceSettings | None = None,
) -> pd.DataFrame:
    """Per model, kind and metric: the literal arm on the iconic references against the
    ``control-literal`` arm on their controls.

    Args:
        per_ref: per (model, variant, slug) metrics with ``kind`` and :data:`PAIRED_METRICS` (the
            literal and control-literal rows are used).
        prompts: the prompts table (which prompts are in the comparison).
        controls: the controls table (``slug``, ``control_for``).
        settings: the tests' settings.

    Returns:
        ``model, kind, metric, n_iconic, n_control, n_matched, mean_iconic, mean_control,
        difference, test, p, p_adjusted, bh_family, reason``.  ``n_matched`` counts iconic references
        with at least one control in the comparison (each compared with the mean of its controls).
        The means and ``difference`` are those the test tests: over the matched pairs when the
        matched test runs, else over every iconic and every control row of the group.
    """
    s = settings or InferenceSettings()
    iconic, control = _arm(per_ref, prompts, "literal"), _arm(per_ref, prompts, CONTROL_VARIANT)
    control = control.merge(controls[["slug", "control_for"]], on="slug", how="left")
    rows = []
    for model in sorted(set(per_ref["model"])):
        for kind in sorted(set(iconic["kind"]) | set(control["kind"])):
            i = iconic[(iconic["model"] == model) & (iconic["kind"] == kind)]
            c = control[(control["model"] == model) & (control["kind"] == kind)]
            mean_c = c.groupby("control_for")[list(PAIRED_METRICS)].mean()
            matched = i.set_index("slug")[list(PAIRED_METRICS)].join(
                mean_c, how="inner", lsuffix="_iconic", rsuffix="_control"
            )
            for metric in PAIRED_METRICS:
                rows.append(
                    {"model": model, "kind": kind, "metric": metric, **_test(i, c, matched, metric, s)}
                )
    cols = ["model", "kind", "metric", "n_iconic", "n_control", "n_matched", "mean_iconic", "mean_control",
            "difference", "test", "p", "reason"]  # fmt: skip
    table = adjust_within_metric(pd.DataFrame(rows, columns=cols), "p", "p_adjusted")
    table["bh_family"] = CONTROLS_BH_FAMILY
    return table[cols[:-1] + ["p_adjusted", "bh_family", "reason"]]
