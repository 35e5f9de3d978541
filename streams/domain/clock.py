"""Event-time clocks: "now" for timeouts, lateness and rolling windows, per partition.

A clock is the newest event time seen, moved on by the wall clock while traffic is quiet,
so a replay of old data closes contacts on its own time line and a quiet live queue still
times out. Two rules keep it safe for the life of a deployment:

- it never runs ahead of the wall clock: one producer whose clock is fast would otherwise
  close, make late or drop every other contact of its partition (events further ahead
  than ``max_future_s`` are dead-lettered by the validator; nearer ones are folded into
  their own contact but do not move the clock past "now");
- it never goes backwards: a restarted worker takes the larger of the clock it recovers
  from the changelog (``CLOCK_KEY``) and the one its states imply, so intervals already
  final are never rebuilt from a newer but shorter view.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

#: Key prefix of a partition's clock in the interaction table (stored on that partition's
#: changelog, next to the states it judged). No interaction key starts with a NUL byte.
CLOCK_KEY = b"\x00clock:"


def clock_key(partition: int) -> bytes:
    return CLOCK_KEY + str(partition).encode()


def is_clock_key(key: bytes) -> bool:
    return key.startswith(CLOCK_KEY)


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Clock:
    """Event-time "now": the newest event time seen (never past the wall clock), advanced
    by wall time since it was seen."""

    watermark_ms: int = 0
    seen_at: float = field(default_factory=time.time)
    wall_ms: Callable[[], int] = field(default=_wall_ms, repr=False)

    def observe(self, ts_ms: int) -> None:
        if ts_ms > self.watermark_ms:
            wall = self.wall_ms()
            ts_ms = min(ts_ms, wall)
            if ts_ms > self.watermark_ms:
                self.watermark_ms, self.seen_at = ts_ms, wall / 1000

    def now_ms(self) -> int:
        if not self.watermark_ms:
            return 0
        return self.watermark_ms + max(0, int(self.wall_ms() - self.seen_at * 1000))
