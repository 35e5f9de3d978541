"""The worker's flows driven alone: a ``Worker`` with in-memory tables, a fake send buffer
and a fake writer, no Kafka, no faust worker, no ClickHouse. What each handler queues and
returns is checked against figures worked out by hand; the runner's order of sends and
writes too (acks: tests/streams/test_batches.py)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.clickhouse import rows
from streams.config.centre import load_centre
from streams.config.settings import Settings
from streams.domain import kpi
from streams.domain.clock import clock_key
from streams.domain.keys import state_key
from streams.worker.context import Changelogs, Worker
from streams.worker.flows.agents import AgentFlow
from streams.worker.flows.alerting import AlertFlow
from streams.worker.flows.interactions import InteractionFlow
from streams.worker.flows.kpis import KpiFlow
from streams.worker.runner import BatchRunner, Output
from tests.streams.test_state import T0, answered_call

CENTRE = ("tenants: {acme: {timezone: UTC, queues: {sales: {sl_threshold_s: 20}}}}\n"
          "alerts: {rules: [{name: sl, metric: service_level, threshold: 0.8, window_minutes: 15, "
          "min_sample: 2, for_s: 0, queues: [sales]}]}\n")


class FakeSends:
    def __init__(self, log: list[Any]) -> None:
        self.log, self.queued = log, []

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        self.queued.append((topic, partition, key, value))

    async def send(self) -> None:
        self.log.append(("send", len(self.queued)))

    def on(self, topic: str) -> list[tuple[int, bytes | None, Any]]:
        return [(p, k, v if v is None else orjson.loads(v)) for t, p, k, v in self.queued if t == topic]


class FakeWriter:
    degraded = None

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def write(self, table: str, batch: Any) -> None:
        self.log.append(("write", table, batch.num_rows))

    async def read(self, sql: Any) -> Any:
        return SimpleNamespace(rows=[])


class FakeConsumer:
    """What ``track`` and ``release`` touch: the unacked messages a rebalance waits for."""

    _waiting_for_ack = None

    def __init__(self) -> None:
        self._unacked_messages: set[Any] = set()
        self.tracked = 0

    def _to_message(self, tp: Any, record: Any) -> Any:
        self.tracked += 1
        return object()


class FakeApp:
    in_recovery = False
    consumer_generation_id = 1

    def __init__(self, s: Settings) -> None:
        self.consumer = FakeConsumer()
        self.rebalancing = False
        self.flow_control = SimpleNamespace(is_active=lambda: not self.rebalancing)
        tps = [SimpleNamespace(topic=t, partition=p) for t in (s.topic_events, s.topic_agent_events)
               for p in range(s.partitions)]
        self.assignor = SimpleNamespace(assigned_actives=lambda: tps)


def worker(tmp_path: Path) -> tuple[Worker, list[Any]]:
    (tmp_path / "centre.yaml").write_text(CENTRE)
    s = Settings(state_dir=tmp_path, partitions=1, centre_config=str(tmp_path / "centre.yaml"))
    log: list[Any] = []
    w = Worker(settings=s, app=FakeApp(s), centre=load_centre(s.centre_config), writer=FakeWriter(log),
               sends=FakeSends(log), interactions=SimpleNamespace(data={}), agents=SimpleNamespace(data={}),
               alert_groups=SimpleNamespace(data={}), changelogs=Changelogs("st-changelog", "ag-changelog", "al-changelog"))
    return w, log


def ann_logs_in_ready() -> list[dict[str, Any]]:
    """Agent ann of acme logs in to sales and is ready, at T0."""
    from datetime import datetime, timezone

    at = datetime.fromtimestamp(T0 / 1000, tz=timezone.utc).isoformat()
    return [{"type": "agent_login", "event_id": "a1", "ts": at, "tenant": "acme", "agent_id": "ann", "queues": ["sales"]},
            {"type": "agent_ready", "event_id": "a2", "ts": at, "tenant": "acme", "agent_id": "ann"}]


def rows_capturing_worker(tmp_path: Path) -> tuple[Worker, list[Any]]:
    """A worker whose writer also keeps every batch's rows: (table, rows) in write order."""
    w, _ = worker(tmp_path)
    tables: list[Any] = []
    real_write = w.writer.write

    async def write(table: str, batch: Any) -> None:
        tables.append((table, batch.to_pylist()))
        await real_write(table, batch)

    w.writer.write = write  # type: ignore[method-assign]
    return w, tables


