"""The embedded fallback broker keeps what it acknowledged when a publisher disconnects at once.

Stock amqtt 0.12 ends a client's loop on its DISCONNECT with messages it had already PUBACKed
still in the session's delivery queue; under load the suite saw publishers' last messages vanish
that way (launcher/amqtt_broker.py). The race is timing-dependent, so this drives the drain
itself, with amqtt's real Broker and Session: what the loop's waiter already took and what is
still queued are both broadcast, in publication order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from amqtt.session import IncomingApplicationMessage, Session

from launcher.amqtt_broker import LosslessBroker

CONFIG: dict[str, Any] = {"listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:0"}},
                          "plugins": {"launcher.amqtt_auth.SessionKeepingAuth": {}}}


def _message(i: int) -> IncomingApplicationMessage:
    return IncomingApplicationMessage(i + 1, f"m/{i}", 1, b"%d" % i, False)


async def _broadcast(broker: LosslessBroker) -> list[tuple[str, bytes]]:
    out = []
    while not broker._broadcast_queue.empty():
        b = broker._broadcast_queue.get_nowait()
        out.append((b["topic"], b["data"]))
    return out


async def test_queued_messages_are_broadcast_in_order_when_the_waiter_had_not_run() -> None:
    broker = LosslessBroker(CONFIG, loop=asyncio.get_running_loop())
    session = Session()
    session.client_id = "publisher"
    waiter = asyncio.ensure_future(session.delivered_message_queue.get())
    await asyncio.sleep(0)  # the waiter waits on the empty queue, as the loop's does
    for i in range(3):
        session.delivered_message_queue.put_nowait(_message(i))  # wakes the waiter, which has not run yet
    left = await broker._deliver_queued(session, None, waiter)
    assert left.done()
    assert await _broadcast(broker) == [("m/0", b"0"), ("m/1", b"1"), ("m/2", b"2")]
    assert session.delivered_message_queue.empty()


async def test_the_message_the_waiter_took_goes_first() -> None:
    broker = LosslessBroker(CONFIG, loop=asyncio.get_running_loop())
    session = Session()
    session.client_id = "publisher"
    for i in range(3):
        session.delivered_message_queue.put_nowait(_message(i))
    waiter = asyncio.ensure_future(session.delivered_message_queue.get())
    await asyncio.sleep(0)  # it took m/0 and is done; the loop saw only the DISCONNECT
    assert waiter.done()
    await broker._deliver_queued(session, None, waiter)
    assert await _broadcast(broker) == [("m/0", b"0"), ("m/1", b"1"), ("m/2", b"2")]


async def test_nothing_queued_broadcasts_nothing() -> None:
    broker = LosslessBroker(CONFIG, loop=asyncio.get_running_loop())
    session = Session()
    session.client_id = "publisher"
    waiter = asyncio.ensure_future(session.delivered_message_queue.get())
    await asyncio.sleep(0)
    left = await broker._deliver_queued(session, None, waiter)
    assert left.cancelled()
    assert await _broadcast(broker) == []
