"""Fan-out from a case effect to notifications, and the whole pipeline run in order."""

from __future__ import annotations

from datetime import timedelta

from alerting.lifecycle import Level, Notify, Reason, Severity
from alerting.pipeline import run
from alerting.pipeline.fanout import fan_out
from alerting.pipeline.types import ActiveOrder, ChannelKind, StageContext
from alerting.routing import parse_routing
from tests.alerting.builders import MINE, ROUTING_YAML, T0, finding, make_case

ROUTING = parse_routing(ROUTING_YAML, source="routing.yaml")


def test_fan_out_one_notification_per_channel_address() -> None:
    case = make_case(level=Level.COUNTY)
    notes = fan_out(Notify((Level.MINE, Level.COUNTY), Reason.RAISED), case=case,
                    routing=ROUTING, mine_name="某矿", findings=(finding(1, case_id=case.id),),
                    occasion="raised", now=T0)
    assert sorted((n.receiver_id, n.channel, n.address, n.ack_by_reply) for n in notes) == [
        ("jc-county", ChannelKind.SMS, "13900000001", False),
        ("jc-county", ChannelKind.WEBHOOK, "https://hooks.example.cn/jc", False),
        ("m1-duty", ChannelKind.SMS, "13800000001", True),
        ("m1-duty", ChannelKind.SMS, "13800000002", True),
    ]
    again = fan_out(Notify((Level.MINE, Level.COUNTY), Reason.RAISED), case=case,
                    routing=ROUTING, mine_name="某矿", findings=(finding(1, case_id=case.id),),
                    occasion="raised", now=T0 + timedelta(seconds=30))
    assert [n.id for n in again] == [n.id for n in notes]  # same event, same ids


def test_major_hazard_is_also_reported_to_the_workforce() -> None:
    case = make_case(severity=Severity.MAJOR)
    raised = fan_out(Notify((Level.COUNTY,), Reason.RAISED), case=case, routing=ROUTING,
                     mine_name="某矿", findings=(finding(1),), occasion="raised", now=T0)
    union = [n for n in raised if n.receiver_id == "m1-union"]
    assert len(union) == 1 and not union[0].ack_by_reply
    reminder = fan_out(Notify((Level.COUNTY,), Reason.REMINDER), case=case, routing=ROUTING,
                       mine_name="某矿", findings=(finding(1),), occasion="r1", now=T0)
    assert all(n.receiver_id != "m1-union" for n in reminder)
    normal = fan_out(Notify((Level.COUNTY,), Reason.RAISED), case=make_case(), routing=ROUTING,
                     mine_name="某矿", findings=(finding(1),), occasion="raised", now=T0)
    assert all(n.receiver_id != "m1-union" for n in normal)


def test_pipeline_groups_then_inhibits_silences_and_dedups() -> None:
    notes = []
    for i in range(50):
        case = make_case(id=f"C{i}")
        notes += fan_out(Notify((Level.MINE,), Reason.RAISED), case=case, routing=ROUTING,
                         mine_name="某矿", findings=(finding(i, case_id=case.id),),
                         occasion="raised", now=T0 + timedelta(seconds=i))
    ctx = StageContext(now=T0 + timedelta(minutes=1))
    out = run(notes, ctx)
    assert len(out) == 2 and all(len(n.findings) == 50 for n in out)  # two phones of the mine
    sent = {k for n in out for k in n.keys}
    assert run(notes, StageContext(now=ctx.now, sent_keys=sent)) == []
    order = ActiveOrder(MINE, "O1", "methane")
    assert run(notes, StageContext(now=ctx.now, active_orders={MINE: order})) == []
