"""``python -m iconicity_utils <command> ...``: see :mod:`iconicity_utils.cli`."""

import sys

from iconicity_utils.cli import main

sys.exit(main())
