"""The simulator CLI: history to a directory, a dry run, errors as exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.cli import main
from simulators.publish import BrokerUrl, read_jsonl
from simulators.render import decode_items
from tests.simulators.conftest import COAL

ROOT = Path(__file__).resolve().parents[2]


def test_history_to_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hist"
    code = main(
        [
            "history",
            "--start",
            "2026-11-23T08:00:00+08:00",
            "--hours",
            "1",
            "--seed",
            "3",
            "--out-dir",
            str(out),
            "--items-per-message",
            "200",
            "--topic-prefix",
            "x/",
            "--lang",
            "en",
        ]
    )
    assert code == 0
    messages = list(read_jsonl(out))
    assert messages and all(t.startswith("x/mines/") for t, _ in messages)
    items = sum(len(decode_items(p)) for _, p in messages)
    err = capsys.readouterr().err
    assert f"{items:,} items" in err and "done:" in err


def test_dry_run_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--hours", "0.5", "--dry-run", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "完成" in err and "读数" in err


def test_a_bad_scenario_is_exit_code_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        f'events:\n  - {{at: "+1m", kind: overcrowd, mine: "{COAL}", area: Z9, n: 1}}\n',
        encoding="utf-8",
    )
    assert main(["history", "--hours", "1", "--dry-run", "--scenario", str(f), "--lang", "en"]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "unknown area 'Z9'" in err


def test_a_start_without_offset_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["history", "--start", "2026-11-23T08:00:00", "--dry-run"])
    assert exc.value.code == 2
    assert "offset" in capsys.readouterr().err


def test_same_seed_same_bytes_across_processes(tmp_path: Path) -> None:
    """Separate interpreters (different str-hash salts) must render the very same bytes."""
    outs = []
    for salt in ("1", "2"):
        out = tmp_path / f"run{salt}"
        args = ["history", "--start", "2026-11-23T08:00:00+08:00", "--hours", "0.5", "--out-dir", str(out), "--quiet"]
        env = {**os.environ, "PYTHONHASHSEED": salt}
        subprocess.run([sys.executable, "-m", "simulators", *args], check=True, env=env, cwd=ROOT, capture_output=True)
        outs.append(b"".join(p.read_bytes() for p in sorted(out.glob("*.jsonl"))))
    assert outs[0] == outs[1] and len(outs[0]) > 100_000


@pytest.mark.integration
def test_live_catches_up_then_ends(mqtt_url: str, topic_prefix: str) -> None:
    start = datetime.now(UTC) - timedelta(minutes=3)
    got: list[bytes] = []
    b = BrokerUrl.parse(mqtt_url)
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    ready = threading.Event()
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{topic_prefix}mines/#", qos=1)
    sub.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    # (the amqtt fallback broker also hands subscribers other sessions' will messages: filtered)
    sub.on_message = lambda c, u, msg: (got.append(bytes(msg.payload))
                                        if mqtt.topic_matches_sub(f"{topic_prefix}mines/#", msg.topic) else None)
    sub.connect(b.host, b.port)
    sub.loop_start()
    try:
        assert ready.wait(10)
        code = main(
            [
                "live",
                "--start",
                start.isoformat(),
                "--hours",
                "0.05",
                "--speed",
                "600",
                "--mqtt-url",
                mqtt_url,
                "--topic-prefix",
                topic_prefix,
                "--quiet",
            ]
        )
        assert code == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(len(decode_items(p)) for p in got) < 1_000:
            time.sleep(0.05)
    finally:
        sub.disconnect()
        sub.loop_stop()
    items = [it for p in got for it in decode_items(p)]
    assert len(items) > 1_000  # 3 min of 5 mines: ~850 readings, ~300 card reads, 72 states
    newest = max(int(datetime.fromisoformat(str(it["ts"])).timestamp() * 1000) for it in items)
    assert newest <= int(datetime.now(UTC).timestamp() * 1000)  # never from the future