def msg(topic: str, offset: int, key: str, value: Any, partition: int = 0) -> Any:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, key=key.encode(), value=raw)


def settled_kpis(w: Worker) -> KpiFlow:
    k = KpiFlow(w)
    k.rebalanced()  # the states are restored: the aggregates may be built
    return k


def table_rows(out: Output) -> dict[str, int]:
    return {t: b.num_rows for t, b in out.writes}


def test_fold_emits_the_record_state_and_agent_handling_and_returns_its_rows(tmp_path: Path) -> None:
    w, _ = worker(tmp_path)
    kpis = settled_kpis(w)
    flow = InteractionFlow(w, kpis)
    events = [msg(w.settings.topic_events, n, "i1", e) for n, e in enumerate(answered_call()[:-1])]  # no CSAT
    out = asyncio.run(flow.fold(events))
    assert table_rows(out) == {rows.RAW_EVENTS_TABLE: 6, rows.KPI_INTERVALS_TABLE: 1, rows.QUEUE_SETTINGS_TABLE: 1}
    sends: FakeSends = w.sends  # type: ignore[assignment]
    ((p, key, record),) = sends.on(w.settings.topic_interactions)
    assert (p, key, record["outcome"], record["wait_ms"], record["talk_ms"], record["acw_ms"]) == \
        (0, b"i1", "answered", 12_345, 200_000 - 12_345 - 30_500, 30_000)
    stored = {k: v for _, k, v in sends.on("st-changelog")}  # the state, and the partition's clock beside it
    assert set(stored) == {state_key("acme", b"i1"), clock_key(0)}
    assert stored[clock_key(0)]["w"] == T0 + 230_000 and stored[state_key("acme", b"i1")]["p"] == 0
    ((ap, akey, handling),) = sends.on(w.settings.topic_agent_activity)
    assert (akey, handling["i"], handling["t"]) == (b"ann", "i1", "acme")
    # The interval row: one offered, one answered within 20 s, in the 09:00 interval.
    ((ikey, vec),) = kpis.kpis[0].intervals.items()
    assert ikey == ("acme", "sales", "voice", T0)
    assert (vec[kpi.IDX["offered"]], vec[kpi.IDX["answered"]], vec[kpi.IDX["answered_in_sl"]]) == (1, 1, 1)
    assert (w.counters.events, w.counters.records_emitted, w.counters.dead_letters) == (6, 1, 0)

    # Redelivered (the worker died before the ack): the record and the agents' handling
    # are sent again, no state changes, the figures stay.
    sends.queued.clear()
    out = asyncio.run(flow.fold(events))
    assert table_rows(out)[rows.KPI_INTERVALS_TABLE] == 0
    assert len(sends.on(w.settings.topic_interactions)) == 1 and sends.on("st-changelog") == []  # clock unmoved
    assert len(sends.on(w.settings.topic_agent_activity)) == 1
    assert kpis.kpis[0].intervals[("acme", "sales", "voice", T0)][kpi.IDX["offered"]] == 1


def test_fold_dead_letters_bad_input_and_keeps_the_rest(tmp_path: Path) -> None:
    w, _ = worker(tmp_path)
    flow = InteractionFlow(w, settled_kpis(w))
    good = [msg(w.settings.topic_events, n, "i1", e) for n, e in enumerate(answered_call()[:2])]
    events = [good[0], msg(w.settings.topic_events, 7, "i9", b"{not json"), good[1]]
    out = asyncio.run(flow.fold(events))
    assert table_rows(out)[rows.RAW_EVENTS_TABLE] == 2
    ((p, key, dl),) = w.sends.on(w.settings.topic_dead_letters)  # type: ignore[attr-defined]
    assert (key, dl["reason"], dl["source_offset"]) == (b"i9", "invalid_json", 7)
    assert (w.counters.events, w.counters.dead_letters) == (3, 1)


