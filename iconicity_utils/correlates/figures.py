"""The figures of stage 06 (``06_*.png``): a ρ heatmap, an outcome against a covariate, the GLM.

Each figure states n: a ρ heatmap (model x covariate, one panel per outcome), CRA against log
frequency or year with a least-squares line per model, and the standardised GLM coefficients.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iconicity_utils.correlates.covariates import COVARIATE_LABELS
from iconicity_utils.correlates.stats import OUTCOME_LABELS, as_floats

__all__ = ["plot_rho_heatmap", "plot_outcome_vs_feature", "plot_glm_coefficients"]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_rho_heatmap(spearman, kind: str = "all", outcomes: Sequence[str] | None = None):
    """Spearman ρ as a model x feature heatmap, one panel per outcome; ``*`` marks p_bh < 0.05."""
    plt = _plt()
    part = spearman[spearman["kind"] == kind]
    outcomes = [o for o in (outcomes or list(dict.fromkeys(part["outcome"])))]
    feats = list(dict.fromkeys(part["feature"]))
    models = list(dict.fromkeys(part["model"]))
    fig, axes = plt.subplots(
        1, max(1, len(outcomes)), figsize=(1.0 + 0.9 * len(feats) * max(1, len(outcomes)), 2.9 + 0.45 * len(models)),
        squeeze=False,
    )  # fmt: skip
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("#dddddd")
    image = None
    for ax, outcome in zip(axes[0], outcomes, strict=False):
        d = part[part["outcome"] == outcome]
        grid = d.pivot_table(index="model", columns="feature", values="rho", aggfunc="first", dropna=False)
        grid = grid.reindex(index=models, columns=feats)
        sig = d.pivot_table(index="model", columns="feature", values="p_bh", aggfunc="first", dropna=False)
        sig = sig.reindex(index=models, columns=feats)
        image = ax.imshow(
            np.ma.masked_invalid(grid.to_numpy(dtype=float)), cmap=cmap, vmin=-1, vmax=1, aspect="auto"
        )
        for i in range(len(models)):
            for j in range(len(feats)):
                v, q = grid.iat[i, j], sig.iat[i, j]
                text = (
                    "n/a"
                    if not np.isfinite(v)
                    else f"{v:+.2f}" + ("*" if np.isfinite(q) and q < 0.05 else "")
                )
                ax.text(j, i, text, ha="center", va="center", fontsize=7)
        ns = d["n"].to_numpy()
        n_text = (
            f"n = {int(ns.min())}"
            if len(ns) and ns.min() == ns.max()
            else f"n = {int(ns.min())}-{int(ns.max())}"
        )
        ax.set_title(f"{OUTCOME_LABELS.get(outcome, outcome)} ({kind}; {n_text} references)", fontsize=9)
        ax.set_xticks(range(len(feats)), feats, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.grid(False)
    fig.subplots_adjust(top=0.86, bottom=0.42, wspace=0.35)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="Spearman ρ")
    fig.text(
        0.01, 0.01, "Spearman ρ per model and feature; * BH-adjusted p < 0.05; grey: undefined (see the table's note)",
        fontsize=8, ha="left", va="bottom",
    )  # fmt: skip
    return fig


def plot_outcome_vs_feature(data, feature: str, outcome: str = "cra"):
    """One point per (model, reference): ``outcome`` against ``feature``, with a least-squares line per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    if feature not in data.columns or outcome not in data.columns:
        missing = feature if feature not in data.columns else outcome
        ax.text(0.5, 0.5, f"{missing} was not computed in this run (n = 0)", ha="center", va="center")
        ax.set_axis_off()
        return fig
    for model in list(dict.fromkeys(data["model"])):
        d = data[data["model"] == model]
        x, y = as_floats(d[feature]), as_floats(d[outcome])
        ok = ~(np.isnan(x) | np.isnan(y))
        points = ax.scatter(x[ok], y[ok], s=18, alpha=0.7, label=f"{model} (n={int(ok.sum())})")
        if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
            slope, intercept = np.polyfit(x[ok], y[ok], 1)
            xs = np.linspace(x[ok].min(), x[ok].max(), 50)
            ax.plot(xs, intercept + slope * xs, color=points.get_facecolor()[0], lw=1.5)
    ax.set(
        xlabel=COVARIATE_LABELS.get(feature, feature),
        ylabel=OUTCOME_LABELS.get(outcome, outcome),
        title=f"{OUTCOME_LABELS.get(outcome, outcome)} against {feature} (lines: least squares per model)",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_glm_coefficients(glm, terms: Sequence[str] | None = None, count_mode: str = "title"):
    """Standardised GLM coefficients with their CIs, one row per predictor and one colour per fit.

    Shows the ``per_model`` and ``pooled`` fits of one count mode (the others: the table); the
    title names their errors and the count mode.
    """
    plt = _plt()
    if "fit" in glm.columns:
        glm = glm[glm["fit"].isin(["per_model", "pooled"])]
    if "count_mode" in glm.columns:
        glm = glm[glm["count_mode"].isin([count_mode, ""])]
    errors = (
        ", ".join(str(e) for e in dict.fromkeys(glm["errors"]) if isinstance(e, str))
        if "errors" in glm
        else ""
    )
    fits = list(dict.fromkeys(glm["model"]))
    predictors = terms or [
        t for t in dict.fromkeys(glm["term"]) if t != "const" and not t.startswith("model_")
    ]
    fig, ax = plt.subplots(figsize=(6.8, 1.4 + 0.55 * max(1, len(predictors))))
    height = 0.8 / max(1, len(fits))
    notes = []
    for k, fit in enumerate(fits):
        d = glm[(glm["model"] == fit)].set_index("term").reindex(predictors)
        ypos = np.arange(len(predictors)) + (k - (len(fits) - 1) / 2) * height
        coef = d["coef"].to_numpy(dtype=float)
        err = np.vstack([coef - d["ci_low"].to_numpy(dtype=float), d["ci_high"].to_numpy(dtype=float) - coef])
        n_rows = glm.loc[glm["model"] == fit, "n_rows"].max()
        ax.errorbar(
            coef, ypos, xerr=np.nan_to_num(err), fmt="o", capsize=3, label=f"{fit} (n={int(n_rows)} rows)"
        )
        if not np.isfinite(coef).any():
            notes.append(f"{fit}: {str(glm.loc[glm['model'] == fit, 'note'].iloc[0]).split('; ')[-1]}")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(predictors)), predictors, fontsize=8)
    ax.invert_yaxis()
    ax.set(
        xlabel="log-odds per SD of the predictor (kind_static: static vs dynamic); Wald CI",
        title="Binomial GLM of recognised images out of n"
        + (f" (errors: {errors}; count mode {count_mode})" if errors else ""),
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="best")
    if notes:
        ax.text(
            0.5, 0.5, "not estimable:\n" + "\n".join(notes), transform=ax.transAxes, fontsize=8,
            ha="center", va="center", color="#b00020", bbox={"facecolor": "white", "edgecolor": "#b00020"},
        )  # fmt: skip
    fig.tight_layout()
    return fig
