"""streams/kafka/gaps.py against a real broker: offsets missing from a batch are read back in
place, and the ranges filled are reported for faust to commit past."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from streams.kafka.gaps import GapFiller, RawMessage
from tests.services import Broker

pytestmark = pytest.mark.integration


def _topic_of(broker: Broker, n: int) -> str:
    """A new topic whose partition 0 holds v0..v{n-1} at offsets 0..n-1."""
    from kafka import KafkaProducer

    topic = f"gaps-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=[broker.url.removeprefix("kafka://")])
    for i in range(n):
        producer.send(topic, key=b"k", value=f"v{i}".encode(), partition=0)
    producer.flush()
    producer.close()
    return topic


def test_skipped_offsets_are_read_back_in_order_and_reported(broker: Broker) -> None:
    topic = _topic_of(broker, 10)

    def ev(offset: int) -> RawMessage:
        return RawMessage(topic, 0, offset, b"k", f"v{offset}".encode())

    async def run() -> tuple[list, list, list, list]:
        filler = GapFiller([broker.url.removeprefix("kafka://")], expected=lambda t, p: 1)
        first, gaps1 = await filler.complete([ev(1), ev(2), ev(5), ev(6)])  # 3, 4 skipped
        second, gaps2 = await filler.complete([ev(6), ev(9)])  # a redelivery, then 7, 8 skipped
        return first, gaps1, second, gaps2

    first, gaps1, second, gaps2 = asyncio.run(run())
    assert [(e.offset, e.value) for e in first] == [(o, f"v{o}".encode()) for o in range(1, 7)]
    assert gaps1 == [(topic, 0, 3, 4)]
    assert [e.offset for e in second] == [6, 7, 8, 9]
    assert gaps2 == [(topic, 0, 7, 8)]


def test_a_hole_at_the_head_of_a_partition_nobody_committed_is_read_back(broker: Broker) -> None:
    """Issue 23: nothing committed yet, reading began at the log start (0), and the first batch
    that arrives starts at 3: offsets 0..2 are read back, not committed over."""
    topic = _topic_of(broker, 6)

    async def run() -> tuple[list, list]:
        filler = GapFiller([broker.url.removeprefix("kafka://")], expected=lambda t, p: 0)
        return await filler.complete([RawMessage(topic, 0, o, b"k", f"v{o}".encode()) for o in (3, 4, 5)])

    got, gaps = asyncio.run(run())
    assert [(e.offset, e.value) for e in got] == [(o, f"v{o}".encode()) for o in range(6)]
    assert gaps == [(topic, 0, 0, 2)]
