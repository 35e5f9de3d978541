"""Many messages to a few partitions, sent as one aiokafka record batch per partition.

Faust's own send path costs a future, a log call and a buffer round-trip per message;
for the changelog and record traffic of a batch that was half the worker's time. These
batches go through faust's own aiokafka producer, and ``send()`` waits for the broker's
acknowledgement, so nothing sent here can be missing from Kafka once the caller's source
offsets are acked and committed.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import faust


class PartitionBatches:
    """Collect (topic, partition) → [(key, value)], then send them all at once."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._pending: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = defaultdict(list)
        # Agents and timers share one instance: a caller's send() must not return while
        # another caller is still handing over messages the first one added.
        self._lock = asyncio.Lock()

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self._pending[(topic, partition)].append((key, value))

    def __len__(self) -> int:
        return sum(len(v) for v in self._pending.values())

    async def send(self) -> None:
        """Send every pending message and wait until the broker has acknowledged them.

        Faust's flush before a commit neither waits reliably nor checks delivery
        (tests/README: faust internals), so the caller's batch is acked -- and its offsets
        become committable -- only after this returns.
        """
        async with self._lock:
            if self._pending:
                delivered = await self._send_pending()
                for fut in delivered:
                    await fut  # raises if the broker refused the batch

    async def _send_pending(self) -> list[Any]:
        producer: Any = self._app.producer._producer  # the started AIOKafkaProducer
        pending, self._pending = self._pending, defaultdict(list)
        futures = []
        for (topic, partition), messages in pending.items():
            batch = producer.create_batch()
            for key, value in messages:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"message of {len(value or b'')} bytes exceeds the producer's batch size")
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
