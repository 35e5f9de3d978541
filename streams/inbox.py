"""Batches straight from the fetch: the consumer hands each partition's records to an inbox.

Profiled at full speed (py-spy, bench/pipeline.py), faust-streaming spent about half the
worker's time moving messages one at a time: a ``wait_first`` with four tasks per message
in the drain loop, a decode, a queue put and get, a stream iteration with sensors and an
event per message, then an ack per event. ccpulse's agents work on batches anyway, so
here the consumer's drain loop puts each fetched partition's records into the inbox of the
agent that reads the topic, in one step; the agent takes batches from it.

What faust's stream guaranteed is kept:

- a batch is tracked as unacked while it is handled (a rebalance waits for it, as for a
  stream's current event), and its messages are acked only once its results are stored;
- messages of an older consumer generation, or taken while flow is suspended for a
  rebalance, are dropped unacked (faust seeks back to the committed offsets and the
  consumer reads them again), as faust's stream skips them;
- a full inbox stops fetching its partitions until it drains to half (faust's
  ``on_buffer_full`` / ``on_buffer_drop``);
- offset bookkeeping (read offsets, commits, the monitor's end offsets) is faust's own.

One thing is deliberately different: an offset jump on these topics is not marked as a
faust "gap" (a compacted-topic hole that may be committed over) the moment it is seen. The
raw topics are never compacted, so a jump is a skipped message; streams/gaps.py reads it
back and releases the range only once its batch is stored.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import TP
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("ccpulse.inbox")


class Inbox:
    """Fetched messages of one agent's topics, waiting to be taken in batches."""

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self.maxsize = maxsize
        self._buf: deque[Any] = deque()
        self._arrived = asyncio.Event()
        self._full: set[Any] = set()  # partitions paused because this inbox was full
        self.consumer: Any = None

    def __len__(self) -> int:
        return len(self._buf)

    def put_many(self, tp: Any, messages: list[Any]) -> None:
        self._buf.extend(messages)
        self._arrived.set()
        if len(self._buf) > self.maxsize and self.consumer is not None:
            self.consumer.on_buffer_full(tp)
            self._full.add(tp)

    async def take(self, size: int, within: float) -> list[Any]:
        """Up to ``size`` messages: waits for the first, then at most ``within`` seconds
        for the batch to fill."""
        buf = self._buf
        while not buf:
            self._arrived.clear()
            await self._arrived.wait()
        if len(buf) < size:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while len(buf) < size and (left := deadline - loop.time()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
        n = min(size, len(buf))
        out = [buf.popleft() for _ in range(n)]
        if self._full and len(buf) <= self.maxsize // 2 and self.consumer is not None:
            for tp in self._full:
                self.consumer.on_buffer_drop(tp)
            self._full.clear()
        return out


class InboxConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer whose drain loop fills inboxes (``app.inboxes``: topic →
    inbox) a partition at a time; topics without an inbox go through faust's own path."""

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in every worker test
        inboxes: dict[str, Inbox] = getattr(self.app, "inboxes", {})
        for inbox in inboxes.values():
            inbox.consumer = self
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        to_message = self._to_message
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await sleep(0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    # As faust's getmany: read again from the committed offsets later.
                    try:
                        await self.perform_seek()
                    except Exception as ex:  # noqa: BLE001 -- faust logs and carries on too
                        log.warning("seek while flow not active failed: %r", ex)
                    continue
                generation_id = self.app.consumer_generation_id
                for atp, recs in records.items():
                    if self.app.consumer_generation_id != generation_id or not self.flow_active:
                        break
                    tp = TP(atp.topic, atp.partition)  # aiokafka's own tuple type: faust asserts on its sets
                    if not recs or not (active is None or tp in active or tp in self._buffered_partitions):
                        continue
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    inbox = inboxes.get(tp.topic)
                    if inbox is None:
                        await self._deliver_one_by_one(tp, recs, callback, acks_enabled_for)
                        continue
                    r_offset = get_read_offset(tp)
                    msgs = []
                    for record in recs:
                        if r_offset is None or record.offset >= r_offset:
                            msgs.append(to_message(tp, record))
                            r_offset = record.offset
                    if msgs:
                        if self.suspend_flow.is_set():
                            # A rebalance began: faust's wait_first would drop these too.
                            set_read_offset(tp, r_offset)
                            continue
                        inbox.put_many(tp, msgs)
                        set_read_offset(tp, r_offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await sleep(0)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver_one_by_one(self, tp: Any, recs: list[Any], callback: Any, acks_enabled_for: Any) -> None:
        """faust's own per-message delivery (for topics without an inbox)."""
        for record in recs:
            offset = record.offset
            r_offset = self._read_offset[tp]
            if r_offset is None or offset >= r_offset:
                gap = offset - (r_offset or 0)
                if gap > 1 and r_offset and acks_enabled_for(tp.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                await self.wait_first(callback(self._to_message(tp, record)), self.suspend_flow.wait())
                self._read_offset[tp] = offset


class InboxTransport(faust_aiokafka.Transport):
    Consumer = InboxConsumer


def install(app: Any) -> None:
    """Use the inbox consumer for this app (before anything creates its consumer)."""
    app.inboxes = {}
    app.transport = InboxTransport(app.conf.broker_consumer, app)
