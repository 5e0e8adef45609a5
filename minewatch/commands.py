"""How every Minewatch command runs once parsed: logging, settings built once, errors as one line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from minewatch.errors import MinewatchError
from minewatch.settings import Settings


def dispatch(args: argparse.Namespace, *, prog: str = "minewatch",
             describe: Callable[[MinewatchError], str] | None = None) -> int:
    """Run a parsed command (`args.func(args, settings)`) as every Minewatch entry point does:
    logging per `-v`, settings from the environment (read here, once, and passed down), a
    configuration or runtime error as one line on stderr and exit status 2, Ctrl-C as 130."""
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rc: int = args.func(args, Settings())
        return rc
    except MinewatchError as exc:
        print(describe(exc) if describe else f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def need(value: str | None, name: str) -> str:
    """A required connection setting, or an error that says what to do."""
    if not value:
        raise MinewatchError(f"{name} is not set (or use `minewatch run`, which starts embedded servers)")
    return value
