"""The command line of this stage (``iconicity collect``)."""

from iconicity_utils.collect.collection import main

__all__ = ["main"]
