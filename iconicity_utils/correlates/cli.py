"""The command lines of stage 06: ``iconicity captions`` (the caption-count scan) and ``iconicity correlates``."""

from iconicity_utils.correlates.caption_counts import main as captions_main
from iconicity_utils.correlates.correlates import main

__all__ = ["captions_main", "main"]
