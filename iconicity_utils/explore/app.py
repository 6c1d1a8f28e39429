"""The explorer's widget app (notebook 07, also served with Voilà).

Pick a model, a prompt variant and a reference; see the reference images beside the generated
images, each with its best CLIP similarity s_i, pass/fail and VR, and a toggle that overlays the
4x4 grid (reused cells pink, independent cells green, as in the paper's framework figure).  Sliders
for τ_CRA (static, dynamic) and τ_reuse update CRA, VI and CRT for the selected reference and the
model-level summary.  An overview places every reference by recognition (CRA) and realization (VI);
clicking a point opens it in the gallery.  Prompt variants (stage 05) sit side by side, and a
feature picker plots CRA against any stage 06 feature.

:class:`Explorer` reads a loaded :class:`~iconicity_utils.explore.data.Results`; notebook 07
builds it through :func:`~iconicity_utils.explore.page.open_explorer`.

Under papermill (``INTERACTIVE = False``, as ``run_all.sh`` runs it) the explorer builds its
widgets for one reference and shows a static snapshot; nothing waits for input.
"""

from __future__ import annotations

import functools
import html
import time

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.explore.data import FEATURES, SCORING_COLUMNS, Results, load_results
from iconicity_utils.explore.render import (
    STYLE,
    feature_figure,
    figure_png,
    gallery_html,
    metrics_html,
    overview_children,
    overview_layout,
    summary_html,
    variants_html,
)
from iconicity_utils.explore.tables import (
    SORT_KEYS,
    Recomputed,
    Thresholds,
    caption_samples_html,
    feature_frame,
    feature_labels,
    group_rows,
    model_summary,
    numeric_feature_columns,
    overview_points,
    recompute,
    reference_list,
    reference_metrics,
    stored_thresholds,
)
from iconicity_utils.explore.validation_tab import ValidationTab

__all__ = ["Explorer"]


