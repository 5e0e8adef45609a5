"""The drop directory: incomplete files left alone then quarantined, archive layout, the ledger against
re-ingest, and resuming a file whose run stopped half-way."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ingest.files.source import FileSourceSettings, FileSummary
from ingest.files.watch import PROCESSING, DropWatcher
from minewatch.clock import FrozenClock
from tests.ingest.files_db.helpers import (
    MINE,
    NOW,
    P_T0,
    P_T1,
    body,
    dead_letters,
    fetch,
    ingester,
    name,
    readings,
    utc,
)

pytestmark = pytest.mark.integration


def watcher(db: str, root: Path, clock: FrozenClock, **settings: object) -> DropWatcher:
    """A watcher of `root/drop`, archiving to `root/archive` and quarantining to `root/quarantine`."""
    options = FileSourceSettings(**settings)  # type: ignore[arg-type]
    (root / "drop").mkdir(exist_ok=True)
    return DropWatcher(ingester(db, clock, **settings), root / "drop", archive=root / "archive",
                       quarantine=root / "quarantine", clock=clock, settings=options)


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def test_incomplete_file_is_left_alone_until_complete_then_archived(db: str, tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    w = watcher(db, tmp_path, clock)
    file = name("CDSS", stamp="20240514133600")
    half = body(f"{P_T0};甲烷;x;0.31;%CH4;0;2024-05-14 13:36:00", end="")
    (w.drop / file).write_bytes(half[:-7])  # cut inside the last record
    try:
        assert await w.scan() == []
        clock.advance(timedelta(minutes=9))
        assert await w.scan() == []
        assert listing(tmp_path) == {f"drop/{file}"}
        assert not await fetch(db, "SELECT 1 FROM file_ledger WHERE name = $1", file)
        (w.drop / file).write_bytes(half + b"||\r\n")  # the writer finished
        [summary] = await w.scan()
    finally:
        await w.store.close()
    assert (summary.state, summary.stored) == ("done", 1)
    assert listing(tmp_path) == {f"archive/2024/05/14/{file}"}
    assert summary.moved_to == str(tmp_path / "archive/2024/05/14" / file)
    assert not list((w.drop / PROCESSING).iterdir())  # nothing left in processing
    assert (P_T0, utc("2024-05-14 05:36:00"), 0.31, 0) in await readings(db, [P_T0])


async def test_incomplete_file_is_quarantined_after_the_timeout(db: str, tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    w = watcher(db, tmp_path, clock, incomplete_timeout_s=600)
    cut, growing = name("CDSS", stamp="20240514133700"), name("CDSS", stamp="20240514133710")
    (w.drop / cut).write_bytes(body(f"{P_T0};甲烷;x;0.32;%CH4;0;2024-05-14 13:37:00", end=""))
    (w.drop / growing).write_bytes(body(f"{P_T1};甲烷;x;0.32;%CH4;0;2024-05-14 13:37:10", end=""))
    try:
        await w.scan()
        clock.advance(timedelta(minutes=9))
        # Still being written: a change restarts its clock.
        (w.drop / growing).write_bytes(body(f"{P_T1};甲烷;x;0.32;%CH4;0;2024-05-14 13:37:10",
                                              f"{P_T1};甲烷;x;0.33;%CH4;0;2024-05-14 13:37:20", end=""))
        assert await w.scan() == []
        clock.advance(timedelta(minutes=1, seconds=1))
        [summary] = await w.scan()
    finally:
        await w.store.close()
    assert (summary.name, summary.state, summary.reason) == (cut, "rejected", "incomplete")
    assert listing(tmp_path) == {f"drop/{growing}", f"quarantine/{cut}", f"quarantine/{cut}.reason"}
    reason = (tmp_path / "quarantine" / f"{cut}.reason").read_text(encoding="utf-8")
    assert "\nreason: incomplete\n" in reason and "after 601 s" in reason
    assert await dead_letters(db, cut) == [(None, "incomplete")]
    assert not await readings(db, [P_T0]) & {(P_T0, utc("2024-05-14 05:37:00"), 0.32, 0)}


async def test_refused_files_are_quarantined_with_their_reason(db: str, tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    quarantine = tmp_path / "elsewhere"
    drop = tmp_path / "drop"
    drop.mkdir()
    w = DropWatcher(ingester(db, clock), drop, archive=tmp_path / "archive", quarantine=quarantine, clock=clock)
    files = {
        "mine_mismatch": (name("CDSS", stamp="20240514133800"), body(mine="140100000002")),
        "unknown_mine": (name("CDSS", mine="999999999998", stamp="20240514133801"), body(mine="999999999998")),
        "bad_file_name": ("readme.txt", b"hello||"),
    }
    for file, data in files.values():
        (drop / file).write_bytes(data)
    (drop / "upload.tmp").write_bytes(b"partial")  # not a .txt name: a transfer in progress
    (drop / ".hidden.txt").write_bytes(b"x")
    try:
        summaries = await w.scan()
    finally:
        await w.store.close()
    assert sorted((s.reason, s.name) for s in summaries) == sorted((r, f) for r, (f, _) in files.items())
    assert listing(drop) == {"upload.tmp", ".hidden.txt"}  # reported once in the log, left alone
    assert listing(quarantine) == {x for _, (f, _) in files.items() for x in (f, f"{f}.reason")}
    for reason, (file, _) in files.items():
        assert f"\nreason: {reason}\n" in (quarantine / f"{file}.reason").read_text(encoding="utf-8")
        assert await dead_letters(db, file) == [(None, reason)]


async def test_the_ledger_prevents_a_second_ingest_of_the_same_content(db: str, tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    w = watcher(db, tmp_path, clock)
    file = name("CDSS", stamp="20240514133900")
    data = body(f"{P_T0};甲烷;x;0.34;%CH4;0;2024-05-14 13:39:00", f"{MINE}_01MN0001_T9999;x;x;1;;0;2024-05-14 13:39:00")
    try:
        (w.drop / file).write_bytes(data)
        [first] = await w.scan()
        (w.drop / file).write_bytes(data)  # uploaded again, same bytes
        [second] = await w.scan()
        (w.drop / file).write_bytes(data.replace(b"0.34", b"0.35"))  # same name, other content
        [third] = await w.scan()
    finally:
        await w.store.close()
    assert (first.state, first.stored, dict(first.rejected)) == ("done", 1, {"unknown_point": 1})
    assert second.state == "already_done"
    assert (third.state, third.stored, third.duplicates, dict(third.rejected)) == (
        "done", 0, 0, {"duplicate_conflict": 1, "unknown_point": 1})
    # One dead letter per rejected record and run: the repeated upload added none.
    assert await dead_letters(db, file) == [(2, "duplicate_conflict"), (3, "unknown_point"), (3, "unknown_point")]
    day = tmp_path / "archive/2024/05/14"
    assert {p.name for p in day.iterdir()} >= {file}
    assert len([p for p in day.iterdir() if p.name.startswith(file[:-4])]) == 2  # the other content kept beside
    assert listing(tmp_path) - {f"archive/2024/05/14/{p.name}" for p in day.iterdir()} == set()


async def test_a_run_stopped_after_a_chunk_resumes_without_loss_or_repeat(fresh_db: str) -> None:
    points = [f"{MINE}_01MN0001_T{n:04d}" for n in (3, 4, 5, 6, 13, 14, 15, 16)]
    records = [f"{p};甲烷;x;{(i % 50) / 100};%CH4;0;2024-05-14 13:{i // 8 // 6:02d}:{i // 8 % 6 * 10:02d}"
               for i, p in ((i, points[i % 8]) for i in range(400))]
    records[57] = records[57].replace(";0;2024", ";x;2024")  # a bad status in the first chunk
    records[321] = f"{MINE}_01MN0001_T9999;甲烷;x;0.1;%CH4;0;2024-05-14 13:00:00"  # unknown, in a later chunk
    file, data = name("CDSS", stamp="20240514134000"), body(*records)

    class Stop(Exception):
        pass

    def stop_after_first_chunk(done: int, total: int) -> None:
        raise Stop  # as if killed right after the first commit

    first = ingester(fresh_db, chunk_rows=100)
    with pytest.raises(Stop):
        await first.ingest(file, data, progress=stop_after_first_chunk)
    await first.close()
    [ledger] = await fetch(fresh_db, "SELECT state, done_ordinal, stored FROM file_ledger WHERE name = $1", file)
    # Chunks count records (the unreadable one rides along): 100 records, ordinals 1..101.
    assert (ledger["state"], ledger["done_ordinal"], ledger["stored"]) == ("started", 101, 100)

    seen: list[tuple[int, int]] = []
    second = ingester(fresh_db, chunk_rows=100)
    summary: FileSummary = await second.ingest(file, data, progress=lambda d, t: seen.append((d, t)))
    await second.close()
    assert seen == [(201, 400), (301, 400), (400, 400)]  # the first chunk was not done again
    assert (summary.state, summary.records, summary.stored, summary.duplicates) == ("done", 400, 398, 0)
    assert dict(summary.rejected) == {"bad_status": 1, "unknown_point": 1}
    assert len(await readings(fresh_db)) == 398
    assert await dead_letters(fresh_db, file) == [(59, "bad_status"), (323, "unknown_point")]
    [ledger] = await fetch(fresh_db, "SELECT state, done_ordinal, stored, attempts FROM file_ledger WHERE name = $1", file)
    assert (ledger["state"], ledger["done_ordinal"], ledger["stored"], ledger["attempts"]) == ("done", 400, 398, 2)
