"""The errors of the rules package, all derived from one base."""

from __future__ import annotations

from minewatch.errors import ConfigError, MinewatchError


class RulesError(MinewatchError):
    """Base of every error the rules package raises on purpose (bad kernel input included)."""


class PackError(RulesError, ConfigError):
    """A rule pack is invalid; the message names the file, the key and the allowed values."""
