"""Path and query parameters shared by several domains."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from api.schemas import Code, UtcTime

MineCode = Annotated[Code, Path(description="Mine code", examples=["140100000001"])]
Since = Annotated[UtcTime | None, Query(description="From this time on (RFC 3339 with offset), inclusive")]
Until = Annotated[UtcTime | None, Query(description="Before this time (RFC 3339 with offset), exclusive")]
