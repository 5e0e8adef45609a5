"""Dead-letter lists carry a bounded preview; the whole payload (and its raw bytes) is one request away.

Forty 1 MiB dead letters once made a 629 MB list response and a 2.7 GB API process (issue 15).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.deadletters.schemas import PREVIEW_CHARS
from minewatch.text import MAX_PAYLOAD_BYTES
from tests.api.conftest import NOW, auth
from tests.api.live import ApiProcess
from tests.api.scenario import M1, M3, World

pytestmark = [pytest.mark.integration]

BIG = 60  # dead letters of a full MiB each (the store's cap): 60 MiB in the table
# What one list item may weigh: the preview (up to 4 bytes a character in UTF-8, 6 as a JSON
# \u escape) and the other fields.
ITEM_MAX_BYTES = PREVIEW_CHARS * 6 + 2_000
# The API process's RSS (real process, /proc) after listing and fetching them: it starts near
# 100-150 MB; one whole dead letter in a response is ~1 MiB, however many there are.
RSS_BOUND_KIB = 350 * 1024


async def _insert_big(pool: asyncpg.Pool) -> dict[str, int]:
    """BIG large dead letters of M1, and one of M1 whose text is a repair of invalid UTF-8."""
    big = ("测" * (MAX_PAYLOAD_BYTES // 3))  # 1 MiB of UTF-8, 349 525 characters
    rows = [(NOW - timedelta(minutes=1, seconds=i), f"mines/{M1}/safety", M1, "bad_json", big, None,
             3 * 1024 * 1024) for i in range(BIG)]
    raw = b'{"v": "\xff\xfe\x00"}'
    rows.append((NOW - timedelta(seconds=30), f"mines/{M1}/safety", M1, "bad_encoding",
                 raw.decode("utf-8", "replace").replace("\x00", "\ufffd"), raw, len(raw)))
    await pool.executemany(
        "INSERT INTO dead_letters(received_at, source, topic, mine_code, reason, payload, payload_raw, payload_bytes) "
        "VALUES ($1, 'mqtt', $2, $3, $4, $5, $6, $7)", rows)
    ids = {r["reason"]: r["id"] for r in await pool.fetch(
        "SELECT reason, max(id) AS id FROM dead_letters WHERE mine_code = $1 GROUP BY reason", M1)}
    return ids


@pytest.fixture(scope="module")
def big_letters(db: str, world: World) -> dict[str, int]:
    async def go() -> dict[str, int]:
        pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
        try:
            return await _insert_big(pool)
        finally:
            await pool.close()
    return asyncio.run(go())


@pytest.fixture(scope="module")
def api(db: str, big_letters: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    with ApiProcess(db, tmp_path_factory.mktemp("api") / "api.log") as proc:
        yield proc


def test_a_list_of_large_dead_letters_stays_small(api: ApiProcess, world: World, big_letters: dict[str, int]) -> None:
    with httpx.Client(base_url=api.url, headers=auth(world, "mine1"), timeout=30) as c:
        r = c.get("/v1/dead-letters", params={"limit": 40, "reason": "bad_json"})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert len(items) == 40 and r.json()["next_cursor"]
        assert len(r.content) < 40 * ITEM_MAX_BYTES, len(r.content)
        for d in items:
            assert len(d["payload"]) == PREVIEW_CHARS and d["payload"] == "测" * PREVIEW_CHARS
            assert d["payload_truncated"] is True and d["payload_bytes"] == 3 * 1024 * 1024
            assert d["href"] == f"/v1/dead-letters/{d['id']}"
        # every page, all the way down, and the process stays bounded
        cursor = r.json()["next_cursor"]
        while cursor:
            r = c.get("/v1/dead-letters", params={"limit": 40, "cursor": cursor})
            assert r.status_code == 200 and len(r.content) < 40 * ITEM_MAX_BYTES
            cursor = r.json()["next_cursor"]
        for _ in range(5):
            assert c.get("/v1/dead-letters", params={"limit": 1000}).status_code == 200
        small = [d for d in c.get("/v1/dead-letters", params={"since": (NOW - timedelta(minutes=10)).isoformat(),
                                                                 "reason": "unknown_point"}).json()["items"]]
        assert [d["payload_truncated"] for d in small] == [False] and small[0]["payload"] == '{"x": 1}'
    print(f"dead letters: peak RSS {api.rss_kib('VmHWM')} KiB after listing {BIG} x 1 MiB")
    assert api.rss_kib("VmHWM") < RSS_BOUND_KIB, api.rss_kib("VmHWM")


def test_the_whole_item_and_its_raw_bytes(api: ApiProcess, world: World, big_letters: dict[str, int]) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        big = c.get(f"/v1/dead-letters/{big_letters['bad_json']}", headers=auth(world, "mine1"))
        assert big.status_code == 200, big.text
        d = big.json()
        assert d["payload"] == "测" * (MAX_PAYLOAD_BYTES // 3) and d["payload_raw"] is None
        assert d["payload_truncated"] is True and d["payload_bytes"] == 3 * 1024 * 1024  # cut at write
        bad = c.get(f"/v1/dead-letters/{big_letters['bad_encoding']}", headers=auth(world, "admin")).json()
        assert base64.b64decode(bad["payload_raw"]) == b'{"v": "\xff\xfe\x00"}'
        assert bad["payload"] == '{"v": "\ufffd\ufffd\ufffd"}' and bad["payload_truncated"] is False
        for _ in range(10):
            assert c.get(f"/v1/dead-letters/{big_letters['bad_json']}", headers=auth(world, "admin")).status_code == 200
    assert api.rss_kib("VmHWM") < RSS_BOUND_KIB, api.rss_kib("VmHWM")


@pytest.mark.parametrize(("label", "status"), [("admin", 200), ("mine1", 200), ("county_qx", 200),
                                               ("mine2", 404), ("county_gj", 404), ("anonymous", 401)])
def test_the_whole_item_is_scoped_like_the_list(api: ApiProcess, world: World, big_letters: dict[str, int],
                                                label: str, status: int) -> None:
    headers = {} if label == "anonymous" else auth(world, label)
    r = httpx.get(f"{api.url}/v1/dead-letters/{big_letters['bad_encoding']}", headers=headers, timeout=30)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.headers["content-type"] == "application/problem+json"


def test_mine3_letter_and_ids_out_of_range(api: ApiProcess, world: World) -> None:
    with httpx.Client(base_url=api.url, headers=auth(world, "admin"), timeout=30) as c:
        items = c.get("/v1/dead-letters", params={"mine": M3}).json()["items"]
        assert items and c.get(items[0]["href"], headers=auth(world, "county_qx")).status_code == 404
        assert c.get(items[0]["href"], headers=auth(world, "county_gj")).status_code == 200
        for bad, status in (("0", 422), ("-1", 422), (str(2**63), 422), ("9" * 400, 422), ("x", 422),
                            (str(2**63 - 1), 404), ("999999", 404)):
            r = c.get(f"/v1/dead-letters/{bad}")
            assert r.status_code == status, (bad, r.text)


def test_openapi_documents_the_preview_and_the_item(tmp_path: Path) -> None:
    from api.app import create_app
    from minewatch.settings import Settings

    doc = create_app(Settings()).openapi()
    assert "/v1/dead-letters/{dead_letter_id}" in doc["paths"]
    item = doc["components"]["schemas"]["DeadLetterOut"]["properties"]
    assert {"payload", "payload_truncated", "payload_bytes", "href"} <= set(item)
    whole = doc["components"]["schemas"]["DeadLetterDetail"]["properties"]
    assert {"payload", "payload_raw", "payload_bytes", "payload_truncated"} <= set(whole)
