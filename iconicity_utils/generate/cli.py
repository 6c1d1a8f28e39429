"""The command line of this stage (``iconicity generate``)."""

from iconicity_utils.generate.generation import main

__all__ = ["main"]
