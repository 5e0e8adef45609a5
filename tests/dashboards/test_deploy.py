"""Deployment files: the broker config starts and keeps the no-loss settings, units are valid, every setting is documented."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.cli import build_parser
from launcher.embedded import MOSQUITTO_CONF, free_port, mosquitto_binary, port_open
from minewatch.settings import IngestSettings, Settings
from tests.dashboards.promtool import promtool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONF = DEPLOY / "mosquitto" / "minewatch.conf"
UNITS = DEPLOY / "systemd"
SERVICES = ("minewatch-ingest", "minewatch-rules", "minewatch-alerting", "minewatch-delivery", "minewatch-api")
OPTIONAL_SERVICES = ("minewatch-files",)
# Keys whose value must be the same in production and in the development broker: they are what
# makes a persistent session lossless.
SAME_AS_EMBEDDED = ("persistence", "autosave_interval", "max_queued_bytes", "max_inflight_messages",
                    "max_inflight_bytes", "persistent_client_expiration")
# Hours of backlog the production queue bound must hold at the design rate written in the file.
BACKLOG_HOURS = 12


def conf_values(text: str) -> dict[str, list[str]]:
    """Mosquitto config lines as key -> values (a key may repeat, e.g. listener, log_type)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value.strip())
    return out


def test_broker_config_keeps_the_development_brokers_no_loss_settings() -> None:
    text = CONF.read_text(encoding="utf-8")
    prod = conf_values(text)
    dev = conf_values(MOSQUITTO_CONF.format(user_line="", port=1883, host="127.0.0.1", data="/tmp"))
    for key in SAME_AS_EMBEDDED:
        assert prod[key] == dev[key], f"{key}: {prod.get(key)} in deploy, {dev.get(key)} in launcher/embedded.py"
    (queued,) = prod["max_queued_messages"]
    rate = float(re.search(r"50 mines: ([0-9.]+) msg/s", text)[1])  # type: ignore[index]
    assert int(queued) == 0 or int(queued) >= rate * BACKLOG_HOURS * 3600
    assert prod["queue_qos0_messages"] == ["false"]
    assert "$share" in text and "not restored" in text.replace("NOT", "not")


def _openssl_cert(directory: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(directory / "broker.key"), "-out", str(directory / "broker.crt")],
                   check=True, capture_output=True)
    shutil.copy(directory / "broker.crt", directory / "ca.crt")


@pytest.mark.skipif(mosquitto_binary() is None or shutil.which("openssl") is None,
                    reason="needs the mosquitto and openssl binaries")
