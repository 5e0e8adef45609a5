"""`python -m minewatch` is the `minewatch` command."""

import sys

from minewatch.cli import main

sys.exit(main())
