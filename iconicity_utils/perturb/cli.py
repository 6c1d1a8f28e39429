"""The command line of this stage (``iconicity perturb``)."""

from iconicity_utils.perturb.perturbation import main

__all__ = ["main"]
