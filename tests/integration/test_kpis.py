"""Interval and live KPIs on real parts (broker → faust worker → chdb), against an
independent count of the simulator's ground truth and against the SQL recomputation."""
from __future__ import annotations

import math
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from streams.domain.kpi import COUNT_FIELDS
from streams.traffic.producer import from_event
from streams.traffic.simulate import SimConfig, Simulation, event_time_order, simulate
from tests.integration.pipeline_helpers import send
from tests.services import REPO, Worker, run_cli, wait_for

pytestmark = pytest.mark.integration

Q15 = 15 * 60_000
CENTRE = """
defaults: {sl_threshold_s: 20, short_abandon_s: 5}
tenants:
  acme:
    timezone: Europe/London
    queues:
      acme-sales: {sl_threshold_s: 30, sl_goal: 0.9, sl_variant: ignore_abandons}
      acme-chat: {sl_threshold_s: 60, short_abandon_s: 10}
windows: {rolling_minutes: [5, 15, 60], refresh_s: 1}
"""
THRESHOLDS = {"acme-sales": (30, 5), "acme-chat": (60, 10)}  # queue: (T, S); others (20, 5)
COLS = ["tenant", "queue", "channel", "toUnixTimestamp(interval_start) * 1000", *COUNT_FIELDS, "max_wait_ms"]


def independent_intervals(truth: dict[str, dict[str, Any]]) -> dict[tuple, tuple]:
    """kpi-definitions.md, counted directly from the intended records (no pipeline code)."""
    out: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys([*COUNT_FIELDS, "max_wait_ms"], 0))

    def row(r: dict[str, Any], ts: int) -> dict[str, int]:
        return out[(r["tenant"], r["queue"], r["channel"], ts - ts % Q15)]

    for r in truth.values():
        t, s = THRESHOLDS.get(r["queue"], (20, 5))
        row(r, r["offered_at_ms"])["offered"] += 1
        if r["outcome"] == "answered":
            x = row(r, r["answered_at_ms"])
            x["answered"] += 1
            x["answered_in_sl"] += r["wait_ms"] <= t * 1000
            x["wait_answered_ms"] += r["wait_ms"]
            x["transferred"] += r["transfers"] > 0
            if r["first_response_at_ms"] is not None:
                x["first_responses"] += 1
                x["first_response_ms"] += r["first_response_at_ms"] - r["answered_at_ms"]
            h = row(r, r["wrapup_ended_at_ms"])
            h["handled"] += 1
            h["talk_ms"] += r["talk_ms"]
            h["hold_ms"] += r["hold_ms"]
            h["acw_ms"] += r["acw_ms"]
            h["billable_talk_minutes"] += math.ceil(r["talk_ms"] / 60_000)  # every started minute
        else:
            x = row(r, r["abandoned_at_ms"])
            x["abandoned"] += 1
            x["abandoned_in_sl"] += r["wait_ms"] <= t * 1000
            x["short_abandons"] += r["wait_ms"] <= s * 1000
            x["wait_abandoned_ms"] += r["wait_ms"]
        if r["csat"] is not None:
            x["csat_ratings"] += 1
            x["csat_good"] += r["csat"] >= 4
        x["max_wait_ms"] = max(x["max_wait_ms"], r["wait_ms"])
    return {k: tuple(v[f] for f in [*COUNT_FIELDS, "max_wait_ms"]) for k, v in out.items()}


def stored(worker: Worker, view: str, db: str = "ccpulse") -> dict[tuple, tuple]:
    """The view's intervals; one whose figures are all zero counts as absent: a contact whose
    first event came late moves to its true interval and leaves its first one's part at zero
    (the recount from the records has no row there; the figures are the same)."""
    rows = worker.query(f"SELECT {', '.join(COLS)} FROM {db}.{view}")
    return {tuple(r[:4]): tuple(r[4:]) for r in rows if any(r[4:])}


def _diff(expected: dict, got: dict) -> str:
    keys = sorted(set(expected) | set(got))
    bad = [(k, expected.get(k), got.get(k)) for k in keys if expected.get(k) != got.get(k)]
    return f"{len(bad)} of {len(keys)} intervals differ, e.g. {bad[:3]}"


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(SimConfig(seed=21, interactions=3_000))


def prepared_env(pipeline_env: dict[str, str], tmp_path: Path, **settings: str) -> dict[str, str]:
    """The test's environment with this module's centre file and ``settings``; topics and
    schema created."""
    cfg = tmp_path / "centre.yaml"
    cfg.write_text(CENTRE)
    env = dict(pipeline_env, CCPULSE_CENTRE_CONFIG=str(cfg), **settings)
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    return env


