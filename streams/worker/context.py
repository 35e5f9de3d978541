"""What every flow of a worker shares, typed: its settings, centre, tables, clocks, writer,
send buffer and counters (``Worker``), and the few actions that belong to the worker as a
whole (dead-lettering, ending the process, owned partitions, row versions).

The flows (streams/worker/flows/) take one ``Worker`` instead of closing over the locals of
one big function, so each can be built and driven alone: tests/streams/test_flows.py does
so with an in-memory table, a fake writer and a fake send buffer.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, MutableMapping, NoReturn, Protocol, Sequence

from schemas.events import Event
from streams.config.settings import Settings
from streams.domain.clock import Clock
from streams.domain.keys import partition_of
from streams.domain.validate import MAX_MESSAGE_BYTES, Rejected, TopicKind, validate
from streams.kafka.inbox import Record

log = logging.getLogger("ccpulse.worker")


class Sends(Protocol):
    """A buffer of messages per topic partition, sent together (streams/kafka/sends.py)."""

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None: ...

    async def send(self) -> None: ...


class Writer(Protocol):
    """The ClickHouse side a flow uses (streams/clickhouse/writer.py)."""

    degraded: Any

    async def write(self, table: str, batch: Any) -> None: ...

    async def read(self, sql: Any) -> Any: ...


@dataclass
class Counters:
    events: int = 0
    dead_letters: int = 0
    records_emitted: int = 0
    timed_out: int = 0
    expired: int = 0
    late_updates: int = 0
    alerts: int = 0
    first_event_at: float | None = None


@dataclass
class Limits:
    """What the input caps (Settings.max_*) see: open contacts now, and when each was last logged."""

    open_contacts: int = 0
    contacts_held: int = 0
    warned: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Changelogs:
    """The changelog topic of each table: a state is sent there with the batch that changed it."""

    interactions: str
    agents: str
    alert_groups: str


def dead_letter_payload(rej: Rejected, m: Record) -> dict[str, Any]:
    """The dead-letter message: the reason, where it came from and the original bytes."""
    value = m.value if isinstance(m.value, bytes) else (m.value or b"")
    error = rej.error[:2000]
    if len(value) > MAX_MESSAGE_BYTES:
        # The dead letter must fit the broker's message limit (1 MB by default), or its send
        # fails and the worker stops on the same batch for ever: keep the head and a hash.
        error += (f" [payload truncated to its first {MAX_MESSAGE_BYTES:,} of {len(value):,} bytes; "
                  f"sha256 of the whole {hashlib.sha256(value).hexdigest()}]")
        value = value[:MAX_MESSAGE_BYTES]
    return {
        "reason": rej.reason, "error": error, "source_topic": m.topic,
        "source_partition": m.partition, "source_offset": m.offset,
        "received_at_ms": int(time.time() * 1000),
        "key": m.key.decode("utf-8", "replace") if isinstance(m.key, bytes) else None,
        "payload_b64": base64.b64encode(value).decode(),
    }


def states(table: Any) -> MutableMapping[bytes, Any]:
    """A table's own dict with the memory store: ``get`` through faust's store wrapper
    raises and catches a KeyError for every new key, on the hot path. Other stores: as is."""
    d = table.data
    inner = getattr(d, "data", None)
    return inner if isinstance(inner, dict) else d


def fatal(what: str, e: BaseException) -> NoReturn:
    """A batch that was not fully processed must not be acked: exit, and process it again on
    restart. The one place the worker ends itself on an error (the watchdog's stall exit aside)."""
    log.critical("%s failed (%r): exiting without committing; the batch will be processed again",
                 what, e, exc_info=e)
    logging.shutdown()
    os._exit(70)


@dataclass(eq=False)
class Worker:
    """One worker process's shared parts. ``app`` is the faust app (or, in unit tests, a
    stand-in with ``assignor``, ``in_recovery`` and ``consumer_generation_id``)."""

    settings: Settings
    app: Any
    centre: Any
    writer: Writer
    sends: Sends
    interactions: Any   # faust Table: interaction states (streams/domain/state.py)
    agents: Any         # faust Table: agent states (streams/domain/agents.py)
    alert_groups: Any   # faust Table: per queue, live parts and rule states (streams/domain/alerts.py)
    changelogs: Changelogs
    clock: Clock = field(default_factory=Clock)  # all events: agents' "now" and /health
    # One event clock per events partition: a month replayed fast reads partitions unevenly,
    # and one partition's newest event must not make another's events late or timed out.
    clocks: dict[int, Clock] = field(default_factory=lambda: defaultdict(Clock))
    counters: Counters = field(default_factory=Counters)
    limits: Limits = field(default_factory=Limits)
    flavour: str = "kafka"
    # Per batch agent: batches done, since when it is inside one (None: waiting for input).
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    _last_version: int = 0
    _agent_partitions: dict[str, int] = field(default_factory=dict)

    # -- partitions ---------------------------------------------------------------------
    def owned(self, topic: str | None = None) -> set[int]:
        """The partitions of ``topic`` (the events topic by default) assigned to this worker."""
        topic = topic or self.settings.topic_events
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def agent_partition(self, agent: str) -> int:
        """The partition Kafka's default partitioner gives an agent id (murmur2, as producers do)."""
        p = self._agent_partitions.get(agent)
        if p is None:
            p = self._agent_partitions[agent] = partition_of(agent.encode(), self.settings.partitions)
        return p

    def group_partition(self, key: bytes) -> int:
        return partition_of(key, self.settings.partitions)

    # -- outputs --------------------------------------------------------------------------
    def next_version(self) -> int:
        """Wall-clock milliseconds, strictly increasing: a later write always wins, across restarts too."""
        v = max(int(time.time() * 1000), self._last_version + 1)
        self._last_version = v
        return v

    def dead_letter(self, m: Record, rej: Rejected) -> None:
        """Queue ``m`` for the dead-letter topic with the reason (on the message's own partition)."""
        self.sends.add(self.settings.topic_dead_letters, m.partition, m.key,
                       json.dumps(dead_letter_payload(rej, m)).encode())
        self.counters.dead_letters += 1

    def validated(self, events: Sequence[Record], kind: TopicKind) -> list[tuple[Record, Event]]:
        """Valid events of a batch; the rest go to the dead-letter topic."""
        good: list[tuple[Record, Event]] = []
        now_ms = int(time.time() * 1000)  # the future-timestamp bound, once a batch
        max_future_ms = int(self.settings.max_future_s * 1000)
        for m in events:
            if isinstance(out := validate(m.value, m.key, kind, now_ms, max_future_ms), Rejected):
                self.dead_letter(m, out)
            else:
                good.append((m, out))
        self.counters.events += len(events)
        if self.counters.first_event_at is None:
            self.counters.first_event_at = time.time()
        return good

    async def send_or_exit(self, buffer: Sends | None = None) -> None:
        """A timer's send: its failure may have taken an agent's messages with it (see
        ``PartitionBatches.send``), so it ends the process like a failed batch."""
        try:
            await (buffer or self.sends).send()
        except BaseException as e:  # noqa: BLE001 -- CancelledError included, on purpose
            fatal("a timer's send", e)
