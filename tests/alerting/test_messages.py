"""SMS text: templates in zh and en, 70-unit segments, reply parsing, webhook payload."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.errors import TemplateError
from alerting.lifecycle import CaseState, Level, Reason
from alerting.messages import (
    SEGMENT_LIMIT,
    Templates,
    load_templates,
    parse_reply,
    parse_templates,
    render_sms,
    render_text,
    split_segments,
    start_text,
    webhook_payload,
    width,
)
from alerting.pipeline.types import Notification
from tests.alerting.builders import T0, finding, note

ZH = load_templates("zh")
EN = load_templates("en")

MINE_NAMES = [
    "山西汾西矿业（集团）有限责任公司水峪煤业有限公司",
    "山西焦煤集团有限责任公司西山煤电股份有限公司屯兰矿",
    "山西吕梁离石西山晋邦德煤业有限公司",
    "山西𠮷祥𡈼源煤业有限公司",  # characters outside the BMP count twice
    "Shanxi Fenxi Mining (Group) Co., Ltd. Shuiyu Coal Industry Co., Ltd.",
]
CASE_IDS = ["C1001", "2026112300000123", "0b5f2c8e-9c1a-4f0e-9d7b-3f4a2e6c1d90"]
_PREFIX = re.compile(r"^\(\d+/\d+\)")


def _variants() -> list[Notification]:
    notes = []
    for name, case_id, reason, grouped, ack in itertools.product(
        MINE_NAMES, CASE_IDS, Reason, (False, True), (False, True)
    ):
        count = 50 if grouped else 1
        fs = tuple(finding(i, case_id=case_id if i == 0 else f"C{i}", rule=rule)
                   for i, rule in zip(range(count), itertools.cycle(
                       ["methane_exceedance", "power_off_failure", "unknown_rule"])))
        notes.append(note(0, findings=fs, mine_name=name, reason=reason, ack_by_reply=ack,
                          case_state=CaseState.OPEN if reason is not Reason.RESOLVED
                          else CaseState.CLOSED, level=Level.PROVINCE))
    return notes


VARIANTS = _variants()


@pytest.mark.parametrize("t", [ZH, EN], ids=["zh", "en"])
def test_every_segment_fits_and_carries_what_it_must(t: Templates) -> None:
    multi = 0
    for n in VARIANTS:
        segments = render_sms(n, t)
        assert all(width(s) <= SEGMENT_LIMIT for s in segments), segments
        case_id = n.case_ids[0]
        assert case_id in segments[0]  # the tag opens the first segment
        reply = f"1 {case_id}"
        asks = n.ack_by_reply and n.case_state is CaseState.OPEN
        assert sum(reply in s for s in segments) == (1 if asks else 0), segments
        if len(segments) > 1:
            multi += 1
            assert [s[: len(f"({i}/{len(segments)})")] for i, s in enumerate(segments, 1)] == [
                f"({i}/{len(segments)})" for i in range(1, len(segments) + 1)]
        joined = "".join(_PREFIX.sub("", s) for s in segments)
        assert joined.replace(" ", "") == render_text(n, t).replace(" ", "")
    assert multi > 0  # the long names really exercise splitting


def test_chinese_text_reads_as_expected() -> None:
    n = note(1, ack_by_reply=True, level=Level.CITY, mine_name="交城某煤矿")
    text = render_text(n, ZH)
    # T0 is 00:15 UTC: 08:15 in the mine's zone (Asia/Shanghai by default).
    assert text == ("【矿安督办C1】交城某煤矿：T0001瓦斯超限，峰值1.62%（2026-11-23 08:15起），已报市级督办。"
                    "回复“1 C1”确认收到。")


def test_english_and_grouped_text() -> None:
    fs = tuple(finding(i, case_id="C7") for i in range(3))
    n = note(7, findings=fs, reason=Reason.ESCALATED, mine_name="Mine A", level=Level.CITY)
    assert render_text(n, EN) == ("[Minewatch case C7] Mine A: methane exceedance at T0000, "
                                  "peak 1.62% and 2 more (started 2026-11-23 08:15 UTC+0800). "
                                  "Not handled in time; escalated to city level.")
    several = note(8, findings=(finding(1), finding(2)), mine_name="Mine A")
    assert render_text(several, EN).startswith("[Minewatch case C1 +1] ")


def test_unknown_rule_falls_back_to_a_generic_word() -> None:
    n = note(1, findings=(finding(1, rule="brand_new_rule"),), mine_name="某矿")
    assert "T0001报警" in render_text(n, ZH)


def test_split_numbers_segments_with_two_digits_when_needed() -> None:
    segments = split_segments("瓦" * 1000, "回复“1 C1”确认收到。")
    assert len(segments) >= 10
    assert segments[0].startswith(f"(1/{len(segments)})") and segments[-1].endswith("确认收到。")
    assert all(width(s) <= SEGMENT_LIMIT for s in segments)


def test_width_counts_utf16_units() -> None:
    assert width("瓦斯") == 2 and width("𠮷") == 2 and width("abc") == 3


@given(st.text(alphabet=st.sampled_from("瓦斯超限，。 abc1.%𠮷"), max_size=400),
       st.sampled_from(["", "回复“1 C1”确认收到。", " Reply \"1 C1\" to acknowledge."]))
def test_split_property_fits_and_loses_nothing(body: str, tail: str) -> None:
    segments = split_segments(body, tail)
    assert all(width(s) <= SEGMENT_LIMIT for s in segments)
    joined = "".join(_PREFIX.sub("", s) if len(segments) > 1 else s for s in segments)
    assert joined.replace(" ", "") == (body + tail).replace(" ", "")
    if tail.strip():
        assert sum(tail.strip() in s for s in segments) >= 1


@pytest.mark.parametrize(("text", "case_id"), [
    ("1 C1001", "C1001"),
    ("１　C1001", "C1001"),  # full-width digit and space
    ("１ Ｃ１００１", "C1001"),  # full-width letters and digits
    ("  1  2026112300000123 ", "2026112300000123"),
    ("1,C1001", "C1001"),
    ("1，C1001。", "C1001"),
    ("“1 C1001”", "C1001"),
    ("1C1001", "C1001"),  # a letter after the 1 is unambiguous
    ("1 0b5f2c8e-9c1a-4f0e-9d7b-3f4a2e6c1d90", "0b5f2c8e-9c1a-4f0e-9d7b-3f4a2e6c1d90"),
])
def test_parse_reply_accepts(text: str, case_id: str) -> None:
    assert parse_reply(text) == case_id


@pytest.mark.parametrize("text", ["", "1", "1 ", "11001", "2 C1001", "收到", "1 C1001 收到了",
                                  "C1001"])
def test_parse_reply_rejects(text: str) -> None:
    assert parse_reply(text) is None


def test_webhook_payload_follows_the_contract() -> None:
    n = note(3, reason=Reason.RAISED)
    payload = webhook_payload(n, ZH)
    assert payload["id"] == n.id and payload["reason"] == "raised"
    assert payload["case"]["id"] == "C3" and payload["case"]["mine"] == n.mine
    assert payload["case"]["findings"][0]["started_at"] == "2026-11-23T00:15:00Z"
    assert payload["text"] == render_text(n, ZH)


def test_templates_are_checked_at_load() -> None:
    raw = json.loads(ZH.model_dump_json())
    raw["reasons"]["raised"] = "{mine}{nonsense}"
    with pytest.raises(TemplateError, match=r"reasons\.raised uses nonsense"):
        parse_templates(json.dumps(raw), source="bad.yaml")
    raw["reasons"]["raised"] = "{mine}：{what}，已报{level}督办。"
    with pytest.raises(TemplateError, match=r"reasons\.raised must say when the finding started"):
        parse_templates(json.dumps(raw), source="bad.yaml")
    raw["reasons"]["raised"] = ZH.reasons[Reason.RAISED]
    raw["time_format"] = "%H:%M"
    with pytest.raises(TemplateError, match="time_format must give the date and the time"):
        parse_templates(json.dumps(raw), source="bad.yaml")
    raw["time_format"] = ZH.time_format
    del raw["reasons"]["raised"]
    with pytest.raises(TemplateError, match="reasons lacks raised"):
        parse_templates(json.dumps(raw), source="bad.yaml")
    with pytest.raises(TemplateError, match="no templates for language 'fr'"):
        load_templates("fr")


def test_reply_that_cannot_fit_is_an_error() -> None:
    with pytest.raises(TemplateError, match="does not fit"):
        split_segments("瓦" * 100, "回复" + "x" * 80)


# When the finding started, as each language writes the mine's local time of T0 (00:15 UTC).
STARTS = {"zh": "2026-11-23 08:15", "en": "2026-11-23 08:15 UTC+0800"}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("reason", list(Reason))
def test_every_text_says_when_the_finding_started(lang: str, reason: Reason) -> None:
    t = load_templates(lang)
    n = note(1, reason=reason, ack_by_reply=True, mine_name="某矿")
    assert STARTS[lang] in render_text(n, t)
    assert STARTS[lang] in "".join(render_sms(n, t))
    assert STARTS[lang] in webhook_payload(n, t)["text"]


def test_an_old_finding_reads_with_its_own_date_in_the_mine_zone() -> None:
    # Found today, started two months ago (a back-fill): the text carries the old date, in the
    # zone the store gives the start (the mine's registry zone), not UTC and not today.
    old = datetime(2026, 9, 23, 16, 30, tzinfo=UTC)  # 00:30 the next day in Shanghai
    shanghai = note(1, findings=(finding(1, at=old),), mine_name="某矿", created_at=T0)
    assert "（2026-09-24 00:30起）" in render_text(shanghai, ZH)
    urumqi = note(1, findings=(finding(1, at=old.astimezone(ZoneInfo("Asia/Urumqi"))),), mine_name="某矿")
    assert "(started 2026-09-23 22:30 UTC+0600)" in render_text(urumqi, EN)
    assert "（2026-09-23 22:30起）" in render_text(urumqi, ZH)


def test_a_grouped_message_gives_the_earliest_start() -> None:
    fs = (finding(1, case_id="C1", at=T0 + timedelta(hours=3)), finding(2, case_id="C1", at=T0),
          finding(3, case_id="C1", at=T0 + timedelta(hours=1)))
    assert start_text(fs, ZH) == "2026-11-23 08:15"
    assert "(started 2026-11-23 08:15 UTC+0800)" in render_text(note(1, findings=fs, mine_name="Mine A"), EN)
