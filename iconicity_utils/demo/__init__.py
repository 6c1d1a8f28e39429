"""The embedded demo's stand-ins: what lets the whole study run offline on a 2-core CPU.

Nothing here is science, and the science code never imports it: the stages reach a demo provider
by its registered name (:mod:`iconicity_utils.core.plugins`, entry points in ``pyproject.toml``).

- :mod:`~iconicity_utils.demo.standins`: tiny random-weight models, encoders and captioners, built from
  configs and saved to disk, so that ``from_pretrained`` on a local folder takes the hub-id path
  (``iconicity demo --config configs/demo.yaml``);
- :mod:`~iconicity_utils.demo.oxigraph`: a local SPARQL endpoint serving a small snapshot written in
  Wikidata's vocabulary (``collection.endpoint: local``);
- :mod:`~iconicity_utils.demo.synthetic_references`: labelled synthetic reference images
  (``collection.reference_images: synthetic``);
- :mod:`~iconicity_utils.demo.caption_corpus`: a synthetic caption corpus with counts known by
  construction (``correlates.frequency.synthetic_corpus: true``).

Every output made with them carries the label "random-weight stand-in models: not scientific results".
"""

__all__: list[str] = []
