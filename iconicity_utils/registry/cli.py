"""The command line of this stage (``iconicity registry``)."""

from iconicity_utils.registry import main

__all__ = ["main"]
