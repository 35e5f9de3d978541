"""The real Anonymous Bank month, replayed by the CLI through the broker and a worker into
ClickHouse: per queue, the stored contacts and the interval KPIs (service level, abandon rate,
ASA) match a plain recount of the CSV."""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.services import SHARED, Worker, run_cli, wait_for
from tests.streams.test_replay import ivr_recount

pytestmark = pytest.mark.integration

CALLS = SHARED / "data/anonymous-bank/calls-august.csv"
PER_QUEUE = ("SELECT queue, count(), countIf(outcome = 'answered'), countIf(outcome = 'abandoned'), "
             "sumIf(wait_ms, outcome = 'answered'), countIf(closed_by_timeout OR notEmpty(anomalies)) "
             "FROM ccpulse.interactions FINAL WHERE queue IS NOT NULL GROUP BY queue ORDER BY queue")
#: The IVR side of the month, from the records and from the IVR view (tests/streams/test_replay.py
#: ivr_recount gives the same four figures from the CSV).
IVR_RECORDS = ("SELECT count(), countIf(ivr_result = 'to_queue'), countIf(outcome = 'ivr' AND ivr_result = 'hung_up'), "
               "intDiv(sum(ivr_ms), 1000) FROM ccpulse.interactions FINAL WHERE ivr_entered_at IS NOT NULL")
IVR_VIEW = ("SELECT sum(sessions), sum(to_queue), sum(hung_up), intDiv(sum(ivr_ms), 1000) "
            "FROM ccpulse.ivr_intervals_15m WHERE tenant = 'anonymous-bank'")


#: The centre defaults (kpi-definitions.md): SL threshold T and short-abandon threshold S, seconds.
T_S, S_S = 20, 5
PER_QUEUE_INTERVALS = ("SELECT queue, sum(offered), sum(answered), sum(answered_in_sl), sum(abandoned), "
                       "sum(short_abandons), sum(wait_answered_ms), min(sl_threshold_s), max(sl_threshold_s), "
                       "min(short_abandon_s), max(short_abandon_s) "
                       "FROM ccpulse.kpi_intervals_15m WHERE tenant = 'anonymous-bank' GROUP BY queue ORDER BY queue")


def counts(path: Path) -> dict[str, Counter]:
    """Per queue (the ``type`` column): agent-served calls answered, queued hang-ups abandoned.

    The CSV's own columns only (shared/data/anonymous-bank/README.md): an answered call waited
    ``q_time`` seconds (0 when it never queued), an abandoned one hung up after ``q_time``.
    """
    n: dict[str, Counter] = defaultdict(Counter)
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            queued = int(r["q_time"]) > 0 or r["q_start"] != "0:00:00"
            wait = int(r["q_time"])
            c = n[r["type"]]
            if r["outcome"] == "AGENT":
                c["answered"] += 1
                c["answered_in_t"] += wait <= T_S
                c["wait_ms"] += wait * 1000
            elif r["outcome"] == "HANG" and queued:
                c["abandoned"] += 1
                c["short_abandons"] += wait <= S_S
    return n


def recount(path: Path) -> list[tuple]:
    """Rows of PER_QUEUE as the CSV says."""
    return [(q, c["answered"] + c["abandoned"], c["answered"], c["abandoned"], c["wait_ms"], 0)
            for q, c in sorted(counts(path).items())]


def kpis(a: int, a_t: int, ab: int, sa: int, wait_answered_ms: int) -> tuple[float, float, float]:
    """kpi-definitions.md, written out here: SL (abandons_count_against) = A_T / (A + Ab − SA),
    abandon rate = (Ab − SA) / (A + Ab − SA), ASA = mean wait of answered contacts in seconds."""
    return a_t / (a + ab - sa), (ab - sa) / (a + ab - sa), wait_answered_ms / 1000 / a


def check_interval_kpis(stored: list[tuple], n: dict[str, Counter]) -> None:
    """Per queue, the 15-minute interval counts summed over the month equal the CSV recount
    exactly, and so do the KPIs computed from them."""
    assert [r[0] for r in stored] == sorted(n), "queues in kpi_intervals_15m"
    for queue, offered, a, a_t, ab, sa, wait_ms, t_lo, t_hi, s_lo, s_hi in stored:
        c = n[queue]
        assert (t_lo, t_hi, s_lo, s_hi) == (T_S, T_S, S_S, S_S), queue
        assert (offered, a, a_t, ab, sa, wait_ms) == (
            c["answered"] + c["abandoned"], c["answered"], c["answered_in_t"], c["abandoned"],
            c["short_abandons"], c["wait_ms"]), queue
        got = kpis(a, a_t, ab, sa, wait_ms)
        want = kpis(c["answered"], c["answered_in_t"], c["abandoned"], c["short_abandons"], c["wait_ms"])
        assert got == pytest.approx(want, rel=1e-12), queue


def test_replayed_month_matches_the_csv_per_queue(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    if not CALLS.exists():
        pytest.skip(f"{CALLS} is not here")
    n = counts(CALLS)
    expected = recount(CALLS)
    contacts = sum(r[1] for r in expected)
    run_cli(pipeline_env, "setup")
    run_cli(pipeline_env, "db", "migrate")
    worker = Worker(pipeline_env, tmp_path / "worker.log").start()
    try:
        p = run_cli(pipeline_env, "replay", str(CALLS), "--format", "anonymous-bank", timeout=300)
        answered, abandoned = sum(r[2] for r in expected), sum(r[3] for r in expected)
        assert f"{answered:,} answered, {abandoned:,} abandoned in queue" in p.stderr
        ivr = ivr_recount(CALLS)  # (sessions, to a queue, hung up in the IVR, seconds in it)
        records = contacts + ivr[2]  # and an IVR session for each caller who hung up before a queue
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == records, 300,
                 f"{records:,} interactions stored (worker log {worker.log_path})", interval=2.0)
        # The count can be reached by a record closed by timeout before its last events arrived.
        last: list[tuple] = []

        def settled() -> bool:
            nonlocal last
            last = worker.query(PER_QUEUE)
            return last == expected

        try:
            wait_for(settled, 120, "per-queue figures to match the CSV", interval=2.0)
        except TimeoutError:
            raise AssertionError(f"stored per queue:\n{last}\nCSV recount:\n{expected}") from None
        assert tuple(worker.query(IVR_RECORDS)[0]) == tuple(worker.query(IVR_VIEW)[0]) == ivr
        # The interval figures come from the worker's KPI stream, a little after the records.
        intervals: list[tuple] = []

        def intervals_settled() -> bool:
            nonlocal intervals
            intervals = worker.query(PER_QUEUE_INTERVALS)
            try:
                check_interval_kpis(intervals, n)
            except AssertionError:
                return False
            return True

        try:
            wait_for(intervals_settled, 120, "interval KPIs to equal the CSV recount", interval=2.0)
        except TimeoutError:
            late = worker.health().get("late_updates")
            try:
                check_interval_kpis(intervals, n)
            except AssertionError as e:  # which queue and figure differ, and whether events came too late
                raise AssertionError(f"{e}\nworker late_updates (past windows.lateness_s): {late}") from None
            raise
    finally:
        worker.stop()
