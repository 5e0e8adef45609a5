"""`python -m launcher` is the `minewatch` command."""

import os
import sys

from launcher.cli import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.exit(main())
