"""Agents: their own events and the contacts the interaction fold says they handle → agent
states (streams/domain/agents.py, pure) → time per state per interval and their state now
(the ``agent-figures`` timer), and the ready agents per queue for the staffing alert rules.
"""
from __future__ import annotations

import asyncio
from typing import Any, MutableMapping

import faust
import orjson

from streams.clickhouse import rows
from streams.domain import agents as ag
from streams.domain.keys import ident_of, split_key, state_key
from streams.domain.windows import INTERVAL_MS
from streams.kafka.inbox import release, track
from streams.worker.context import Worker, states
from streams.worker.flows.interactions import raw_batch
from streams.worker.flows.kpis import KpiFlow
from streams.worker.runner import BatchRunner, Output


#: Key prefix of a partition's "agent figures written up to" mark in the agent table (no agent
#: key starts with a NUL byte): on that partition's changelog, so a restarted or new owner
#: writes the figures from where the last one stopped, however far back that is.
FIGURES_KEY = b"\x00figures:"


def figures_key(partition: int) -> bytes:
    return FIGURES_KEY + str(partition).encode()


class AgentFlow:
    def __init__(self, w: Worker, kpis: KpiFlow) -> None:
        self.w = w
        self.kpis = kpis  # whether the recovered states are settled
        self.dirty: dict[bytes, int] = {}  # agent -> earliest event time whose intervals must be rewritten
        self.written_until = 0  # 0: from the stored marks (after a start or a rebalance)
        # Per agent partition, the newest time of each input: the agents' own events and the
        # contacts the interaction fold reports. A replay reads the two topics at different
        # paces, so lateness is judged by the slower one (see ``watermark``).
        self.event_clock: dict[int, int] = {}
        self.contact_clock: dict[int, int] = {}
        self.last_record: Any = None  # an input record, to make a rebalance wait for the timer's writes
        self.clocked: set[int] = set()  # partitions whose clocks are rebuilt from their states since a start

    def _clocks_from_states(self, partition: int) -> None:
        """A partition's two clocks from its recovered states, before its first input is judged:
        history older than the lateness arriving just after a restart is late as before it
        (judged against empty clocks, a year-old load was rewritten interval by interval)."""
        if partition in self.clocked:
            return
        self.clocked.add(partition)
        for key, st in self.w.agents.data.items():
            if st and not key.startswith(FIGURES_KEY) and st.get("p") == partition:
                self._advance(self.event_clock, partition, ag.last_event_at(st))
                self._advance(self.contact_clock, partition, ag.last_contact_at(st))

    def rebalanced(self) -> None:
        self.written_until = 0
        self.clocked.clear()  # partitions may have come from another worker, with newer states

    def store(self, key: bytes, st: Any, partition: int) -> None:
        st["p"] = partition
        self.w.agents.data[key] = st
        self.w.sends.add(self.w.changelogs.agents, partition, key, orjson.dumps(st))

    def adopt_legacy(self, known: MutableMapping[bytes, Any], key: bytes) -> Any:
        """An agent state stored under the bare id by an earlier release, for its own tenant."""
        tenant, ident = split_key(key)
        old_key = ident.encode()
        st = known.get(old_key)
        if not st or (st.get("t") or tenant) != tenant:
            return None
        del known[old_key]
        self.w.sends.add(self.w.changelogs.agents, st.get("p", self.w.agent_partition(ident)), old_key, None)
        return st

    def _mark(self, key: bytes, since: int, partition: int) -> None:
        """The agent's intervals from ``since`` on must be rewritten, unless ``since`` was
        already past the lateness when it arrived: judged now, at arrival, and not when the
        timer runs (a replay brings the first day's contacts in the same seconds as the
        fourth's, and by the next timer run the first day would look late)."""
        clocks = [c[partition] for c in (self.event_clock, self.contact_clock) if partition in c]
        if clocks:  # nothing known of this partition yet (a restart): nothing is late
            since = max(since, min(clocks) - self.w.centre.windows.lateness_s * 1000)
        self.dirty[key] = min(self.dirty.get(key, since), since)

    @staticmethod
    def _advance(clock: dict[int, int], partition: int, ts_ms: int | None) -> None:
        if ts_ms and ts_ms > clock.get(partition, 0):
            clock[partition] = ts_ms

    def watermark(self, partition: int, now: int) -> int:
        """How far this partition's agents are known to be complete: the slower of its two
        inputs, each judged by its own newest time (as the interaction fold judges each events
        partition by its own clock). The agents' own events are a small topic a replay reads
        days ahead of the contacts; judged by them, a contact of the first day would be "late"
        and its intervals never rewritten. An input that has delivered nothing to the
        partition does not hold it back (a centre whose agents log in but take no contact)."""
        clocks = [c[partition] for c in (self.event_clock, self.contact_clock) if partition in c]
        return min(clocks) if clocks else now

    async def handle(self, events: list[Any]) -> Output:
        """A batch of both agent-keyed topics: the agents' own events and their handling."""
        w, s = self.w, self.w.settings
        if events:
            self.last_record = events[-1]
        for p in {m.partition for m in events}:
            self._clocks_from_states(p)
        own = [m for m in events if m.topic == s.topic_agent_events]
        good = w.validated(own, "agent_events")
        changed: dict[bytes, tuple[Any, int]] = {}  # written once per agent and batch
        known = states(w.agents)
        for m, e in good:
            w.clock.observe(e.ts_ms)
            self._advance(self.event_clock, m.partition, e.ts_ms)
            key = state_key(e.tenant, m.key)  # another tenant's agent of the same id is another agent
            st = known.get(key) or self.adopt_legacy(known, key) or ag.new_agent_state()
            if ag.merge_event(st, e.event_id, e.ts_ms, e.type, e.tenant, getattr(e, "reason", None),
                              getattr(e, "queues", None)):
                self._mark(key, e.ts_ms, m.partition)
                w.agents.data[key] = st
                changed[key] = (st, m.partition)
        for m in events:
            if m.topic != s.topic_agent_activity:
                continue
            a = orjson.loads(m.value)
            key = state_key(a["t"], m.key)
            st = known.get(key) or self.adopt_legacy(known, key) or ag.new_agent_state()
            old = st["c"].get(a["i"], [])
            if ag.set_contact(st, a["i"], a["g"], a["t"]):
                times = [t for seg in old + a["g"] for t in seg if t]
                if times:
                    self._advance(self.contact_clock, m.partition, max(times))
                    self._mark(key, min(times), m.partition)
                w.agents.data[key] = st
                changed[key] = (st, m.partition)
        for key, (st, partition) in changed.items():
            # What the figures have yet to write goes to the changelog with the state: a worker
            # killed before its timer ran has committed these inputs, and its successor learns
            # from the state alone which intervals to rewrite (the torture run found them lost).
            st["n"] = st.get("n", 0) + 1
            if key in self.dirty:
                st["d"] = self.dirty[key]
            self.store(key, st, partition)
        return Output(((rows.RAW_EVENTS_TABLE, raw_batch(good)),))

    async def figures(self) -> None:
        """Each agent's time per state in the intervals that changed, and its state now."""
        w = self.w
        now = w.clock.now_ms()
        if not now or not self.kpis.settled():
            return
        owned = w.owned(w.settings.topic_agent_events)
        lateness = w.centre.windows.lateness_s * 1000
        # Where the figures stand: this process's last run, else (after a start or a rebalance)
        # the mark the last owner stored with each partition, else nowhere (all the history).
        table = w.agents.data
        stored = {p: (table.get(figures_key(p)) or {}).get("w") or 0 for p in owned}
        if not self.written_until:  # after a start: the partitions' clocks and the unwritten changes
            for key, st in table.items():
                if st and not key.startswith(FIGURES_KEY) and st.get("p") in owned:
                    self._clocks_from_states(st["p"])
                    if st.get("d") is not None:
                        self.dirty[key] = min(self.dirty.get(key, st["d"]), st["d"])
        version = w.next_version()
        figures, live = [], []
        written: list[tuple[bytes, int]] = []  # (agent, its change count) whose unwritten mark these rows cover
        trim: list[tuple[bytes, int]] = []  # (agent, horizon) to forget what ended before, once written
        for n, (key, st) in enumerate(list(table.items())):
            if n % 50 == 49:
                await asyncio.sleep(0)  # let the agents and the consumer run between agents
            if not st or key.startswith(FIGURES_KEY) or st.get("p") not in owned:
                continue
            agent = ident_of(key)
            live.append((st["t"], agent, ag.current(st, now)))
            since_last = self.written_until or stored[st["p"]] or ag.first_seen(st) or now
            if (self.written_until and key not in self.dirty
                    and (idle := ag.idle_since(st)) is not None and idle <= since_last):
                # Logged out, nothing new: its rows up to since_last are written and later
                # ones would hold only logged-out time (no column). A month's replay spent
                # most of this timer on such rows.
                continue
            # From what changed (its lateness judged when it arrived, ``_mark``), but not after
            # where the figures stand: when the clock has moved past the lateness since then (a
            # history read fast, a backlog after a restart), the intervals in between were
            # written by nobody yet; nor before what the state still holds whole.
            horizon = self.watermark(st["p"], now) - lateness
            floor = min(horizon, since_last)
            if "d" in st:
                written.append((key, st.get("n", 0)))
            start = max(min(self.dirty.pop(key, since_last), since_last), ag.complete_from(st))
            if not self.written_until:  # not before the agent's first event
                start = max(start, ag.first_seen(st) or now)
            start -= start % INTERVAL_MS
            pieces = ag.timeline(st, start, now)
            figures.append((st["t"], agent, ag.per_interval(pieces, INTERVAL_MS)))
            if len(st["f"]) > 64 or len(st["c"]) > 256:
                trim.append((key, floor))
        self.written_until = now
        if self.kpis.queue_rules:  # ready agents per queue, for rules on staffing while contacts wait
            ready: dict[tuple[int, str, str], int] = {}
            for tenant, agent, (state, _r, _since, _held, queues) in live:
                p = w.agent_partition(agent)
                for queue in queues:
                    k = (p, tenant, queue)
                    ready[k] = ready.get(k, 0) + (state == "ready")
            for (p, tenant, queue), n in ready.items():
                key = orjson.dumps([tenant, queue, "*"])
                w.sends.add(w.settings.topic_live_parts, w.group_partition(key), key,
                            orjson.dumps({"ap": p, "r": n, "t": now}))
        intervals, reasons = rows.agent_batches(figures, version)
        await w.send_or_exit()
        await w.writer.write(rows.AGENT_INTERVALS_TABLE, intervals)
        await w.writer.write(rows.AGENT_NOT_READY_TABLE, reasons)
        await w.writer.write(rows.AGENT_LIVE_TABLE, rows.agent_live_batch(live, now, version))
        # Only once the rows are stored: the mark of where the figures stand, the agents'
        # unwritten marks these rows covered (unless a change came in meanwhile) and the trims.
        # These go to the changelog of partitions this worker owns: not once a rebalance has
        # begun (another owner may be reading them back already: a stale state written now
        # would be its successor's), and a rebalance beginning now waits until they are sent.
        if not w.app.flow_control.is_active() or not self.kpis.settled():
            return  # the next owner, or this worker after the rebalance, writes them
        stand_in = track(w.app.consumer, [self.last_record]) if self.last_record is not None else None
        try:
            for p in owned:
                mark = {"p": p, "w": now}
                table[figures_key(p)] = mark
                w.sends.add(w.changelogs.agents, p, figures_key(p), orjson.dumps(mark))
            for key, n in written:
                st = table.get(key)
                if st and st.get("n", 0) == n and "d" in st:
                    del st["d"]
                    self.store(key, st, st["p"])
            for key, horizon in trim:
                st = table.get(key)
                if st:
                    before = (len(st["f"]), len(st["c"]))
                    ag.trim(st, horizon)  # what a restart may still have to write from stays
                    if (len(st["f"]), len(st["c"])) != before:
                        self.store(key, st, st["p"])
            await w.send_or_exit()
        finally:
            if stand_in is not None:
                release(w.app.consumer, stand_in)

    def register(self, app: faust.App, runner: BatchRunner, topic: Any) -> None:
        runner.agent(topic, "agent-events")(self.handle)
        app.timer(interval=self.w.centre.windows.refresh_s, name="agent-figures")(self.figures)
