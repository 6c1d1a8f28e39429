"""explore: look at the score tables and move the thresholds (notebook 07, also served with Voilà).

- :mod:`~iconicity_utils.explore.data`: load a results folder (:func:`load_results`);
- :mod:`~iconicity_utils.explore.tables`: re-threshold stored similarities with the stage 03-04
  functions (:func:`recompute`) and the tables of the tabs; pure, no widget, no encoder;
- :mod:`~iconicity_utils.explore.render`: the hand-written HTML (gallery, metrics, summary,
  variants, refusal), the overview scatter and the feature figure;
- :mod:`~iconicity_utils.explore.served`: what a page served by Voilà may open (the query string
  checked against the served roots);
- :mod:`~iconicity_utils.explore.app`: the widget app :class:`Explorer`;
- :mod:`~iconicity_utils.explore.page`: notebook 07's front door :func:`open_explorer` (the app,
  or a :class:`Refusal` when a served page asks for what it may not open).
"""

from iconicity_utils.explore.app import Explorer
from iconicity_utils.explore.data import Results, load_results
from iconicity_utils.explore.page import Refusal, open_explorer
from iconicity_utils.explore.tables import Thresholds, recompute

__all__ = ["Explorer", "Refusal", "open_explorer", "Results", "load_results", "Thresholds", "recompute"]
