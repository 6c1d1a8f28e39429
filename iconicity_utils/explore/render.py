"""The explorer's hand-written HTML and CSS: gallery, metrics, summary, variants, overview, refusal.

Every function returns an HTML string (or, for the overview scatter, the widgets of its grid; for
the feature tab, a matplotlib figure and its PNG), so the pages can be tested without a browser.
Every generated card carries its numbers as data attributes (``data-sim``, ``data-pass``,
``data-vr``, ``data-reused``) for the tests and the browser test.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from iconicity_utils.core.images import grid_boxes, open_rgb
from iconicity_utils.explore.tables import (
    SUMMARY_METRICS,
    Thresholds,
    group_rows,
    reused_cells,
    variant_table,
)
from iconicity_utils.metrics.realization import rank_correlation
from iconicity_utils.score.figures import INDEPENDENT, REUSED

__all__ = [
    "STYLE",
    "Thumb",
    "thumbnail",
    "gallery_html",
    "metrics_html",
    "summary_html",
    "variants_html",
    "overview_layout",
    "overview_children",
    "feature_figure",
    "figure_png",
    "refusal_html",
]

LABELS = {"cra": "CRA", "vi_mean": "VI", "crt": "CRT", "vr_all": "VR"}
KIND_COLORS = {"static": "#1f77b4", "dynamic": "#ff7f0e"}
SELECTED_COLOR = "#d62728"

STYLE = """<style>
.ic-header, .ic-gallery, .ic-metrics, .ic-summary, .ic-variants {font-family: sans-serif; font-size: 12px}
.ic-row {display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start}
.ic-card {margin: 0; width: var(--ic-w); border: 1px solid #ddd; padding: 3px; background: #fff}
.ic-card.ic-fail {background: #f6f6f6}
.ic-card figcaption {line-height: 1.35; margin-top: 2px}
.ic-thumb {position: relative; width: 100%; line-height: 0}
.ic-thumb img {width: 100%; height: auto; display: block}
.ic-thumb img.ic-pixel {image-rendering: pixelated}
.ic-cell {position: absolute; box-sizing: border-box; border: 1px solid rgba(255,255,255,0.85)}
.ic-reused {background: rgba(__REUSED__,0.45)}
.ic-independent {background: rgba(__INDEPENDENT__,0.45)}
.ic-pass {color: #1a7f37; font-weight: bold}
.ic-failtxt {color: #b42318; font-weight: bold}
.ic-missing {width: 100%; aspect-ratio: 1; background: #eee; color: #666; line-height: 1.3;
  font-size: 10px; overflow-wrap: anywhere; padding: 4px; box-sizing: border-box}
.ic-metrics b {font-size: 14px}
.ic-metric {margin-right: 14px; white-space: nowrap}
.ic-table {border-collapse: collapse}
.ic-table td, .ic-table th {border: 1px solid #ddd; padding: 2px 6px}
.ic-label {color: #666}
.ic-refused {font-family: sans-serif; font-size: 14px; max-width: 760px; padding: 10px 14px;
  border: 2px solid #b42318; background: #fff4f2}
.ic-standin {color: #b42318; font-weight: bold}
</style>""".replace("__REUSED__", ",".join(map(str, REUSED))).replace(
    "__INDEPENDENT__", ",".join(map(str, INDEPENDENT))
)


def _fmt(v, digits: int = 3) -> str:
    v = float(v)
    return "—" if np.isnan(v) else f"{v:.{digits}f}"


def _val(v) -> str:
    """A number written exactly into a data attribute (``nan`` when undefined)."""
    v = float(v)
    return "nan" if np.isnan(v) else format(v, ".17g")


@dataclass(frozen=True)
class Thumb:
    data_url: str
    width: int
    height: int
    pixel: bool  # small image shown enlarged: keep pixels crisp


@functools.lru_cache(maxsize=1024)
def _thumbnail(path: str, mtime: float, px: int) -> Thumb:
    im = open_rgb(path)
    w, h = im.size
    buf = io.BytesIO()
    if max(w, h) > px:  # downscale once; JPEG keeps the HTML small
        im = im.copy()
        im.thumbnail((px, px), Image.Resampling.LANCZOS)
        im.save(buf, format="JPEG", quality=85)
        mime = "image/jpeg"
    else:
        im.save(buf, format="PNG")
        mime = "image/png"
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return Thumb(f"data:{mime};base64,{data}", w, h, pixel=max(w, h) < px)


def thumbnail(path: str | Path, px: int = 192) -> Thumb | None:
    """A display copy of an image (its original size kept for the grid), or None if unreadable."""
    try:
        p = Path(path)
        return _thumbnail(str(p), p.stat().st_mtime, px)
    except (OSError, ValueError):
        return None


def _grid(row) -> tuple[int, int]:
    rows, cols = (int(v) for v in str(row.get("grid", "4x4")).split("x"))
    return rows, cols


def _image_html(thumb: Thumb | None, path, reused: np.ndarray | None, grid: tuple[int, int]) -> str:
    if thumb is None:
        return f'<div class="ic-missing">image not found:<br>{html.escape(str(path))}</div>'
    cells = ""
    if reused is not None:
        parts = []
        boxes = grid_boxes(thumb.width, thumb.height, grid)
        for (x0, y0, x1, y1), flag in zip(boxes, reused, strict=True):
            style = (
                f"left:{100 * x0 / thumb.width:.4f}%;top:{100 * y0 / thumb.height:.4f}%;"
                f"width:{100 * (x1 - x0) / thumb.width:.4f}%;height:{100 * (y1 - y0) / thumb.height:.4f}%"
            )
            parts.append(
                f'<div class="ic-cell {"ic-reused" if flag else "ic-independent"}" style="{style}"></div>'
            )
        cells = "".join(parts)
    cls = ' class="ic-pixel"' if thumb.pixel else ""
    return f'<div class="ic-thumb"><img{cls} src="{thumb.data_url}" alt="">{cells}</div>'


def generated_card(row, resolve, overlay: bool, px: int) -> str:
    """One generated image with s_i, pass/fail, VR and (``overlay``) its reused / independent cells."""
    reused = reused_cells(row)
    grid = _grid(row)
    if len(reused) != grid[0] * grid[1]:
        raise ValueError(f"{len(reused)} cell maxima for a {grid[0]}x{grid[1]} grid ({row['path']})")
    ok = bool(row["cra_pass"])
    n_reused = int(reused.sum())
    image = _image_html(thumbnail(resolve(row["path"]), px), row["path"], reused if overlay else None, grid)
    verdict = (
        '<span class="ic-pass">✓ recognised</span>'
        if ok
        else '<span class="ic-failtxt">✗ not recognised</span>'
    )
    # the comparison as it came out: "s > τ" when recognised, "s ≤ τ" when not (">=": "≥" / "<")
    cmp = {(">", True): "&gt;", (">", False): "≤", (">=", True): "≥", (">=", False): "&lt;"}[
        (str(row["comparison"]), ok)
    ]
    refs = row.get("ref_paths")
    match = ""
    if refs is not None and len(refs) > 1 and isinstance(row.get("cra_ref"), str):
        match = f"<br><span class='ic-label'>best match: {html.escape(Path(row['cra_ref']).name)}</span>"
    return (
        f'<figure class="ic-card ic-gen{"" if ok else " ic-fail"}" data-index="{int(row["index"])}" '
        f'data-sim="{_val(row["cra_sim"])}" data-pass="{int(ok)}" data-vr="{_val(row["vr"])}" '
        f'data-reused="{n_reused}" data-cells="{len(reused)}" style="--ic-w:{px}px">{image}'
        f"<figcaption>#{int(row['index'])} · s<sub>i</sub> = {float(row['cra_sim']):.3f} "
        f"{cmp} τ {float(row['cra_tau']):.3f}<br>{verdict}<br>"
        f"VR = {float(row['vr']):.3f} ({n_reused}/{len(reused)} reused) · VI = {float(row['vi']):.3f}"
        f"{match}</figcaption></figure>"
    )


def reference_card(path, resolve, px: int, caption: str) -> str:
    """One reference image with its caption."""
    thumb = thumbnail(resolve(path), px)
    return (
        f'<figure class="ic-card ic-ref" style="--ic-w:{px}px">{_image_html(thumb, path, None, (4, 4))}'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def gallery_html(
    rows, resolve, *, overlay: bool = False, px: int = 160, max_refs: int = 8, title: str = ""
) -> str:
    """The reference image(s) beside the generated images of one (model, variant, reference).

    Every generated card carries its numbers as data attributes (``data-sim``, ``data-pass``,
    ``data-vr``, ``data-reused``) and, with ``overlay``, one ``.ic-cell`` per grid cell
    (``.ic-reused`` pink, ``.ic-independent`` green).
    """
    if len(rows) == 0:
        return f'{STYLE}<div class="ic-gallery">nothing scored for this selection</div>'
    first = rows.iloc[0]
    refs = list(first["ref_paths"]) if "ref_paths" in rows.columns else [first.get("cra_ref")]
    shown = refs[:max_refs]
    ref_cards = "".join(
        reference_card(
            p, resolve, px, f"reference {i + 1}/{len(refs)} ({first['kind']}): {Path(str(p)).name}"
        )
        for i, p in enumerate(shown)
    )
    more = (
        f'<div class="ic-label">+{len(refs) - len(shown)} more reference images</div>'
        if len(refs) > len(shown)
        else ""
    )
    gens = "".join(generated_card(r, resolve, overlay, px) for _, r in rows.iterrows())
    attrs = (
        f'data-model="{html.escape(str(first["model"]))}" data-variant="{html.escape(str(first["variant"]))}" '
        f'data-slug="{html.escape(str(first["slug"]))}" data-overlay="{int(overlay)}"'
    )
    head = f"<h4>{html.escape(title)}</h4>" if title else ""
    prompt = first.get("prompt")
    prompt_html = (
        f'<div class="ic-label">prompt: “{html.escape(str(prompt))}”</div>' if isinstance(prompt, str) else ""
    )
    return (
        f'{STYLE}<div class="ic-gallery" {attrs}>{head}{prompt_html}'
        f'<div class="ic-label">reference</div><div class="ic-row ic-refs">{ref_cards}{more}</div>'
        f'<div class="ic-label">generated ({len(rows)} images)</div><div class="ic-row ic-gens">{gens}</div></div>'
    )


def metrics_html(metrics: dict[str, Any] | None, thresholds: Thresholds, title: str = "") -> str:
    """CRA, VI, CRT and VR of the selected reference, each with its exact value as ``data-value``."""
    if metrics is None:
        return f'{STYLE}<div class="ic-metrics">no reference selected</div>'
    kind = str(metrics["kind"])
    tau = thresholds.static if kind == "static" else thresholds.dynamic
    attrs = (
        f'data-model="{html.escape(str(metrics["model"]))}" data-variant="{html.escape(str(metrics["variant"]))}" '
        f'data-slug="{html.escape(str(metrics["slug"]))}" data-kind="{kind}" '
        f'data-tau-cra="{tau:.3f}" data-tau-reuse="{thresholds.reuse:.3f}"'
    )
    n, k = int(metrics["n_images"]), int(metrics["n_recognised"])
    spans = [
        ("cra", "CRA", metrics["cra"], f"({k}/{n} recognised)"),
        ("vi_mean", "VI", metrics["vi_mean"], "(over recognised)" if k else "(none recognised)"),
        ("crt", "CRT", metrics["crt"], ""),
        ("vr_all", "VR", metrics["vr_all"], "(all images)"),
    ]
    body = " ".join(
        f'<span class="ic-metric" data-metric="{key}" data-value="{_val(v)}">{label} <b>{_fmt(v)}</b> '
        f'<span class="ic-label">{note}</span></span>'
        for key, label, v, note in spans
    )
    head = f"<div><b>{html.escape(title)}</b> <span class='ic-label'>({kind}; τ_CRA {tau:.3f}, τ_reuse {thresholds.reuse:.3f})</span></div>"
    return f'{STYLE}<div class="ic-metrics" {attrs}>{head}{body}</div>'


def summary_html(summary, model: str, variant: str) -> str:
    """The model-level summary (:func:`model_summary`): mean over references [bootstrap 95 % CI]."""
    metrics = [m for m in SUMMARY_METRICS if m in set(summary["metric"])]
    head = "".join(f"<th>{LABELS[m]}</th>" for m in metrics)
    rows = []
    for kind, g in summary.groupby("kind", sort=False):
        cells = []
        by_metric = g.set_index("metric")
        for m in metrics:
            if m not in by_metric.index:
                cells.append("<td></td>")
                continue
            r = by_metric.loc[m]
            cells.append(
                f'<td class="ic-sum" data-kind="{kind}" data-metric="{m}" data-value="{_val(r["mean"])}">'
                f'{_fmt(r["mean"])} <span class="ic-label">[{_fmt(r["ci_low"], 2)}, {_fmt(r["ci_high"], 2)}]</span></td>'
            )
        n = int(g["n_refs"].max())
        rows.append(f"<tr><th>{kind} (n = {n})</th>{''.join(cells)}</tr>")
    return (
        f'{STYLE}<div class="ic-summary"><div><b>{html.escape(model)}</b> · {html.escape(variant)}: '
        "mean over references [bootstrap 95 % CI]</div>"
        f'<table class="ic-table"><tr><th></th>{head}</tr>{"".join(rows)}</table></div>'
    )


def variants_html(
    per_image,
    per_reference,
    model: str,
    slug: str,
    resolve,
    *,
    overlay: bool = False,
    px: int = 96,
    max_images: int = 4,
) -> str:
    """Prompt variants of one (model, reference) side by side (title | synonym | literal | ...)."""
    table = variant_table(per_reference, model, slug)
    if len(table) < 2:
        only = ", ".join(f"'{v}'" for v in table["variant"]) or "none"
        return (
            f'{STYLE}<div class="ic-variants" data-n="{len(table)}"><p><b>no variants scored</b> for this '
            f"model and reference (only {only}).  Stage 05 (notebook 05) adds the prompt variants "
            "<i>synonym</i> and <i>literal</i> to the same score tables.</p></div>"
        )
    cols = []
    for r in table.itertuples():
        rows = group_rows(per_image, model, r.variant, slug).sort_values("index")
        prompt = rows["prompt"].iloc[0] if "prompt" in rows.columns and len(rows) else ""
        cards = "".join(generated_card(x, resolve, overlay, px) for _, x in rows.head(max_images).iterrows())
        nums = (
            f'<div class="ic-metric" data-metric="cra" data-value="{_val(r.cra)}">CRA <b>{_fmt(r.cra)}</b></div>'
            f'<div class="ic-metric" data-metric="vi_mean" data-value="{_val(r.vi_mean)}">VI <b>{_fmt(r.vi_mean)}</b></div>'
            f'<div class="ic-metric" data-metric="crt" data-value="{_val(r.crt)}">CRT <b>{_fmt(r.crt)}</b></div>'
        )
        cols.append(
            f'<td class="ic-variant" data-variant="{html.escape(r.variant)}" style="vertical-align:top">'
            f"<b>{html.escape(r.variant)}</b><div class='ic-label'>“{html.escape(str(prompt))}”</div>{nums}"
            f'<div class="ic-row">{cards}</div></td>'
        )
    return f'{STYLE}<div class="ic-variants" data-n="{len(table)}"><table class="ic-table"><tr>{"".join(cols)}</tr></table></div>'


def overview_layout(bins: int):
    """The grid of the overview scatter: ``bins + 1`` columns of CRA, ``bins + 1`` rows of VI, and
    two rows below for the references with nothing recognised."""
    import ipywidgets as W

    n_rows, n_cols = bins + 3, bins + 1
    return W.Layout(
        grid_template_columns=f"repeat({n_cols}, 20px)",
        grid_template_rows=f"repeat({n_rows}, 20px)",
        border="1px solid #bbb",
        width=f"{20 * n_cols + 2}px",
    )


def _overview_axes(bins: int) -> list:
    """The quadrant lines and labels, and the label of the row under the plot."""
    import ipywidgets as W

    n = bins + 1
    axes = W.HTML(
        f"<svg width='{20 * n}' height='{20 * n}' style='display:block'>"
        f"<line x1='{10 * n}' y1='0' x2='{10 * n}' y2='{20 * n}' stroke='#ccc'/>"
        f"<line x1='0' y1='{10 * n}' x2='{20 * n}' y2='{10 * n}' stroke='#ccc'/>"
        "<text x='4' y='12' font-size='10' fill='#999'>not recognised</text>"
        f"<text x='{20 * n - 4}' y='12' font-size='10' fill='#999' text-anchor='end'>recognised, transformed</text>"
        f"<text x='{20 * n - 4}' y='{20 * n - 4}' font-size='10' fill='#999' text-anchor='end'>recognised, replicated</text>"
        "</svg>",
        layout=W.Layout(grid_area=f"1 / 1 / {n + 1} / {n + 1}"),
    )
    note = W.HTML(
        "<span style='font-size:10px;color:#999'>nothing recognised (no VI)</span>",
        layout=W.Layout(grid_area=f"{bins + 2} / 1 / {bins + 3} / {n + 1}"),
    )
    return [axes, note]


def _point(g, row: int, col: int, selected: str | None, title: Callable[[str], str], on_point: Callable):
    """One button for the references at one grid position (a count when there are several)."""
    import ipywidgets as W

    slugs = tuple(g.sort_values(["cra", "slug"], ascending=[False, True])["slug"])
    kinds = set(g["kind"])
    color = SELECTED_COLOR if selected in slugs else KIND_COLORS.get(next(iter(kinds)), "#7f7f7f")
    if len(kinds) > 1 and selected not in slugs:
        color = "#7f7f7f"
    tip = "\n".join(
        f"{title(s)} ({s}): CRA {c:.2f}, VI {_fmt(v, 2)}"
        for s, c, v in zip(g["slug"], g["cra"], g["vi_mean"], strict=True)
    )
    b = W.Button(
        description=str(len(slugs)) if len(slugs) > 1 else "",
        tooltip=tip,
        layout=W.Layout(grid_area=f"{row} / {col}", width="18px", height="18px", padding="0", margin="1px"),
    )
    b.style.button_color = color
    b.style.font_size = "9px"
    b.add_class("ic-point")
    b.on_click(functools.partial(on_point, slugs))
    return b


def overview_children(
    points, bins: int, selected: str | None, title: Callable[[str], str], on_point: Callable
) -> tuple[list, list]:
    """The widgets of the overview scatter of :func:`~iconicity_utils.explore.tables.overview_points`:
    the axes and one button per occupied position (blue static, orange dynamic, grey mixed, red the
    ``selected`` reference); clicking one calls ``on_point(slugs, button)``.

    Returns:
        (all the children of the grid, the point buttons alone).
    """
    buttons = [
        _point(g, row, col, selected, title, on_point)
        for (row, col), g in points.groupby(["row", "col"], sort=True)
    ]
    return [*_overview_axes(bins), *buttons], buttons


def refusal_html(message: str) -> str:
    """The page a served explorer shows instead of the app when it refuses to open something."""
    return (
        f"{STYLE}<div class='ic-refused' role='alert'><b>Iconicity explorer: nothing loaded</b>"
        f"<p>{html.escape(message)}</p></div>"
    )


def feature_figure(frame, column: str, title: str = ""):
    """CRA against a feature, one point per reference (a matplotlib Figure, not drawn by pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 3.6), dpi=90)
    ax = fig.add_subplot()
    for kind, g in frame.groupby("kind", sort=True):
        ax.scatter(g[column], g["cra"], label=kind, color=KIND_COLORS.get(kind), alpha=0.75)
    rho = rank_correlation(frame[column].to_numpy(float), frame["cra"].to_numpy(float))
    ax.set(xlabel=column, ylabel="CRA", ylim=(-0.05, 1.05))
    rho_text = f"{rho:.2f}" if np.isfinite(rho) else "undefined (one side is constant)"
    ax.set_title(f"{title}  (n = {len(frame)}, Spearman ρ = {rho_text})", fontsize=9)
    if len(frame):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    """A figure as PNG bytes (drawn with Agg, without pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()
