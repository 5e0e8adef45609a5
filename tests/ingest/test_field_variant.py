"""The provincial MQTT variant adapter: `/{mine}/{system}` values -> canonical items."""

from __future__ import annotations

import json

import pytest

from ingest.field_variant import ERROR_REASONS, AdaptedMessage, adapt, parse_topic

MINE = "610821003303"
TS = 1715664911250  # 2024-05-14 05:35:11.250 UTC
P1 = f"{MINE}01MN0001T0101"
P2 = f"{MINE}01KG1011T0102"


def payload(**fields: object) -> bytes:
    body: dict[str, object] = {"timestamp": TS, "systemcode": "01", "values": []}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def item(point: str, value: object) -> dict[str, object]:
    return {"point": point, "ts": TS, "value": value, "status": 0}


def test_values_become_canonical_safety_items() -> None:
    msg = adapt(
        f"/{MINE}/01",
        payload(values=[{"code": P1, "v": 0.42}, {"code": P2, "v": 1}, {"code": P1, "v": True}]),
    )
    assert msg == AdaptedMessage(
        mine_code=MINE,
        family="safety",
        items=[item(P1, 0.42), item(P2, 1), item(P1, 1)],
        errors=[],
    )


def test_longer_mine_code_and_gas_drainage_system() -> None:
    mine = "150622B0012000200092"
    msg = adapt(f"/{mine}/02", payload(systemcode="02", values=[{"code": "x", "v": "0.5"}]))
    assert msg is not None
    assert msg.mine_code == mine
    assert msg.items == [{"point": "x", "ts": TS, "value": 0.5, "status": 0}]


@pytest.mark.parametrize(
    "topic",
    [
        f"{MINE}/01",  # no leading slash
        f"/{MINE}/01/extra",
        f"/{MINE}",
        "//01",
        f"/{MINE}/1",
        f"/{MINE}/safety",
        f"mines/{MINE}/safety",  # the canonical topic belongs to another adapter
        f"/{MINE}/+",
        "/+/01",
        "",
    ],
)
def test_foreign_topics_are_not_this_adapters(topic: str) -> None:
    assert parse_topic(topic) is None
    assert adapt(topic, payload()) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"", "malformed_json"),
        (b"[1, 2]", "not_object"),
        (b"42", "not_object"),
        (b"[" * 5000 + b"]" * 5000, "malformed_json"),  # hostile nesting
        (b'{"values": ' + b"[" * 5000 + b"]" * 5000 + b"}", "malformed_json"),
        (payload(timestamp=...), "missing_field"),
        (payload(timestamp="2024-05-14T05:35:11Z"), "bad_time"),
        (payload(timestamp=True), "bad_time"),
        (payload(timestamp=-1), "bad_time"),
        (payload(timestamp=1.5), "bad_time"),
        (payload(systemcode=...), "missing_field"),
        (payload(systemcode=None), "bad_type"),
        (payload(systemcode=["01"]), "bad_type"),
        (payload(systemcode="02"), "systemcode_mismatch"),
        (payload(systemcode=2), "systemcode_mismatch"),
        (payload(values=...), "missing_field"),
        (payload(values={"code": P1, "v": 1}), "bad_type"),
    ],
)
def test_whole_message_errors_keep_the_payload(raw: bytes, reason: str) -> None:
    msg = adapt(f"/{MINE}/01", raw)
    assert msg is not None
    assert msg.items == []
    assert msg.errors == [(reason, raw)]
    assert reason in ERROR_REASONS


def test_integral_float_timestamp_and_numeric_systemcode_are_accepted() -> None:
    msg = adapt(f"/{MINE}/01", payload(timestamp=float(TS), systemcode=1, values=[{"code": P1, "v": 0.1}]))
    assert msg is not None
    assert msg.errors == []
    assert msg.items == [item(P1, 0.1)]
    assert isinstance(msg.items[0]["ts"], int)


def test_bad_items_do_not_reject_good_neighbours() -> None:
    values: list[object] = [
        {"code": P1, "v": 0.42},
        "not an object",
        {"v": 1},
        {"code": "  ", "v": 1},
        {"code": 7, "v": 1},
        {"code": P1},
        {"code": P1, "v": None},
        {"code": P1, "v": "high"},
        {"code": P1, "v": [1]},
        {"code": P1, "v": "nan"},  # a quoted number must still be finite
        {"code": f" {P2} ", "v": 0},
    ]
    msg = adapt(f"/{MINE}/01", payload(values=values))
    assert msg is not None
    assert msg.items == [item(P1, 0.42), item(P2, 0)]
    assert [reason for reason, _ in msg.errors] == [
        "not_object",  # "not an object"
        "missing_field",  # no code
        "bad_value",  # blank code
        "bad_type",  # code 7
        "missing_field",  # no v
        "bad_type",  # v null
        "bad_type",  # v "high"
        "bad_type",  # v [1]
        "bad_value",  # v "nan"
    ]
    # each item error carries that item, re-encoded, so a dead letter can show it
    assert json.loads(msg.errors[0][1]) == "not an object"
    assert json.loads(msg.errors[4][1]) == {"code": P1}


def test_reasons_are_the_mqtt_validators_vocabulary() -> None:
    from ingest import validate

    assert set(ERROR_REASONS) - set(validate.REASONS) == {"systemcode_mismatch"}


def test_adapted_items_pass_the_canonical_decoder() -> None:
    import msgspec

    from ingest.validate import SafetyItem

    msg = adapt(f"/{MINE}/01", payload(values=[{"code": P1, "v": 0.42}, {"code": P2, "v": 1}]))
    assert msg is not None
    decoded = msgspec.json.decode(msgspec.json.encode(msg.items), type=list[SafetyItem])
    assert decoded == [SafetyItem(P1, TS, 0.42, 0), SafetyItem(P2, TS, 1.0, 0)]


def test_empty_values_is_an_empty_message() -> None:
    assert adapt(f"/{MINE}/01", payload()) == AdaptedMessage(MINE, "safety", [], [])
