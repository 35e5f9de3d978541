"""The interaction fold: raw events → interaction states → records, KPI updates and agents'
handling; and the timer that closes contacts whose final event never came.

The per-contact logic is pure (streams/domain/state.py: ``take_facts``, ``sweep``,
``agent_updates``); this flow reads and writes the state table, queues the sends (records,
states, agents' handling, dead letters) and returns the batch's rows to the runner.
"""
from __future__ import annotations

import logging
import time
from typing import Any, MutableMapping

import faust
import orjson

from schemas.events import Event
from streams.clickhouse import rows
from streams.domain import state as sm
from streams.domain.keys import ident_of, split_key, state_key
from streams.domain.validate import Rejected
from streams.kafka.inbox import Record
from streams.worker.context import Worker, states
from streams.worker.flows.kpis import KpiFlow
from streams.worker.runner import BatchRunner, Output

log = logging.getLogger("ccpulse.worker")


def raw_batch(good: list[tuple[Record, Event]]) -> Any:
    return rows.raw_event_batch((e, m.topic, m.partition, m.offset, m.value) for m, e in good)


class InteractionFlow:
    def __init__(self, w: Worker, kpis: KpiFlow) -> None:
        self.w = w
        self.kpis = kpis
        s = w.settings
        self.timeout_ms = int(s.interaction_timeout_s * 1000)
        self.retention_ms = int(s.state_retention_s * 1000)

    # -- state and sends ------------------------------------------------------------------------
    def store_state(self, key: bytes, st: sm.State) -> None:
        states(self.w.interactions)[key] = st
        self.w.sends.add(self.w.changelogs.interactions, st["p"], key, orjson.dumps(st))

    def emit(self, record: dict[str, Any], partition: int) -> None:
        # Same partition as the key's events: the records topic is co-partitioned (and
        # keyed by the bare id, as the events are).
        w = self.w
        w.sends.add(w.settings.topic_interactions, partition, record["interaction_id"].encode(), orjson.dumps(record))
        w.counters.records_emitted += 1
        if record["closed_by_timeout"]:
            w.counters.timed_out += 1

    def tell_agents(self, iid: str, st: sm.State, f: Any, changed: bool) -> None:
        """Send each agent its handling of this contact when it changed (or on a replay,
        when the first delivery may have stopped before these sends went out)."""
        w = self.w
        for agent, segs in sm.agent_updates(st, f, changed):
            w.sends.add(w.settings.topic_agent_activity, w.agent_partition(agent), agent.encode(),
                        orjson.dumps({"i": iid, "g": segs, "t": f.tenant}))

    def adopt_legacy(self, known: MutableMapping[bytes, Any], key: bytes, partition: int) -> sm.State | None:
        """A state stored under the bare id by a release before tenant-qualified keys:
        taken over (and its old key deleted) only by an event of its own tenant."""
        tenant, ident = split_key(key)
        old_key = ident.encode()
        st = known.get(old_key)
        if not st or not st.get("f") or sm.fold(st).tenant != tenant:
            return None
        del known[old_key]
        self.w.sends.add(self.w.changelogs.interactions, st.get("p", partition), old_key, None)
        st.setdefault("p", partition)
        self.store_state(key, st)  # under its new key at once: a redelivered batch changes nothing else
        self.kpis.rekey_waiting(st["p"], old_key.decode(), key.decode())
        return st

    def refuse(self, msgs: list[Record], which: Any, reason: str, error: str) -> None:
        """Valid events a limit keeps out: to the dead letters with the reason (replayable)."""
        for i in which:
            self.w.dead_letter(msgs[i], Rejected(reason, error))
        warned = self.w.limits.warned
        if warned.get(reason, 0) + 60 < time.monotonic():
            warned[reason] = time.monotonic()
            log.warning("%s: %s (dead-lettered)", reason, error)

    # -- the batch handler ---------------------------------------------------------------------
    async def fold(self, events: list[Any]) -> Output:
        w, s, kpis, limits = self.w, self.w.settings, self.kpis, self.w.limits
        # The clocks are set up from the recovered states (and the clocks they stored)
        # before this batch is judged by them: a restart's first batch is no exception.
        with_kpis = kpis.ensure()
        await kpis.reconcile_stored()
        # From here on no await until the records are emitted: /health never counts an
        # event whose record is not yet on its way (``ccpulse demo`` waits on both).
        good = w.validated(events, "events")
        by_key: dict[bytes, tuple[int, list[tuple[str, sm.Fact]]]] = {}
        # Each key is judged (lateness, timeouts) by its partition's event clock as it
        # stood at the key's last event in the batch, as if events came one by one: a
        # replayed batch can span days of one partition.
        key_now: dict[bytes, int] = {}
        msgs_of: dict[bytes, list[Record]] = {}
        clock, clocks = w.clock, w.clocks
        for m, e in good:
            clock.observe(e.ts_ms)
            pclock = clocks[m.partition]
            pclock.observe(e.ts_ms)
            key = state_key(e.tenant, m.key)  # tenant and id: another tenant's id is another contact
            key_now[key] = pclock.watermark_ms
            by_key.setdefault(key, (m.partition, []))[1].append(sm.fact_of(e))
            msgs_of.setdefault(key, []).append(m)
        # No await between reading and writing states: the timer cannot interleave.
        known = states(w.interactions)
        for key, (partition, facts) in by_key.items():
            now = key_now[key]
            st = known.get(key) or self.adopt_legacy(known, key, partition)
            if st is None:
                if limits.open_contacts >= s.max_open_contacts:
                    self.refuse(msgs_of[key], range(len(facts)), "too_many_open_contacts",
                                f"this worker holds {limits.open_contacts:,} open contacts "
                                f"(CCPULSE_MAX_OPEN_CONTACTS={s.max_open_contacts:,}); replay it once they close")
                    continue
                st = sm.new_state()
                limits.open_contacts += 1
            iid = ident_of(key)
            out = sm.take_facts(st, facts, partition, now, self.timeout_ms, s.max_events_per_interaction, iid)
            if out.refused:
                self.refuse(msgs_of[key], out.refused, "too_many_events",
                            f"contact {iid} has its {s.max_events_per_interaction:,} events "
                            f"(CCPULSE_MAX_EVENTS_PER_INTERACTION={s.max_events_per_interaction:,})")
            if out.changed:
                kpis.update(key.decode(), st, out.record, out.fold, now, with_kpis)
                self.tell_agents(iid, st, out.fold, True)
                self.store_state(key, st)
                if out.record:
                    self.emit(out.record, partition)
            elif out.fold is not None:  # a redelivery: send again what the lost sends carried
                if out.record:
                    self.emit(out.record, partition)
                if st.get("a"):
                    self.tell_agents(iid, st, out.fold, False)
        touched = {m.partition for m in events}  # dead letters only, too: see KpiFlow.store_clocks
        kpis.store_clocks(touched, kpis.take_late(touched))  # with this batch's states: durable together
        intervals, queue_settings = kpis.rows()
        return Output(((rows.RAW_EVENTS_TABLE, raw_batch(good)), (rows.KPI_INTERVALS_TABLE, intervals),
                       (rows.QUEUE_SETTINGS_TABLE, queue_settings)))

    # -- the timeout timer ---------------------------------------------------------------------
    async def close_timed_out(self) -> None:
        """Close interactions whose final event never came; forget long-closed ones."""
        w, s, kpis, limits = self.w, self.w.settings, self.kpis, self.w.limits
        if not kpis.ensure():
            return  # not while recovering: a closed interaction must also leave the live figures
        owned = w.owned()
        table = w.interactions.data
        found = sm.sweep(table, owned, lambda p: w.clocks[p].now_ms(), self.timeout_ms, self.retention_ms, ident_of)
        for key in found.expired:
            st = table[key]
            del table[key]
            w.sends.add(w.changelogs.interactions, st["p"], key, None)
            w.counters.expired += 1
        for key, record, f in found.closed:
            st = table[key]
            now = w.clocks[st["p"]].now_ms()
            kpis.update(key.decode(), st, record, f, now, True)
            self.tell_agents(ident_of(key), st, f, True)
            self.store_state(key, st)
            self.emit(record, st["p"])
        kpis.settled_before.clear()
        kpis.settled_before.update(found.oldest_open)
        limits.open_contacts, limits.contacts_held = found.still_open, found.held
        still_open = found.still_open
        if still_open >= 0.8 * s.max_open_contacts and limits.warned.get("open", 0) + 60 < time.monotonic():
            limits.warned["open"] = time.monotonic()
            log.warning("%d open contacts, %.0f%% of CCPULSE_MAX_OPEN_CONTACTS (%d): new contacts beyond it go to "
                        "the dead letters; add workers (partitions) or find the producer that never closes "
                        "its contacts", still_open, 100 * still_open / s.max_open_contacts, s.max_open_contacts)
        kpis.store_clocks(owned, kpis.take_late(owned))  # late parts its closings found, with the records
        await w.send_or_exit()

    def register(self, app: faust.App, runner: BatchRunner, events_topic: Any) -> None:
        runner.agent(events_topic, "fold-interactions")(self.fold)
        interval = max(1.0, min(30.0, self.w.settings.interaction_timeout_s / 10))
        app.timer(interval=interval, name="close-timed-out")(self.close_timed_out)
