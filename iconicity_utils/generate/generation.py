"""A re-export for call sites not yet moved to the new modules (stage 05 and two tests).

Import from :mod:`iconicity_utils.generate` (``generate``, ``run_subprocess``) and
:mod:`iconicity_utils.core.constants` (``BASE_VARIANT``) instead; this module goes once nothing
imports it.
"""

from iconicity_utils.core.constants import BASE_VARIANT
from iconicity_utils.generate.launch import run_subprocess
from iconicity_utils.generate.run import generate

__all__ = ["BASE_VARIANT", "generate", "run_subprocess"]
