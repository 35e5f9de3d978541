"""Checking stored figures against the recount from the records, and repairing them.

Shared by the worker's ``check-figures`` timer and the ``ccpulse verify`` / ``ccpulse
recompute`` commands. The comparison itself is pure (streams/domain/recount.py); this module
runs its queries on a ClickHouse and writes what it repairs, with a log row per
difference in ``figure_repairs`` (what the "figures differ from the records" alert reads).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from streams.domain import kpi
from streams.domain import recount as rc
from streams.config.centre import CentreConfig as Centre
from streams.clickhouse import ClickHouse
from streams.clickhouse import rows
from streams.domain.windows import INTERVAL_MS


@dataclass
class Outcome:
    """One comparison: what was compared, what differed, what was rewritten."""

    lo_ms: int
    hi_ms: int
    records: int = 0
    rows_compared: int = 0
    differences: list[rc.Difference] = field(default_factory=list)
    repaired: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"from": _iso(self.lo_ms), "to": _iso(self.hi_ms), "records": self.records,
                "rows_compared": self.rows_compared, "repaired": self.repaired,
                "differences": [{"partition": d.key[0], "tenant": d.key[1], "queue": d.key[2], "channel": d.key[3],
                                 "interval_start": _iso(d.key[4]), "fields": list(d.fields),
                                 "stored": list(d.stored_values), "recounted": list(d.recounted_values)}
                                for d in self.differences]}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="minutes")


def day_range(start: date | None, end: date | None) -> tuple[int, int]:
    """[first day 00:00 UTC, day after the last 00:00 UTC) in ms; open ends cover everything."""
    lo = datetime(1990, 1, 1, tzinfo=timezone.utc) if start is None else \
        datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    hi = datetime.now(timezone.utc) + timedelta(days=2) if end is None else \
        datetime(end.year, end.month, end.day, tzinfo=timezone.utc) + timedelta(days=1)
    return int(lo.timestamp() * 1000), int(hi.timestamp() * 1000)


def thresholds_for(centre: Centre, stored: dict[tuple[str, str, str, int], rc.Thresholds]
                   ) -> Callable[[str, str, str, int], rc.Thresholds]:
    """The stored row's settings where the stream wrote one, else the centre file's."""
    def get(t: str, q: str, c: str, start: int) -> rc.Thresholds:
        got = stored.get((t, q, c, start))
        if got is not None:
            return got
        qc = centre.queue(t, q)
        return rc.Thresholds(qc.sl_threshold_s, qc.short_abandon_s)
    return get


def compare_rows(centre: Centre, stored_rows: Iterable[Any], record_rows: Iterable[Any], lo_ms: int, hi_ms: int,
                 dialect: str, by_partition: bool) -> tuple[Outcome, dict[rc.RowKey, kpi.Vector],
                                                            dict[rc.RowKey, kpi.Vector], dict[Any, rc.Thresholds]]:
    """Both sides from their query rows; by partition (what a repair rewrites) or summed
    over partitions (what a person sees in the views). Last: the settings the stored rows
    were counted with (a repair writes them again)."""
    stored, settings = rc.parse_stored(stored_rows)
    records = [rc.record_of(r) for r in record_rows]
    recounted = rc.recount(records, thresholds_for(centre, settings), lo_ms, hi_ms)
    if not by_partition:
        stored, recounted = rc.totals(stored), rc.totals(recounted)
    out = Outcome(lo_ms, hi_ms, records=len(records), rows_compared=len(set(stored) | set(recounted)))
    out.differences = rc.compare(stored, recounted, skip=rc.legacy_skip(dialect))
    return out, stored, recounted, settings


def repair_batch(centre: Centre, stored_rows_settings: dict[tuple[str, str, str, int], rc.Thresholds],
                 fixes: Iterable[tuple[rc.RowKey, kpi.Vector]], version: int) -> Any:
    """Rows of kpi_interval_parts that replace the differing ones (a higher version)."""
    items = []
    for (p, t, q, c, start), vec in fixes:
        th = stored_rows_settings.get((t, q, c, start))
        qc = centre.queue(t, q)
        settings = th if th is not None else rc.Thresholds(qc.sl_threshold_s, qc.short_abandon_s)
        items.append((p, (t, q, c, start), vec, settings, centre.tenant(t).business_day(start)))
    return rows.kpi_interval_batch(items, version)


def run(ch: ClickHouse, centre: Centre, lo_ms: int, hi_ms: int, tenant: str | None = None,
        repair: bool = False, source: str = "verify") -> Outcome:
    """``ccpulse verify`` / ``recompute`` on a ClickHouse this process can open.

    Verify compares what the views show (summed over partitions); a repair compares and
    rewrites each partition's row, so the totals then equal the recount."""
    db = ch.database
    stored_rows = ch.query(rc.stored_sql(db, lo_ms, hi_ms, tenant)).rows
    record_rows = ch.query(rc.records_sql(db, ch.dialect, lo_ms, hi_ms, tenant)).rows
    out, *_ = compare_rows(centre, stored_rows, record_rows, lo_ms, hi_ms, ch.dialect, by_partition=False)
    if not repair or not out.differences:
        return out
    by_p, stored, recounted, settings = compare_rows(centre, stored_rows, record_rows, lo_ms, hi_ms, ch.dialect,
                                                     by_partition=True)
    fixes = rc.repairs(stored, recounted, by_p.differences, keep=rc.legacy_skip(ch.dialect))
    now = int(time.time() * 1000)
    ch.insert(rows.KPI_INTERVALS_TABLE, repair_batch(centre, settings, fixes, now))
    ch.insert(rows.FIGURE_REPAIRS_TABLE, rows.figure_repair_batch(by_p.differences, now, "repaired", source))
    out.repaired = len(fixes)
    return out


