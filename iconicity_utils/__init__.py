"""iconicity: how text-to-image diffusion models remember culturally iconic images.

A research compendium for De Rosa Palmini & Cetinic, "The Persistence of Cultural Memory:
Investigating Multimodal Iconicity in Diffusion Models" (arXiv 2511.11435).  One module per stage:

- :mod:`~iconicity_utils.config.study`, :mod:`~iconicity_utils.registry`: study configs; models and
  encoders as data.
- :mod:`~iconicity_utils.demo.standins`: tiny random-weight stand-in models for offline runs.
- stage modules, one per numbered notebook.
"""

__version__ = "0.1.0"
