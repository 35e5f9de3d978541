"""Every agent sees every offset: a batch with a hole in its offsets is completed from the broker.

Seen in tests on the local stack: after a worker restart, faust-streaming 0.15.3 sometimes
handed an agent offset n-1 and then n+1; the skipped message was never processed, yet its
offset was committed (faust counts an offset jump as a compacted-topic gap). Raw ccpulse
topics are never compacted, so a jump is always a lost message. Here each batch is
checked against the last offset seen per partition (or, after a (re)assignment, the next
expected one: the committed offset, else the log start where nothing was committed yet),
and any missing offsets are read straight from the broker with a plain
aiokafka consumer and put back in place. Processing is idempotent (state by event id,
ReplacingMergeTree keys), so a message that faust does deliver later costs nothing.

Faust itself never commits past offsets it did not see (its committed offset stays before
the hole and its acked list grows), so once the batch holding the read-back messages is
processed and stored, the filled ranges are handed to faust's consumer as gaps
(``Consumer._add_gap``): commits move on, and a restart does not redo the partition.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

log = logging.getLogger("ccpulse.gaps")


@dataclass(frozen=True)
class RawMessage:
    """The fields of a faust message the agents read (never acked: its range is released
    as a gap instead)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class GapFiller:
    def __init__(self, bootstrap_servers: list[str], expected: Callable[[str, int], int | None]) -> None:
        self._bootstrap = bootstrap_servers
        self._expected = expected
        self._last: dict[tuple[str, int], int] = {}
        self.filled = 0

    def forget(self) -> None:
        """After a rebalance another worker may have moved a partition on."""
        self._last.clear()

    async def complete(self, messages: Sequence[Any]) -> tuple[list[Any], list[tuple[str, int, int, int]]]:
        """The batch with skipped offsets read back in place, and the ranges filled
        (topic, partition, first, last): hand those to ``release`` once the batch is stored."""
        out: list[Any] = []
        filled: list[tuple[str, int, int, int]] = []
        for m in messages:
            tp = (m.topic, m.partition)
            prev = self._last.get(tp)
            if prev is None:
                c = self._expected(m.topic, m.partition)
                prev = c - 1 if c is not None else None
            if prev is not None and m.offset > prev + 1:
                missing = await self._read(m.topic, m.partition, prev + 1, m.offset)
                log.warning("offsets %d..%d of %s[%d] were skipped by the consumer; read %d back from the broker",
                            prev + 1, m.offset - 1, m.topic, m.partition, len(missing))
                self.filled += len(missing)
                out.extend(missing)
                filled.append((m.topic, m.partition, prev + 1, m.offset - 1))
            if prev is None or m.offset > prev:
                self._last[tp] = m.offset
            out.append(m)
        return out, filled

    @staticmethod
    async def release(consumer: Any, filled: list[tuple[str, int, int, int]]) -> None:
        """Let faust commit past ranges it skipped, now that they are processed and stored."""
        from faust.types import TP

        for topic, partition, first, last in filled:
            await consumer._add_gap(TP(topic, partition), first, last)

    async def _read(self, topic: str, partition: int, start: int, end: int, timeout_s: float = 30.0) -> list[RawMessage]:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        # A consumer of its own for each read, stopped at once: one left assigned keeps
        # fetching the partition in the background.
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                    client_id="ccpulse-gap-filler", max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        tp = TopicPartition(topic, partition)
        got: dict[int, RawMessage] = {}
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while len(got) < end - start and loop.time() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=end - start)
                for r in batch.get(tp, []):
                    if start <= r.offset < end:
                        got[r.offset] = RawMessage(topic, partition, r.offset, r.key, r.value)
                if batch.get(tp) and batch[tp][-1].offset >= end - 1:
                    break
        finally:
            await consumer.stop()
        if len(got) < end - start:
            # Not there (deleted by retention, or a transaction marker): nothing to process.
            log.warning("%s[%d]: %d of offsets %d..%d could be read back", topic, partition, len(got), start, end - 1)
        return [got[o] for o in sorted(got)]
