"""The worker's own check of its figures against the records (``check-figures`` timer).

Every pass compares the interval rows this worker's partitions wrote with the recount from
the stored records (streams/domain/recount.py, streams/worker/verify.py): recently settled intervals
(``CCPULSE_VERIFY_LOOKBACK_S`` before each partition's oldest open contact, every
``CCPULSE_VERIFY_INTERVAL_S``) and the late periods (history, CSATs past the horizon, a
restart's recount) every pass. A difference seen in two passes in a row is repaired: in the
stream's own aggregate while the interval is within its lateness horizon (the stream then
writes it), else by writing the recounted row. docs/exactness.md tells the whole story.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from streams.domain import kpi
from streams.domain import recount
from streams.worker import verify
from streams.domain.clock import Clock
from streams.config.settings import Settings
from streams.clickhouse import rows
from streams.clickhouse.writer import BatchWriter
from streams.domain.windows import INTERVAL_MS, PartitionKpis, floor

log = logging.getLogger("ccpulse.figures")


@dataclass
class FigureChecker:
    """One worker's figure check; the worker hands it its aggregates, clocks and late periods
    (shared, not copied) and the few actions that belong to the worker."""

    centre: Any
    settings: Settings
    writer: BatchWriter
    kpis: dict[int, PartitionKpis]
    clocks: Mapping[int, Clock]
    late: verify.LateSpans
    settled_before: Mapping[int, int]          # partition -> first event of its oldest open contact
    restart_ranges: dict[int, list[tuple[int, int]]]  # partition -> what its last rebuild recounts
    ready: Callable[[], bool]                  # aggregates built for the current assignment
    still_owned: Callable[[set[int]], bool]    # the same partitions, still built, after the reads
    store_clocks: Callable[[set[int], set[int]], None]
    take_late: Callable[[set[int]], set[int]]
    records_caught_up: Callable[[set[int]], Awaitable[bool]]
    send: Callable[[], Awaitable[None]]
    next_version: Callable[[], int]
    confirmations: verify.Confirmations = field(default_factory=verify.Confirmations)
    figures: dict[str, Any] = field(default_factory=lambda: {
        "passes": 0, "repaired": 0, "differences_open": 0, "last_at": None, "examples": []})
    last_rolling: float = 0.0

    async def run(self) -> None:
        """One pass (the timer's body)."""
        if not self.ready():
            return
        kpis, clocks, late, writer, centre = self.kpis, self.clocks, self.late, self.writer, self.centre
        owned = set(kpis)
        self.store_clocks(owned, self.take_late(owned))  # found by the timeout timer
        # Both sides are read only once every record sent before now is stored: by this
        # process (the offsets its sends were given) and before it (the topic's end offsets).
        if not await self.records_caught_up(owned):
            return
        pass_start = time.monotonic()
        lateness_ms = centre.windows.lateness_s * 1000
        lookback_ms = int(self.settings.verify_lookback_s * 1000)
        scope: dict[int, tuple[int, int]] = {}
        rolling = pass_start - self.last_rolling >= self.settings.verify_interval_s  # late data: every pass
        if rolling:
            self.last_rolling = pass_start
        for p in owned if rolling else ():
            if p in self.settled_before and clocks[p].now_ms():
                hi = self.settled_before[p] - self.settled_before[p] % INTERVAL_MS
                scope[p] = (hi - lookback_ms, hi)
        ripe = {p: late.ripe(p, pass_start) for p in owned}
        ranges = sorted({r for rs in ripe.values() for r in rs})
        if scope:
            ranges.append((min(lo for lo, _ in scope.values()), max(hi for _, hi in scope.values())))
        ranges = verify.chunks(ranges)  # a year of history is read a week at a time
        if not ranges:
            return
        dialect = await writer.dialect()

        def in_scope(key: Any) -> bool:
            p, t, q, c, start = key
            w = scope.get(p)
            return (w is not None and w[0] <= start < w[1]) or any(lo <= start < hi for lo, hi in ripe.get(p, ()))

        found: list[Any] = []
        recounted: dict[Any, Any] = {}
        stored_seen: dict[Any, Any] = {}
        settings: dict[Any, Any] = {}
        snapshot: dict[Any, Any] = {}  # the aggregates as the records were read: what changed since stays
        for lo, hi in ranges:
            stored_rows = (await writer.read(lambda db: recount.stored_sql(db, lo, hi, partitions=owned))).rows
            for p in owned:
                if (kp := kpis.get(p)) is not None:
                    snapshot.update({(p, *k): list(v) for k, v in kp.intervals.items() if lo <= k[3] < hi})
            record_rows = (await writer.read(lambda db: recount.records_sql(db, dialect, lo, hi,
                                                                            partitions=owned))).rows
            out, st_rows, rec, st_settings = verify.compare_rows(centre, stored_rows, record_rows, lo, hi,
                                                                 dialect, by_partition=True)
            # Records stored before they named their partition cannot be split by it: their
            # groups are left to `ccpulse verify`, which compares what the views show.
            unsplit = {k[1:] for k in rec if k[0] == recount.UNKNOWN_PARTITION}
            found += [d for d in out.differences if in_scope(d.key) and d.key[1:] not in unsplit]
            recounted.update(rec)
            stored_seen.update(st_rows)
            settings.update(st_settings)
        if not self.still_owned(owned):
            return  # a rebalance came in between: the next pass starts again
        found = list({d.key: d for d in found}.values())  # ranges may overlap
        confirmed = self.confirmations.confirm(found, in_scope)
        settled = {p for p, checked in ripe.items()
                   if checked and late.settle(p, checked, [d.key[4] for d in found if d.key[0] == p], pass_start)}
        for p in settled:
            if not late.as_stored(p):
                self.restart_ranges.pop(p, None)  # a restart's recount is done with the spans
        if settled:
            self.store_clocks(settled, settled)
            await self.send()
        self.figures["passes"] += 1
        self.figures["last_at"] = time.time()
        self.figures["differences_open"] = len(found)
        if not confirmed:
            return
        direct = []
        keep = recount.legacy_skip(dialect)  # fields the recount cannot know exactly keep their value
        for d in confirmed:
            p, t, q, c, start = d.key
            stored_vec = stored_seen.get(d.key) or kpi.zero()
            vec = verify.with_kept(recounted.get(d.key) or kpi.zero(), stored_vec, keep)
            kp = kpis.get(p)
            key = (t, q, c, start)
            if kp is not None and (key in kp.intervals or start >= floor(clocks[p].now_ms() - lateness_ms,
                                                                             INTERVAL_MS)):
                # The stream's own figure, written with its next rows: what changed in it since
                # the pass read the stored row is kept on top of the recount.
                kp.intervals[key] = verify.rebased(kp.intervals.get(key), snapshot.get(d.key), vec)
                kp.dirty.add(key)
            else:
                direct.append((d.key, vec))
        log.warning("figures differ from the records in %d interval rows; repaired (first: %s)",
                    len(confirmed), confirmed[0].describe())
        self.figures["repaired"] += len(confirmed)
        self.figures["examples"] = [d.describe() for d in confirmed[:3]]
        now_ms = int(time.time() * 1000)
        await writer.write(rows.KPI_INTERVALS_TABLE, verify.repair_batch(centre, settings, direct, self.next_version()))
        def source_of(d: Any) -> str:
            """restart: a rebuild's recount of what its predecessor may not have written; late:
            late data recounted on purpose; worker: drift the rolling check found."""
            p, start = d.key[0], d.key[4]
            if any(lo <= start < hi for lo, hi in self.restart_ranges.get(p, ())):
                return "restart"
            return "late" if any(lo <= start < hi for lo, hi in ripe.get(p, ())) else "worker"

        for source in ("restart", "late", "worker"):
            mine = [d for d in confirmed if source_of(d) == source]
            await writer.write(rows.FIGURE_REPAIRS_TABLE, rows.figure_repair_batch(mine, now_ms, "repaired", source))