def chunks(ranges: Iterable[tuple[int, int]], most_ms: int = 7 * 86_400_000) -> list[tuple[int, int]]:
    """Ranges cut into reads of at most a week."""
    out = []
    for lo, hi in ranges:
        while lo < hi:
            out.append((lo, min(hi, lo + most_ms)))
            lo += most_ms
    return out


def with_kept(recounted: kpi.Vector, stored: kpi.Vector, keep: Iterable[str]) -> kpi.Vector:
    """The recount, but the stored value of fields it cannot know exactly (legacy servers)."""
    out = list(recounted)
    for f in keep:
        out[kpi.IDX[f]] = stored[kpi.IDX[f]]
    return out


def rebased(current: kpi.Vector | None, at_read: kpi.Vector | None, recounted: kpi.Vector) -> kpi.Vector:
    """The stream's aggregate set to the recount, keeping what it added or took away since
    the records were read (``at_read``: the aggregate then). Never negative (an unsigned
    column); the longest wait the recount's, or the larger if the aggregate's moved since."""
    if current is None:
        return list(recounted)
    before = at_read if at_read is not None else kpi.zero()
    out = [max(0, r + c - b) for c, r, b in zip(current, recounted, before)]
    out[kpi.MAX_I] = recounted[kpi.MAX_I] if current[kpi.MAX_I] == before[kpi.MAX_I] else \
        max(recounted[kpi.MAX_I], current[kpi.MAX_I])
    return out


def spans(starts: Iterable[int], gap_ms: int = 86_400_000) -> list[tuple[int, int]]:
    """Interval starts grouped into [lo, hi) ranges, a new range after a gap of a day: a
    year-old late CSAT and yesterday's are two small reads, not one of a year."""
    out: list[tuple[int, int]] = []
    for t in sorted(set(starts)):
        if out and t - out[-1][1] <= gap_ms:
            out[-1] = (out[-1][0], t + INTERVAL_MS)
        else:
            out.append((t, t + INTERVAL_MS))
    return out


@dataclass
class Confirmations:
    """A difference is acted on only when two passes in a row saw the same values: a
    record stored a moment after its figure (or the reverse) is not a difference."""

    seen: dict[rc.RowKey, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    def confirm(self, diffs: list[rc.Difference], scope: Callable[[rc.RowKey], bool]) -> list[rc.Difference]:
        now = {d.key: (d.stored_values, d.recounted_values) for d in diffs}
        confirmed = [d for d in diffs if self.seen.get(d.key) == now[d.key]]
        done = {d.key for d in confirmed}
        # Keys this pass looked at start again from what it saw; others are kept.
        self.seen = {k: v for k, v in self.seen.items() if not scope(k)}
        self.seen.update({k: v for k, v in now.items() if k not in done})
        return confirmed


@dataclass
class LateSpans:
    """Per partition, the periods past the lateness horizon that late data changed (a
    history load, a CSAT days late), to be recounted from the records once those are
    stored. Kept beside the partition's clock on its changelog (``as_stored``), so a
    restart or the partition's next owner carries on with them."""

    spans: dict[int, list[list[float]]] = field(default_factory=dict)  # p -> [[lo, hi, seen, equal passes]]

    def add(self, partition: int, starts: Iterable[int], now: float) -> bool:
        new = spans(starts)
        if not new:
            return False
        merged = sorted([[lo, hi, now, 0] for lo, hi in new] + self.spans.get(partition, []))
        out: list[list[float]] = []
        for s in merged:
            if out and s[0] <= out[-1][1] + 86_400_000:  # overlapping or a day apart: one read
                last = out[-1]
                last[1] = max(last[1], s[1])
                last[2], last[3] = max(last[2], s[2]), min(last[3], s[3])  # a new part: wait and count again
            else:
                out.append(list(s))
        self.spans[partition] = out
        return True

    def restore(self, partition: int, stored: Iterable[Iterable[int]], now: float) -> None:
        self.spans.pop(partition, None)
        self.add(partition, [t for lo, hi in stored for t in (int(lo), int(hi) - INTERVAL_MS)], now)

    def ripe(self, partition: int, now: float, min_age_s: float = 2.0) -> list[tuple[int, int]]:
        return [(int(s[0]), int(s[1])) for s in self.spans.get(partition, []) if now - s[2] >= min_age_s]

    def settle(self, partition: int, checked: list[tuple[int, int]], differing: Iterable[int],
               pass_start: float = float("inf")) -> bool:
        """After a pass over ``checked`` (its reads began at ``pass_start``): a span is done
        when two passes in a row found nothing differing in it; one that late data reached
        after the pass began counts nothing. True when the spans changed (store them again)."""
        bad = sorted(set(differing))
        keep, changed = [], False
        for s in self.spans.get(partition, []):
            if (int(s[0]), int(s[1])) in checked and s[2] <= pass_start:
                if any(s[0] <= t < s[1] for t in bad):
                    s[3] = 0
                elif s[3] >= 1:
                    changed = True
                    continue
                else:
                    s[3] += 1
            keep.append(s)
        if keep:
            self.spans[partition] = keep
        else:
            self.spans.pop(partition, None)
        return changed

    def drop(self, keep: set[int]) -> None:
        for p in [p for p in self.spans if p not in keep]:
            del self.spans[p]

    def as_stored(self, partition: int) -> list[list[int]]:
        return [[int(s[0]), int(s[1])] for s in self.spans.get(partition, [])]

    def pending(self) -> int:
        return sum(len(v) for v in self.spans.values())
