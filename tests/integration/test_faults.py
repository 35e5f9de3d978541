"""Faults on real parts: workers joining, crashing and leaving while a stream is processed.

The figures must come out exact anyway: the interval KPIs equal an independent count of
the simulator's ground truth, and every interaction record is stored once.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from streams.clickhouse.connect import connect
from streams.traffic.producer import from_event
from streams.traffic.simulate import SimConfig, Simulation, event_time_order, simulate
from tests.integration.pipeline_helpers import send
from tests.integration.test_kpis import independent_intervals, prepared_env, wait_intervals
from tests.services import ClickHouseServer, Worker, free_port, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(SimConfig(seed=33, interactions=3_000))


def _events(workers: list[Worker]) -> int:
    return sum(w.health()["events"] for w in workers if w.proc and w.proc.poll() is None)


def test_two_workers_rebalance_and_crash_and_the_intervals_stay_exact(
        pipeline_env: dict[str, str], tmp_path: Path, sim: Simulation, clickhouse_server) -> None:
    """A second worker joins mid-stream (partitions move), is SIGKILLed (they move back
    after its session times out), then the first is SIGKILLed and restarted."""
    db = f"faults_{pipeline_env['CCPULSE_APP_ID'].split('-')[-1]}"
    env = prepared_env(pipeline_env, tmp_path, CCPULSE_CLICKHOUSE_URL=clickhouse_server.url(db))
    expected = independent_intervals(sim.truth)
    messages = [from_event(e) for e in event_time_order(sim)]
    cut1, cut2 = len(messages) * 2 // 5, len(messages) * 7 // 10
    total = len(sim.events)
    send(env, messages[:cut1])

    a = Worker(env, tmp_path / "a1.log").start()
    b = Worker(dict(env, CCPULSE_WEB_PORT=str(free_port())), tmp_path / "b.log")
    try:
        wait_for(lambda: _events([a]) >= total // 5, 120, "a fifth processed by one worker", interval=0.05)
        b.start(wait_ready=False)
        wait_for(lambda: b.ready(), 90, "the second worker assigned its partitions", interval=0.1)
        send(env, messages[cut1:cut2])
        wait_for(lambda: b.health()["events"] >= total // 20, 120, "the second worker processing", interval=0.05)
        b.kill(signal.SIGKILL)  # its partitions go back to the first one after its session times out
        send(env, messages[cut2:])
        wait_for(lambda: a.health()["events"] >= total * 4 // 5, 120, "the first worker taking over",
                 interval=0.05)
        a.kill(signal.SIGKILL)
        a = Worker(env, tmp_path / "a2.log").start()
        wait_intervals(a, expected, db=db)
        # Records reach ClickHouse through their own topic, after the intervals.
        wait_for(lambda: a.query(f"SELECT count() FROM {db}.interactions FINAL")[0][0] == len(sim.truth), 120,
                 "every record stored once")
    finally:
        a.stop()
        b.stop()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_clickhouse_down_for_30_s_pauses_then_everything_lands_exactly_once(
        pipeline_env: dict[str, str], tmp_path: Path) -> None:
    """The server goes away mid-run: the worker reports degraded, holds its offsets (bounded
    memory, no crash loop) and, once the server is back, stores every record and interval
    exactly once."""
    if not ClickHouseServer.binary():
        pytest.skip("clickhouse-server not installed (apt-get install clickhouse-server)")
    server = ClickHouseServer(tmp_path / "clickhouse").start()  # its own: this test stops it
    small = simulate(SimConfig(seed=44, interactions=1_500))
    env = prepared_env(pipeline_env, tmp_path, CCPULSE_CLICKHOUSE_URL=server.url("ccpulse"))
    messages = [from_event(e) for e in event_time_order(small)]
    half = len(messages) // 2
    send(env, messages[:half])
    worker = Worker(env, tmp_path / "w.log").start()
    try:
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] > 100, 120,
                 "some records stored", interval=0.2)
        server.stop()
        down_at = time.monotonic()
        send(env, messages[half:])
        wait_for(lambda: worker.health()["degraded"], 60, "the worker to report ClickHouse down", interval=0.2)
        rss = []
        while time.monotonic() - down_at < 30:
            h = worker.health()  # raises if the worker died
            assert h["status"] == "degraded", h
            rss.append(_rss_mb(worker.proc.pid))
            time.sleep(1)
        assert max(rss) - rss[0] < 100, f"RSS grew from {rss[0]:.0f} to {max(rss):.0f} MB while ClickHouse was down"
        server.start()
        expected = independent_intervals(small.truth)
        wait_intervals(worker, expected)
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == len(small.truth),
                 120, "every record stored")
        assert worker.query("SELECT count() FROM ccpulse.interactions")[0][0] >= len(small.truth)
        # each table's writer clears its outage at its next attempt (backoff up to 10 s)
        wait_for(lambda: worker.health()["status"] == "ok", 30, "every write path recovered")
        assert "Traceback" not in (tmp_path / "w.log").read_text()
    finally:
        worker.stop()
        server.stop()


def test_a_batch_whose_second_table_fails_is_stored_whole_once_it_can_be(
        pipeline_env: dict[str, str], tmp_path: Path, clickhouse_server) -> None:
    """A batch's raw events are stored, then its interval rows fail (the table is renamed
    away for a few seconds): the worker retries the failed part without acking, and the
    figures come out exact, with nothing stored twice in the views."""
    db = f"halfway_{pipeline_env['CCPULSE_APP_ID'].split('-')[-1]}"
    small = simulate(SimConfig(seed=45, interactions=1_000))
    env = prepared_env(pipeline_env, tmp_path, CCPULSE_CLICKHOUSE_URL=clickhouse_server.url(db))
    admin = connect(clickhouse_server.url(db))
    worker = Worker(env, tmp_path / "w.log").start()
    try:
        messages = [from_event(e) for e in event_time_order(small)]
        send(env, messages[: len(messages) // 3])
        wait_for(lambda: worker.query(f"SELECT count() FROM {db}.raw_events")[0][0] > 0, 60, "first rows")
        admin.command(f"RENAME TABLE {db}.kpi_interval_parts TO {db}.kpi_interval_parts_away")
        raw_before = admin.query(f"SELECT count() FROM {db}.raw_events").rows[0][0]
        send(env, messages[len(messages) // 3:])
        wait_for(lambda: worker.health()["degraded"], 60, "the failing interval writes to show", interval=0.2)
        # Raw events of the failing batch went in before its interval rows failed.
        wait_for(lambda: admin.query(f"SELECT count() FROM {db}.raw_events").rows[0][0] > raw_before, 30,
                 "the batch's first table written")
        time.sleep(3)
        admin.command(f"RENAME TABLE {db}.kpi_interval_parts_away TO {db}.kpi_interval_parts")
        wait_intervals(worker, independent_intervals(small.truth), db=db)
        # Records reach ClickHouse through their own topic, after the intervals.
        wait_for(lambda: admin.query(f"SELECT count() FROM {db}.interactions FINAL").rows[0][0] == len(small.truth),
                 120, "every record stored once")
        (raw_distinct,) = admin.query(f"SELECT uniqExact(event_id) FROM {db}.raw_events").rows[0]
        assert raw_distinct == len({json.loads(m.value)["event_id"] for m in messages})
        assert worker.health()["status"] == "ok"
    finally:
        worker.stop()
        admin.close()


def test_three_sigkills_at_random_points_lose_nothing_and_count_nothing_twice(
        pipeline_env: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL the worker three times at seeded random points of the stream (one of them
    soon after a restart, during its rebuild), then let it finish: records and interval
    figures equal the ground truth exactly."""
    import random

    small = simulate(SimConfig(seed=46, interactions=2_000))
    env = prepared_env(pipeline_env, tmp_path)
    send(env, [from_event(e) for e in event_time_order(small)])
    rnd = random.Random(46)
    total = len(small.events)
    worker = Worker(env, tmp_path / "w0.log").start()
    try:
        for n, share in enumerate(sorted(rnd.uniform(0.1, 0.9) for _ in range(2))):
            wait_for(lambda: worker.health()["events"] >= total * share / 2, 120, f"{share:.0%} on", interval=0.02)
            worker.kill(signal.SIGKILL)
            worker = Worker(env, tmp_path / f"w{n + 1}.log").start()
        time.sleep(rnd.uniform(0.0, 1.0))  # the third: right after a restart
        worker.kill(signal.SIGKILL)
        worker = Worker(env, tmp_path / "w3.log").start()
        wait_intervals(worker, independent_intervals(small.truth))
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == len(small.truth),
                 120, "every record stored once")
    finally:
        worker.stop()


