"""The drop directory as an attacker sees it (issue 15): links, FIFOs, hostile names, swapped and huge files.

Each test puts the attack next to valid uploads and shows that the watcher keeps running, stores
every valid neighbour, dead-letters the bad item with its reason and leaks nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from ingest.files import dropfs
from ingest.files.source import FileSourceSettings
from ingest.files.watch import PROCESSING, DropWatcher
from minewatch.clock import FrozenClock
from minewatch.errors import ConfigError
from tests.ingest.files_db.drop_helpers import files_holding, run_watcher, tables_holding
from tests.ingest.files_db.helpers import MINE, NOW, P_T0, P_T1, body, fetch, ingest, ingester, name, readings, utc

pytestmark = pytest.mark.integration

_minutes = iter(range(60))


def valid(n: int = 1) -> tuple[str, bytes, set[tuple[str, object, float, int]]]:
    """A valid CDSS upload of `n` readings at a minute no other test of this module uses."""
    minute = next(_minutes)
    stamp = f"2024-05-14 11:{minute:02d}"
    lines = [f"{P_T1};甲烷;x;{i / 100};%CH4;0;{stamp}:{i:02d}" for i in range(n)]
    expected = {(P_T1, utc(f"2024-05-14 03:{minute:02d}:{i:02d}"), i / 100, 0) for i in range(n)}
    return name("CDSS", stamp=f"2024051411{minute:02d}00"), body(*lines), expected


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    drop, archive, quarantine = tmp_path / "drop", tmp_path / "archive", tmp_path / "quarantine"
    drop.mkdir()
    yield drop, archive, quarantine


def watcher(db: str, dirs: tuple[Path, Path, Path], clock: FrozenClock | None = None, **settings: object) -> DropWatcher:
    clock = clock or FrozenClock(NOW)
    drop, archive, quarantine = dirs
    options = FileSourceSettings(**settings)  # type: ignore[arg-type]
    return DropWatcher(ingester(db, clock, **settings), drop, archive=archive, quarantine=quarantine, clock=clock,
                       settings=options)


async def letters_of(db: str, pattern: str) -> list[tuple[str, str, str]]:
    rows = await fetch(db, "SELECT file, reason, detail FROM dead_letters WHERE file LIKE $1 ORDER BY id", pattern)
    return [(r["file"], r["reason"], r["detail"]) for r in rows]


# -- 4. links and other non-regular entries ---------------------------------------------------


async def test_links_to_secrets_are_never_read_and_leak_nowhere(db: str, dirs: tuple[Path, Path, Path],
                                                                tmp_path: Path) -> None:
    drop, archive, quarantine = dirs
    secret = f"fake-secret-{uuid.uuid4().hex}"
    # A secret file shaped like an upload: if the watcher followed the link it would dead-letter
    # the secret as an unknown point.
    target = tmp_path / "secret.txt"
    target.write_bytes(body(f"{MINE}_01MN0001_{secret};甲烷;x;0.5;%CH4;0;2024-05-14 11:00:00"))
    links = {
        name("CDSS", stamp="20240514110001"): target,
        name("CDSS", stamp="20240514110002"): Path("/proc/self/environ"),  # the watcher's own environment
        name("CDSS", stamp="20240514110003"): Path("/etc/passwd"),
    }
    for link, to in links.items():
        (drop / link).symlink_to(to)
    os.mkfifo(drop / name("CDSS", stamp="20240514110004"))  # opening it for reading would block for ever
    os.link(target, drop / name("CDSS", stamp="20240514110005"))  # a hard link to the secret
    neighbours = [valid(3) for _ in range(2)]
    for file, data, _ in neighbours:
        (drop / file).write_bytes(data)

    run = run_watcher(db, drop, archive, quarantine, env={"MINEWATCH_TOKEN_PEPPER": secret, "FAKE_SMS_SECRET": secret})

    assert run.returncode == 0, run.stderr[-3000:]
    for file, _, expected in neighbours:
        assert expected <= await readings(db, [P_T1]), file
    refused = await letters_of(db, "%_CDSS_2024051411000_.txt")
    assert sorted((f, r) for f, r, _ in refused) == [(f"{MINE}_CDSS_2024051411000{i}.txt", "not_regular_file")
                                                     for i in range(1, 6)]
    details = {f[-6:-4]: d for f, _, d in refused}
    assert details["01"].startswith("a symbolic link") and details["04"].startswith("a FIFO")
    assert "2 hard links" in details["05"]
    # Nothing of the secret anywhere: no table, no bytea payload, no log line, no file the watcher wrote.
    assert await tables_holding(db, secret) == []
    assert await tables_holding(db, "root:x:0:0") == []  # /etc/passwd was not copied either
    assert secret not in run.stdout + run.stderr
    assert files_holding(archive, secret.encode()) == [] and files_holding(quarantine, secret.encode()) == []
    # The links and the hard link are gone from the drop, unread; their targets are untouched.
    assert sorted(p.name for p in drop.iterdir()) == [PROCESSING]
    assert secret.encode() in target.read_bytes()


async def test_archive_or_quarantine_inside_the_drop_or_a_link_is_refused_at_start(db: str, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "link").symlink_to(elsewhere)
    ing = ingester(db)
    bad = {"inside": {"archive": drop / "archive"}, "the drop itself": {"quarantine": drop},
           "a link": {"archive": tmp_path / "link"}, "holding the drop": {"quarantine": tmp_path}}
    for what, kwargs in bad.items():
        with pytest.raises(ConfigError) as exc:
            DropWatcher(ing, drop, clock=FrozenClock(NOW), **kwargs)  # type: ignore[arg-type]
        assert str(drop) in str(exc.value) or "symbolic link" in str(exc.value), what
    (tmp_path / "droplink").symlink_to(drop)
    with pytest.raises(ConfigError, match="symbolic link"):
        DropWatcher(ing, tmp_path / "droplink", clock=FrozenClock(NOW))
    # The defaults lie next to the drop, outside it.
    w = DropWatcher(ing, drop, clock=FrozenClock(NOW))
    w.close()
    assert (w.archive, w.quarantine) == (tmp_path / "drop.archive", tmp_path / "drop.quarantine")


async def test_an_archive_directory_swapped_for_a_link_inside_the_archive_is_not_followed(
        db: str, dirs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    drop, archive, _ = dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    archive.mkdir()
    (archive / "2024").symlink_to(outside)  # the day directories would land outside the tree
    file, data, expected = valid()
    (drop / file).write_bytes(data)
    w = watcher(db, dirs)
    try:
        [summary] = await w.scan()
        assert (summary.state, summary.moved_to) == ("done", None)  # stored, but not moved through the link
        assert expected <= await readings(db, [P_T1])
        assert not list(outside.iterdir())
        assert [p.name for p in (drop / PROCESSING).glob("*/*")] == [file]  # kept for the operator
    finally:
        w.close()
        await w.store.close()


# -- 5. file names that are not UTF-8 ---------------------------------------------------------


def _write(path: bytes, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


async def test_a_name_that_is_not_utf8_is_dead_lettered_escaped_and_never_again(
        db: str, dirs: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    drop = dirs[0]
    raw = os.fsencode(str(drop)) + b"/\xff\xfe" + MINE.encode() + b"_CDSS_20240514111000.txt"
    _write(raw, body(f"{P_T0};甲烷;x;0.5;%CH4;0;2024-05-14 11:10:00"))
    neighbour, data, expected = valid()
    (drop / neighbour).write_bytes(data)
    caplog.set_level(logging.INFO)
    w = watcher(db, dirs)
    try:
        summaries = await w.scan()
        assert {s.state for s in summaries} == {"done", "rejected"}
        again = watcher(db, dirs)  # a restart
        assert await again.scan() == []
        again.close()
        await again.store.close()
    finally:
        w.close()
        await w.store.close()
    shown = f"\\xff\\xfe{MINE}_CDSS_20240514111000.txt"
    assert [(f, r) for f, r, _ in await letters_of(db, "%\\\\xff%")] == [(shown, "bad_file_name")]
    [ledger] = await fetch(db, "SELECT name, state, reason FROM file_ledger WHERE name = $1", shown)
    assert tuple(ledger) == (shown, "quarantined", "bad_file_name")
    assert expected <= await readings(db, [P_T1])
    assert (dirs[2] / os.fsdecode(b"\xff\xfe" + MINE.encode() + b"_CDSS_20240514111000.txt.reason")).exists()
    assert "\udcff" not in caplog.text


# -- 6. the bytes ingested are the bytes archived ----------------------------------------------


async def test_a_file_swapped_while_it_is_ingested_is_archived_as_read_and_the_new_one_ingested(
        db: str, dirs: tuple[Path, Path, Path]) -> None:
    drop, archive, _ = dirs
    file = name("CDSS", stamp="20240514112000")
    first = body(f"{P_T0};甲烷;x;0.21;%CH4;0;2024-05-14 11:20:00")
    second = body(f"{P_T0};甲烷;x;0.22;%CH4;0;2024-05-14 11:20:10")
    (drop / file).write_bytes(first)
    w = watcher(db, dirs)
    real = w.store.ingest

    async def swap_then_ingest(n: str, data: bytes, **kw: bool) -> object:
        # The uploader replaces the name atomically while the watcher works on the first file.
        tmp = drop / ".upload.tmp"
        tmp.write_bytes(second)
        tmp.replace(drop / file)
        return await real(n, data, **kw)

    w.store.ingest = swap_then_ingest  # type: ignore[method-assign,assignment]
    try:
        [one] = await w.scan()
        w.store.ingest = real  # type: ignore[method-assign]
        [two] = await w.scan()
    finally:
        w.close()
        await w.store.close()
    assert (one.state, one.stored, two.state, two.stored) == ("done", 1, "done", 1)
    assert {(P_T0, utc("2024-05-14 03:20:00"), 0.21, 0), (P_T0, utc("2024-05-14 03:20:10"), 0.22, 0)} <= \
        await readings(db, [P_T0])
    day = archive / "2024/05/14"
    kept = {p.read_bytes() for p in day.iterdir() if p.name.startswith(file[:-4])}
    assert kept == {first, second}  # each archived with the bytes that were ingested
    assert not (drop / file).exists()


async def test_a_corrected_reupload_under_the_same_name_is_ingested_not_deleted(
        db: str, dirs: tuple[Path, Path, Path]) -> None:
    drop, archive, _ = dirs
    file = name("CDSS", stamp="20240514113000")
    wrong = body(f"{P_T0};甲烷;x;abc;%CH4;0;2024-05-14 11:30:00")
    corrected = body(f"{P_T0};甲烷;x;0.31;%CH4;0;2024-05-14 11:30:00")
    w = watcher(db, dirs)
    try:
        (drop / file).write_bytes(wrong)
        [one] = await w.scan()
        (drop / file).write_bytes(corrected)
        [two] = await w.scan()
        (drop / file).write_bytes(corrected)  # the same again: already done, stored idempotently
        [three] = await w.scan()
    finally:
        w.close()
        await w.store.close()
    assert (one.state, dict(one.rejected)) == ("done", {"bad_number": 1})
    assert (two.state, two.stored, three.state) == ("done", 1, "already_done")
    assert (P_T0, utc("2024-05-14 03:30:00"), 0.31, 0) in await readings(db, [P_T0])
    kept = sorted(p.read_bytes() for p in (archive / "2024/05/14").iterdir() if p.name.startswith(file[:-4]))
    assert kept == sorted([wrong, corrected])  # nothing deleted unread; the identical third copy not kept twice


# -- 7. size and error caps --------------------------------------------------------------------


async def test_an_oversized_file_is_quarantined_unread_with_one_dead_letter(
        db: str, dirs: tuple[Path, Path, Path]) -> None:
    drop, _, quarantine = dirs
    big = name("CDSS", stamp="20240514114000")
    data = body(*[f"{P_T0};甲烷;x;0.5;%CH4;0;2024-05-14 11:40:{i % 60:02d}" for i in range(2000)])
    (drop / big).write_bytes(data)
    neighbour, ndata, expected = valid()
    (drop / neighbour).write_bytes(ndata)
    w = watcher(db, dirs, max_file_bytes=64 * 1024)
    try:
        summaries = {s.name: s for s in await w.scan()}
    finally:
        w.close()
        await w.store.close()
    assert (summaries[big].state, summaries[big].reason) == ("rejected", "too_large")
    [(_, reason, detail)] = await letters_of(db, big)
    assert reason == "too_large" and f"{len(data)} bytes" in detail
    [row] = await fetch(db, "SELECT length(payload) AS n, payload_bytes FROM dead_letters WHERE file = $1", big)
    assert row["n"] <= 64 * 1024  # only the head is kept in the dead letter
    assert (quarantine / big).read_bytes() == data  # the file itself is kept whole
    assert "reason: too_large" in (quarantine / f"{big}.reason").read_text()
    assert expected <= await readings(db, [P_T1])
    assert not await readings(db, [P_T0]) & {(P_T0, utc("2024-05-14 03:40:00"), 0.5, 0)}


async def test_a_20_mb_file_of_broken_records_is_one_dead_letter_in_bounded_memory(
        db: str, dirs: tuple[Path, Path, Path]) -> None:
    # The attack of the issue: 20 MB of one-field records cost 4.95 GB and 10 M dead letters.
    drop, archive, quarantine = dirs
    hostile = name("CDSS", stamp="20240514115000")
    (drop / hostile).write_bytes(body(end="") + b"x~" * 10_000_000 + b"||")
    neighbour, data, expected = valid(5)
    (drop / neighbour).write_bytes(data)
    run = run_watcher(db, drop, archive, quarantine)
    assert run.returncode == 0, run.stderr[-3000:]
    [(_, reason, detail)] = await letters_of(db, hostile)
    assert reason == "too_many_errors" and "more than 1000 bad records" in detail
    assert expected <= await readings(db, [P_T1])
    assert (quarantine / f"{hostile}.reason").exists()
    # Python, asyncpg and the 20 MB file itself take ~150 MB; the bound leaves room, not gigabytes.
    assert run.max_rss_mb < 400, run.max_rss_mb


# -- 10. names that forge logs, hide, or do not fit --------------------------------------------


async def test_newlines_in_names_do_not_forge_log_lines_and_dotdot_names_are_refused(
        db: str, dirs: tuple[Path, Path, Path]) -> None:
    drop, archive, quarantine = dirs
    forged = f"x\nERROR forged line\n{MINE}_CDSS_20240514115500.txt"
    (drop / forged).write_bytes(body(f"{P_T0};甲烷;x;0.5;%CH4;0;2024-05-14 11:55:00"))
    dotdot = f"..{MINE}_CDSS_20240514115600.txt"
    (drop / dotdot).write_bytes(body(f"{P_T0};甲烷;x;0.5;%CH4;0;2024-05-14 11:56:00"))
    (drop / "..hidden").write_bytes(b"whatever")
    (drop / ".rsync-tmp.txt").write_bytes(b"in progress")  # a transfer in progress: left alone, reported
    neighbour, data, expected = valid()
    (drop / neighbour).write_bytes(data)
    run = run_watcher(db, drop, archive, quarantine)
    assert run.returncode == 0, run.stderr[-3000:]
    output = run.stdout + run.stderr
    assert not any(line.startswith("ERROR forged") for line in output.splitlines())
    assert "x\\x0aERROR forged line\\x0a" in output
    assert "ignoring .rsync-tmp.txt: a hidden file" in run.stderr
    assert sorted((f, r) for f, r, _ in await letters_of(db, "%.%")
                  if f in (forged, dotdot, "..hidden")) == sorted([(forged, "bad_file_name"), (dotdot, "bad_file_name"),
                                                                   ("..hidden", "bad_file_name")])
    assert {p.name for p in quarantine.iterdir()} >= {dotdot, f"{dotdot}.reason", "..hidden", "..hidden.reason"}
    assert {p.name for p in drop.iterdir()} == {".rsync-tmp.txt", PROCESSING}
    assert expected <= await readings(db, [P_T1])


async def test_a_250_character_name_gets_a_reason_file_and_a_restart_adds_no_dead_letter(
        db: str, dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    drop, _, quarantine = dirs
    long = "9" * 226 + "_CDSS_20240514115800.txt"  # an unknown mine, 250 characters
    assert len(long) == 250
    data = body(mine="9" * 226)
    (drop / long).write_bytes(data)
    # The first run dies after its dead letter and before the file is placed (simulated: placing fails).
    real_place = dropfs.place

    def broken(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(dropfs, "place", broken)
    w = watcher(db, dirs)
    try:
        [first] = await w.scan()
        assert [p.name for p in (drop / PROCESSING).glob("*/*")] == [long]
        monkeypatch.setattr(dropfs, "place", real_place)
        restarted = watcher(db, dirs)
        [again] = await restarted.scan()
        assert await restarted.scan() == []
        restarted.close()
        await restarted.store.close()
    finally:
        w.close()
        await w.store.close()
    assert (first.reason, again.reason) == ("unknown_mine", "unknown_mine")
    assert [r for _, r, _ in await letters_of(db, long)] == ["unknown_mine"]  # once, across the restart
    names = sorted(p.name for p in quarantine.iterdir() if p.name.startswith("9" * 200))
    assert len(names) == 2 and names[1] == names[0] + ".reason"
    assert all(len(os.fsencode(n)) <= 255 for n in names)
    assert (quarantine / names[0]).read_bytes() == data
    assert f"name: {long}\n" in (quarantine / names[1]).read_text()
    assert not list((drop / PROCESSING).iterdir())


async def test_an_incomplete_file_taken_too_early_waits_in_processing_then_is_quarantined(
        db: str, dirs: tuple[Path, Path, Path]) -> None:
    # The tail looked complete, but the full read did not (it changed in between): the file
    # waits in processing like any incomplete file, then is quarantined after the timeout.
    drop, _, quarantine = dirs
    clock = FrozenClock(NOW)
    w = watcher(db, dirs, clock)
    file = name("CDSS", stamp="20240514115900")
    token = "t0"
    (drop / PROCESSING / token).mkdir()
    (drop / PROCESSING / token / file).write_bytes(body(f"{P_T0};甲烷;x;0.5;%CH4;0;2024-05-14 11:59:00", end=""))
    try:
        assert await w.scan() == []
        clock.advance(timedelta(minutes=11))
        [summary] = await w.scan()
    finally:
        w.close()
        await w.store.close()
    assert (summary.state, summary.reason) == ("rejected", "incomplete")
    assert (quarantine / file).exists()
    with contextlib.suppress(FileNotFoundError):
        assert not list((drop / PROCESSING / token).iterdir())


# -- times outside the retention horizon ---------------------------------------------------------


async def test_records_older_than_retention_are_too_old_and_extreme_times_never_crash(db: str) -> None:
    file = name("CDSS", stamp="20240514120100")
    data = body(f"{P_T0};甲烷;x;0.5;%CH4;0;1990-01-01 00:00:00",  # beyond 730 days of retention
                f"{P_T0};甲烷;x;0.5;%CH4;0;0001-01-01 00:00:00",  # would overflow UTC
                f"{P_T0};甲烷;x;0.5;%CH4;0;9999-12-31 23:59:59",
                f"{P_T0};甲烷;x;0.51;%CH4;0;2024-05-14 12:01:00")
    summary = await ingest(db, file, data)
    assert (summary.state, summary.stored) == ("done", 1)
    assert dict(summary.rejected) == {"too_old": 1, "bad_time": 1, "future_time": 1}
    rows = await fetch(db, "SELECT line, reason FROM dead_letters WHERE file = $1 ORDER BY line", file)
    assert [(r["line"], r["reason"]) for r in rows] == [(2, "too_old"), (3, "bad_time"), (4, "future_time")]
    assert (P_T0, utc("2024-05-14 04:01:00"), 0.51, 0) in await readings(db, [P_T0])
    assert not await fetch(db, "SELECT 1 FROM readings WHERE ts < '2000-01-01'")


async def test_a_processing_directory_made_by_someone_else_is_refused_at_start(db: str, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory another owner")
    drop = tmp_path / "drop"
    (drop / PROCESSING).mkdir(parents=True)
    os.chown(drop / PROCESSING, 12345, -1)  # an uploader renamed ours away and made their own
    with pytest.raises(ConfigError, match="not owned by this user"):
        DropWatcher(ingester(db), drop, clock=FrozenClock(NOW))


async def test_an_unexpected_error_on_one_file_costs_that_file_not_the_watcher(
        db: str, dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    drop = dirs[0]
    first, data1, expected1 = valid()
    second, data2, expected2 = valid()
    (drop / first).write_bytes(data1)
    (drop / second).write_bytes(data2)
    real = dropfs.read_all
    calls = 0

    def flaky(fd: int, limit: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return real(fd, limit)

    monkeypatch.setattr(dropfs, "read_all", flaky)
    w = watcher(db, dirs)
    try:
        [one] = await w.scan()  # the first file failed; the second was stored
        [two] = await w.scan()  # the first, left in processing, is finished next pass
    finally:
        w.close()
        await w.store.close()
    assert {one.name, two.name} == {first, second}
    assert expected1 | expected2 <= await readings(db, [P_T1])
    assert not list((drop / PROCESSING).iterdir())
