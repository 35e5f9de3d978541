"""Changelog end offsets a recovery may start from, on any broker.

faust ends a table's recovery at the end offsets the broker lists for its changelog. An
end offset that is too low brings a worker back with part of its state; one of 0 on a
changelog that holds data brings it back with none, and every contact before the committed
offsets is then counted wrong for good. Two checks, before faust reads any changelog:

1. Every listed end offset is confirmed by a Fetch (its high watermark), and the larger
   wins. Needed on the local Tansu broker, whose ListOffsets answers too low
   (``broker_quirks``); on Apache Kafka both agree, and the check costs one small fetch
   per changelog partition per rebalance.
2. A changelog partition that is empty while its source partition is committed past the
   start of its log is impossible: every batch a worker commits writes at least one record
   to the changelog of the same partition (the partition's clock, ``KpiFlow.store_clocks``).
   The ends are read again a few times; if the changelog stays empty the worker refuses to
   start (``StateLost``) rather than go on with empty state.

The decision (``lost_state``) is pure and unit-tested; ``confirm`` does the reads.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

log = logging.getLogger("ccpulse.recovery")


@dataclass(frozen=True)
class Lost:
    """A changelog partition that is empty although its source was processed up to ``committed``."""

    changelog: str
    source: str
    partition: int
    committed: int
    source_start: int

    def __str__(self) -> str:
        return (f"{self.changelog}[{self.partition}] is empty, yet {self.source}[{self.partition}] is "
                f"committed at offset {self.committed:,} (its log starts at {self.source_start:,})")


class StateLost(RuntimeError):
    """Recovery would start from empty state behind committed offsets."""

    def __init__(self, lost: list[Lost], group: str) -> None:
        self.lost = lost
        topics = sorted({x.source for x in lost})
        super().__init__(
            "the broker holds no table state for partitions this consumer group has already "
            "processed:\n  " + "\n  ".join(map(str, lost)) + "\n"
            "Starting would count every contact before those offsets wrongly, so the worker stops. "
            "The changelog was lost (a broker restarted with memory storage, or a deleted topic). "
            f"To rebuild the state from the events the broker still has, reset group {group!r} on "
            f"{', '.join(topics)} to the earliest offsets (kafka-consumer-groups --reset-offsets "
            "--to-earliest --execute) and start the worker again.")


def lost_state(ends: Mapping[Any, int], pairs: Mapping[str, str], committed: Mapping[Any, int | None],
               source_starts: Mapping[Any, int]) -> list[Lost]:
    """The changelog partitions in ``ends`` that are empty behind a commit.

    ``pairs``: changelog topic -> the source topic whose commits imply records on it, same
    partition. ``committed`` and ``source_starts`` are keyed by source (topic, partition).
    """
    out = []
    for tp, end in ends.items():
        source = pairs.get(tp.topic)
        if source is None or end > 0:
            continue
        key = (source, tp.partition)
        c = committed.get(key)
        start = source_starts.get(key, 0)
        if c is not None and c > start:
            out.append(Lost(tp.topic, source, tp.partition, c, start))
    return sorted(out, key=lambda x: (x.changelog, x.partition))


#: Reads of the source side: (committed offsets, log starts), keyed by (topic, partition).
SourceReader = Callable[[list[tuple[str, int]]], Awaitable[tuple[dict[Any, int | None], dict[Any, int]]]]
EndReader = Callable[[list[Any]], Awaitable[Mapping[Any, int]]]


async def confirm(ends: Mapping[Any, int], pairs: Mapping[str, str], read_sources: SourceReader,
                  read_ends: EndReader, group: str, attempts: int = 4, wait_s: float = 1.0) -> dict[Any, int]:
    """``ends`` as recovery may use them, or ``StateLost``: empty changelogs behind a commit
    are read again ``attempts`` times, ``wait_s`` apart, first."""
    ends = dict(ends)
    suspects = [tp for tp, end in ends.items() if tp.topic in pairs and end <= 0]
    if not suspects:
        return ends
    keys = [(pairs[tp.topic], tp.partition) for tp in suspects]
    committed, starts = await read_sources(keys)
    lost = lost_state({tp: ends[tp] for tp in suspects}, pairs, committed, starts)
    for attempt in range(1, attempts + 1):
        if not lost:
            return ends
        log.warning("changelog end offsets look impossible (attempt %d of %d): %s; reading them again",
                    attempt, attempts, "; ".join(map(str, lost)))
        await asyncio.sleep(wait_s)
        again = await read_ends([tp for tp in suspects])
        ends.update({tp: max(ends[tp], again.get(tp, 0)) for tp in suspects})
        lost = lost_state({tp: ends[tp] for tp in suspects}, pairs, committed, starts)
    if lost:
        raise StateLost(lost, group)
    return ends