def wait_intervals(worker: Worker, expected: dict, view: str = "kpi_intervals_15m", db: str = "ccpulse") -> None:
    last: dict = {}

    def done() -> bool:
        nonlocal last
        last = stored(worker, view, db)
        return last == expected

    try:
        wait_for(done, 180, f"{view} to equal the independent count", interval=1.0)
    except TimeoutError:
        h = worker.health()
        try:
            sql = _diff(expected, stored(worker, "kpi_intervals_15m_sql", db))
        except Exception as e:  # noqa: BLE001 -- a legacy server has no such view
            sql = f"n/a ({str(e)[:80]})"
        raise AssertionError(f"{view}: {_diff(expected, last)}\nSQL view: {sql}\n"
                             f"worker: events {h['events']}, states {h['states']}, late {h['late_updates']}, "
                             f"refetched {h['offsets_refetched']}, agents {h.get('agents')}, "
                             f"paused for a full buffer {h.get('paused')}, not fetched {h.get('not_fetched')}") from None


def plant_stale_row(env: dict[str, str], truth: dict[str, dict[str, Any]], partitions: int = 4) -> tuple:
    """Store a row the way a worker killed before rewriting it leaves one: a partition's
    figures for an interval none of that partition's contacts is in (a transferred
    contact's first queue). Rebuilt aggregates must zero it, or it counts for good."""
    from streams.domain.keys import partition_of

    expected = independent_intervals(truth)
    for p in range(partitions):
        mine = independent_intervals({k: r for k, r in truth.items()
                                      if partition_of(k.encode(), partitions) == p})
        free = sorted(set(expected) - set(mine))
        if free:
            t, q, c, start = free[0]
            break
    sql = ("INSERT INTO ccpulse.kpi_interval_parts (tenant, queue, channel, interval_start, source_partition, "
           f"offered, answered, version) VALUES ('{t}', '{q}', '{c}', toDateTime({start // 1000}), {p}, 5, 5, 1)")
    code = ("import sys; from streams.clickhouse.connect import connect; "
            "ch = connect(sys.argv[1]); ch.command(sys.argv[2]); ch.close()")
    subprocess.run([sys.executable, "-c", code, env["CCPULSE_CLICKHOUSE_URL"], sql], cwd=REPO, check=True)
    return (t, q, c, start)


