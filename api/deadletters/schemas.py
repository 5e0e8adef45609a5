"""Response models of the dead-letters domain."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from api.schemas import ApiModel, Page

# Characters of each payload a list shows. A dead letter may hold up to 1 MiB (minewatch/text.py);
# forty of them made a 629 MB response and a 2.7 GB API process before lists showed a preview.
# A thousand characters tell a person what arrived; the whole item is one request away.
PREVIEW_CHARS = 1000
# `detail` is the rejection's explanation, written by the ingest (capped there at 4 000 too).
DETAIL_CHARS = 4000


class _DeadLetterBase(ApiModel):
    id: int
    received_at: datetime
    source: str = Field(description="mqtt | file | sparkplug")
    topic: str | None
    file: str | None
    line: int | None
    mine: str | None = Field(description="The mine the input claimed, when it could be told")
    reason: str
    detail: str
    payload_bytes: int = Field(description="Size in bytes of the payload as it arrived")
    reprocessed_at: datetime | None


class DeadLetterOut(_DeadLetterBase):
    """One rejected item or message in a list: a preview of its payload and where the whole is."""

    payload: str = Field(description=f"The first {PREVIEW_CHARS} characters of the stored payload")
    payload_truncated: bool = Field(description="Whether `payload` is less than what arrived")
    href: str = Field(description="The whole dead letter: GET /v1/dead-letters/{id}")


class DeadLetterDetail(_DeadLetterBase):
    """One dead letter with the whole payload the store kept."""

    payload: str = Field(description="The stored payload as text (NUL and invalid UTF-8 replaced by U+FFFD)")
    payload_raw: str | None = Field(
        description="Base64 of the original bytes when they are not exactly `payload` (invalid UTF-8, NUL); "
                    "else null")
    payload_truncated: bool = Field(
        description="Whether the store cut the payload (input over 1 MiB is kept to its first MiB)")


class DeadLetterPage(Page[DeadLetterOut]):
    """A page of dead letters, newest first."""
