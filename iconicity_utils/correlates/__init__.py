"""Stage 06, correlates of recognition: which references does a model recognise, and why? (docs/method.md §6)

Front doors: :func:`run` (counts, covariates, Spearman and GLM tables, all written),
:func:`frequency_counts` and :func:`count_captions` (the caption count alone), the figures, and
:func:`compare_expected` (the demo's synthetic corpus against its known counts).  Behind them:

- :mod:`~iconicity_utils.correlates.front_door`: :func:`run`, the scores joined with the covariates;
- :mod:`~iconicity_utils.correlates.covariates`: one row per reference: caption counts (scan or
  CSV), textual uniqueness (wordfreq, homonyms), sitelinks, year, page views;
- :mod:`~iconicity_utils.correlates.pageviews`: Wikipedia page views over a cached HTTP client;
- :mod:`~iconicity_utils.correlates.stats`: Spearman with bootstrap CIs and BH;
- :mod:`~iconicity_utils.correlates.glm`: the binomial GLM with quasi-binomial and clustered errors,
  per kind, with popularity combined, separation named;
- :mod:`~iconicity_utils.correlates.sensitivity`: ρ per count mode, with ambiguous titles left
  out; the caption samples; the title count under both normalisations;
- :mod:`~iconicity_utils.correlates.aliases`: stage 01's aliases of each work, and which count
  only with evidence (the ``aliases`` count mode);
- :mod:`~iconicity_utils.correlates.figures`: the figures of notebook 06;
- the caption count: :mod:`~iconicity_utils.correlates.normalise` (titles and captions normalised
  by Arrow kernels), :mod:`~iconicity_utils.correlates.matcher` (titles as patterns, the
  Aho-Corasick matcher), :mod:`~iconicity_utils.correlates.modes` (count modes: the title with
  the creator, with context; ambiguity; caption samples), :mod:`~iconicity_utils.correlates.counting` (one batch: word boundaries,
  one hit per caption and title), :mod:`~iconicity_utils.correlates.corpus` (the shards, the
  synthetic corpus by name), :mod:`~iconicity_utils.correlates.scan` (sharded, resumable, on every
  core; the counts table);
- :mod:`~iconicity_utils.correlates.cli`: ``python -m iconicity_utils correlates`` and ``captions``.
"""

from iconicity_utils.correlates.corpus import compare_expected
from iconicity_utils.correlates.covariates import column_provenance, frequency_counts
from iconicity_utils.correlates.figures import (
    plot_glm_coefficients,
    plot_outcome_vs_feature,
    plot_rho_heatmap,
)
from iconicity_utils.correlates.front_door import CorrelatesResult, run
from iconicity_utils.correlates.scan import count_captions, read_counts
from iconicity_utils.correlates.sensitivity import (
    caption_samples,
    mode_sensitivity,
    normalisation_sensitivity,
)

__all__ = [
    "run",
    "CorrelatesResult",
    "frequency_counts",
    "count_captions",
    "read_counts",
    "compare_expected",
    "mode_sensitivity",
    "normalisation_sensitivity",
    "caption_samples",
    "column_provenance",
    "plot_rho_heatmap",
    "plot_outcome_vs_feature",
    "plot_glm_coefficients",
]
