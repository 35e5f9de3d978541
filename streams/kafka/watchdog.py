"""Two guards around faust's consumer, for failures seen in CI that raise no error.

- A source partition assigned but left out of the fetches after a rebalance (its events
  never came, every agent idle): seen twice in a row, it is resumed.
- Nothing arriving for ``stall_timeout_s`` while the broker holds more for this worker's
  partitions: the process exits with 75 for its supervisor to restart it (a fresh process
  resumes from the committed offsets, so nothing is lost), after logging every asyncio
  task's stack and the lag per partition, to find the cause.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from streams.kafka import internals

log = logging.getLogger("ccpulse.watchdog")


@dataclass
class ConsumerWatchdog:
    app: Any
    stall_timeout_s: float
    quiet: Callable[[], bool]        # nothing is expected now: recovery, a rebalance, aggregates not built
    busy: Callable[[], bool]         # a batch in flight, or the sink waiting on ClickHouse
    events_seen: Callable[[], int]
    task_dump: Callable[[], str]
    seen_idle: dict[Any, int] = field(default_factory=dict)
    last_progress: tuple[int, float] = field(default_factory=lambda: (-1, time.monotonic()))

    def not_fetched(self) -> set[Any]:
        """Assigned source partitions the consumer is not fetching, other than those faust
        paused for a full stream buffer (they resume as the buffer drains)."""
        return set() if self.quiet() else internals.not_fetched(self.app.consumer)

    async def check(self) -> None:
        missing = self.not_fetched()
        for tp in list(self.seen_idle):
            if tp not in missing:
                del self.seen_idle[tp]
        stuck = []
        for tp in missing:
            self.seen_idle[tp] = self.seen_idle.get(tp, 0) + 1
            if self.seen_idle[tp] >= 2:
                stuck.append(tp)
        if stuck:
            log.warning("partitions %s were assigned but not fetched: resuming them",
                        sorted(f"{tp.topic}[{tp.partition}]" for tp in stuck))
            self.app.consumer.resume_partitions(stuck)
            for tp in stuck:
                self.seen_idle.pop(tp, None)
        await self.check_stalled()

    async def check_stalled(self) -> None:
        now, events = time.monotonic(), self.events_seen()
        if events != self.last_progress[0] or self.busy() or self.quiet():
            self.last_progress = (events, now)
            return
        if now - self.last_progress[1] < self.stall_timeout_s:
            return
        c = self.app.consumer
        tps = sorted(internals.source_partitions(c))
        ends = await c.highwaters(*tps)
        behind = {}
        for tp in tps:
            last = internals.last_read(c, tp)
            if ends.get(tp) is not None and ends[tp] - 1 > last:
                behind[f"{tp.topic}[{tp.partition}]"] = (last, ends[tp] - 1)
        if not behind:
            self.last_progress = (events, now)  # caught up: idle is fine
            return
        log.critical("no message for %.0f s while the broker holds more (last read, last offset): %s; "
                     "exiting for a restart. Tasks:\n%s", now - self.last_progress[1], behind, self.task_dump())
        logging.shutdown()
        os._exit(75)
