"""The command lines of the pipeline: ``iconicity preflight`` and ``iconicity run`` (the notebooks)."""

from iconicity_utils.pipeline.preflight import main as preflight_main
from iconicity_utils.pipeline.runner import main as run_main

__all__ = ["preflight_main", "run_main"]
