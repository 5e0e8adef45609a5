"""Minewatch shared core: settings, clock, registry, database and embedded servers."""

__version__ = "0.1.0"
