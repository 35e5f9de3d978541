"""Producing to the raw topics with kafka-python, at a set pace or as fast as possible."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from streams.config.settings import Settings


@dataclass(frozen=True)
class Outgoing:
    """One message for a raw topic; ``value`` is bytes so bad input can be sent verbatim."""

    kind: str  # "events" | "agent_events"
    key: bytes | None
    value: bytes


def from_event(event: dict[str, Any]) -> Outgoing:
    """An event dict, keyed as the contract says (interaction_id or agent_id)."""
    agent = event["type"].startswith("agent_")
    key = event["agent_id"] if agent else event["interaction_id"]
    return Outgoing("agent_events" if agent else "events", key.encode(),
                    json.dumps(event, separators=(",", ":")).encode())


class Progress:
    """A one-line progress report on stderr, at most a few times a second."""

    def __init__(self, label: str, total: int | None, enabled: bool = True) -> None:
        self.label, self.total, self.enabled = label, total, enabled and sys.stderr.isatty()
        self.start = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.25:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        of = f"/{self.total:,}" if self.total else ""
        sys.stderr.write(f"\r{self.label}: {done:,}{of} ({rate:,.0f}/s)   ")
        sys.stderr.flush()

    def close(self, done: int) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 70 + "\r")
        secs = time.monotonic() - self.start
        print(f"{self.label}: {done:,} in {secs:.1f} s ({done / max(secs, 1e-9):,.0f}/s)", file=sys.stderr)


def produce(s: Settings, messages: Iterable[Outgoing], *, rate: float | None = None,
            total: int | None = None, label: str = "produced", progress: bool = True,
            pace: Callable[[int], float] | None = None) -> int:
    """Send every message and flush; returns the count. ``rate`` caps messages/second;
    ``pace(i)`` instead gives the wall-clock second (from start) message i is due at."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    topics = {"events": s.topic_events, "agent_events": s.topic_agent_events}
    try:
        producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=20,
                                 batch_size=256 * 1024, max_request_size=4 * 1024 * 1024,
                                 client_id="ccpulse-producer")
    except KafkaError as e:
        raise ConnectionError(f"cannot reach Kafka at {s.broker} ({e}): start it (`ccpulse dev up`) "
                              "or fix CCPULSE_BROKER") from None
    bar = Progress(label, total, progress)
    start = time.monotonic()
    n = 0
    try:
        for n, m in enumerate(messages, 1):
            due = pace(n - 1) if pace else ((n - 1) / rate if rate else None)
            if due is not None:
                wait = start + due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            producer.send(topics[m.kind], key=m.key, value=m.value)
            if n % 1000 == 0:
                bar.update(n)
        producer.flush()
    finally:
        producer.close()
    bar.close(n)
    return n
