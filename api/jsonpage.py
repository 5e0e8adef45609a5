"""Pages whose items PostgreSQL renders as JSON: one text value per page instead of rows to decode.

For large pages the API's own cost was mostly Python: decoding a thousand timestamps into
datetime objects, validating the page with pydantic and serialising it again (~4 ms for 90
exceedance events with 180 episodes). Here the query renders each item with
`json_build_object` and `api_time()` (migration 0035: the same RFC 3339 text pydantic writes),
aggregates the page, and the response carries that text as it is. The route still declares
its pydantic model as `response_model`, so the OpenAPI document is unchanged, and the tests
(schemathesis included) check these pages against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import msgspec
from fastapi import Response

from api.pagination import CursorCodec, KeyValue


def page_sql(rows: str, *, item: str, order: str, key: Sequence[str], limit: str, rendered: bool = False) -> str:
    """Wrap `rows` (a query returning up to limit + 1 rows in `order`) into one row: `items`, the
    JSON array of the first `limit` (CTE `p`, numbered `rn`) rendered with `item`; `more`, whether
    a further row exists; and the `key` columns of the page's last row (null unless the page is
    full).

    A record rendered by `to_json` costs PostgreSQL less than `json_build_object` with its
    variadic arguments: items are written `(SELECT o FROM (SELECT ... AS field, ...) o)`.
    With `rendered`, `item` is already JSON text (a column kept rendered, migration 0037) and the
    page only joins it."""
    # Every fragment is SQL written in this package and `limit` a placeholder; values are parameters.
    agg = f"'[' || string_agg({item}, ',' ORDER BY rn) || ']'" if rendered else f"json_agg({item} ORDER BY rn)"
    keys = ", ".join(f"(SELECT p.{k} FROM p WHERE rn = {limit}) AS key{i}" for i, k in enumerate(key))  # noqa: S608
    return (f"WITH r AS ({rows}), "  # noqa: S608
            f"p AS (SELECT r.*, row_number() OVER (ORDER BY {order}) AS rn FROM r ORDER BY {order} LIMIT {limit})"
            f" SELECT coalesce((SELECT {agg} FROM p), '[]')::text AS items, "
            f"(SELECT count(*) FROM r) > {limit} AS more, {keys}")


def next_cursor(codec: CursorCodec, kind: str, row: asyncpg.Record, parts: int) -> str | None:
    """The cursor after the page's last row when `page_sql` found more rows; else None."""
    if not row["more"]:
        return None
    key: list[KeyValue] = [row[f"key{i}"] for i in range(parts)]
    return codec.encode(kind, key)


def page_response(row: asyncpg.Record, cursor: str | None, head: Mapping[str, Any] | None = None) -> Response:
    """`{...head, "items": [...], "next_cursor": ...}` with the items text spliced in unparsed."""
    start = msgspec.json.encode(dict(head or {}))[:-1]  # the head object without its closing brace
    sep = b"," if len(start) > 1 else b""
    body = b"".join((start, sep, b'"items":', row["items"].encode(), b',"next_cursor":',
                     msgspec.json.encode(cursor), b"}"))
    return Response(content=body, media_type="application/json")
