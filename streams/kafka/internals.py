"""The worker's few reads of faust's consumer state, and the one setting faust does not
expose, each named for what it means (the private attributes stay here)."""
from __future__ import annotations

from typing import Any

from faust.types import TP


def set_fetch_max_wait(seconds: float) -> None:
    """faust-streaming 0.15 builds its consumer with fetch_max_wait_ms=1500 and no setting;
    live figures wait on it, so set ours on the consumer before it starts."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    orig = getattr(AIOKafkaConsumerThread, "_ccpulse_orig_create", None) or AIOKafkaConsumerThread._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = orig(self, transport)
        consumer._fetch_max_wait_ms = int(seconds * 1000)  # read by aiokafka's Fetcher at start()
        return consumer

    AIOKafkaConsumerThread._ccpulse_orig_create = orig  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


def expected_offset(consumer: Any, topic: str, partition: int) -> int | None:
    """The next offset of this partition that must be processed: the committed one, else
    where reading began (the log start); None before the consumer has sought it."""
    return consumer.expected_offset(TP(topic, partition))


def source_partitions(consumer: Any) -> set[Any]:
    """Assigned partitions of the topics the agents read (not the tables' changelogs)."""
    return {tp for tp in consumer.assignment() if not consumer._is_changelog_tp(tp)}


def paused_for_buffer(consumer: Any) -> set[Any]:
    """Partitions faust paused because their stream buffer is full (they resume by themselves)."""
    return set(getattr(consumer, "_buffered_partitions", ()))


def not_fetched(consumer: Any) -> set[Any]:
    """Source partitions the consumer is neither fetching nor holding back for a full buffer."""
    return source_partitions(consumer) - set(consumer._get_active_partitions()) - paused_for_buffer(consumer)


def last_read(consumer: Any, tp: Any) -> int:
    """The last offset the consumer read of a partition, else the one before the committed."""
    read = consumer._read_offset.get(tp)
    return read if read is not None else (consumer._committed_offset.get(tp) or 0) - 1


def consumer_loop(consumer: Any) -> Any:
    """The event loop of faust's consumer thread (for task dumps), or None."""
    return getattr(getattr(consumer, "_thread", None), "thread_loop", None)
