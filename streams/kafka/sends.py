"""Many messages to a few partitions, sent as one aiokafka record batch per partition.

Faust's own send path costs a future, a log call and a buffer round-trip per message;
for the changelog and record traffic of a batch that was half the worker's time. These
batches go through faust's own aiokafka producer, and ``send()`` waits for the broker's
acknowledgement, so nothing sent here can be missing from Kafka once the caller's source
offsets are acked and committed.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import faust


class PartitionBatches:
    """Collect messages per (topic, partition) into aiokafka record batches, then send them all.

    ``add`` copies each message into its partition's batch at once, so the value passed in
    is freed right away: orjson (3.12+) over-allocates every ``dumps`` result to at least
    4 kB (ijl/orjson; home-assistant/core#181513), and holding a batch's 10,000 values
    until ``send`` cost the worker about 80 MB of RSS.
    """

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._open: dict[tuple[str, int], Any] = {}  # the batch being filled, per partition
        self._full: list[tuple[str, int, Any]] = []  # batches filled up, in order
        self._n = 0
        self._failed: BaseException | None = None
        # Agents and timers share one instance: a caller's send() must not return while
        # another caller is still handing over messages the first one added.
        self._lock = asyncio.Lock()
        #: Told (topic, partition, last offset) of every batch the broker acknowledged.
        self.on_sent: Callable[[str, int, int], None] | None = None

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[(topic, partition)] = self._producer().create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: start the next one
            self._full.append((topic, partition, batch))
            batch = self._open[(topic, partition)] = self._producer().create_batch()
            batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any one message
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def _producer(self) -> Any:
        return self._app.producer._producer  # the started AIOKafkaProducer

    async def send(self) -> None:
        """Send every pending message and wait until the broker has acknowledged them.

        Faust's flush before a commit neither waits reliably nor checks delivery
        (faust's Producer.flush returns before the broker answers, and a failed send is only logged), so the caller's batch is acked -- and its offsets
        become committable -- only after this returns.

        A failure is final for this buffer: the send that failed may have carried another
        caller's messages (a timer's send takes what an agent added), so every later send
        raises too and that caller cannot ack a batch whose messages were lost.
        """
        async with self._lock:
            if self._failed is not None:
                raise RuntimeError(f"an earlier send of this buffer failed ({self._failed!r}): "
                                   "messages may be missing, nothing more is acked") from self._failed
            if self._n:
                try:
                    delivered = await self._send_pending()
                    for topic, partition, count, fut in delivered:
                        md = await fut  # raises if the broker refused the batch
                        if self.on_sent is not None and count:
                            self.on_sent(topic, partition, md.offset + count - 1)  # md: the batch's first
                except BaseException as e:  # CancelledError included: its messages are as lost
                    self._failed = e
                    raise

    async def _send_pending(self) -> list[Any]:
        producer = self._producer()
        batches = self._full + [(topic, partition, b) for (topic, partition), b in self._open.items()]
        self._open, self._full, self._n = {}, [], 0
        return [(topic, partition, b.record_count(), await producer.send_batch(b, topic, partition=partition))
                for topic, partition, b in batches]
