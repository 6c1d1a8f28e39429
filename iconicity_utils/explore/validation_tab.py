"""The explorer's "Validation" tab: page through stage 08's edits, each beside its source, with its scores.

It reads the validation tables of the results folder (:func:`~iconicity_utils.validate.load_validation`)
and says so when they are absent.  Pick a family and an edit (or all), then step through the
images; each shows the source, the edit, the grid overlay of reused (pink) and independent (green)
cells, and every measure of the scores table.  Nothing is scored here.
"""

from __future__ import annotations

import html

import numpy as np

from iconicity_utils.explore.render import STYLE, thumbnail
from iconicity_utils.validate import load_validation
from iconicity_utils.validate.analysis import ENCODER_FREE
from iconicity_utils.validate.measure import MEASURES

__all__ = ["ValidationTab", "edit_card_html"]

ALL = "all"


def _value(v) -> str:
    v = float(v)
    return "n/a" if np.isnan(v) else f"{v:.3f}"


def edit_card_html(row, resolve, px: int = 192, standin: bool = False) -> str:
    """One edit beside its source, with its family, strength and every measure."""
    src, edit = thumbnail(resolve(row["source_path"]), px), thumbnail(resolve(row["path"]), px)
    images = "".join(
        f"<figure class='ic-card' style='--ic-w:{px}px'>"
        + (f"<img src='{t.data_url}' alt='' width='{px}'>" if t else f"<div class='ic-missing'>{html.escape(str(p))}</div>")
        + f"<figcaption>{html.escape(cap)}</figcaption></figure>"
        for t, p, cap in ((src, row["source_path"], f"source: {row['source']}"), (edit, row["path"], row["edit_id"]))
    )  # fmt: skip
    note = " (learned encoder: noise with random weights)" if standin else ""
    measures = "".join(
        f"<tr><td>{html.escape(label)}{'' if m in ENCODER_FREE else note}</td><td>{_value(row[m])}</td></tr>"
        for m, (label, _) in MEASURES.items()
        if m in row
    )
    strength = (
        "" if np.isnan(float(row["strength"])) else f" · strength {float(row['strength']):g} ({row['unit']})"
    )
    return (
        f"{STYLE}<div class='ic-validation' data-edit='{html.escape(row['edit_id'])}' data-vr='{_value(row['vr'])}'>"
        f"<p><b>{html.escape(row['family'])}</b> · {html.escape(row['edit'])}{html.escape(strength)}"
        f"{'' if row['in_auroc'] else ' · measured apart (not in the AUROC)'}</p>"
        f"<div class='ic-gallery'>{images}</div><table class='ic-table'>{measures}</table></div>"
    )


class ValidationTab:
    """The tab's widgets over one results folder; ``widget`` is what the explorer shows."""

    def __init__(self, folder, resolve, *, px: int = 192, standin: bool = False):
        import ipywidgets as W

        self.folder, self.resolve, self.px, self.standin = folder, resolve, px, standin
        self.tables = load_validation(folder)
        self.view = W.HTML()
        if self.tables is None:
            self.view.value = (
                f"<p><b>no validation tables</b> in {html.escape(str(folder))}.  Notebook 08 "
                "(<code>python -m iconicity_utils validate --config ...</code>) writes them.</p>"
            )
            self.widget = W.VBox([self.view])
            return
        scores = self.tables["scores"]
        self.family = W.Dropdown(options=[ALL, *sorted(set(scores["family"]))], description="family")
        self.edit = W.Dropdown(options=[ALL], description="edit")
        self.index = W.IntSlider(min=0, max=0, description="image", continuous_update=False)
        self.family.observe(self._on_family, "value")
        self.edit.observe(lambda _c: self._refresh(), "value")
        self.index.observe(lambda _c: self._draw(), "value")
        self.widget = W.VBox([W.HBox([self.family, self.edit]), self.index, self.view])
        self.widget.add_class("ic-validation-tab")
        self._on_family()

    def rows(self):
        """The scores rows of the selected family and edit."""
        s = self.tables["scores"]
        if self.family.value != ALL:
            s = s[s["family"] == self.family.value]
        if self.edit.value != ALL:
            s = s[s["edit"] == self.edit.value]
        return s.reset_index(drop=True)

    def _on_family(self, _change=None):
        s = self.tables["scores"]
        if self.family.value != ALL:
            s = s[s["family"] == self.family.value]
        self.edit.options = [ALL, *sorted(set(s["edit"]))]
        self.edit.value = ALL
        self._refresh()

    def _refresh(self):
        self.index.max = max(0, len(self.rows()) - 1)
        self.index.value = 0
        self._draw()

    def _draw(self):
        rows = self.rows()
        if rows.empty:
            self.view.value = "<p>no edit matches</p>"
            return
        row = rows.iloc[min(self.index.value, len(rows) - 1)]
        self.view.value = edit_card_html(row, self.resolve, self.px, self.standin)