def test_broker_config_starts_mosquitto(tmp_path: Path) -> None:
    """The shipped file, with its paths moved into tmp_path and free ports, is accepted by mosquitto."""
    _openssl_cert(tmp_path)
    (tmp_path / "minewatch.passwd").write_text("")
    shutil.copy(CONF.parent / "minewatch.acl", tmp_path / "minewatch.acl")
    ports = [free_port(), free_port()]
    lines = []
    for line in CONF.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        if key == "listener":
            port = ports.pop(0)
            line = f"listener {port} 127.0.0.1"
        elif key == "user":
            line = "user root" if os.geteuid() == 0 else ""
        elif key in ("persistence_location",):
            line = f"{key} {tmp_path}/"
        elif key in ("cafile", "certfile", "keyfile", "password_file", "acl_file"):
            line = f"{key} {tmp_path / Path(value).name}"
        elif key == "log_dest":
            line = f"log_dest file {tmp_path}/mosquitto.log"
        lines.append(line)
    assert not ports, "expected two listeners (local plain, gateways TLS)"
    (tmp_path / "test.conf").write_text("\n".join(lines) + "\n")
    with (tmp_path / "stdout.log").open("wb") as out:
        proc = subprocess.Popen([str(mosquitto_binary()), "-c", str(tmp_path / "test.conf")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        listening = [int(line.split()[1]) for line in lines if line.startswith("listener")]
        deadline = time.monotonic() + 10
        while proc.poll() is None and not all(port_open("127.0.0.1", p) for p in listening):
            assert time.monotonic() < deadline, "mosquitto did not open its listeners"
            time.sleep(0.05)
        log = (tmp_path / "mosquitto.log").read_text() if (tmp_path / "mosquitto.log").exists() else ""
        assert proc.poll() is None, f"mosquitto refused the config: {(tmp_path / 'stdout.log').read_text()}{log}"
        assert "Error" not in log, log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert (tmp_path / "mosquitto.db").exists()  # persistence written on the clean stop


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as section -> key -> values."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def _parses_as_minewatch_command(exec_start: str) -> None:
    program, *argv = shlex.split(exec_start)
    assert program == "/opt/minewatch/.venv/bin/minewatch"
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands is not None
    if argv[0] not in commands:
        pytest.skip(f"`minewatch {argv[0]}` is not registered yet (its package adds it)")
    args = parser.parse_args(argv)
    assert callable(args.func)


@pytest.mark.parametrize("name", SERVICES + OPTIONAL_SERVICES)
def test_service_units(name: str) -> None:
    u = unit(f"{name}.service")
    s = u["Service"]
    assert s["EnvironmentFile"] == ["/etc/minewatch/env"]
    assert s["Restart"] == ["always"] and u["Unit"]["StartLimitIntervalSec"] == ["0"]
    assert s["User"] == ["minewatch"] and s["Group"] == ["minewatch"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                       ("CapabilityBoundingSet", ""), ("ProtectHome", "yes")):
        assert s[key] == [value], f"{name}: {key}"
    (exec_start,) = s["ExecStart"]
    _parses_as_minewatch_command(exec_start)


def test_maintenance_timer_runs_migrate_daily() -> None:
    service = unit("minewatch-maintain.service")["Service"]
    assert service["Type"] == ["oneshot"] and service["EnvironmentFile"] == ["/etc/minewatch/env"]
    (exec_start,) = service["ExecStart"]
    assert shlex.split(exec_start)[1:] == ["migrate"]
    _parses_as_minewatch_command(exec_start)
    timer = unit("minewatch-maintain.timer")["Timer"]
    assert timer["OnCalendar"][0].startswith("*-*-* ") and timer["Persistent"] == ["true"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze(tmp_path: Path) -> None:
    program = str(Path(sys.executable).parent / "minewatch")
    if not os.access(program, os.X_OK):
        pytest.skip("the minewatch script is not installed next to this interpreter")
    names = sorted(p.name for p in UNITS.iterdir())
    assert {f"{s}.service" for s in SERVICES} <= set(names)
    for name in names:
        (tmp_path / name).write_text((UNITS / name).read_text().replace("/opt/minewatch/.venv/bin/minewatch", program))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), res.stdout + res.stderr


def _settings_env_names() -> set[str]:
    from alerting.settings import ENV_PREFIX, AlertingSettings
    from rules.worker import RulesSettings

    names = {"DATABASE_URL", "MQTT_URL"}
    for cls in (Settings, IngestSettings, RulesSettings):
        prefix = cls.model_config.get("env_prefix", "")
        names |= {prefix + f.upper() for f, info in cls.model_fields.items()
                  if info.validation_alias is None and f != "ingest"}
    names |= {ENV_PREFIX + f.upper() for f in AlertingSettings.model_fields}
    return names


def env_example() -> dict[str, str]:
    """Every variable of deploy/env.example, commented out or not, with its example value."""
    found: dict[str, str] = {}
    for m in re.finditer(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", (DEPLOY / "env.example").read_text(encoding="utf-8"), re.M):
        found[m[1]] = m[2].strip().strip("'")
    return found


def test_env_example_documents_every_setting() -> None:
    example = env_example()
    missing = _settings_env_names() - set(example)
    assert not missing, f"not in deploy/env.example: {sorted(missing)}"
    # secrets are never filled in
    for name in ("MINEWATCH_TOKEN_PEPPER", "MINEWATCH_SMS_INBOUND_SECRET", "MINEWATCH_SMS_GATEWAY_AUTH"):
        assert example[name] == "", name
    assert not re.search(r"//[^/@]*:[^/@]*@", example["DATABASE_URL"]), "no password in the example URL"


def test_env_example_values_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from alerting.settings import load_alerting_settings
    from rules.worker import RulesSettings

    for key in list(os.environ):
        if key.startswith("MINEWATCH_") or key in ("DATABASE_URL", "MQTT_URL"):
            monkeypatch.delenv(key)
    example = {k: v for k, v in env_example().items() if v}
    for key, value in example.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url == example["DATABASE_URL"] and settings.ingest.batch_max_items == 20_000
    assert RulesSettings().pack == "default"
    alerting = load_alerting_settings({k: v for k, v in example.items() if k.startswith("MINEWATCH_ALERTING_")})
    assert alerting.sms_gateway is not None and alerting.escalation.ack_window_urgent.total_seconds() == 900


def test_prometheus_scrapes_every_metrics_port_the_units_open() -> None:
    import yaml

    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    ports = {f"127.0.0.1:{m[1]}" for p in UNITS.glob("*.service")
             if (m := re.search(r"--metrics-port (\d+)", p.read_text(encoding="utf-8")))}
    api_port = Settings.model_fields["api_port"].default
    assert ports | {f"127.0.0.1:{api_port}"} == targets


def test_prometheus_config_and_alert_rules_are_valid(tmp_path: Path) -> None:
    tool = promtool()
    for p in (DEPLOY / "prometheus").iterdir():
        if p.is_file():
            shutil.copy(p, tmp_path / p.name)
    res = subprocess.run([tool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0 and "rule files found" in res.stdout, res.stdout + res.stderr
    res = subprocess.run([tool, "check", "rules", "minewatch-alerts.yml"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


# Alerts the rule unit tests must show firing: the ones whose failure mode is "alarms reach people
# late" (a stuck outbox, ingest lag, a rules backlog).
MUST_BE_UNIT_TESTED = frozenset({"MinewatchOutboxStuck", "MinewatchIngestLagHigh", "MinewatchRulesLagging",
                                 "MinewatchRulesBacklogDeep"})


def test_alert_rules_pass_their_unit_tests() -> None:
    """promtool test rules on deploy/prometheus/tests/*.yml: each alert fires on its condition, not on health."""
    import yaml

    tool = promtool()
    tests = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
    assert tests
    fired = {a["alertname"] for t in tests for case in yaml.safe_load(t.read_text(encoding="utf-8"))["tests"]
             for a in case.get("alert_rule_test", []) if a.get("exp_alerts")}
    assert fired >= MUST_BE_UNIT_TESTED, f"no firing test for {MUST_BE_UNIT_TESTED - fired}"
    res = subprocess.run([tool, "test", "rules", *map(str, tests)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_promtool_check_fails_rather_than_skips_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        promtool()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        promtool()
