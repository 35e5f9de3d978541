"""The worker's send buffer (streams/kafka/sends.py) on a real broker: every message arrives, in
order per partition, across several record batches; and once a send fails, every later
send fails too, so no caller acks a batch whose messages a failed send took."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.kafka.sends import PartitionBatches
from tests.services import Broker

pytestmark = pytest.mark.integration


def _topic(bootstrap: str, name: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    admin.create_topics([NewTopic(name, partitions, 1)])
    admin.close()


async def _read(bootstrap: str, tp: TopicPartition, n: int) -> list[tuple[bytes | None, bytes | None]]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await c.start()
    try:
        c.assign([tp])
        out: list[tuple[bytes | None, bytes | None]] = []
        deadline = asyncio.get_running_loop().time() + 20
        while len(out) < n and asyncio.get_running_loop().time() < deadline:
            for records in (await c.getmany(tp, timeout_ms=500)).values():
                out += [(r.key, r.value) for r in records]
        return out
    finally:
        await c.stop()


def test_every_message_arrives_in_order_across_full_batches(broker: Broker) -> None:
    bootstrap = f"127.0.0.1:{broker.port}"
    topic = "sends-order"
    _topic(bootstrap, topic, 2)

    async def run() -> tuple[list, list, int]:
        # 4 kB batches: the 1,500 messages of partition 0 fill dozens of them.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=4096, acks=-1)
        await producer.start()
        try:
            buf = PartitionBatches(SimpleNamespace(producer=SimpleNamespace(_producer=producer)))  # type: ignore[arg-type]
            for i in range(1500):
                buf.add(topic, 0, f"k{i}".encode(), f"value {i} ".encode() * 3)
                if i % 3 == 0:
                    buf.add(topic, 1, None, f"{i}".encode())
            buf.add(topic, 1, b"gone", None)  # a tombstone
            pending = len(buf)
            await buf.send()
            assert len(buf) == 0
        finally:
            await producer.stop()
        return (await _read(bootstrap, TopicPartition(topic, 0), 1500),
                await _read(bootstrap, TopicPartition(topic, 1), 501), pending)

    p0, p1, pending = asyncio.run(run())
    assert pending == 1500 + 500 + 1
    assert p0 == [(f"k{i}".encode(), f"value {i} ".encode() * 3) for i in range(1500)]
    assert p1 == [(None, f"{i}".encode()) for i in range(0, 1500, 3)] + [(b"gone", None)]


def test_after_a_failed_send_every_later_send_fails(broker: Broker) -> None:
    bootstrap = f"127.0.0.1:{broker.port}"
    topic = "sends-failure"
    _topic(bootstrap, topic, 1)

    async def run() -> list[str]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1)
        await producer.start()
        errors = []
        try:
            buf = PartitionBatches(SimpleNamespace(producer=SimpleNamespace(_producer=producer)))  # type: ignore[arg-type]
            buf.add(topic, 0, b"a", b"fine")
            buf.add(topic, 7, b"b", b"a partition the topic does not have")
            for attempt in range(2):
                try:
                    await buf.send()
                except Exception as e:  # noqa: BLE001 -- what each caller sees is the point
                    errors.append(f"{type(e).__name__}: {e}")
                buf.add(topic, 0, b"c", b"a later message")
        finally:
            await producer.stop()
        return errors

    errors = asyncio.run(run())
    assert len(errors) == 2
    assert "earlier send of this buffer failed" not in errors[0]
    assert errors[1].startswith("RuntimeError: an earlier send of this buffer failed")
