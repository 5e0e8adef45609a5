"""Response models of the readings domain: a raw page or a bucketed page, told apart by `kind`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from api.schemas import ApiModel


class RawReading(ApiModel):
    """One stored reading."""

    ts: datetime
    value: float
    status: int = Field(ge=0, le=65535, description="Point-status bits (formats.md), 16 of them")


class Bucket(ApiModel):
    """The readings of one bucket [bucket, bucket + step)."""

    bucket: datetime
    min: float
    max: float
    avg: float
    last: float
    n: int = Field(description="Readings in the bucket")


class _SeriesHead(ApiModel):
    mine: str
    point: str
    unit: str
    since: datetime
    until: datetime
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page")


class RawPage(_SeriesHead):
    """Raw readings in [since, until), oldest first."""

    kind: Literal["raw"]
    step: None = None
    items: list[RawReading]


class BucketPage(_SeriesHead):
    """Buckets of `step` in [since aligned down to a bucket start, until), oldest first."""

    kind: Literal["buckets"]
    step: str
    items: list[Bucket]


SeriesPage = Annotated[RawPage | BucketPage, Field(discriminator="kind")]
