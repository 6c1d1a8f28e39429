"""Figures of stage 05, drawn from the comparison tables (docs/method.md §5.4):

- :func:`plot_paired_dots`: per model and metric, each reference's title value joined to its variant's;
- :func:`plot_persistence`: the share of title-reusing pairs whose variant still reuses the reference;
- :func:`plot_vr_change_vs_text_distance`: the change in mean VR against the CLIP text distance;
- :func:`plot_triptychs`: reference | title | re-seeded title | synonym | literal images;
- :func:`plot_changes_vs_floor`: each variant's mean change with its CI, against the noise floor;
- :func:`plot_selection`: the references each variant's comparison includes against those it leaves out.

Save them with :func:`save_figure`, which labels stand-in output (:func:`is_standin_run`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from iconicity_utils.core.constants import BASE_VARIANT, RESEED_VARIANT
from iconicity_utils.core.images import open_rgb
from iconicity_utils.core.plotting import save_figure as save_core_figure
from iconicity_utils.perturb.inference import PAIRED_METRICS
from iconicity_utils.registry import Registry, is_standin_config
from iconicity_utils.score.inputs import reference_files

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = [
    "is_standin_run",
    "save_figure",
    "plot_paired_dots",
    "plot_persistence",
    "plot_vr_change_vs_text_distance",
    "plot_triptychs",
    "plot_changes_vs_floor",
    "plot_selection",
]


def is_standin_run(cfg: StudyConfig) -> bool:
    """Whether stage 05's output is stand-in output: a stand-in config, or a stand-in captioner."""
    p = cfg.perturbation
    if is_standin_config(cfg):
        return True
    return p.literal_source == "captioner" and Registry.for_config(cfg).captioner(p.captioner).is_standin  # type: ignore[arg-type]


def save_figure(fig, name: str, cfg: StudyConfig) -> Path:
    """Save a stage 05 figure as ``<figures>/<name>``, labelled when :func:`is_standin_run`."""
    return save_core_figure(fig, cfg.figures_dir / name, cfg, standin=is_standin_run(cfg))


_METRIC_LABELS = {"cra": "CRA", "vr_all": "mean VR", "crt": "CRT"}


def _variants(pairs: pd.DataFrame) -> list[str]:
    return sorted(set(pairs["variant"]), key=lambda v: (not v.startswith("synonym"), v))