def _engine_pid(worker: Worker) -> int | None:
    """The worker's embedded-engine process (streams/clickhouse/engine.py), read from /proc, not /health."""
    from bench.harness import child_pids

    assert worker.proc is not None
    return next(iter(child_pids(worker.proc.pid)), None)


def test_the_embedded_engine_killed_twice_mid_stream_is_restarted_and_the_figures_stay_exact(
        pipeline_env: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL the worker's engine process (not the worker) twice mid-stream: a write in
    flight fails as an outage and is retried on a new engine, the worker itself never
    exits, and records, intervals and raw events come out exact."""
    import os

    small = simulate(SimConfig(seed=47, interactions=2_000))
    # Small batches: many writes, so a kill is likely to meet one under way.
    env = prepared_env(pipeline_env, tmp_path, CCPULSE_SINK_BATCH_SIZE="300")
    messages = [from_event(e) for e in event_time_order(small)]
    worker = Worker(env, tmp_path / "w.log").start()
    worker_pid = worker.proc.pid
    try:
        send(env, messages[: len(messages) // 2])
        killed = []
        for share in (0.15, 0.35):
            wait_for(lambda: worker.health()["events"] >= len(messages) * share, 120, f"{share:.0%} on",
                     interval=0.02)
            # The engine the sink is using (health), not one still starting: that one's failed
            # start is retried with a new engine object, and "starts" would count from 1 again.
            engine = wait_for(lambda: (e := worker.health()["engine"]) and e["pid"] not in killed and e["pid"],
                              30, "a running engine process")
            assert engine == _engine_pid(worker)
            os.kill(engine, signal.SIGKILL)
            killed.append(engine)
            if share == 0.15:
                send(env, messages[len(messages) // 2:])
        wait_intervals(worker, independent_intervals(small.truth))
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == len(small.truth),
                 120, "every record stored once")
        (raw_distinct, raw_final) = worker.query(
            "SELECT uniqExact(event_id), (SELECT count() FROM ccpulse.raw_events FINAL) FROM ccpulse.raw_events")[0]
        assert raw_distinct == raw_final == len({json.loads(m.value)["event_id"] for m in messages})
        assert worker.proc.pid == worker_pid and worker.proc.poll() is None  # the worker never exited
        assert _engine_pid(worker) not in (None, *killed)
        assert worker.health()["engine"] == {"pid": _engine_pid(worker), "starts": 3}
        assert worker.health()["status"] == "ok"
    finally:
        worker.stop()
