"""Fuzzing the drop directory (issue 15): hostile records, files and names interleaved with valid uploads.

Each hypothesis example builds a drop directory of a few dozen items: valid CDSS uploads whose
records are interleaved with hostile ones (random text, NUL, huge numbers, extreme times,
oversized fields, unknown or foreign points), whole hostile files (random bytes, no
terminator, over the size cap, over the error cap), hostile names (newlines, bytes that are
not UTF-8, `..`, 250 characters, backslashes) and entries that are not files (links, FIFOs).
One real watcher process (`ingest-files --once`) takes the lot. Checked: it exits 0 within its
timeout (no crash, no hang); every valid record is stored exactly once and nothing else is;
every hostile record is one dead letter of its file, every hostile file at least one; the
drop is left empty; and the process's peak RSS stays under `RSS_BOUND_MB`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingest.files.source import display_name
from ingest.files.watch import PROCESSING
from tests.ingest.files_db.drop_helpers import run_watcher
from tests.ingest.files_db.helpers import MINE, fetch

pytestmark = pytest.mark.integration

POINTS = [f"{MINE}_01MN0001_T{n:04d}" for n in (3, 4, 5, 6, 13, 14, 15, 16)]
CST = ZoneInfo("Asia/Shanghai")
# The watcher reads no file over this in the fuzz runs (the default is 32 MiB; a small cap
# keeps the oversized files cheap to write).
MAX_FILE_BYTES = 256 * 1024
# Python + asyncpg at rest: ~65 MB; the parsed files of a run add a few MB. A leak per hostile item or an unbounded
# parse (the 4.95 GB) would blow far past this.
RSS_BOUND_MB = 200
EXAMPLES = 5

# Times of valid records: a window two days ago (inside retention, not in the future), one
# second per record, never reused across examples.
_BASE = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
_seconds = itertools.count()
_stamps = itertools.count()
TOTALS = {"hostile_records": 0, "hostile_files": 0, "valid_records": 0, "runs": 0, "max_rss_mb": 0.0}


def _local(when: datetime) -> str:
    return when.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def _stamp() -> str:
    return (_BASE + timedelta(seconds=next(_stamps))).astimezone(CST).strftime("%Y%m%d%H%M%S")


def _header(stamp: int) -> str:
    # The upload time differs per file, so no two files share their bytes (the ledger would
    # rightly call the second `already_done` and dead-letter nothing).
    return f"{MINE};测试煤矿;KJ95X;安全监控;测试;2026-12-31;{_local(_BASE + timedelta(seconds=stamp))}"


def _file(*records: str) -> bytes:
    return "".join(r + "~\n" for r in (_header(next(_stamps)), *records)).encode() + b"||"


@dataclass
class Drop:
    """What an example put in the drop directory, and what must come of it."""

    valid: set[tuple[str, datetime, float]] = field(default_factory=set)
    hostile_records: dict[str, list[str]] = field(default_factory=dict)  # file -> hostile records in it
    hostile_files: list[tuple[str, str]] = field(default_factory=list)  # (name as stored, kind) of whole hostile items
    never_stored: dict[tuple[str, datetime], str] = field(default_factory=dict)  # records of refused files -> kind


def _valid_record(draw: st.DrawFn) -> tuple[str, tuple[str, datetime, float]]:
    point = draw(st.sampled_from(POINTS))
    when = _BASE + timedelta(seconds=next(_seconds))
    value = draw(st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3)))
    status = draw(st.sampled_from(["0", "1", "", "8", "129"]))
    return f"{point};甲烷;回风巷;{value!r};%CH4;{status};{_local(when)}", (point, when, value)


_TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="~")
_FIELD = st.characters(exclude_categories=("Cs",), exclude_characters="~;")
_BAD_FIELDS = {
    3: ["1e400", "-1e400", "nan", "inf", "9" * 400, "0x10", "", "1,5", "一"],
    5: ["-1", "99999999999999999999999", "1.5", "x", "65536"],
    6: ["0001-01-01 00:00:00", "9999-12-31 23:59:59", "1990-01-01 00:00:00", "2024-02-30 12:00:00",
        "2024-13-01 00:00:00", "", "20240514", "2024-05-14T25:00:00"],
    0: [f"{MINE}_01MN0001_T9999", "140100000002_01MN0001_T0003", "", "X" * 5000, f"{MINE}_01MN0001_T0003" + "9" * 50],
}


@st.composite
def hostile_record(draw: st.DrawFn) -> str:
    """One record that must become exactly one dead letter (never a reading, never skipped)."""
    kind = draw(st.sampled_from(["text", "mutated", "mutated", "fields", "nul"]))
    if kind == "text":
        text = draw(st.text(_TEXT, min_size=1, max_size=300))
        return text if text.strip() else text + "?"
    if kind == "nul":
        return "\x00" + draw(st.text(_TEXT, max_size=50))
    if kind == "fields":
        n = draw(st.sampled_from([1, 2, 6, 8, 24, 300]))
        text = ";".join(draw(st.text(_FIELD, max_size=8)) for _ in range(n))
        return text if text.strip() else text + "?"  # a blank record is skipped, not an error
    record, _ = _valid_record(draw)
    fields = record.split(";")
    at = draw(st.sampled_from(sorted(_BAD_FIELDS)))
    fields[at] = draw(st.sampled_from(_BAD_FIELDS[at]))
    return ";".join(fields)


_NAME_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="/\x00")


@st.composite
def drop_contents(draw: st.DrawFn) -> tuple[list[tuple[str | bytes, bytes | None, str]], Drop]:
    """(entries as (name, bytes or None for a special entry, what), expectations) for one run."""
    out: list[tuple[str | bytes, bytes | None, str]] = []
    expect = Drop()
    for _ in range(draw(st.integers(5, 7))):  # valid uploads with hostile records between the valid ones
        records: list[str] = []
        hostile: list[str] = []
        for _ in range(draw(st.integers(60, 100))):
            if draw(st.booleans()):
                text, key = _valid_record(draw)
                expect.valid.add(key)
            else:
                text = draw(hostile_record())
                hostile.append(text)
            records.append(text)
        name = f"{MINE}_CDSS_{_stamp()}.txt"
        out.append((name, _file(*records), "mixed"))
        expect.hostile_records[name] = hostile
    for _ in range(draw(st.integers(8, 12))):  # whole hostile items
        kind = draw(st.sampled_from(["bytes", "bytes", "name", "name", "rawname", "big", "errors", "link", "fifo",
                                     "dotdot", "long"]))
        records = []
        for _ in range(3):
            text, key = _valid_record(draw)
            records.append(text)
            expect.never_stored[key[:2]] = kind
        good = _file(*records)
        name: str | bytes = f"{MINE}_CDSS_{_stamp()}.txt"
        data: bytes | None = good
        if kind == "bytes":
            data = draw(st.binary(max_size=4000)) + draw(st.sampled_from([b"", b"||", b"~||"]))
        elif kind == "name":
            name = draw(st.text(_NAME_CHARS, min_size=1, max_size=60)).lstrip(".") + "\n" + name
        elif kind == "rawname":
            name = draw(st.binary(min_size=1, max_size=20).filter(lambda b: b"/" not in b and b"\0" not in b))
            name = b"\xff" + name + b".txt"
        elif kind == "big":
            data = _file(*records * (MAX_FILE_BYTES // 3 // min(map(len, records)) + 1))
            assert len(data) > MAX_FILE_BYTES
        elif kind == "errors":
            data = _file(*records, *["x"] * 1001)
        elif kind == "dotdot":
            name = ".." + str(name)
        elif kind == "long":
            name = "9" * 226 + str(name)[-24:]
        elif kind in ("link", "fifo"):
            data = None
        shown = display_name(os.fsdecode(name) if isinstance(name, bytes) else name)
        out.append((name, data, kind))
        expect.hostile_files.append((shown, kind))
    return out, expect


def _materialise(drop: Path, target: Path, entries: list[tuple[str | bytes, bytes | None, str]]) -> None:
    for name, data, kind in entries:
        path = os.path.join(os.fsencode(drop), os.fsencode(name))
        if kind == "link":
            os.symlink(target, path)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            assert data is not None
            with open(path, "wb") as f:
                f.write(data)


async def _check(db: str, expect: Drop) -> None:
    lo, hi = _BASE, _BASE + timedelta(days=1)
    rows = await fetch(db, "SELECT p.code, r.ts, r.value FROM readings r JOIN points p ON p.id = r.point_id "
                           "WHERE p.code = ANY($1::text[]) AND r.ts >= $2 AND r.ts < $3", POINTS, lo, hi)
    stored = [(r["code"], r["ts"], r["value"]) for r in rows]
    mine = {(p, t) for p, t, _ in expect.valid}
    ours = [s for s in stored if s[:2] in mine]
    assert sorted(ours) == sorted(expect.valid)  # every valid record, once, with its value
    leaked = {expect.never_stored[s[:2]] for s in stored if s[:2] in expect.never_stored}
    assert not leaked  # nothing of a refused file
    for name, texts in expect.hostile_records.items():
        letters = await fetch(db, "SELECT reason, payload FROM dead_letters WHERE file = $1", name)
        payloads = {r["payload"] for r in letters}
        missing = [t for t in texts if t.strip().replace("\x00", "\ufffd") not in payloads]
        assert len(letters) == len(texts) and not missing, (name, missing)
    for name, kind in expect.hostile_files:
        [count] = await fetch(db, "SELECT count(*) AS n FROM dead_letters WHERE file = $1", name)
        assert count["n"] >= 1, (name, kind)


# No shrinking: each example is a real process over dozens of files; a failure prints its
# example (derandomized, so it reproduces) and shrinking it would cost minutes.
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(drop_contents())
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # the example's repr is large
def test_fuzz_the_drop_directory(db: str, contents: tuple[list[tuple[str | bytes, bytes | None, str]], Drop]) -> None:
    entries, expect = contents
    root = Path(tempfile.mkdtemp(prefix="fuzz-drop-"))
    try:
        drop, archive, quarantine = root / "drop", root / "archive", root / "quarantine"
        drop.mkdir()
        target = root / "linked.txt"
        target.write_bytes(_file())
        _materialise(drop, target, entries)
        run = run_watcher(db, drop, archive, quarantine, "--incomplete-timeout-s", "0", "--max-file-bytes",
                          str(MAX_FILE_BYTES), env={"MINEWATCH_RETENTION_DAYS": "730"}, timeout=180)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.max_rss_mb < RSS_BOUND_MB, run.max_rss_mb
        asyncio.run(_check(db, expect))
        assert sorted(os.listdir(drop)) == [PROCESSING] and not os.listdir(drop / PROCESSING)
        TOTALS["runs"] += 1
        TOTALS["hostile_records"] += sum(map(len, expect.hostile_records.values()))
        TOTALS["hostile_files"] += len(expect.hostile_files)
        TOTALS["valid_records"] += len(expect.valid)
        TOTALS["max_rss_mb"] = max(TOTALS["max_rss_mb"], run.max_rss_mb)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_fuzz_run_was_big_enough() -> None:
    # Runs after the fuzz test in the same process (one file, one worker with --dist loadfile).
    if TOTALS["runs"] < EXAMPLES:
        pytest.skip("the fuzz test did not run in this process")
    print(f"fuzz totals: {TOTALS}")
    assert TOTALS["hostile_records"] + TOTALS["hostile_files"] >= 1000, TOTALS
