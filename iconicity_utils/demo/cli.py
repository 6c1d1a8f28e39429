"""The command line of this stage (``iconicity demo``)."""

from iconicity_utils.demo.standins import main

__all__ = ["main"]
