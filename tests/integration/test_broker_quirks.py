"""The Tansu end-offset work-around gives exact end offsets (what faust's recovery needs)."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.kafka.broker_quirks import fetch_high_watermarks, patch_end_offsets_for_tansu
from tests.services import Broker

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)  # lingering makes multi-record batches
    await p.start()
    try:
        futs = [await p.send(topic, b"x", partition=part) for part, n in counts.items() for _ in range(n)]
        await asyncio.gather(*futs)
    finally:
        await p.stop()


def test_end_offsets_match_record_counts_after_patch(broker: Broker) -> None:
    bootstrap = f"127.0.0.1:{broker.port}"
    topic = "quirk-end-offsets"
    counts = {0: 50, 1: 1, 2: 0, 3: 7}

    async def run() -> tuple[dict, dict]:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
        admin.create_topics([NewTopic(topic, 4, 1)])
        admin.close()
        await _produce(bootstrap, topic, counts)
        tps = [TopicPartition(topic, p) for p in counts]
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await c.start()
        try:
            listed = await c.end_offsets(tps)
            fetched = await fetch_high_watermarks(bootstrap, dict(listed))
            patch_end_offsets_for_tansu()
            patched = await c.end_offsets(tps)
        finally:
            await c.stop()
        return fetched, patched

    fetched, patched = asyncio.run(run())
    want = {TopicPartition(topic, p): n for p, n in counts.items()}
    assert fetched == want
    assert patched == want