def plot_paired_dots(pairs: pd.DataFrame, metrics: Sequence[str] = PAIRED_METRICS):
    """Per model (rows) and metric (columns), one slope pair per variant: each reference's title
    value (left) joined to its variant value (right); black diamonds are the means, and the panel
    title gives n.  Pairs left out of the comparison (leaks) are not shown."""
    import matplotlib.pyplot as plt

    use = pairs[pairs["in_comparison"]]
    models = sorted(set(use["model"])) or ["(no pairs)"]
    variants = _variants(use)
    fig, axes = plt.subplots(
        len(models), len(metrics), figsize=(1.9 * len(metrics) * max(1, len(variants)), 2.6 * len(models) + 0.6),
        squeeze=False,
    )  # fmt: skip
    colors = {"static": "#1f77b4", "dynamic": "#ff7f0e"}
    for i, model in enumerate(models):
        g = use[use["model"] == model]
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            ticks, labels = [], []
            for k, variant in enumerate(variants):
                gv = g[g["variant"] == variant]
                x0, x1 = 2 * k, 2 * k + 1
                for r in gv.itertuples(index=False):
                    a, b = getattr(r, f"{metric}_title"), getattr(r, f"{metric}_variant")
                    color = colors.get(r.kind, "0.5")
                    ax.plot([x0, x1], [a, b], color=color, alpha=0.4, lw=0.8)
                    ax.scatter([x0, x1], [a, b], color=color, s=12, alpha=0.7, zorder=3)
                if len(gv):
                    means = [gv[f"{metric}_title"].mean(), gv[f"{metric}_variant"].mean()]
                    ax.plot([x0, x1], means, color="k", lw=1.2, marker="D", ms=5, zorder=4)
                ticks += [x0, x1]
                labels += ["title", f"{variant}\n(n={len(gv)})"]
            ax.set_xticks(ticks, labels, fontsize=7)
            ax.set(ylim=(-0.05, 1.05), xlim=(-0.5, 2 * len(variants) - 0.5))
            ax.set_title(f"{model} · {_METRIC_LABELS.get(metric, metric)}", fontsize=9)
    handles = [plt.Line2D([], [], color=c, marker="o", lw=0.8, label=k) for k, c in colors.items()]
    handles.append(plt.Line2D([], [], color="k", marker="D", lw=1.2, label="mean"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


def plot_persistence(persistence: pd.DataFrame):
    """Bars: per model and variant, the share of title-reusing pairs whose variant still reuses
    the reference, one panel per kind, with Wilson 95 % intervals and k/n on each bar."""
    import matplotlib.pyplot as plt

    kinds = [k for k in ("static", "dynamic") if k in set(persistence["kind"])] or ["static"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 3.6), squeeze=False, sharey=True)
    models = sorted(set(persistence["model"]))
    variants = _variants(persistence) if len(persistence) else []
    width = 0.8 / max(1, len(variants))
    for ax, kind in zip(axes[0], kinds, strict=True):
        d = persistence[persistence["kind"] == kind]
        for j, variant in enumerate(variants):
            g = d[d["variant"] == variant].set_index("model").reindex(models)
            x = np.arange(len(models)) + (j - (len(variants) - 1) / 2) * width
            share = g["share"].to_numpy(float)
            err = np.vstack([share - g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float) - share])
            ax.bar(x, np.nan_to_num(share), width, yerr=np.nan_to_num(err), capsize=3, label=variant)
            for xi, k, n in zip(x, g["n_still_reuse"], g["n_title_reuse"], strict=True):
                text = "n=0" if not n or np.isnan(n) else f"{int(k)}/{int(n)}"
                ax.text(xi, 1.02, text, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(np.arange(len(models)), models, fontsize=8)
        ax.set(ylim=(0, 1.12), title=f"{kind} references", ylabel="share still reusing")
        ax.legend(fontsize=8, loc="lower right")
    rule = persistence["reuse_rule"].iloc[0] if len(persistence) else "?"
    fig.supxlabel(f"reuse rule: {rule}; error bars: Wilson 95 % interval; k/n above each bar", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def plot_vr_change_vs_text_distance(pairs: pd.DataFrame):
    """The change in mean VR against the CLIP text distance between variant and title, per pair
    (colour: variant; marker: model; hollow: left out of the comparison, e.g. leaking)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    markers = dict(zip(sorted(set(pairs["model"])), "os^Dv<>", strict=False))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, variant in enumerate(_variants(pairs)):
        for model, marker in markers.items():
            g = pairs[(pairs["variant"] == variant) & (pairs["model"] == model)]
            for used, face in ((True, palette[i % len(palette)]), (False, "none")):
                h = g[g["in_comparison"] == used]
                if len(h):
                    ax.scatter(h["text_distance"], h["vr_all_change"], marker=marker, facecolors=face,
                               edgecolors=palette[i % len(palette)], alpha=0.8,
                               label=f"{variant} · {model}" + ("" if used else " (left out)"))  # fmt: skip
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(
        xlabel="text distance to the title (1 − CLIP text cosine)",
        ylabel="change in mean VR (variant − title)",
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def plot_triptychs(
    cfg: StudyConfig, pairs: pd.DataFrame, per_image: pd.DataFrame, prompts: pd.DataFrame, n: int = 3
):
    """A few rows of reference | title | synonym | literal: the reference image and the first
    generated image of each prompt, for the first model, with the prompt as caption.  References
    with the most variants in the comparison come first."""
    import matplotlib.pyplot as plt

    model = cfg.models[0]
    ok = prompts[prompts["status"] == "ok"]
    images = per_image[(per_image["model"] == model) & (per_image["index"] == 0)].merge(
        ok[["slug", "variant", "prompt"]], on=["slug", "variant", "prompt"]
    )
    path = {(s, v): p for s, v, p in zip(images["slug"], images["variant"], images["path"], strict=True)}
    columns = [BASE_VARIANT] + [v for v in (RESEED_VARIANT, "synonym", "literal") if v in set(ok["variant"])]
    use = pairs[(pairs["model"] == model) & pairs["in_comparison"]]
    score = use.groupby("slug")["variant"].nunique().sort_values(ascending=False, kind="stable")
    slugs = [s for s in score.index if (s, BASE_VARIANT) in path][:n] or [
        s for s, v in path if v == BASE_VARIANT
    ][:n]
    fig, axes = plt.subplots(
        max(1, len(slugs)),
        1 + len(columns),
        figsize=(2.3 * (1 + len(columns)), 3.2 * max(1, len(slugs))),
        squeeze=False,
    )
    kinds = dict(zip(prompts["slug"], prompts["kind"], strict=False))
    text = {(s, v): p for s, v, p in zip(ok["slug"], ok["variant"], ok["prompt"], strict=True)}
    for row, slug in zip(axes, slugs, strict=False):
        ref = reference_files(cfg.reference_dir(kinds[slug], slug), kinds[slug])[0]
        row[0].imshow(open_rgb(ref))
        row[0].set_title(f"reference\n{slug}", fontsize=7)
        for ax, variant in zip(row[1:], columns, strict=True):
            if (slug, variant) in path:
                ax.imshow(open_rgb(cfg.absolute(path[(slug, variant)])), interpolation="nearest")
                ax.set_title(
                    f"{variant}\n" + textwrap.shorten(text[(slug, variant)], 60, placeholder="…"),
                    fontsize=6.5,
                    wrap=True,
                )
            else:
                ax.text(
                    0.5,
                    0.5,
                    f"{variant}:\nno image\n(missing or left out)",
                    ha="center",
                    va="center",
                    fontsize=7,
                )
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"reference | title | variants ({model}, image #0)", fontsize=9, y=0.955)
    fig.tight_layout(rect=(0, 0, 1, 0.94), h_pad=2.0)
    return fig


_KIND_COLORS = {"static": "#1f77b4", "dynamic": "#ff7f0e"}


def _floor_panel(ax, d: pd.DataFrame, variants: list[str]) -> None:
    """One (metric, model) panel of :func:`plot_changes_vs_floor`."""
    for k, (kind, color) in enumerate(_KIND_COLORS.items()):
        g = d[d["kind"] == kind].set_index("variant")
        floor = g.loc[RESEED_VARIANT] if RESEED_VARIANT in g.index else None
        if floor is not None and not np.isnan(floor["ci_low"]):
            ax.axhspan(floor["ci_low"], floor["ci_high"], color=color, alpha=0.12, lw=0)
        for i, variant in enumerate(variants):
            if variant not in g.index:
                continue
            r, x = g.loc[variant], i + (k - 0.5) * 0.3
            if np.isnan(r["mean_change"]):
                continue
            tested = not np.isnan(r["ci_low"])
            beyond = (
                bool(r["beyond_floor"]) if "beyond_floor" in r and not pd.isna(r["beyond_floor"]) else False
            )
            yerr = [[r["mean_change"] - r["ci_low"]], [r["ci_high"] - r["mean_change"]]] if tested else None
            ax.errorbar([x], [r["mean_change"]], yerr=yerr, fmt="o" if tested else "x", color=color,
                        mfc=color if beyond else "white", capsize=3, ms=6)  # fmt: skip
            ax.annotate(f"n={int(r['n_pairs'])}", (x, r["mean_change"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
    ax.axhline(0, color="0.5", lw=0.8)
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, -0.05), max(high, 0.05))  # all-zero changes: a readable axis, not 1e-17
    ax.set_xticks(range(len(variants)), variants, fontsize=7, rotation=20)


def plot_changes_vs_floor(paired: pd.DataFrame, metrics: Sequence[str] = PAIRED_METRICS):
    """Per metric (rows) and model (columns): each variant's mean change from the title, with its
    bootstrap CI, one colour per kind; the shaded band is the re-seeded title's CI (the noise floor)
    of that kind.  Filled: beyond the floor (BH-adjusted test against the re-seeded title);
    hollow: not; a cross: too few pairs for an interval or test (``min_pairs``)."""
    import matplotlib.pyplot as plt

    models = sorted(set(paired["model"])) or ["(no pairs)"]
    variants = [RESEED_VARIANT] * (RESEED_VARIANT in set(paired["variant"]))
    variants += [v for v in _variants(paired) if v != RESEED_VARIANT]
    fig, axes = plt.subplots(len(metrics), len(models), figsize=(3.4 * len(models), 2.5 * len(metrics) + 0.8),
                             squeeze=False, sharey="row")  # fmt: skip
    for i, metric in enumerate(metrics):
        for j, model in enumerate(models):
            d = paired[(paired["metric"] == metric) & (paired["model"] == model)]
            _floor_panel(axes[i][j], d, variants)
            axes[i][j].set_title(f"{model} · {_METRIC_LABELS.get(metric, metric)}", fontsize=9)
        axes[i][0].set_ylabel("mean change\n(variant − title)", fontsize=8)
    handles = [plt.Line2D([], [], color=c, marker="o", lw=0, label=k) for k, c in _KIND_COLORS.items()]
    handles += [
        plt.Rectangle((0, 0), 1, 1, color="0.5", alpha=0.25, label="noise floor (re-seeded title, CI)")
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(
        "change from the title, read against the noise floor (filled: beyond it; ×: n < min_pairs, no test)",
        fontsize=9,
        y=0.945,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.93))  # the top is left to the stand-in label
    return fig


def plot_selection(
    status: pd.DataFrame, references: pd.DataFrame, title_cra: pd.DataFrame, model: str | None = None
):
    """Per property (rows: sitelinks, year, the title's CRA) and variant (columns): the references
    a variant's comparison includes (left) against those it leaves out (right), one dot each, for
    one model (default: the first), colour by kind; the bars are medians."""
    import matplotlib.pyplot as plt

    model = model or sorted(set(status["model"]))[0]
    data = status[status["model"] == model].merge(
        references[["slug", "sitelinks", "year"]], on="slug", how="left"
    )
    data = data.merge(title_cra[title_cra["model"] == model][["slug", "cra"]], on="slug", how="left")
    variants = list(dict.fromkeys(data["variant"]))
    props = [("sitelinks", "sitelinks"), ("year", "year"), ("cra", "title CRA")]
    fig, axes = plt.subplots(3, max(1, len(variants)), figsize=(2.4 * max(1, len(variants)), 7.0), squeeze=False,
                             sharey="row")  # fmt: skip
    rng = np.random.default_rng(0)  # jitter only
    for j, variant in enumerate(variants):
        d = data[data["variant"] == variant]
        groups = (d[d["status"] == "in_comparison"], d[d["status"] != "in_comparison"])
        for i, (col, label) in enumerate(props):
            ax = axes[i][j]
            for x, g in enumerate(groups):
                y = g[col].astype(float)
                ax.scatter(x + rng.uniform(-0.15, 0.15, len(g)), y, s=12, alpha=0.7,
                           c=[_KIND_COLORS.get(k, "0.5") for k in g["kind"]])  # fmt: skip
                if y.notna().any():
                    ax.hlines(y.median(), x - 0.3, x + 0.3, color="k", lw=1.5)
            ax.set_xticks(
                [0, 1], [f"included\nn={len(groups[0])}", f"left out\nn={len(groups[1])}"], fontsize=7
            )
            ax.set_xlim(-0.6, 1.6)
            if i == 0:
                ax.set_title(variant, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    axes[0][0].set_yscale("log")
    axes[0][0].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    axes[0][0].yaxis.set_minor_formatter(  # 20, 50, 200, 500: the others would overlap
        plt.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else "")
    )
    fig.suptitle(f"which references each comparison includes ({model}; bars: medians)", fontsize=9, y=0.945)
    fig.tight_layout(rect=(0, 0, 1, 0.93))  # the top is left to the stand-in label
    return fig
