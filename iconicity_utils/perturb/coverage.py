"""Stage 05's coverage: which references each variant's comparison includes, and which it leaves out.

A paired comparison only sees the references that got a usable variant.  A title without a
synonym, a work without Wikidata labels for a description, a leaking prompt: each is left out,
and if the ones left out differ from the ones kept (more famous, older, better recognised by
title) the comparison describes a selection.  :func:`reference_status` gives every (model,
reference, variant) a status (:data:`STATUSES`) and its reason; :func:`coverage_counts` counts them
(``perturbation_coverage.parquet``); :func:`status_counts` puts the counts in the paired table;
:func:`selection_table` compares the included references with the excluded ones (sitelinks,
year, the title's CRA) per model, variant and kind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import BASE_VARIANT, CONTROL_VARIANT

__all__ = [
    "STATUSES",
    "COUNT_COLUMNS",
    "reference_status",
    "coverage_counts",
    "status_counts",
    "selection_table",
]

#: every status of a (model, reference, variant), in the tables' order
STATUSES = (
    "in_comparison", "leak", "named", "missing: no synonym", "missing: no description", "no images",
    "left out", "not selected",
)  # fmt: skip
#: the columns :func:`status_counts` adds to the paired table: ``n_references`` and one per status
COUNT_COLUMNS = ["n_references"] + [
    "n_" + status.replace("missing: ", "missing_").replace(" ", "_") for status in STATUSES
]
_NOT_SELECTED = "not among the references perturbed (perturbation.slugs / perturbation.max_references)"


def _missing(variant: str) -> str:
    return "missing: no synonym" if variant.startswith("synonym") else "missing: no description"


def _status(row, scored: bool) -> tuple[str, str]:
    """The status and reason of one prompts-table row for one model."""
    if row.status != "ok":
        return _missing(row.variant), str(row.reason)
    if row.in_comparison:
        return (
            ("in_comparison", "")
            if scored
            else ("no images", "no scored image of this prompt for this model")
        )
    if row.leak:
        return "leak", "leaks " + ", ".join(row.leak_words)
    if getattr(row, "named", False):
        return "named", "names " + ", ".join(getattr(row, "named_words", []) or [])
    return "left out", "left out of the comparison"


def reference_status(
    prompts: pd.DataFrame, pairs: pd.DataFrame, references: pd.DataFrame, models: list[str]
) -> pd.DataFrame:
    """``model, slug, kind, variant, status, reason`` for every model, reference of the references
    table and variant of the prompts table (the title and the controls arm aside).

    ``in_comparison`` needs a row in ``pairs`` (scored images of the prompt for that model); a
    reference stage 05 did not perturb is ``not selected``.
    """
    variants = [v for v in dict.fromkeys(prompts["variant"]) if v not in (BASE_VARIANT, CONTROL_VARIANT)]
    by_key = {(r.slug, r.variant): r for r in prompts.itertuples(index=False)}
    scored = set(zip(pairs["model"], pairs["slug"], pairs["variant"], strict=True))
    rows = []
    for model in models:
        for ref in references.itertuples(index=False):
            for variant in variants:
                row = by_key.get((ref.slug, variant))
                if row is None:
                    status, reason = "not selected", _NOT_SELECTED
                else:
                    status, reason = _status(row, (model, ref.slug, variant) in scored)
                rows.append({"model": model, "slug": ref.slug, "kind": ref.kind, "variant": variant,
                             "status": status, "reason": reason})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "slug", "kind", "variant", "status", "reason"])


def coverage_counts(status: pd.DataFrame) -> pd.DataFrame:
    """``model, variant, kind, status, n_references``: every status of :data:`STATUSES`, zeros included."""
    counts = status.groupby(["model", "variant", "kind", "status"]).size()
    index = pd.MultiIndex.from_product(
        [
            sorted(set(status["model"])),
            list(dict.fromkeys(status["variant"])),
            sorted(set(status["kind"])),
            STATUSES,
        ],
        names=["model", "variant", "kind", "status"],
    )
    return counts.reindex(index, fill_value=0).rename("n_references").reset_index()


def status_counts(status: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, variant, kind): ``n_references`` and ``n_<status>`` for every status
    (``n_missing_no_synonym``, ``n_not_selected``, ...), to join to the paired table."""
    counts = coverage_counts(status)
    wide = counts.pivot_table(index=["model", "variant", "kind"], columns="status", values="n_references")
    wide = wide.reindex(columns=list(STATUSES), fill_value=0).astype(int)
    wide.columns = COUNT_COLUMNS[1:]
    wide.insert(0, "n_references", wide.sum(axis=1))
    return wide.reset_index()


def _summary(g: pd.DataFrame) -> dict:
    n = len(g)
    out = {"n": n, "sitelinks_median": float(g["sitelinks"].median()) if n else np.nan,
           "year_median": float(g["year"].median()) if g["year"].notna().any() else np.nan,
           "title_cra_mean": float(g["title_cra"].mean()) if g["title_cra"].notna().any() else np.nan}  # fmt: skip
    reasons = []
    if n == 0:
        reasons.append("no reference in this group")
    else:
        if np.isnan(out["year_median"]):
            reasons.append("no year in the references table")
        if np.isnan(out["title_cra_mean"]):
            reasons.append("no scored title image")
    out["reason"] = "; ".join(reasons)
    return out


def selection_table(status: pd.DataFrame, references: pd.DataFrame, title_cra: pd.DataFrame) -> pd.DataFrame:
    """Per model, variant, kind and group (``included``: in the comparison, or not): ``n``, the
    median sitelinks and year and the mean CRA of the title, so a reader sees whether the
    comparison's references are a selection.

    Args:
        status: :func:`reference_status`.
        references: the references table (``slug``, ``sitelinks``, ``year``).
        title_cra: ``model, slug, cra`` of the title (NaN where it has no scored image).

    Raises:
        ValueError: the references table lacks ``sitelinks`` or ``year``.
    """
    lacking = [c for c in ("slug", "sitelinks", "year") if c not in references]
    if lacking:
        raise ValueError(f"the references table lacks column(s) {lacking}: no selection table")
    data = status.merge(references[["slug", "sitelinks", "year"]], on="slug", how="left")
    data = data.merge(title_cra.rename(columns={"cra": "title_cra"})[["model", "slug", "title_cra"]],
                      on=["model", "slug"], how="left")  # fmt: skip
    data["year"] = pd.to_numeric(data["year"], errors="raise")
    data["included"] = data["status"] == "in_comparison"
    rows = []
    for (model, variant, kind), g in data.groupby(["model", "variant", "kind"], sort=True):
        for included in (True, False):
            rows.append({"model": model, "variant": variant, "kind": kind, "included": included,
                         **_summary(g[g["included"] == included])})  # fmt: skip
    return pd.DataFrame(rows)