def test_agent_flow_merges_own_events_and_handling_once_per_agent(tmp_path: Path) -> None:
    w, _ = worker(tmp_path)
    flow = AgentFlow(w, settled_kpis(w))
    ts = lambda ms: __import__("datetime").datetime.fromtimestamp(ms / 1000, tz=__import__("datetime").timezone.utc).isoformat()  # noqa: E731
    own = [{"type": "agent_login", "event_id": "a1", "ts": ts(T0), "tenant": "acme", "agent_id": "ann", "queues": ["sales"]},
           {"type": "agent_ready", "event_id": "a2", "ts": ts(T0 + 1000), "tenant": "acme", "agent_id": "ann"}]
    batch = [msg(w.settings.topic_agent_events, n, "ann", e) for n, e in enumerate(own)]
    batch.append(msg(w.settings.topic_agent_activity, 0, "ann", {"i": "i1", "g": [[T0 + 5000, T0 + 9000, None]], "t": "acme"}))
    out = asyncio.run(flow.handle(batch))
    assert table_rows(out) == {rows.RAW_EVENTS_TABLE: 2}  # the handling is not a raw event
    (stored,) = w.sends.on("ag-changelog")  # type: ignore[attr-defined]
    assert stored[1].endswith(b"ann") and stored[2]["c"] == {"i1": [[T0 + 5000, T0 + 9000, None]]}
    assert list(flow.dirty.values()) == [T0]  # its intervals from the login on are rewritten
    again = asyncio.run(flow.handle(batch))  # a redelivery changes nothing
    assert table_rows(again) == {rows.RAW_EVENTS_TABLE: 2} and len(w.sends.on("ag-changelog")) == 1  # type: ignore[attr-defined]


def test_alert_flow_writes_the_history_row_before_sending_the_notification(tmp_path: Path) -> None:
    w, log = worker(tmp_path)
    flow = AlertFlow(w, alert_sends=FakeSends(log))
    v = kpi.zero()
    v[kpi.IDX["answered"]], v[kpi.IDX["answered_in_sl"]] = 4, 2  # SL 0.5 < 0.8 on 4 contacts
    key = orjson.dumps(["acme", "sales", "voice"])
    part = {"p": 0, "w": 15, "v": v, "n": 0, "o": None, "t": T0}
    out = asyncio.run(flow.evaluate([SimpleNamespace(topic="lp", partition=0, offset=0, key=key, value=orjson.dumps(part))]))
    assert out.rows_first and table_rows(out) == {rows.ALERTS_TABLE: 1}
    ((_, ident, note),) = out.via.on(w.settings.topic_alerts)  # type: ignore[union-attr]
    assert (note["status"], note["rule"], note["value"]) == ("firing", "sl", 0.5)
    assert [k for _, k, _ in out.via.on("al-changelog")] == [key]  # type: ignore[union-attr]
    runner = BatchRunner(w, gaps=None)  # type: ignore[arg-type]
    asyncio.run(runner.store(out))
    assert log == [("write", rows.ALERTS_TABLE, 1), ("send", 2)] and w.counters.alerts == 1


@pytest.mark.parametrize("rows_first", [False, True])
def test_runner_sends_then_stores_unless_rows_go_first_and_runs_then_last(tmp_path: Path, rows_first: bool) -> None:
    w, log = worker(tmp_path)
    w.sends.add("t", 0, b"k", b"{}")
    batch = rows.dead_letter_batch([])
    out = Output(((rows.DEAD_LETTERS_TABLE, batch), (rows.ALERTS_TABLE, rows.alert_batch([]))),
                 rows_first=rows_first, then=lambda: log.append("then"))
    asyncio.run(BatchRunner(w, gaps=None).store(out))  # type: ignore[arg-type]
    writes = [("write", rows.DEAD_LETTERS_TABLE, 0), ("write", rows.ALERTS_TABLE, 0)]
    assert log == (writes + [("send", 1), "then"] if rows_first else [("send", 1)] + writes + ["then"])


def test_a_contact_offered_a_little_ahead_of_the_clock_waits_zero_not_less() -> None:
    live = [(0, ("acme", "sales", "voice"), 15, kpi.zero(), 1, T0 + 90_000, T0),   # 90 s ahead
            (0, ("acme", "sales", "chat"), 15, kpi.zero(), 1, T0 - 30_000, T0)]    # waiting 30 s
    got = rows.kpi_live_batch(live, 1).to_pydict()["oldest_waiting_since"]
    assert [int(v.timestamp() * 1000) if hasattr(v, "timestamp") else v for v in got] == [T0, T0 - 30_000]


def _agent_rows_written(log: list[Any]) -> int:
    return sum(n for op, table, *rest in log if op == "write" and table == rows.AGENT_INTERVALS_TABLE for n in rest)


