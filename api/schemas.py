"""Types shared by every domain: pages, problems, UTC times, safe text and bounded ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from minewatch.text import MAX_ID as MAX_ID  # re-exported: the API's id bounds
from minewatch.text import SafeText as SafeText  # re-exported: free text from clients

T = TypeVar("T")

# Times the API accepts: with an offset, and far enough from datetime's limits
# that adding a year of range arithmetic can never overflow (a 500 otherwise).
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


# RFC 3339 date-time with an offset; without this gate pydantic would also take "0.5" or
# "1700000000" as epoch seconds, which the OpenAPI `format: date-time` does not allow.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("time must be RFC 3339 with an offset, e.g. 2026-11-23T08:15:00+08:00")
    if not isinstance(value, str | datetime):
        raise ValueError("time must be an RFC 3339 string")
    return value


def _utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time out of range") from exc
    if not _EARLIEST <= utc < _LATEST:
        raise ValueError("time out of range (1900-01-01 .. 9000-01-01 UTC)")
    return utc


UtcTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_utc)]
"""An input time: RFC 3339 with an offset, converted to UTC, within a sane range."""


CODE_PATTERN, CODE_MAX = r"^[0-9A-Za-z_\-]+$", 40
Code = Annotated[str, Field(min_length=1, max_length=CODE_MAX, pattern=CODE_PATTERN)]
"""A mine, point, station or card code (the registry's alphabet)."""


def is_code(value: str | None) -> bool:
    """Whether `value` passes `Code` (for code paths that run before request validation)."""
    return value is not None and len(value) <= CODE_MAX and _CODE_RE.fullmatch(value) is not None


_CODE_RE = re.compile(CODE_PATTERN)

RecordId = Annotated[int, Field(ge=1, le=MAX_ID)]


class ApiModel(BaseModel):
    """Base of response models: fields are exactly those declared."""

    model_config = ConfigDict(extra="forbid")


class Page(ApiModel, Generic[T]):
    """One page of a list; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page")


class ValidationIssue(BaseModel):
    """One field that failed validation."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable URI naming the kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ValidationIssue] | None = None


def jsonable(value: Any) -> Any:
    """asyncpg's jsonb comes back as text; decode it for response models (msgspec: several
    times faster than json.loads, which shows on pages with hundreds of threshold sets)."""
    if isinstance(value, str):
        return msgspec.json.decode(value)
    return value
