"""The command line of this stage (``iconicity score``)."""

from iconicity_utils.score.scoring import main

__all__ = ["main"]