@pytest.mark.parametrize("restarted", [False, True], ids=["same-process", "restarted"])
def test_agent_figures_cover_every_interval_when_the_clock_jumps_past_the_lateness(tmp_path: Path,
                                                                                   restarted: bool) -> None:
    """The event clock moves five days (past the 3-day lateness) between two runs of the figures
    timer -- a history read fast, or a backlog read by a restarted worker: every interval in
    between is written, from where the figures stood (the torture run found agent rows missing)."""
    from datetime import datetime, timezone

    from streams.worker.flows.agents import figures_key

    w, log = worker(tmp_path)
    flow = AgentFlow(w, settled_kpis(w))
    ts = lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()  # noqa: E731
    day = 86_400_000
    first = ann_logs_in_ready()
    asyncio.run(flow.handle([msg(w.settings.topic_agent_events, n, "ann", e) for n, e in enumerate(first)]))
    w.clock.observe(T0 + 15 * 60_000)
    asyncio.run(flow.figures())
    mark = w.agents.data[figures_key(0)]  # stored with the partition; the clock runs on between
    assert mark["p"] == 0 and 0 <= mark["w"] - (T0 + 15 * 60_000) < 1000  # observations (wall time)
    if restarted:  # a new process: the table (recovered from the changelog) is all it has
        flow = AgentFlow(w, settled_kpis(w))
    late = {"type": "agent_logout", "event_id": "a3", "ts": ts(T0 + 5 * day), "tenant": "acme", "agent_id": "ann"}
    asyncio.run(flow.handle([msg(w.settings.topic_agent_events, 2, "ann", late)]))
    w.clock.observe(T0 + 5 * day)
    log.clear()
    asyncio.run(flow.figures())
    # From the interval of the last mark (T0 + 15 min) to the logout: 5 days of 15-minute rows
    # (one fewer when the clock stands exactly at the logout, not a few ms past it).
    assert _agent_rows_written(log) in (5 * 96 - 1, 5 * 96)


def test_a_contact_of_the_first_day_read_after_days_of_agent_events_is_in_its_interval(tmp_path: Path) -> None:
    """A replay reads the small agent-events topic days ahead of the contacts the fold reports:
    lateness is judged by the slower input, so a first-day contact still rewrites its interval
    (the torture run's never-killed reference lacked the busy time of the first day)."""
    from datetime import datetime, timezone

    w, tables = rows_capturing_worker(tmp_path)
    flow = AgentFlow(w, settled_kpis(w))
    ts = lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()  # noqa: E731
    day = 86_400_000
    own = ann_logs_in_ready()
    own += [{"type": "agent_not_ready", "event_id": f"n{d}", "ts": ts(T0 + d * day), "tenant": "acme",
             "agent_id": "ann", "reason": "break"} for d in range(1, 5)]
    asyncio.run(flow.handle([msg(w.settings.topic_agent_events, n, "ann", e) for n, e in enumerate(own)]))
    w.clock.observe(T0 + 4 * day + 60_000)
    asyncio.run(flow.figures())  # the figures timer runs before any contact is read
    tables.clear()
    talk = [[T0 + 60_000, T0 + 180_000, None]]  # 2 minutes busy in the first interval
    later = [[T0 + 4 * day - 3_600_000, T0 + 4 * day - 3_500_000, None]]  # read in the same seconds
    asyncio.run(flow.handle([msg(w.settings.topic_agent_activity, 0, "ann", {"i": "c1", "g": talk, "t": "acme"}),
                             msg(w.settings.topic_agent_activity, 1, "ann", {"i": "c2", "g": later, "t": "acme"})]))
    asyncio.run(flow.figures())
    first = [r for t, rs in tables if t == rows.AGENT_INTERVALS_TABLE for r in rs
             if int(r["interval_start"].timestamp() * 1000 if hasattr(r["interval_start"], "timestamp")
                    else r["interval_start"]) == T0 - T0 % (15 * 60_000)]
    assert [r["busy_ms"] for r in first] == [120_000]


