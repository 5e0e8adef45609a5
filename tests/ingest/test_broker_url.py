"""MQTT_URL forms the ingest accepts: mqtts:// (TLS) and user:password, the latter against a real mosquitto."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from ingest.consumer import BrokerAddress, MqttSource, parse_broker_url, parse_mqtt_url
from ingest.errors import IngestError
from launcher.embedded import free_port, mosquitto_binary, port_open


def test_plain_url() -> None:
    assert parse_broker_url("mqtt://10.0.0.5:1884") == BrokerAddress("10.0.0.5", 1884)
    assert parse_broker_url("mqtt://broker") == BrokerAddress("broker", 1883)
    assert parse_mqtt_url("mqtt://broker:1999") == ("broker", 1999)


def test_tls_and_credentials() -> None:
    a = parse_broker_url("mqtts://ingest:s%40cr%3At@broker.example")
    assert a == BrokerAddress("broker.example", 8883, True, "ingest", "s@cr:t")
    assert parse_broker_url("mqtts://broker.example:9883").port == 9883
    assert parse_broker_url("mqtt://only-user@h").username == "only-user"
    assert parse_broker_url("mqtt://only-user@h").password is None


def test_tls_url_configures_tls_with_system_store() -> None:
    src = MqttSource("mqtts://u:p@broker.example", client_id="t-tls")
    assert src.client._ssl  # paho's TLS flag: tls_set() was called


def test_protocol_from_url() -> None:
    """`?protocol=3.1.1` is how the embedded amqtt broker (MQTT 3.1.1 only) tells the ingest to speak it."""
    assert parse_broker_url("mqtt://h:1").protocol == mqtt.MQTTv5
    assert parse_broker_url("mqtt://h:1?protocol=3.1.1") == BrokerAddress("h", 1, protocol=mqtt.MQTTv311)
    assert MqttSource("mqtt://h:1?protocol=3.1.1", client_id="t-311").protocol == mqtt.MQTTv311
    with pytest.raises(IngestError, match="protocol"):
        parse_broker_url("mqtt://h:1?protocol=4")


@pytest.mark.parametrize("url", ["http://h:1", "mqtt://h:notaport"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(IngestError):
        parse_broker_url(url)


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[int]:
    """A private mosquitto that admits only user `ingest` with password `s@cr:t`."""
    binary = mosquitto_binary()
    passwd = shutil.which("mosquitto_passwd")
    if binary is None or passwd is None:
        pytest.skip("needs the mosquitto and mosquitto_passwd binaries")
    pw_file = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(pw_file), "ingest", "s@cr:t"], check=True, capture_output=True)
    port = free_port()
    user_line = "user root" if os.geteuid() == 0 else ""
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"{user_line}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pw_file}\n"
                    "max_inflight_messages 0\nmax_queued_messages 0\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            assert time.monotonic() < deadline and proc.poll() is None, "mosquitto did not start"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.integration
def test_credentials_from_url_against_real_broker(password_broker: int) -> None:
    port = password_broker
    good = MqttSource(f"mqtt://ingest:s%40cr%3At@127.0.0.1:{port}", client_id="cred-ok", topic_prefix="c/")
    bad = MqttSource(f"mqtt://ingest:wrong@127.0.0.1:{port}", client_id="cred-bad", topic_prefix="c/")
    good.start()
    bad.start()
    try:
        assert good.connected.wait(10), "the right password must be accepted"
        time.sleep(0.3)  # SUBACK
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        pub.username_pw_set("ingest", "s@cr:t")
        done = threading.Event()
        pub.on_publish = lambda *a: done.set()
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        pub.publish("c/mines/1/safety", b"{}", qos=1)
        assert done.wait(10)
        pub.disconnect()
        pub.loop_stop()
        item = good.queue.get(timeout=10)
        assert (item.topic, item.payload) == ("c/mines/1/safety", b"{}")
        assert not bad.connected.is_set(), "a wrong password must be refused"
    finally:
        good.stop()
        bad.stop()
