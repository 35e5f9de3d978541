"""Batches straight from the fetch: the consumer hands each partition's records to an inbox.

Profiled at full speed (py-spy, bench/pipeline.py), faust-streaming spent about half the
worker's time moving messages one at a time: a ``wait_first`` with four tasks per message
in the drain loop, a decode, a queue put and get, a stream iteration with sensors and an
event per message, then an ack per event. ccpulse's agents work on batches anyway, so
here the consumer's drain loop puts each fetched partition's records into the inbox of the
agent that reads the topic, in one step; the agent takes batches from it.

What faust's stream guaranteed is kept:

- a batch is tracked as unacked while it is handled (a rebalance waits for it, as for a
  stream's current event), and its offsets are acked only once its results are stored,
  with faust's own ack bookkeeping, a batch at a time;
- messages of an older consumer generation, or taken while flow is suspended for a
  rebalance, are dropped unacked (faust seeks back to the committed offsets and the
  consumer reads them again), as faust's stream skips them;
- a full inbox stops fetching its partitions until it drains to half (faust's
  ``on_buffer_full`` / ``on_buffer_drop``);
- offset bookkeeping (read offsets, commits, the monitor's end offsets) is faust's own.

One thing is deliberately different: an offset jump on these topics is not marked as a
faust "gap" (a compacted-topic hole that may be committed over) the moment it is seen. The
raw topics are never compacted, so a jump is a skipped message; streams/kafka/gaps.py reads it
back and releases the range only once its batch is stored.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict, deque
from typing import Any, Callable, Iterable, Protocol

from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify
from faust.transport.drivers import aiokafka as faust_aiokafka
from aiokafka.structs import TopicPartition as AIOTopicPartition

from streams.kafka import recovery

log = logging.getLogger("ccpulse.inbox")


class Record(Protocol):
    """What the agents read of a message: aiokafka's ConsumerRecord, or a record the gap
    filler read back (streams/kafka/gaps.py)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Inbox:
    """Fetched records of one agent's topics, waiting to be taken in batches.

    The records are aiokafka's own (``topic``, ``partition``, ``offset``, ``key``,
    ``value``...): no faust message per record. Each fetched chunk keeps the consumer
    generation it was read in, and chunks of an older generation are dropped when taken.
    """

    def __init__(self, name: str, maxsize: int, generation: Callable[[], int]) -> None:
        self.name = name
        self.maxsize = maxsize
        self._generation = generation
        self._chunks: deque[tuple[int, list[Any]]] = deque()  # (generation, records)
        self._n = 0
        self._arrived = asyncio.Event()
        self._full: set[Any] = set()  # partitions paused because this inbox was full
        self.consumer: Any = None

    def __len__(self) -> int:
        return self._n

    def put_many(self, tp: Any, records: list[Any], generation: int) -> None:
        self._chunks.append((generation, records))
        self._n += len(records)
        self._arrived.set()
        if self._n > self.maxsize and self.consumer is not None:
            self.consumer.on_buffer_full(tp)
            self._full.add(tp)

    async def take(self, size: int, within: float) -> list[Any]:
        """Up to ``size`` records of the current generation: waits for the first, then at
        most ``within`` seconds for the batch to fill."""
        while not self._n:
            self._arrived.clear()
            await self._arrived.wait()
        if self._n < size:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while self._n < size and (left := deadline - loop.time()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
        out: list[Any] = []
        chunks, current = self._chunks, self._generation()
        while chunks and len(out) < size:
            gen, records = chunks[0]
            need = size - len(out)
            if gen != current:  # read before a rebalance: faust reads them again after it
                chunks.popleft()
                self._n -= len(records)
            elif len(records) <= need:
                chunks.popleft()
                out.extend(records)
                self._n -= len(records)
            else:
                out.extend(records[:need])
                chunks[0] = (gen, records[need:])
                self._n -= need
        if self._full and self._n <= self.maxsize // 2 and self.consumer is not None:
            for tp in self._full:
                self.consumer.on_buffer_drop(tp)
            self._full.clear()
        return out


def track(consumer: Any, batch: list[Any]) -> Any:
    """Make a rebalance wait for ``batch`` (faust's ``wait_empty`` waits while it tracks
    unacked messages): one faust message stands for the whole batch; give it to ``ack``."""
    last = batch[-1]
    stand_in = consumer._to_message(TP(last.topic, last.partition), last)
    consumer._unacked_messages.add(stand_in)
    return stand_in


def ack(consumer: Any, batch: list[Any], stand_in: Any) -> None:
    """faust's ``Consumer.ack`` for a whole batch: its offsets become committable."""
    by_tp: dict[tuple[str, int], list[int]] = defaultdict(list)
    for r in batch:
        by_tp[(r.topic, r.partition)].append(r.offset)
    n = 0
    with ack_lock:
        for (topic, partition), offsets in by_tp.items():
            tp = TP(topic, partition)
            committed = consumer._committed_offset[tp]
            index = consumer._acked_index[tp]
            new = [o for o in offsets if (committed is None or o >= committed) and o not in index]
            index.update(new)
            consumer._acked[tp].extend(new)
            n += len(new)
        consumer._n_acked += n
        stand_in.acked = True
        consumer._unacked_messages.discard(stand_in)
    notify(consumer._waiting_for_ack)


def release(consumer: Any, stand_in: Any) -> None:
    """Stop making a rebalance wait for ``stand_in`` (of ``track``) without acking anything: for
    a timer's writes, whose offsets are not its own to ack."""
    with ack_lock:
        consumer._unacked_messages.discard(stand_in)
    notify(consumer._waiting_for_ack)


def commit_hole(expected: int, acked: Iterable[int], gap_begins: Iterable[int]) -> tuple[int, int] | None:
    """(expected, lowest) when the lowest acknowledged or released offset lies past the next
    one that must be processed: committing the run after it would skip ``expected..lowest-1``."""
    lowest = min((*acked, *gap_begins), default=None)
    return (expected, lowest) if lowest is not None and lowest > expected else None


class InboxConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer whose drain loop fills inboxes (``app.inboxes``: topic →
    inbox) a partition at a time; topics without an inbox go through faust's own path.

    Two guards make "nothing is committed past an unprocessed message" hold by construction,
    not by timing (issue 23):

    - ``seek_to_committed`` puts every source partition where processing must resume: its
      committed offset (0 included), else the start of its log. aiokafka's own seeks only
      partitions committed above 0, so records the drain loop dropped (read during recovery
      or while flow was suspended, "read again after the seek") were never read again on a
      partition nobody had committed yet: a worker restarted after its predecessor was killed
      before its first commit lost the head of every events partition and never read its
      agent-events at all.
    - ``_new_offset`` commits only a run of acknowledged offsets that starts exactly at the
      partition's next expected offset (the committed one, else where reading began). faust's
      own check skips a partition committed at None or 0 and is one off otherwise, so an
      acknowledged batch after a hole moved the commit past the hole.
    """

    #: Per source partition, the offset processing resumed from at the last seek (the
    #: committed offset, or the log start when none was committed).
    read_from: dict[Any, int]
    #: Per source partition, a hole the commit guard is holding back: (expected, lowest acked).
    holes: dict[Any, tuple[int, int]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_from = {}
        self.holes = {}

    def expected_offset(self, tp: Any) -> int | None:
        """The next offset of ``tp`` that must be processed before any later one is committed."""
        committed = self._committed_offset.get(tp)
        return committed if isinstance(committed, int) else self.read_from.get(tp)

    async def seek_to_committed(self) -> Any:
        return await self._thread.call_thread(self._seek_sources)

    async def _seek_sources(self) -> dict[Any, int | None]:
        """On the consumer's thread: committed offset, else log start, for every source partition."""
        c = self._thread._ensure_consumer()
        out: dict[Any, int | None] = {}
        uncommitted = []
        for atp in c.assignment():
            off = await c.committed(atp)
            if off is not None and off >= 0:
                c.seek(atp, off)
            elif not self._is_changelog_tp(TP(atp.topic, atp.partition)):
                uncommitted.append(atp)
            out[atp] = off
        if uncommitted:
            for atp, start in (await c.beginning_offsets(uncommitted)).items():
                c.seek(atp, start)
                out[atp] = start
        read_from = {TP(atp.topic, atp.partition): off for atp, off in out.items()
                     if off is not None and not self._is_changelog_tp(TP(atp.topic, atp.partition))}
        self.read_from.clear()
        self.read_from.update(read_from)
        self.holes.clear()
        return out

    def _new_offset(self, tp: Any) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        expected = self.expected_offset(tp)
        if expected is None:
            return None  # not sought yet: nothing to measure a hole against, so no commit
        hole = commit_hole(expected, acked, (iv.begin for iv in self._gap[tp]))
        if hole is not None:
            # The gap filler reads a hole back and releases it (streams/kafka/gaps.py); until
            # then this partition's commit waits, and a restart reads from the committed offset.
            if self.holes.get(tp) != hole:
                log.warning("%s[%d]: offsets %d..%d are not processed yet, later ones are: "
                            "committing nothing past %d until they are", tp.topic, tp.partition,
                            hole[0], hole[1] - 1, hole[0])
            self.holes[tp] = hole
            return None
        self.holes.pop(tp, None)
        return super()._new_offset(tp)

    async def highwaters(self, *partitions: Any) -> Any:
        """End offsets; for the changelogs recovery reads, only ones it can trust
        (streams/kafka/recovery.py). A worker whose state was lost stops here (exit 78)."""
        ends = await super().highwaters(*partitions)
        pairs: dict[str, str] = getattr(self.app, "changelog_sources", {})
        if not any(tp.topic in pairs for tp in ends):
            return ends
        try:
            return await recovery.confirm(ends, pairs, self._source_offsets,
                                          lambda tps: super(InboxConsumer, self).highwaters(*tps),
                                          group=self.app.conf.id)
        except recovery.StateLost as e:
            log.critical("ccpulse worker: %s", e)
            logging.shutdown()
            os._exit(78)

    async def _source_offsets(self, keys: list[tuple[str, int]]) -> tuple[dict[Any, int | None], dict[Any, int]]:
        """Committed offsets and log starts of source partitions, read on the consumer's thread."""
        tps = [AIOTopicPartition(t, p) for t, p in keys]

        async def read() -> tuple[dict[Any, int | None], dict[Any, int]]:
            c = self._thread._ensure_consumer()
            committed = {(tp.topic, tp.partition): await c.committed(tp) for tp in tps}
            starts = await c.beginning_offsets(tps)
            return committed, {(tp.topic, tp.partition): off for tp, off in starts.items()}

        return await self._thread.call_thread(read)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.read_from.pop(tp, None)
            self.holes.pop(tp, None)
        await super().on_partitions_revoked(revoked)

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
        put_upto: dict[tuple[Any, int], int] = {}  # (partition, generation) -> last offset put
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
                if put_upto and next(iter(put_upto))[1] != generation_id:
                    put_upto.clear()  # a new generation reads from the committed offsets
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
                    if self.app.in_recovery or not self.app.flow_control.is_active():
                        continue  # the seek to the committed offsets that follows reads them again
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and recs[0].offset < r_offset:  # faust drops these
                        recs = [r for r in recs if r.offset >= r_offset]
                    # faust seeks back to the committed offsets after recovery: records this
                    # generation already put in an inbox come again then, and are not put
                    # twice (a demo run processed up to a third of its events twice).
                    upto = put_upto.get((tp, generation_id))
                    if recs and upto is not None and recs[0].offset <= upto:
                        recs = [r for r in recs if r.offset > upto]
                        if not recs:
                            # All put before the seek moved the read offset back: the consumer
                            # has read up to ``upto`` (else the stall guard sees a partition it
                            # has read whole as never read, and restarts the worker for nothing).
                            set_read_offset(tp, max(upto, get_read_offset(tp) or -1))
                    if recs:
                        # Unless a rebalance began: faust's wait_first drops them then too.
                        if not self.suspend_flow.is_set():
                            inbox.put_many(tp, recs, generation_id)
                            put_upto[(tp, generation_id)] = recs[-1].offset
                        set_read_offset(tp, recs[-1].offset)
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