def test_a_change_the_timer_never_wrote_is_written_by_the_next_worker(tmp_path: Path) -> None:
    """A contact's handling arrives after the figures ran, and the worker is killed before they
    run again: its inputs are committed, so its successor learns from the stored state alone
    that the interval must be rewritten (the torture run found such intervals left stale)."""
    from datetime import datetime, timezone

    w, tables = rows_capturing_worker(tmp_path)
    flow = AgentFlow(w, settled_kpis(w))
    ts = lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()  # noqa: E731
    own = ann_logs_in_ready()
    asyncio.run(flow.handle([msg(w.settings.topic_agent_events, n, "ann", e) for n, e in enumerate(own)]))
    w.clock.observe(T0 + 3_600_000)
    asyncio.run(flow.figures())
    talk = [[T0 + 60_000, T0 + 180_000, None]]
    asyncio.run(flow.handle([msg(w.settings.topic_agent_activity, 0, "ann", {"i": "c1", "g": talk, "t": "acme"})]))
    # Killed here. The successor has the table as the changelog restores it, nothing else.
    stored = {k: orjson.loads(v) for t, _p, k, v in w.sends.queued if t == "ag-changelog"}  # type: ignore[attr-defined]
    w.agents.data = dict(stored)
    tables.clear()
    flow = AgentFlow(w, settled_kpis(w))
    asyncio.run(flow.figures())
    first = [r for t, rs in tables if t == rows.AGENT_INTERVALS_TABLE for r in rs
             if int(r["interval_start"].timestamp() * 1000) == T0 - T0 % (15 * 60_000)]
    assert [r["busy_ms"] for r in first] == [120_000]
    # Written: the mark leaves the state, so a third worker does not rewrite it again.
    assert "d" not in w.agents.data[next(k for k in w.agents.data if k.endswith(b"ann"))]


def test_agent_figures_write_nothing_to_the_changelog_once_a_rebalance_has_begun(tmp_path: Path) -> None:
    """Another worker may be reading the partition's changelog back already: a state or mark
    written now would be stale for its successor (the torture run found agents whose contacts
    came back open). Rows still go to ClickHouse; the changelog writes wait for the next run,
    and a rebalance beginning while they are sent waits for them."""
    from datetime import datetime, timezone

    w, log = worker(tmp_path)
    flow = AgentFlow(w, settled_kpis(w))
    ts = lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()  # noqa: E731
    own = [{"type": "agent_login", "event_id": "a1", "ts": ts(T0), "tenant": "acme", "agent_id": "ann",
            "queues": ["sales"]}]
    asyncio.run(flow.handle([msg(w.settings.topic_agent_events, 0, "ann", own[0])]))
    w.clock.observe(T0 + 3_600_000)
    sent = len(w.sends.queued)  # type: ignore[attr-defined]
    w.app.rebalancing = True  # type: ignore[attr-defined]
    asyncio.run(flow.figures())
    assert _agent_rows_written(log) > 0 and len(w.sends.queued) == sent  # type: ignore[attr-defined]
    assert "d" in next(st for k, st in w.agents.data.items() if k.endswith(b"ann"))
    w.app.rebalancing = False  # type: ignore[attr-defined]
    asyncio.run(flow.figures())
    assert len(w.sends.queued) > sent and w.app.consumer.tracked == 1  # type: ignore[attr-defined]
    assert w.app.consumer._unacked_messages == set()  # type: ignore[attr-defined]  # released once sent


def test_history_older_than_the_lateness_read_just_after_a_restart_is_late(tmp_path: Path) -> None:
    """A worker restarted over states of March 2026 reads a year-old history load before its
    timer first runs: judged against the states' clocks, those changes are late (their intervals
    are the recount's), not a year of intervals to rewrite per agent (which blocked the worker)."""
    from datetime import datetime, timezone

    w, _ = worker(tmp_path)
    flow = AgentFlow(w, settled_kpis(w))
    ts = lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()  # noqa: E731
    now = {"type": "agent_login", "event_id": "a1", "ts": ts(T0), "tenant": "acme", "agent_id": "ann",
           "queues": ["sales"]}
    asyncio.run(flow.handle([msg(w.settings.topic_agent_events, 0, "ann", now)]))
    flow = AgentFlow(w, settled_kpis(w))  # restarted: the states are all it has
    year_ago = T0 - 365 * 86_400_000
    old = {"type": "agent_login", "event_id": "h1", "ts": ts(year_ago), "tenant": "acme", "agent_id": "ann",
           "queues": ["sales"]}
    asyncio.run(flow.handle([msg(w.settings.topic_agent_events, 1, "ann", old)]))
    (since,) = flow.dirty.values()
    assert since == T0 - w.centre.windows.lateness_s * 1000
