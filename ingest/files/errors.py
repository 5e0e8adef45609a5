"""Errors of the upload-file parser: a whole file that is incomplete or rejected."""

from __future__ import annotations

from ingest.errors import IngestError

# Why a whole file is refused (as opposed to one bad record inside it).
REJECT_REASONS: tuple[str, ...] = (
    "bad_file_name",  # name is not `{mine}_{TYPE}_{yyyyMMddHHmmss}.txt`
    "unknown_type",  # TYPE is not one of the safety-monitoring file types
    "bad_encoding",  # neither UTF-8 nor GBK/GB18030
    "bad_header",  # no header record, wrong field count or unparseable header times
    "mine_mismatch",  # mine code in the file name differs from the header's
    "too_many_errors",  # more bad records than the source's limit: one dead letter for the file
)


class FileFormatError(IngestError):
    """Base of every error the upload-file parser raises on purpose (an `IngestError`)."""


class IncompleteFile(FileFormatError):
    """The `||` terminator is missing: the file is still being written or was cut off.

    The caller must leave the file alone (and look again later); nothing in it is parsed.
    """


class FileRejected(FileFormatError):
    """The whole file is unusable; `reason` is one of `REJECT_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
