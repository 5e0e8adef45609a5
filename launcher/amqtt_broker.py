"""The embedded fallback broker: amqtt 0.12 with the one change that makes it keep what it acked.

amqtt's per-client loop (`Broker._client_message_loop`) waits on the client's DISCONNECT and
on its next published message together, and when the DISCONNECT wins it ends the loop: the
messages that client published just before disconnecting — already acknowledged with a PUBACK,
so the publisher has forgotten them — are still in the session's delivery queue and are never
broadcast. A publisher that sends a burst and disconnects as soon as the last PUBACK arrives
(the simulators, a file replay, every test publisher) loses its last messages whenever the
broker is busy. Here the loop is amqtt's own, except that on a disconnect it first broadcasts,
in order, the message already taken from the queue and everything still queued.

Run as `python -m launcher.amqtt_broker -c CONFIG` (launcher.embedded does).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import read_yaml_config

log = logging.getLogger("launcher.amqtt_broker")


class LosslessBroker(Broker):  # type: ignore[misc]
    """amqtt's Broker; a client's acknowledged messages are broadcast even when it disconnects at once."""

    async def _client_message_loop(self, client_session: Session, handler: BrokerProtocolHandler) -> None:
        # amqtt 0.12.1's loop (amqtt/broker.py), with `_deliver_queued` before the disconnect.
        disconnect_waiter = asyncio.ensure_future(handler.wait_disconnect())
        subscribe_waiter = asyncio.ensure_future(handler.get_next_pending_subscription())
        unsubscribe_waiter = asyncio.ensure_future(handler.get_next_pending_unsubscription())
        wait_deliver = asyncio.ensure_future(handler.mqtt_deliver_next_message())
        connected = True
        while connected:
            try:
                done, _ = await asyncio.wait([disconnect_waiter, subscribe_waiter, unsubscribe_waiter, wait_deliver],
                                             return_when=asyncio.FIRST_COMPLETED)
                if disconnect_waiter in done:
                    wait_deliver = await self._deliver_queued(client_session, handler, wait_deliver)
                    await self._handle_disconnect(client_session, handler, disconnect_waiter)
                    connected = False
                if subscribe_waiter in done:
                    await self._handle_subscription(client_session, handler, subscribe_waiter)
                    subscribe_waiter = asyncio.ensure_future(handler.get_next_pending_subscription())
                if unsubscribe_waiter in done:
                    await self._handle_unsubscription(client_session, handler, unsubscribe_waiter)
                    unsubscribe_waiter = asyncio.ensure_future(handler.get_next_pending_unsubscription())
                if connected and wait_deliver in done:
                    if not await self._handle_message_delivery(client_session, handler, wait_deliver):
                        break
                    wait_deliver = asyncio.ensure_future(handler.mqtt_deliver_next_message())
            except asyncio.CancelledError:
                break
        pending = [disconnect_waiter, subscribe_waiter, unsubscribe_waiter, wait_deliver]
        for waiter in pending:
            waiter.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _deliver_queued(self, client_session: Session, handler: BrokerProtocolHandler,
                              wait_deliver: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Broadcast, in order, the message `wait_deliver` already took (if it did) and every
        message still queued; returns a future that is already done (nothing left to cancel)."""
        queue = client_session.delivered_message_queue
        n = 0
        if wait_deliver.done():
            if not wait_deliver.cancelled() and wait_deliver.exception() is None:
                await self._handle_message_delivery(client_session, handler, wait_deliver)
                n += 1
        else:
            wait_deliver.cancel()
            await asyncio.gather(wait_deliver, return_exceptions=True)
        while not queue.empty():
            message = queue.get_nowait()
            taken: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            taken.set_result(message)
            await self._handle_message_delivery(client_session, handler, taken)
            n += 1
        if n:
            log.info("client %s disconnected with %d acknowledged message(s) not yet broadcast: broadcast them",
                     client_session.client_id, n)
        return wait_deliver


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m launcher.amqtt_broker",
                                     description="The embedded amqtt broker (MQTT 3.1.1) Minewatch falls back to.")
    parser.add_argument("-c", dest="config", required=True, help="amqtt YAML configuration file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] :: %(levelname)s - %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)
    config = read_yaml_config(args.config)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    broker = LosslessBroker(config, loop=loop)
    started = loop.create_task(broker.start())
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        loop.run_until_complete(broker.shutdown())
    finally:
        started.cancel()
        loop.close()


if __name__ == "__main__":
    main()