def test_interval_kpis_equal_independent_count_and_sql_across_a_sigkill(
        pipeline_env: dict[str, str], tmp_path: Path, sim: Simulation) -> None:
    env = prepared_env(pipeline_env, tmp_path)
    expected = independent_intervals(sim.truth)
    plant_stale_row(env, sim.truth)
    messages = [from_event(e) for e in event_time_order(sim)]
    send(env, messages)
    worker = Worker(env, tmp_path / "w1.log").start()
    wait_for(lambda: worker.health()["events"] >= len(sim.events) // 3, 120, "a third processed", interval=0.05)
    worker.kill(signal.SIGKILL)  # aggregates are rebuilt from the recovered states
    worker = Worker(env, tmp_path / "w2.log").start()
    try:
        wait_intervals(worker, expected)
        wait_intervals(worker, expected, "kpi_intervals_15m_sql")  # once every record is stored
        # Days in each tenant's time zone are sums of its 15-minute intervals.
        zones = {"acme": ZoneInfo("Europe/London")}
        days: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
        for (t, q, c, start), v in expected.items():
            day = datetime.fromtimestamp(start / 1000, tz=zones.get(t, timezone.utc)).date().isoformat()
            days[(t, q, c, day)][0] += v[0]
            days[(t, q, c, day)][1] += v[1]
        got_days = {tuple(r[:4]): [r[4], r[5]] for r in worker.query(
            "SELECT tenant, queue, channel, local_day, offered, answered FROM ccpulse.kpi_daily")}
        assert got_days == dict(days)
        # First-contact resolution proxy: no repeat by the customer within 7 days, not unresolved.
        by_customer: dict[tuple, list] = defaultdict(list)
        for r in sim.truth.values():
            if r["customer_id"] is not None:
                by_customer[(r["tenant"], r["customer_id"])].append(r)
        fcr_want = [0, 0]
        for contacts in by_customer.values():
            contacts.sort(key=lambda r: r["offered_at_ms"])
            for r, nxt in zip(contacts, contacts[1:] + [None]):
                if r["outcome"] != "answered":
                    continue
                fcr_want[0] += 1
                fcr_want[1] += r["resolved"] is not False and (
                    nxt is None or nxt["offered_at_ms"] - r["offered_at_ms"] > 7 * 86_400_000)
        assert list(worker.query("SELECT count(), sum(fcr) FROM ccpulse.fcr")[0]) == fcr_want
        # Derived figures: the default variant and the per-queue settings the rows carry.
        rows = worker.query("""
            SELECT queue, sum(answered_in_sl), sum(answered), sum(abandoned), sum(short_abandons),
                   any(sl_threshold_s), any(short_abandon_s)
            FROM ccpulse.kpi_intervals_15m GROUP BY queue ORDER BY queue""")
        for queue, a_t, a, ab, sa, t, s in rows:
            assert (t, s) == THRESHOLDS.get(queue, (20, 5))
            mine = [r for r in sim.truth.values() if r["queue"] == queue]
            assert a == sum(r["outcome"] == "answered" for r in mine)
            assert a_t == sum(r["outcome"] == "answered" and r["wait_ms"] <= t * 1000 for r in mine)
        (sl,) = worker.query("SELECT sum(answered_in_sl) / sum(answered) FROM ccpulse.kpi_intervals_15m "
                             "WHERE queue = 'acme-sales'")[0]
        sales = [r for r in sim.truth.values() if r["queue"] == "acme-sales" and r["outcome"] == "answered"]
        assert sl == pytest.approx(sum(r["wait_ms"] <= 30_000 for r in sales) / len(sales), abs=1e-12)
        settings = worker.query("SELECT queue, sl_goal, sl_variant FROM ccpulse.queue_settings FINAL "
                                "WHERE queue = 'acme-sales'")
        assert settings == [("acme-sales", 0.9, "ignore_abandons")]
    finally:
        worker.stop()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def _ev(typ: str, t: int, iid: str, n: int, **kw: Any) -> dict[str, Any]:
    return {"type": typ, "event_id": f"{iid}:{n}", "ts": _iso(t), "tenant": "acme", "interaction_id": iid,
            "channel": "voice", **kw}


def test_live_windows_and_contacts_waiting_now(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    env = prepared_env(pipeline_env, tmp_path)
    t0 = 1_767_258_000_000
    worker = Worker(env, tmp_path / "w.log").start()
    try:
        # Three callers queue in acme-sales (T = 30 s); two more were answered earlier.
        done = []
        for i, wait in enumerate([10_000, 40_000]):
            iid = f"done{i}"
            done += [_ev("offered", t0 + i * 1000, iid, 1, queue="acme-sales"),
                     _ev("answered", t0 + i * 1000 + wait, iid, 2, agent_id="a1"),
                     _ev("ended", t0 + 120_000, iid, 3), _ev("wrapup_ended", t0 + 130_000, iid, 4)]
        waiting = [_ev("offered", t0 + 200_000 + i * 5_000, f"w{i}", 1, queue="acme-sales") for i in range(3)]
        send(env, [from_event(e) for e in done + waiting])
        q = """SELECT window_minutes, offered, answered, answered_in_sl, handled, waiting,
                      toUnixTimestamp64Milli(oldest_waiting_since), sl_ignore_abandons, asa_s
               FROM ccpulse.kpi_live WHERE queue = 'acme-sales' ORDER BY window_minutes"""
        want = [(w, 5, 2, 1, 2, 3, t0 + 200_000, 0.5, 25.0) for w in (5, 15, 60)]
        wait_for(lambda: worker.query(q) == want, 60, "live figures with three waiting")
        (age,) = worker.query("SELECT oldest_waiting_s FROM ccpulse.kpi_live WHERE queue = 'acme-sales' "
                              "AND window_minutes = 5")[0]
        assert age >= 10  # the event clock was at t0 + 210 s when the last caller queued
        # Two are answered, one gives up: nobody waits any more.
        later = [_ev("answered", t0 + 215_000, "w0", 2, agent_id="a2"),
                 _ev("answered", t0 + 216_000, "w1", 2, agent_id="a3"),
                 _ev("abandoned", t0 + 217_000, "w2", 2)]
        send(env, [from_event(e) for e in later])
        want = [(w, 5, 4, 3, 2, 0, None) for w in (5, 15, 60)]
        wait_for(lambda: [r[:7] for r in worker.query(q)] == want, 60, "live figures after the queue emptied")
        (ab, sa) = worker.query("SELECT abandoned, short_abandons FROM ccpulse.kpi_live "
                                "WHERE queue = 'acme-sales' AND window_minutes = 5")[0]
        assert (ab, sa) == (1, 0)
    finally:
        worker.stop()
