"""The ingest package's base error; third-party errors are translated into it at the edge."""

from minewatch.errors import MinewatchError


class IngestError(MinewatchError):
    """Ingest could not do its work (database or broker trouble, bad configuration)."""


class UnstorableBatch(IngestError):
    """The database refused a batch's data (not its availability): retrying it unchanged fails forever."""
