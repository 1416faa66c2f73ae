"""``python -m atlas.cli``: the same as the ``atlas`` console script."""

import sys

from atlas.cli import main

sys.exit(main())
