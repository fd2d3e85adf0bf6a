"""``python -m datashare``: the same as the ``datashare`` command."""

import sys

from datashare.tools.cli import entry

sys.exit(entry())
