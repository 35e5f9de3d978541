"""The KPI aggregates of the worker's events partitions (streams/domain/windows.py).

Derived from the interaction states: rebuilt from them after every (re)assignment, kept up
to date by the interaction fold (``update``), written as interval rows with each fold batch
and as live rows on the ``live-kpis`` timer, and held to the recount from the records by
the ``check-figures`` timer (streams/worker/figures.py). Each partition's event clock is
stored beside its states, with the late periods it has still to recount.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

import faust
import orjson
from faust.types import TP

from streams.clickhouse import rows
from streams.domain import agents as ag
from streams.domain import alerts as al
from streams.domain import kpi
from streams.domain import state as sm
from streams.domain.clock import clock_key
from streams.domain.windows import INTERVAL_MS, PartitionKpis, entry_of
from streams.kafka import internals
from streams.worker import verify
from streams.worker.context import Worker, states
from streams.worker.figures import FigureChecker

log = logging.getLogger("ccpulse.worker")


class KpiFlow:
    def __init__(self, w: Worker) -> None:
        self.w = w
        self.kpis: dict[int, PartitionKpis] = {}
        # Aggregates are rebuilt from the states after each rebalance has finished restoring
        # them ("settled": the consumer generation whose recovery completed).
        self.want, self.built, self.settled_gen = 1, 0, -1
        self.to_reconcile: set[int] = set()  # rebuilt partitions whose stored rows are still to be checked
        self.settings_written: set[tuple[str, str]] = set()
        self.teams_written = False  # the centre file's teams, once a process
        self.clock_written: dict[int, int] = {}  # partition -> the clock last stored on its changelog
        self.settled_before: dict[int, int] = {}  # partition -> first event of its oldest open contact
        self.restart_ranges: dict[int, list[tuple[int, int]]] = {}  # partition -> what its last rebuild recounts
        self.late = verify.LateSpans()  # periods past the lateness horizon to recount, per partition
        rules = w.centre.alerts.rules
        self.rule_windows = sorted({r.window_minutes for r in rules if r.metric not in al.QUEUE_METRICS})
        self.queue_rules = any(r.metric in al.QUEUE_METRICS for r in rules)
        self.checker = FigureChecker(
            centre=w.centre, settings=w.settings, writer=w.writer, kpis=self.kpis, clocks=w.clocks,  # type: ignore[arg-type]
            late=self.late, settled_before=self.settled_before, restart_ranges=self.restart_ranges,
            ready=lambda: self.settled() and self.built == self.want,
            still_owned=lambda owned: self.ensure() and set(self.kpis) == owned,
            store_clocks=self.store_clocks, take_late=self.take_late, records_caught_up=self.records_caught_up,
            send=w.send_or_exit, next_version=w.next_version)
        #: Records sent to, and stored from, each records partition (last offset): the figure
        #: check compares only once every record sent before it began is stored.
        self.records_sent: dict[int, int] = {}
        self.records_stored: dict[int, int] = {}

    # -- assignment -------------------------------------------------------------------------
    def revoked(self) -> None:
        self.want += 1
        self.settled_gen = -1

    def rebalanced(self) -> None:
        # The states are restored now (faust sends this once the changelogs are read): the
        # aggregates are rebuilt from them, not from a table still being filled.
        self.want += 1
        self.settled_gen = self.w.app.consumer_generation_id

    def settled(self) -> bool:
        return not self.w.app.in_recovery and self.settled_gen == self.w.app.consumer_generation_id

    def ensure(self) -> bool:
        """Rebuild the partitions' aggregates from the states after a (re)assignment.

        False while a rebalance is restoring the states; the callers then keep each
        state's own entry up to date, and the rebuild that follows sums them.
        """
        w, kpis = self.w, self.kpis
        if self.built == self.want and set(kpis) == w.owned():
            return True
        if not self.settled():
            return False
        owned = w.owned()
        by_p: dict[int, list[tuple[str, Any]]] = {p: [] for p in owned}
        # Never backwards: the clock each partition had stored, then its states' newest event.
        self.late.drop(owned)  # a partition that left: its next owner reads its spans from the changelog
        table = w.interactions.data
        for p in owned:
            if (stored := table.get(clock_key(p))) is not None:
                self.clock_written.setdefault(p, 0)  # on the changelog already (see store_clocks)
            if stored and stored.get("w"):
                w.clocks[p].observe(stored["w"])
                w.clock.observe(stored["w"])
                self.clock_written[p] = max(self.clock_written.get(p, 0), stored["w"])
                self.late.restore(p, stored.get("late") or [], time.monotonic())
        for key, st in table.items():
            if st and st.get("p") in by_p:
                w.clocks[st["p"]].observe(st.get("l", 0))
                w.clock.observe(st.get("l", 0))
                if st.get("k"):
                    by_p[st["p"]].append((key.decode(), st["k"]))
        # The agents' "now" too: after a restart into a quiet floor the agent figures (what
        # changed before the stop was only in the old process's memory) are written from
        # the recovered states, not once the next event arrives.
        for st in w.agents.data.values():
            if st and "f" in st:  # an agent (not a partition's figures mark)
                w.clock.observe(ag.last_event_at(st) or 0)
        kpis.clear()
        windows = w.centre.windows
        for p, items in by_p.items():
            kp = kpis[p] = PartitionKpis(p, windows.lateness_s * 1000, windows.rolling_minutes)
            kp.rebuild(items, w.clocks[p].now_ms())
            self.restart_ranges[p] = verify.spans(k[3] for k in kp.rebuilt_keys)
        self.built = self.want
        self.to_reconcile.update(by_p)
        log.info("KPI aggregates rebuilt for partitions %s from %d interactions", sorted(owned),
                 sum(len(v) for v in by_p.values()))
        return True

    # -- the fold's side --------------------------------------------------------------------
    def update(self, iid: str, st: sm.State, record: dict[str, Any] | None, f: Any, now: int,
               live: bool) -> None:
        """Replace the interaction's contribution to its partition's figures.

        The state's entry is always brought up to date, so a rebuild sums the truth; the
        aggregates themselves only when they are ``live`` (not awaiting a rebuild).
        """
        rec = record or sm.build_record(iid, st, f)
        q = self.w.centre.queue(rec["tenant"], rec["queue"])
        entry = entry_of(rec, kpi.contribution(rec, q), sm.waiting_since(f, st))
        old = st.get("k")
        kp = self.kpis.get(st["p"]) if live else None
        if entry != old:
            if kp is not None:
                kp.apply(iid, old, entry, now)
            st["k"] = entry
        if record is not None and kp is not None:
            kp.mark_settled(entry, now)

    def rekey_waiting(self, partition: int, old_key: str, new_key: str) -> None:
        """A contact adopted under a new state key waits under that key from now on."""
        if (kp := self.kpis.get(partition)) is not None and (wt := kp.waiting.pop(old_key, None)) is not None:
            kp.waiting[new_key] = wt

    def store_clocks(self, partitions: set[int], changed: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        """Each partition's event clock beside its states, so a restart never sets it back,
        with the late periods it has still to recount."""
        w = self.w
        for p in partitions:
            mark = w.clocks[p].watermark_ms
            # Also the first time this worker touches a partition that has none stored: every
            # committed events offset then leaves a record on the changelog, which recovery
            # checks (streams/kafka/recovery.py: an empty changelog behind a commit is lost state).
            if mark > self.clock_written.get(p, 0) or p in changed or p not in self.clock_written:
                self.clock_written[p] = max(mark, self.clock_written.get(p, 0))
                rec = {"w": self.clock_written[p], "late": self.late.as_stored(p)}
                states(w.interactions)[clock_key(p)] = rec
                w.sends.add(w.changelogs.interactions, p, clock_key(p), orjson.dumps(rec))

    def take_late(self, partitions: Any) -> set[int]:
        """Move what the aggregates found late into the spans to recount; the partitions changed."""
        changed = set()
        for p in partitions:
            kp = self.kpis.get(p)
            if kp is not None and kp.late_keys:
                self.late.add(p, [k[3] for k in kp.late_keys], time.monotonic())
                kp.late_keys.clear()
                changed.add(p)
        return changed

    async def reconcile_stored(self) -> None:
        """After a rebuild: zero the stored interval rows it has no interaction for
        (``PartitionKpis.zero_stored``)."""
        if not self.to_reconcile:
            return
        w = self.w
        parts = sorted(self.to_reconcile)
        self.to_reconcile.clear()
        since = min(w.clocks[p].now_ms() for p in parts) - w.centre.windows.lateness_s * 1000 - INTERVAL_MS
        res = await w.writer.read(lambda db: (
            "SELECT DISTINCT source_partition, tenant, queue, channel, toUnixTimestamp(interval_start) "
            f"FROM {db}.kpi_interval_parts WHERE source_partition IN ({', '.join(map(str, parts))}) "
            f"AND interval_start >= toDateTime({max(since, 0) // 1000})"))
        stored: dict[int, list[Any]] = defaultdict(list)
        for p, t, q, c, start in res.rows:
            stored[int(p)].append((t, q, c, int(start) * 1000))
        for p, keys in stored.items():
            kp = self.kpis.get(p)
            if kp is not None:  # else: revoked meanwhile, and the next rebuild checks again
                kp.zero_stored(keys, w.clocks[p].now_ms())

    def rows(self) -> tuple[Any, Any]:
        """Changed intervals of every partition, and queue settings not yet written."""
        w, centre = self.w, self.w.centre
        parts = []
        for p, kp in self.kpis.items():
            if kp.rescan:
                kp.rescan_max(st["k"] for st in w.interactions.data.values()
                              if st and st.get("p") == p and st.get("k"))
            for key, vec in kp.take_dirty():
                parts.append((p, key, vec))
            w.counters.late_updates = sum(k.late_updates for k in self.kpis.values())
        groups = {(k[0], k[1]) for _, k, _ in parts} - self.settings_written
        version = w.next_version()
        interval_rows = rows.kpi_interval_batch(
            [(p, key, vec, centre.queue(key[0], key[1]), centre.tenant(key[0]).business_day(key[3]))
             for p, key, vec in parts], version)
        settings_rows = rows.queue_settings_batch([(t, q, centre.queue(t, q)) for t, q in sorted(groups)])
        self.settings_written.update(groups)
        return interval_rows, settings_rows

    # -- records stored (for the figure check) -----------------------------------------------
    def on_sent(self, topic: str, partition: int, last: int) -> None:
        if topic == self.w.settings.topic_interactions and last > self.records_sent.get(partition, -1):
            self.records_sent[partition] = last

    def on_stored(self, events: list[Any]) -> None:
        for m in events:
            if m.offset > self.records_stored.get(m.partition, -1):
                self.records_stored[m.partition] = m.offset

    async def records_caught_up(self, owned: set[int]) -> bool:
        w = self.w
        tps = [TP(w.settings.topic_interactions, p) for p in owned]
        try:
            ends = await w.app.consumer.highwaters(*tps)
        except Exception as e:  # noqa: BLE001 -- not now: the next pass asks again
            log.debug("records' end offsets unavailable (%r)", e)
            return False
        for tp in tps:
            want = max(self.records_sent.get(tp.partition, -1), (ends.get(tp) or 0) - 1)
            committed = internals.expected_offset(w.app.consumer, tp.topic, tp.partition)
            done = max(self.records_stored.get(tp.partition, -1), (committed or 0) - 1)
            if done < want:  # (offsets are committed only after their rows are stored)
                return False
        return True

    # -- timers -------------------------------------------------------------------------------
    async def live(self) -> None:
        """Rolling windows, contacts waiting now, and intervals changed by timeouts."""
        if not self.ensure():
            return
        await self.reconcile_stored()
        w = self.w
        version = w.next_version()
        live = []
        for p, kp in self.kpis.items():
            now = w.clocks[p].now_ms()
            if not now:
                continue  # nothing seen on this partition yet
            kp.expire(now)
            for group, window, vec, waiting, oldest in kp.live(now):
                live.append((p, group, window, vec, waiting, oldest, now))
        intervals, queue_settings = self.rows()
        for group, part in al.live_parts(live, self.rule_windows, bool(self.queue_rules),
                                         w.centre.windows.rolling_minutes[0]):
            key = orjson.dumps(group)  # the alert agent sums the partitions of each queue
            w.sends.add(w.settings.topic_live_parts, w.group_partition(key), key, orjson.dumps(part))
        await w.send_or_exit()
        await w.writer.write(rows.KPI_INTERVALS_TABLE, intervals)
        await w.writer.write(rows.QUEUE_SETTINGS_TABLE, queue_settings)
        await w.writer.write(rows.KPI_LIVE_TABLE, rows.kpi_live_batch(live, version))
        if not self.teams_written:
            await w.writer.write(rows.TEAM_CONFIG_TABLE, rows.team_config_batch(w.centre, version))
            self.teams_written = True

    def register(self, app: faust.App) -> None:
        @app.timer(interval=self.w.centre.windows.refresh_s, name="live-kpis")
        async def live_kpis() -> None:
            await self.live()

        @app.timer(interval=5.0, name="check-figures")
        async def check_figures() -> None:
            """Hold every stored interval row to the recount from the records (streams/worker/figures.py)."""
            await self.checker.run()
