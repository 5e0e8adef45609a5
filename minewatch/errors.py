"""The base error of the shared core; each package derives its own from it."""


class MinewatchError(Exception):
    """Base of every error Minewatch raises on purpose."""


class ConfigError(MinewatchError):
    """A settings, registry or rule-pack file is invalid; the message names file, entry and problem."""


class DatabaseError(MinewatchError):
    """The database refused or could not be reached; translated from asyncpg at the edge."""
