"""`python -m simulators ...`: the simulator CLI without the minewatch wrapper."""

from simulators.cli import main

raise SystemExit(main())
