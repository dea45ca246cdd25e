"""``python -m bench.soak``: see :mod:`bench.soak.cli`."""

import sys

from bench.soak.cli import main

sys.exit(main())
