"""The batch runner: the one component that sends, stores and then acknowledges.

A flow's handler takes a batch of messages, queues its messages on a send buffer and
returns its rows (``Output``). The runner alone sends them, stores the rows and acks the
batch, through streams/kafka/batches.py (the rule, tested without Kafka): a handler never
acks, and nothing it produced can be committed over before it is stored.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import faust

from streams.kafka import batches
from streams.kafka.gaps import GapFiller
from streams.kafka.inbox import Inbox
from streams.kafka.inbox import ack as ack_batch
from streams.kafka.inbox import track as track_batch
from streams.worker.context import Sends, Worker, fatal


@dataclass
class Output:
    """What a handled batch produced besides the messages it queued: rows per table, the send
    buffer they are on (the worker's shared one by default), whether the rows go first, and
    what to do once everything is stored."""

    writes: tuple[tuple[str, Any], ...] = ()
    via: Sends | None = None
    rows_first: bool = False
    then: Callable[[], None] | None = None


Handler = Callable[[list[Any]], Awaitable[Output]]


class BatchRunner:
    """Runs each flow's handler over batches of its topics, taken from the inbox the consumer
    fills (streams/kafka/inbox.py). Offsets the consumer skipped are filled in
    (streams/kafka/gaps.py); a batch is acked only after its results are stored, and one whose
    handling raised is never acked (``fatal``)."""

    def __init__(self, w: Worker, gaps: GapFiller) -> None:
        self.w = w
        self.gaps = gaps

    async def store(self, out: Output, name: str = "storing a batch") -> None:
        """Send what a batch queued and store its rows (streams/kafka/batches.py), then its ``then``."""
        await batches.send_and_store(out.via or self.w.sends, self.w.writer, out.writes,
                                     lambda e: fatal(name, e), rows_first=out.rows_first)
        if out.then is not None:
            out.then()

    def agent(self, topic: Any, name: str, size: int | None = None, within: float | None = None,
              pipelined: bool = True) -> Callable[[Handler], Handler]:
        """Register ``handle`` as the batch agent ``name`` of ``topic`` (a decorator).

        ``pipelined``: the next batch is handled while this one's broker and ClickHouse round
        trips are under way, and the batch after waits for the first to be stored (at most
        two batches in flight). Their sends go out in order (one buffer, one lock); their
        inserts may interleave, which the tables absorb (versioned or idempotent rows).
        Batches are still acked in order, each only after its own store and every earlier
        one's. Not pipelined: a batch is stored and acked before the next is taken.
        """
        app, s = self.w.app, self.w.settings
        size = size or s.sink_batch_size
        within = s.sink_batch_seconds if within is None else within
        inbox = Inbox(name, maxsize=max(16384, 2 * size), generation=lambda: app.consumer_generation_id)
        for t in topic.topics:
            app.inboxes[t] = inbox

        def register(handle: Handler) -> Handler:
            async def subscribe(stream: faust.StreamT) -> None:
                # Subscribes the topic and takes part in faust's assignment; the messages
                # themselves go to the inbox, never through this stream.
                async for _ in stream:
                    pass

            ident = name.replace("-", "_")
            subscribe.__name__ = subscribe.__qualname__ = ident
            app.agent(topic, name=name)(subscribe)
            progress: dict[str, Any] = {"batches": 0, "in_batch_since": None, "last_batch_at": None}
            started: list[float] = []  # when each batch not yet acked began, oldest first
            gaps = self.gaps

            async def store_and_ack(out: Output, earlier: asyncio.Future[None] | None,
                                    consumer: Any, batch: list[Any], stand_in: Any, filled: list[Any]) -> None:
                await batches.store_then_ack(
                    self.store(out, name), earlier, (lambda: gaps.release(consumer, filled)) if filled else None,
                    lambda: ack_batch(consumer, batch, stand_in), lambda e: fatal(name, e))
                progress["batches"] += 1
                started.pop(0)
                progress["in_batch_since"] = started[0] if started else None
                progress["last_batch_at"] = time.time()

            async def run() -> None:
                self.w.progress[name] = progress
                storing: asyncio.Future[None] | None = None
                while True:
                    batch = await inbox.take(size, within)  # of the current generation only
                    if not batch or not app.flow_control.is_active():
                        continue  # a rebalance is under way: faust reads these again after it
                    consumer = app.consumer
                    stand_in = track_batch(consumer, batch)
                    started.append(time.time())
                    progress["in_batch_since"] = started[0]
                    try:
                        messages, filled = await gaps.complete(batch)
                        out = await handle(messages)
                    except BaseException as e:  # noqa: BLE001 -- CancelledError included, on purpose
                        fatal(name, e)
                    task = asyncio.ensure_future(store_and_ack(out, storing, consumer, batch, stand_in, filled))
                    if not pipelined:
                        await task
                        storing = None
                        continue
                    await asyncio.sleep(0)  # its sends take what this batch added, before the next adds more
                    if storing is not None:
                        await storing  # the batch before this one is stored before the next is taken
                    storing = task

            run.__name__ = run.__qualname__ = f"{ident}_batches"
            app.task(run)
            return handle
        return register
