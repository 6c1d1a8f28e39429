"""Running the whole study: the numbered notebooks in order, and the checks before a real run.

- :mod:`~iconicity_utils.pipeline.runner`: execute ``notebooks/NN_*.ipynb`` with papermill and write an
  HTML copy of each, readable offline (``iconicity run``, which ``run_all.sh`` calls);
- :mod:`~iconicity_utils.pipeline.preflight`: device, hub access, configs, disk, stills and SPARQL,
  checked before a run (``iconicity preflight``).
"""

from iconicity_utils.pipeline.runner import run_notebooks

__all__ = ["run_notebooks"]
