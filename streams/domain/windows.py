"""Interval and rolling-window aggregates of one source partition, pure and in memory.

They are *derived* state: each interaction's state (the changelog-backed table) keeps the
contribution it last added (``Entry``), so after a restart or rebalance the aggregates are
rebuilt from the states and every interval is written again. No second changelog has to
agree with the first, so no crash between two writes can leave them out of step.

Rows carry their source partition: each partition's figures are partial, the views sum
them, and a partition moving to another worker replaces its own rows (higher version).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from streams.domain import kpi

INTERVAL_MS = 15 * 60_000     # the stored grain; 30/60-minute and daily figures are sums of it
MAX_I = kpi.MAX_I
MINUTE_MS = 60_000            # the grain of rolling windows

#: [tenant, queue, channel, contribution, waiting since (ms) or None] -- what the state keeps.
Entry = list[Any]
Key = tuple[str, str, str, int]
Group = tuple[str, str, str]


def floor(ts: int, grain: int) -> int:
    return ts - ts % grain


def entry_of(rec: dict[str, Any], contribution: kpi.Contribution, waiting_since: int | None) -> Entry:
    return [rec["tenant"], rec["queue"] or "", rec["channel"], contribution, waiting_since]


def _unmatched(parts: Sequence[Any], others: Sequence[Any]) -> list[Any]:
    """The parts without an equal one in ``others``, counted as multisets."""
    rest = list(others)
    out = []
    for p in parts:
        if p in rest:
            rest.remove(p)
        else:
            out.append(p)
    return out


@dataclass
class PartitionKpis:
    """Figures of one partition: 15-minute intervals, minute buckets, contacts waiting now."""

    partition: int
    lateness_ms: int
    rolling_minutes: Sequence[int]
    intervals: dict[Key, kpi.Vector] = field(default_factory=dict)
    minutes: dict[Key, kpi.Vector] = field(default_factory=dict)
    waiting: dict[str, tuple[Group, int]] = field(default_factory=dict)
    dirty: set[Key] = field(default_factory=set)
    rescan: set[tuple[bool, Key]] = field(default_factory=set)
    groups_seen: dict[Group, int] = field(default_factory=dict)  # group -> last event time it had data
    late_updates: int = 0
    late_examples: list[tuple[str, int, int]] = field(default_factory=list)  # (interaction, ts, now) for /health
    #: Intervals past the lateness horizon that a late part changed: recounted from the
    #: records once those are stored (streams/worker/verify.py), since the stream keeps them no more.
    late_keys: set[Key] = field(default_factory=set)
    #: Of those, the ones the last rebuild named (a restart's recount, not late data).
    rebuilt_keys: set[Key] = field(default_factory=set)
    #: Intervals before this were dropped by ``expire`` (judged by the clock moved on by wall
    #: time): a part there is late even when its own event time makes it look recent.
    expired_before: int = 0
    _readded: dict[tuple[bool, Key], int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._minute_span_ms = self.minute_span_ms  # read on every apply

    @property
    def minute_span_ms(self) -> int:
        return (max(self.rolling_minutes) + 1) * MINUTE_MS

    def apply(self, iid: str, old: Entry | None, new: Entry | None, now_ms: int) -> None:
        """Replace what an interaction added (``old``) by what it adds now (``new``)."""
        interval_horizon = max(floor(now_ms - self.lateness_ms, INTERVAL_MS), self.expired_before)
        minute_horizon = floor(now_ms, MINUTE_MS) - self._minute_span_ms
        old_parts = old[3] if old is not None else ()
        new_parts = new[3] if new is not None else ()
        if old is not None and new is not None and old[:3] == new[:3]:
            # Same queue: a part both entries have (the offer, once the contact is answered)
            # would be taken away and added back unchanged; only the parts that differ move.
            old_parts, new_parts = _unmatched(old_parts, new_parts), _unmatched(new_parts, old_parts)
        # Waits the new entry puts back: retracting an equal or smaller longest wait from a
        # bucket it re-enters needs no rescan (the common case: a CSAT re-sends the exit part).
        readded: dict[tuple[bool, Key], int] = {}
        if old_parts and new_parts:  # only a retraction reads it
            for ts, vec in new_parts:
                if m := vec[MAX_I]:
                    for k in ((False, (new[0], new[1], new[2], ts - ts % INTERVAL_MS)),
                              (True, (new[0], new[1], new[2], ts - ts % MINUTE_MS))):
                        if readded.get(k, 0) < m:
                            readded[k] = m
        self._readded = readded
        intervals, minutes, dirty, seen = self.intervals, self.minutes, self.dirty, self.groups_seen
        for sign, e, parts in ((-1, old, old_parts), (1, new, new_parts)):
            if not parts:
                continue
            group: Group = (e[0], e[1], e[2])
            for ts, vec in parts:
                bucket = ts - ts % INTERVAL_MS
                if bucket >= interval_horizon:
                    key = (*group, bucket)
                    self._add(intervals, key, vec, sign)
                    dirty.add(key)
                else:
                    self.late_keys.add((*group, bucket))  # the record is right; the recount repairs the row
                    if sign > 0 and (old is None or [ts, vec] not in old[3]):
                        self.late_updates += 1
                        if len(self.late_examples) < 3:
                            self.late_examples.append((iid, ts, now_ms))
                minute = ts - ts % MINUTE_MS
                if minute >= minute_horizon:
                    self._add(minutes, (*group, minute), vec, sign)
                    if seen.get(group, 0) < ts:
                        seen[group] = ts
        if new is not None and new[4] is not None:
            self.waiting[iid] = ((new[0], new[1], new[2]), new[4])
            self.groups_seen[(new[0], new[1], new[2])] = max(self.groups_seen.get((new[0], new[1], new[2]), 0), now_ms)
        else:
            self.waiting.pop(iid, None)

    def _add(self, store: dict[Key, kpi.Vector], key: Key, vec: Sequence[int], sign: int) -> None:
        cur = store.get(key)
        if cur is None:
            cur = store[key] = kpi.zero()
        if sign < 0 and vec[MAX_I] and vec[MAX_I] >= cur[MAX_I]:
            k = (store is self.minutes, key)
            if self._readded.get(k, 0) < vec[MAX_I]:
                self.rescan.add(k)  # the longest wait may have gone: recount it from the states
        kpi.add(cur, vec, sign)

    def rescan_max(self, entries: Iterable[Entry]) -> None:
        """Recompute the longest wait of the buckets whose maximum was retracted."""
        if not self.rescan:
            return
        found = {k: 0 for k in self.rescan}
        for e in entries:
            for ts, vec in e[3]:
                m = vec[kpi.MAX_I]
                if not m:
                    continue
                for is_minute, grain in ((False, INTERVAL_MS), (True, MINUTE_MS)):
                    k = (is_minute, (e[0], e[1], e[2], floor(ts, grain)))
                    if k in found and m > found[k]:
                        found[k] = m
        for (is_minute, key), m in found.items():
            store = self.minutes if is_minute else self.intervals
            if key in store:
                store[key][kpi.MAX_I] = m
                if not is_minute:
                    self.dirty.add(key)
        self.rescan.clear()

    def rebuild(self, items: Iterable[tuple[str, Entry]], now_ms: int) -> None:
        """Start again from the interactions' states (after a restart or a rebalance)."""
        self.intervals.clear()
        self.minutes.clear()
        self.waiting.clear()
        self.rescan.clear()
        late, examples, before = self.late_updates, list(self.late_examples), set(self.late_keys)
        for iid, e in items:
            for part in e[3]:
                kpi.upgrade(part[1])  # in place: the state keeps the entry it retracts later
            self.apply(iid, None, e, now_ms)
        # Parts past the horizon are not late news, but their rows are recounted
        # (``late_keys``): the process before may have folded them inside the horizon, moved
        # its clock past them in the same batch and died before writing that batch's rows.
        self.late_updates, self.late_examples = late, examples
        self.rebuilt_keys = self.late_keys - before
        self.dirty = set(self.intervals)

    def mark_settled(self, entry: Entry, now_ms: int) -> None:
        """A contact's record was emitted: the parts it keeps past the horizon are recounted
        again, now that a record holds them (one flagged while the contact was open had none)."""
        horizon = max(floor(now_ms - self.lateness_ms, INTERVAL_MS), self.expired_before)
        for ts, _vec in entry[3]:
            bucket = ts - ts % INTERVAL_MS
            if bucket < horizon:
                self.late_keys.add((entry[0], entry[1], entry[2], bucket))

    def zero_stored(self, stored: Iterable[Key], now_ms: int) -> None:
        """Intervals stored earlier that no interaction of the rebuilt partition is in now
        are written again as zeros.

        A rebuild writes only the intervals its interactions are in. A row written before a
        crash for an interval a contact has since left (a transfer to another queue, an
        earlier event that moved its offer) would otherwise stay in the sums for good.
        """
        horizon = floor(now_ms - self.lateness_ms, INTERVAL_MS)
        for key in stored:
            if key[3] >= horizon and key not in self.intervals:
                self.intervals[key] = kpi.zero()
                self.dirty.add(key)

    def expire(self, now_ms: int) -> None:
        """Forget intervals past the lateness horizon and minutes older than the longest window."""
        ih = floor(now_ms - self.lateness_ms, INTERVAL_MS) - INTERVAL_MS
        self.expired_before = max(self.expired_before, ih)
        for k in [k for k in self.intervals if k[3] < ih]:
            del self.intervals[k]
            self.dirty.discard(k)
        mh = floor(now_ms, MINUTE_MS) - self._minute_span_ms
        for k in [k for k in self.minutes if k[3] < mh]:
            del self.minutes[k]
        for g in [g for g, t in self.groups_seen.items() if t < mh - self._minute_span_ms]:
            del self.groups_seen[g]

    def take_dirty(self) -> list[tuple[Key, kpi.Vector]]:
        out = [(k, list(self.intervals[k])) for k in sorted(self.dirty) if k in self.intervals]
        self.dirty.clear()
        return out

    def live(self, now_ms: int) -> list[tuple[Group, int, kpi.Vector, int, int | None]]:
        """(group, window minutes, counts, waiting now, oldest waiting since) for every
        group with data in the longest window, zeros included so a quiet queue reads 0."""
        current = floor(now_ms, MINUTE_MS)
        sums: dict[tuple[Group, int], kpi.Vector] = {}
        for (t, q, c, minute), vec in self.minutes.items():
            if minute > current:
                continue
            age = (current - minute) // MINUTE_MS
            for w in self.rolling_minutes:
                if age < w:
                    cur = sums.get(((t, q, c), w))
                    if cur is None:
                        cur = sums[((t, q, c), w)] = kpi.zero()
                    kpi.add(cur, vec)
        waiting: dict[Group, list[int]] = {}
        for group, since in self.waiting.values():
            w = waiting.setdefault(group, [0, since])
            w[0] += 1
            w[1] = min(w[1], since)
        out = []
        for group in sorted(set(self.groups_seen) | set(waiting)):
            n, oldest = waiting.get(group, (0, None))
            for w in self.rolling_minutes:
                out.append((group, w, sums.get((group, w)) or kpi.zero(), n, oldest))
        return out
