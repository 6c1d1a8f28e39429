"""Stage 01: collect the cultural references from Wikidata, and their reference images (docs/method.md §1).

- :mod:`~iconicity_utils.collect.collection`: the front door, :func:`collect_references` (and the
  notebook's figure :func:`plot_distributions`); the references table's columns;
- :mod:`~iconicity_utils.collect.querying`: the stage's queries run, page after page, and the endpoint
  opened (a URL, or the demo's local server, by name);
- :mod:`~iconicity_utils.collect.queries`: the SPARQL text; :mod:`~iconicity_utils.collect.parse`: the
  responses into the references table; :mod:`~iconicity_utils.collect.labels`: base prompts and slugs;
- :mod:`~iconicity_utils.collect.subjects`: class-level subjects (which depicts / main subject
  values are classes) and aliases; :mod:`~iconicity_utils.collect.controls`: matched non-iconic
  controls;
- :mod:`~iconicity_utils.collect.recording`: raw responses saved, and replayed (``--use-saved-responses``);
- :mod:`~iconicity_utils.collect.sparql`: safe query values, SPARQL-JSON, the SPARQL client (on the
  polite HTTP client of :mod:`iconicity_utils.core.http`);
- :mod:`~iconicity_utils.collect.reference_images`: the images of every reference (stills, pHash
  dedup, the per-image table), with :mod:`~iconicity_utils.collect.commons` for Wikimedia Commons;
- :mod:`~iconicity_utils.collect.cli`: ``python -m iconicity_utils collect``.
"""

from iconicity_utils.collect.collection import collect_references, plot_distributions
from iconicity_utils.collect.reference_images import images_table_path, plot_reference_examples

__all__ = ["collect_references", "images_table_path", "plot_distributions", "plot_reference_examples"]