class Explorer:
    """The widget app over one results folder (see the module docstring).

    ``Explorer.load(cfg)`` reads the config's results; ``Explorer.load(cfg, "scores/")`` a folder.
    ``ex.widget`` is the app; ``ex.show(interactive)`` displays it, or a static snapshot.
    ``ex.set_thresholds(...)`` and ``ex.select(...)`` drive it from code, as the sliders and lists
    do; ``ex.timings`` holds the seconds of each update.
    """

    TABS = ("Gallery", "Overview", "Variants", "Features", "Validation")

    def __init__(self, results: Results, *, thumb_px: int = 160, bins: int = 20):
        self.results = results
        self.thumb_px = thumb_px
        self.bins = bins
        self.run_thresholds = stored_thresholds(results.per_image)
        self.timings: list[float] = []
        self._cache: dict[tuple, Recomputed] = {}
        self._summaries: dict[tuple, str] = {}
        self._parts: dict[str, dict] = {}  # model -> recompute()'s cache of re-thresholded kinds
        self._consistency = results.consistency()
        pi = results.per_image
        self._scoring = pi[[c for c in SCORING_COLUMNS if c in pi.columns]]
        self._display = pi[[c for c in pi.columns if c not in SCORING_COLUMNS]]
        self._busy = False
        self._only: list[str] | None = None
        self._dirty: set[str] = set()
        self._points: list = []
        self._build_selection()
        self._build_controls()
        self._build_panes()
        self._tag_widgets()
        self._build_layout()
        self._wire_observers()
        self.update("all")

    def _build_selection(self) -> None:
        """The model and variant pickers, the search and sort, and the reference list."""
        import ipywidgets as W

        models = self.results.models
        self.model = W.Dropdown(options=models, value=models[0], description="model")
        self.variant = W.Dropdown(options=self.results.variants(models[0]), description="variant")
        self.search = W.Text(placeholder="search titles", description="search", continuous_update=True)
        self.sort = W.Dropdown(options=list(SORT_KEYS), value="CRA", description="sort by")
        self.reference = W.Select(options=[], rows=14, description="", layout=W.Layout(width="420px"))
        self.point_note = W.HTML()
        self.show_all = W.Button(description="show all references", layout=W.Layout(display="none"))

    def _build_controls(self) -> None:
        """The threshold sliders (at the run's thresholds), the reset button and the overlay box."""
        import ipywidgets as W

        t = self.run_thresholds
        kinds = set(self.results.per_image["kind"])
        slider = functools.partial(
            W.FloatSlider, min=0.0, max=1.0, step=0.001, readout_format=".3f", continuous_update=False,
            style={"description_width": "120px"}, layout=W.Layout(width="460px"),
        )  # fmt: skip
        self.tau_static = slider(value=t.static, description="τ_CRA static", disabled="static" not in kinds)
        self.tau_dynamic = slider(
            value=t.dynamic, description="τ_CRA dynamic", disabled="dynamic" not in kinds
        )
        self.tau_reuse = slider(value=t.reuse, description="τ_reuse")
        self.reset = W.Button(description="reset to the run's thresholds", layout=W.Layout(width="240px"))
        self.overlay = W.Checkbox(
            value=False,
            description="grid overlay: reused pink, independent green",
            indent=False,
            layout=W.Layout(width="auto"),
        )

    def _build_panes(self) -> None:
        """The output widgets: metrics, summary, status, and the contents of the tabs."""
        import ipywidgets as W

        self.metrics = W.HTML()
        self.summary = W.HTML()
        self.status = W.HTML()
        self.gallery = W.HTML()
        self.overview = W.GridBox(layout=overview_layout(self.bins))
        self.variants = W.HTML()
        columns = numeric_feature_columns(self.results.features)
        labels = feature_labels() if columns else {}
        self.feature = W.Dropdown(
            options=[(f"{labels[c]} ({c})" if c in labels else c, c) for c in columns],
            description="feature",
            style={"description_width": "60px"},
            layout=W.Layout(width="520px"),
        )
        self.feature_plot = W.Image(format="png", layout=W.Layout(width="504px"))
        self.feature_note = W.HTML()
        r = self.results
        self.validation = ValidationTab(r.folder, r.resolve, standin=r.is_standin)

    def _tag_widgets(self) -> None:
        """Add the CSS classes that the stylesheet and the browser tests address."""
        for w, cls in [
            (self.model, "ic-model"), (self.variant, "ic-variant-pick"), (self.search, "ic-search"),
            (self.sort, "ic-sort"), (self.reference, "ic-reference"), (self.tau_static, "ic-tau-static"),
            (self.tau_dynamic, "ic-tau-dynamic"), (self.tau_reuse, "ic-tau-reuse"), (self.overlay, "ic-overlay"),
            (self.reset, "ic-reset"), (self.show_all, "ic-show-all"), (self.overview, "ic-overview"),
            (self.status, "ic-status"), (self.feature, "ic-feature"),
        ]:  # fmt: skip
            w.add_class(cls)

    def _build_layout(self) -> None:
        """Arrange the widgets into the tabs and the app, ``self.widget``."""
        import ipywidgets as W

        overview_box = W.VBox(
            [
                W.HTML(
                    "<div class='ic-label'>One point per reference of the selected model and variant: "
                    "CRA (recognition) left to right, 0 to 1; VI over recognised images (realization) "
                    "bottom to top, 0 to 1; the row under the plot holds references with nothing "
                    "recognised.  Blue static, orange dynamic, red the selected reference; a number "
                    "counts references at one point.  Click a point to open it in the gallery.</div>"
                ),
                self.overview,
            ]
        )
        features_box = W.VBox([self.feature, self.feature_note, self.feature_plot])
        tabs = [self.gallery, overview_box, self.variants, features_box, self.validation.widget]
        self.tabs = W.Tab(children=tabs)
        self.tabs.titles = self.TABS
        self.tabs.add_class("ic-tabs")
        header = W.HTML(self._header_html())
        left = W.VBox(
            [self.model, self.variant, self.search, self.sort, self.reference, self.point_note, self.show_all]
        )
        right = W.VBox(
            [self.tau_static, self.tau_dynamic, self.tau_reuse, W.HBox([self.reset, self.overlay]),
             self.metrics, self.summary, self.status]
        )  # fmt: skip
        self.widget = W.VBox([header, W.HBox([left, right]), self.tabs])
        self.widget.add_class("ic-explorer")

    def _wire_observers(self) -> None:
        """Connect each widget to its handler."""
        self.model.observe(self._on_model, "value")
        self.variant.observe(self._on_selection, "value")
        self.reference.observe(self._on_reference, "value")
        self.search.observe(self._on_list, "value")
        self.sort.observe(self._on_list, "value")
        for s in (self.tau_static, self.tau_dynamic, self.tau_reuse):
            s.observe(self._on_thresholds, "value")
        self.overlay.observe(self._on_overlay, "value")
        self.reset.on_click(self._on_reset)
        self.show_all.on_click(self._on_show_all)
        self.tabs.observe(self._on_tab, "selected_index")
        self.feature.observe(self._on_feature, "value")

    @classmethod
    def load(cls, config=None, results=None, **kwargs) -> Explorer:
        """An explorer over ``results`` (default: the config's results folder)."""
        return cls(load_results(config, results), **kwargs)

    # -- state ---------------------------------------------------------------------------------
    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            float(self.tau_static.value), float(self.tau_dynamic.value), float(self.tau_reuse.value)
        )

    @property
    def current(self) -> Recomputed:
        """The selected model's tables (all its variants) at the current thresholds (cached)."""
        key = (self.model.value, self.thresholds)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
                self._summaries.clear()
            r = self.results
            rows = self._scoring[self._scoring["model"] == self.model.value]  # narrow: faster to group
            parts = self._parts.setdefault(self.model.value, {})
            if len(parts) > 64:
                parts.clear()
            self._cache[key] = recompute(
                rows,
                self.thresholds,
                consistency=self._consistency,
                n_bootstrap=r.n_bootstrap,
                seed=r.seed,
                cache=parts,
            )
        return self._cache[key]

    def _shown(self, rows):
        """Re-thresholded rows with their display columns (path, prompt, references) joined back."""
        return rows.join(self._display.loc[rows.index])

    @property
    def slug(self) -> str | None:
        return self.reference.value

    def title(self, slug: str | None) -> str:
        return self.results.titles.get(slug, slug) if slug else ""

    def selected_rows(self):
        """The generated images of the selected (model, variant, reference) at the current thresholds."""
        rows = group_rows(self.current.per_image, self.model.value, self.variant.value, self.slug)
        return self._shown(rows.sort_values("index", kind="stable"))

    def table(self):
        """Per-reference scores of the selected model and variant at the current thresholds."""
        return reference_list(
            self.current.per_reference,
            self.model.value,
            self.variant.value,
            self.results.titles,
            sort=self.sort.value,
        )

    def describe(self) -> str:
        r = self.results
        n = r.per_image.groupby(["model", "variant"]).size()
        parts = [f"{m} · {v}: {k} images" for (m, v), k in n.items()]
        feats = (
            f"{len(numeric_feature_columns(r.features))} numeric features"
            if r.features is not None
            else "none"
        )
        t = self.run_thresholds
        return (
            f"results: {r.folder}\n"
            f"scored: {'; '.join(parts)}; {r.per_image['slug'].nunique()} references\n"
            f"run thresholds: τ_CRA static {t.static:g}, dynamic {t.dynamic:g}; τ_reuse {t.reuse:g}\n"
            f"stage 06 features ({FEATURES}): {feats}"
        )

    # -- driving it from code (what the widgets do) ---------------------------------------------
    def set_thresholds(
        self, static: float | None = None, dynamic: float | None = None, reuse: float | None = None
    ):
        """Move the sliders (one update for all of them)."""
        self._busy = True
        try:
            for s, v in ((self.tau_static, static), (self.tau_dynamic, dynamic), (self.tau_reuse, reuse)):
                if v is not None:
                    s.value = float(v)
        finally:
            self._busy = False
        self.update("thresholds")

    def select(self, model: str | None = None, variant: str | None = None, slug: str | None = None):
        """Select a model, variant and/or reference (clearing the search to show the reference).

        Raises:
            KeyError: the reference is not scored for the selected model and variant.
        """
        if model is not None:
            self.model.value = model
        if variant is not None:
            self.variant.value = variant
        if slug is not None:
            self._busy = True
            try:
                self._only = None
                self.search.value = ""
            finally:
                self._busy = False
            self.update("list", select=slug)
            if self.slug != slug:
                raise KeyError(f"{slug!r} is not scored for {self.model.value} · {self.variant.value}")

    # -- observers -------------------------------------------------------------------------------
    def _on_model(self, change):
        if self._busy:
            return
        self._busy = True
        try:
            variants = self.results.variants(self.model.value)
            keep = self.variant.value if self.variant.value in variants else variants[0]
            self.variant.options = variants
            self.variant.value = keep
        finally:
            self._busy = False
        self.update("selection")

    def _on_selection(self, change):
        if not self._busy:
            self.update("selection")

    def _on_list(self, change):
        if not self._busy:
            self.update("list")

    def _on_reference(self, change):
        if not self._busy and change["new"] is not None:
            self.update("reference")

    def _on_thresholds(self, change):
        if not self._busy:
            self.update("thresholds")

    def _on_overlay(self, change):
        self.update("overlay")

    def _on_reset(self, _button=None):
        t = self.run_thresholds
        self.set_thresholds(t.static, t.dynamic, t.reuse)

    def _on_show_all(self, _button=None):
        self._only = None
        self.update("list")

    def _on_tab(self, change):
        self._render_tabs()

    def _on_feature(self, change):
        if not self._busy:
            self._dirty.add("features")
            self._render_tabs()

    def _on_point(self, slugs: tuple[str, ...], _button=None):
        self._busy = True
        try:
            self._only = list(slugs) if len(slugs) > 1 else None
            self.search.value = ""
        finally:
            self._busy = False
        self.update("list", select=slugs[0])
        self.tabs.selected_index = 0

    # -- updates -----------------------------------------------------------------------------------
    def update(self, what: str = "all", select: str | None = None) -> float:
        """Recompute and redraw what ``what`` changed; returns (and records) the seconds it took.

        ``what``: ``all``, ``selection`` (model or variant), ``list`` (search, sort, a clicked
        point), ``thresholds``, ``reference`` or ``overlay``.
        """
        t0 = time.perf_counter()
        if what in ("all", "selection", "list", "thresholds"):
            self._refresh_list(select)
        if what != "overlay":
            self._render_numbers()
            self._dirty |= {"overview", "variants", "features"}
        else:
            self._dirty.add("variants")
        self._render_gallery()
        self._render_tabs()
        dt = time.perf_counter() - t0
        self.timings.append(dt)
        self.status.value = f"<span class='ic-label'>updated in {1000 * dt:.0f} ms</span>"
        return dt

    def _refresh_list(self, select: str | None = None):
        refs = reference_list(
            self.current.per_reference, self.model.value, self.variant.value, self.results.titles,
            search=self.search.value, sort=self.sort.value, only=self._only,
        )  # fmt: skip
        titles = refs["title"].tolist()
        dup = {t for t in titles if titles.count(t) > 1}
        options = [
            (
                f"{r.title}{f' ({r.slug})' if r.title in dup else ''} · {r.kind} · "
                f"CRA {r.cra:.2f} · VR {r.vr_all:.2f} · CRT {r.crt:.2f}",
                r.slug,
            )
            for r in refs.itertuples()
        ]
        want = select or self.reference.value
        slugs = refs["slug"].tolist()
        self._busy = True
        try:
            self.reference.options = options
            self.reference.value = want if want in slugs else (slugs[0] if slugs else None)
        finally:
            self._busy = False
        if self._only is not None:
            self.point_note.value = (
                f"<span class='ic-label'>{len(self._only)} references at the clicked point</span>"
            )
            self.show_all.layout.display = None
        else:
            self.point_note.value = (
                "" if slugs else "<span class='ic-label'>no reference matches the search</span>"
            )
            self.show_all.layout.display = "none"

    def _render_numbers(self):
        rec = self.current
        m = None
        if self.slug is not None:
            m = reference_metrics(rec.per_reference, self.model.value, self.variant.value, self.slug)
        self.metrics.value = metrics_html(m, self.thresholds, self.title(self.slug))
        key = (self.model.value, self.variant.value, self.thresholds)
        if key not in self._summaries:
            summary = model_summary(rec.per_model, self.model.value, self.variant.value)
            self._summaries[key] = summary_html(summary, self.model.value, self.variant.value)
        self.summary.value = self._summaries[key]

    def _render_gallery(self):
        if self.slug is None:
            self.gallery.value = f"{STYLE}<div class='ic-gallery'>no reference selected</div>"
            return
        self.gallery.value = gallery_html(
            self.selected_rows(), self.results.resolve, overlay=self.overlay.value, px=self.thumb_px,
            title=self.title(self.slug),
        )  # fmt: skip

    def _render_tabs(self):
        """Draw the visible tab if something it shows changed (the others wait until opened)."""
        name = self.TABS[self.tabs.selected_index or 0].lower()
        if name not in self._dirty:
            return
        self._dirty.discard(name)
        if name == "overview":
            self._render_overview()
        elif name == "variants":
            self._render_variants()
        elif name == "features":
            self._render_features()

    def _render_overview(self):
        pts = overview_points(self.current.per_reference, self.model.value, self.variant.value, self.bins)
        for b in self._points:
            b.close()
        children, self._points = overview_children(pts, self.bins, self.slug, self.title, self._on_point)
        self.overview.children = children

    def _render_variants(self):
        if self.slug is None:
            self.variants.value = ""
            return
        rec = self.current
        rows = self._shown(rec.per_image[rec.per_image["slug"] == self.slug])
        self.variants.value = variants_html(
            rows, rec.per_reference, self.model.value, self.slug, self.results.resolve,
            overlay=self.overlay.value,
        )  # fmt: skip

    def _render_features(self):
        r = self.results
        if r.features is None:
            self.feature.layout.display = "none"
            self.feature_plot.layout.display = "none"
            self.feature_note.value = (
                f"<p><b>stage 06 features missing</b>: {html.escape(str(r.features_path))} not found. "
                "Notebook 06 (correlates) writes it: one row per reference (key <code>slug</code>) "
                "with numeric feature columns.</p>"
            )
            return
        if not self.feature.value:
            self.feature_plot.layout.display = "none"
            self.feature_note.value = f"<p>{html.escape(str(r.features_path))} has no numeric column.</p>"
            return
        frame = feature_frame(
            self.current.per_reference, r.features, self.model.value, self.variant.value, self.feature.value
        )
        title = f"{self.model.value} · {self.variant.value}"
        self.feature_plot.value = figure_png(feature_figure(frame, self.feature.value, title))
        self.feature_note.value = (
            f"<span class='ic-label'>CRA at the current thresholds against <b>{html.escape(self.feature.value)}</b> "
            f"({len(frame)} references with both; from {html.escape(str(r.features_path))})</span>"
        ) + caption_samples_html(r.features, self.slug)

    # -- display -----------------------------------------------------------------------------------
    def _header_html(self) -> str:
        r = self.results
        standin = f"<div class='ic-standin'>*** {STANDIN_LABEL} ***</div>" if r.is_standin else ""
        return (
            f"{STYLE}<div class='ic-header'><b>Iconicity explorer</b> · results "
            f"<code>{html.escape(str(r.folder))}</code>{standin}</div>"
        )

    def snapshot_html(self) -> str:
        """A static HTML copy of the current view, the grid overlay drawn (what an executed
        notebook shows without a kernel)."""
        table = self.table()
        table_html = table.to_html(
            index=False, float_format=lambda v: f"{v:.3f}", classes="ic-table", border=0
        )
        gallery = variants = "<p>no reference selected</p>"
        if self.slug is not None:
            gallery = gallery_html(
                self.selected_rows(),
                self.results.resolve,
                overlay=True,
                px=self.thumb_px,
                title=self.title(self.slug),
            )
            rec = self.current
            rows = self._shown(rec.per_image[rec.per_image["slug"] == self.slug])
            variants = variants_html(
                rows, rec.per_reference, self.model.value, self.slug, self.results.resolve, overlay=True
            )
        return (
            f"{self._header_html()}"
            "<p class='ic-label'>Static snapshot (INTERACTIVE = False), grid overlay on.  For the "
            "sliders, open this notebook in JupyterLab with INTERACTIVE = True, or serve it with "
            "<code>voila notebooks/07_explorer.ipynb</code>.</p>"
            f"{self.metrics.value}{self.summary.value}{gallery}"
            f"<h4>Prompt variants</h4>{variants}"
            f"<h4>All references of {html.escape(self.model.value)} · {html.escape(self.variant.value)}</h4>"
            f"<div class='ic-summary'>{table_html}</div>"
        )

    def show(self, interactive: bool = True):
        """Display the app (``interactive``) or its static snapshot; never waits for input."""
        from IPython.display import HTML, display

        if interactive:
            display(self.widget)
        else:
            display(HTML(self.snapshot_html()))
