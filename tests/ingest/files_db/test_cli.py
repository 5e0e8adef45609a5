"""`import FILE...` and `ingest-files --watch DIR --once` as real processes: summaries, progress, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.ingest.files_db.helpers import MINE, P_T0, P_T1, body, name, readings, utc

pytestmark = pytest.mark.integration


def run(args: list[str], dsn: str, module: str = "ingest.files.cli") -> subprocess.CompletedProcess[str]:
    # The hand-written files are of 2024-05-14: a long retention keeps them inside the horizon.
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1", "MINEWATCH_RETENTION_DAYS": "36500"}
    return subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


async def test_import_prints_a_summary_per_file_and_a_progress_bar(db: str, tmp_path: Path) -> None:
    good, refused = tmp_path / name("CDSS"), tmp_path / name("CDSS", mine="999999999997")
    good.write_bytes(body(f"{P_T0};甲烷;x;0.61;%CH4;0;2024-05-14 13:20:00",
                          f"{P_T1};甲烷;x;0.62;%CH4;0;2024-05-14 13:20:00",
                          f"{MINE}_01MN0001_T9999;甲烷;x;0.63;%CH4;0;2024-05-14 13:20:00",
                          f"{P_T1};甲烷;x;bad;%CH4;0;2024-05-14 13:20:00"))
    refused.write_bytes(body(mine="999999999997"))
    done = run(["import", str(good), str(refused), "--lang", "en"], db)
    assert done.returncode == 1, done.stderr  # one file was refused
    lines = done.stdout.splitlines()
    assert lines[0] == (f"{good.name}: CDSS 4 records, stored 2, duplicates 0, rejected bad_number 1, unknown_point 1")
    assert lines[1].startswith(f"{refused.name}: whole file refused, reason unknown_mine: ")
    assert lines[2] == "files: 2, stored 2, duplicates 0, rejected bad_number 1, unknown_point 1, whole files refused unknown_mine 1"
    assert f"{good.name} [{'#' * 30}] 100% 4/4 records" in done.stderr
    assert good.exists()  # import leaves files where they are
    assert {(P_T0, utc("2024-05-14 05:20:00"), 0.61, 0), (P_T1, utc("2024-05-14 05:20:00"), 0.62, 0)} <= await readings(db)

    again = run(["import", str(good)], db)  # Chinese by default; the ledger says done
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0].startswith(f"{good.name}: 内容已入库, 未重复导入")


@pytest.mark.parametrize("command", [["ingest", "files"], ["ingest-files"]], ids=["ingest files", "ingest-files"])
async def test_minewatch_ingest_files_once_archives_what_it_ingested(db: str, tmp_path: Path, command: list[str]) -> None:
    minute = 21 + len(command)  # the module shares one database: each spelling gets its own file
    file = name("CDSS", stamp=f"2024051413{minute}00")
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / file).write_bytes(body(f"{P_T0};甲烷;x;0.71;%CH4;0;2024-05-14 13:{minute}:00"))
    done = run([*command, "--watch", str(drop), "--once", "--lang", "en"], db, module="launcher")
    assert done.returncode == 0, done.stderr
    assert f"{file}: CDSS 1 records, stored 1, duplicates 0, rejected none" in done.stdout
    assert done.stdout.rstrip().endswith("files: 1, stored 1, duplicates 0, rejected none, whole files refused none")
    assert (tmp_path / "drop.archive/2024/05/14" / file).exists() and not (drop / file).exists()


def test_bad_options_are_named(tmp_path: Path) -> None:
    done = run(["ingest-files", "--watch", str(tmp_path), "--chunk-rows", "0"], "postgresql://unused/x")
    assert done.returncode == 2
    assert "--chunk-rows" in done.stderr and "greater than or equal to 1" in done.stderr


@pytest.mark.parametrize("command", ["ingest-files", "import"])
def test_help_tells_an_operator_what_to_expect(command: str) -> None:
    # What an operator needs before running it: what files, where they go, what it needs, exit codes.
    done = run([command, "--help"], "postgresql://unused/x", module="launcher")
    assert done.returncode == 0
    text = done.stdout
    assert "{mine}_{TYPE}_{yyyyMMddHHmmss}.txt" in text and "DATABASE_URL" in text and "docs/files.md" in text
    if command == "import":
        assert "Exit status: 0" in text and "FILE" in text
    else:
        assert "ARCHIVE/YYYY/MM/DD/" in text and "NAME.reason" in text and "--incomplete-timeout-s SECONDS" in text


def test_a_missing_directory_or_database_is_exit_status_2(tmp_path: Path) -> None:
    missing = run(["ingest-files", "--watch", str(tmp_path / "nope"), "--once"], "postgresql://unused/x")
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    file = tmp_path / name("CDSS", stamp="20240514132200")
    file.write_bytes(body(f"{P_T0};甲烷;x;0.71;%CH4;0;2024-05-14 13:22:00"))
    down = run(["import", str(file)], "postgresql://postgres@127.0.0.1:1/none")  # nothing listens on port 1
    assert down.returncode == 2 and "database" in down.stderr, down.stderr
