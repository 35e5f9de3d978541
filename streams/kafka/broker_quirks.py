"""Work-around for the local dev broker (Tansu 0.6) only; never on for Apache Kafka.

Tansu answers ListOffsets(LATEST) too low when the last batch holds more than one record,
while its Fetch high watermark is right. Faust ends changelog recovery at the listed end
offset, so a restarted worker came back with table state short (stack.md). Here every
end-offsets answer is confirmed with a small Fetch and the larger high watermark wins.
Switched on by ``broker_flavour: tansu``; tests/streams/test_broker_quirks.py and the
worker-restart test check exact table values across a restart.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

log = logging.getLogger("ccpulse.broker_quirks")
_PATCHED = "_ccpulse_tansu_end_offsets"


async def fetch_high_watermarks(bootstrap: Any, listed: dict[TopicPartition, int],
                                timeout_s: float = 10.0) -> dict[TopicPartition, int]:
    """High watermarks from real Fetch responses, one small fetch per partition."""
    if not listed:
        return {}
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         fetch_max_wait_ms=20, max_partition_fetch_bytes=1, fetch_max_bytes=1024)
    await c.start()
    try:
        c.assign(list(listed))
        for tp, off in listed.items():
            c.seek(tp, max(off - 1, 0))  # a record just before the listed end, if any
        out = dict(listed)
        pending = set(listed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while pending and loop.time() < deadline:
            await c.getmany(timeout_ms=50, max_records=1)
            for tp in list(pending):
                hw = c.highwater(tp)
                if hw is not None:
                    out[tp] = max(out[tp], hw)
                    pending.discard(tp)
        if pending:
            raise TimeoutError(f"no fetch answer for {sorted(map(str, pending))} within {timeout_s} s")
        return out
    finally:
        await c.stop()


def patch_end_offsets_for_tansu() -> None:
    """Wrap ``AIOKafkaConsumer.end_offsets`` (what faust's recovery asks) once per process."""
    if getattr(AIOKafkaConsumer, _PATCHED, False):
        return
    original = AIOKafkaConsumer.end_offsets

    async def end_offsets(self: AIOKafkaConsumer, partitions: Any) -> dict[TopicPartition, int]:
        listed = await original(self, partitions)
        confirmed = await fetch_high_watermarks(self._client._bootstrap_servers, dict(listed))
        fixed = {tp: off for tp, off in confirmed.items() if off != listed[tp]}
        if fixed:
            log.debug("tansu: end offsets corrected by fetch for %s", fixed)
        return confirmed

    AIOKafkaConsumer.end_offsets = end_offsets  # type: ignore[method-assign]
    setattr(AIOKafkaConsumer, _PATCHED, True)


#: The cluster id Tansu answers unless started with another (``ccpulse dev up`` keeps it).
TANSU_CLUSTER_PREFIX = "tansu"


def detect_flavour(bootstrap: list[str], timeout_s: float = 5.0) -> str:
    """``tansu`` when the broker says it is Tansu (its cluster id), else ``kafka``.

    A broker that cannot be asked yet counts as Tansu: the work-around only confirms end
    offsets with a Fetch, which is right on any broker, while its absence on Tansu brings
    a restarted worker back with states cut short.
    """
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    except Exception as e:  # noqa: BLE001 -- kafka-python raises several kinds here
        log.warning("could not ask the broker %s which it is (%s): end offsets will be confirmed by fetch", bootstrap, e)
        return "tansu"
    try:
        cluster_id = str(admin.describe_cluster().get("cluster_id") or "")
    except Exception as e:  # noqa: BLE001
        log.warning("could not read the broker's cluster id (%s): end offsets will be confirmed by fetch", e)
        return "tansu"
    finally:
        admin.close()
    return "tansu" if cluster_id.startswith(TANSU_CLUSTER_PREFIX) else "kafka"
