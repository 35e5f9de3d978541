"""The real Anonymous Bank month, replayed by the CLI through the broker and a worker into
ClickHouse: per queue, the stored contacts match a plain recount of the CSV."""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.services import SHARED, Worker, run_cli, wait_for

pytestmark = pytest.mark.integration

CALLS = SHARED / "data/anonymous-bank/calls-august.csv"
PER_QUEUE = ("SELECT queue, count(), countIf(outcome = 'answered'), countIf(outcome = 'abandoned'), "
             "sumIf(wait_ms, outcome = 'answered'), countIf(closed_by_timeout OR notEmpty(anomalies)) "
             "FROM ccpulse.interactions FINAL GROUP BY queue ORDER BY queue")


def recount(path: Path) -> list[tuple]:
    """Rows of PER_QUEUE as the CSV says: agent-served calls answered, queued hang-ups abandoned."""
    n: dict[str, Counter] = defaultdict(Counter)
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            queued = int(r["q_time"]) > 0 or r["q_start"] != "0:00:00"
            if r["outcome"] == "AGENT":
                n[r["type"]]["answered"] += 1
                n[r["type"]]["wait_ms"] += int(r["q_time"]) * 1000
            elif r["outcome"] == "HANG" and queued:
                n[r["type"]]["abandoned"] += 1
    return [(q, c["answered"] + c["abandoned"], c["answered"], c["abandoned"], c["wait_ms"], 0)
            for q, c in sorted(n.items())]


def test_replayed_month_matches_the_csv_per_queue(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    if not CALLS.exists():
        pytest.skip(f"{CALLS} is not here")
    expected = recount(CALLS)
    contacts = sum(r[1] for r in expected)
    run_cli(pipeline_env, "setup")
    run_cli(pipeline_env, "db", "migrate")
    worker = Worker(pipeline_env, tmp_path / "worker.log").start()
    try:
        p = run_cli(pipeline_env, "replay", str(CALLS), "--format", "anonymous-bank", timeout=300)
        answered, abandoned = sum(r[2] for r in expected), sum(r[3] for r in expected)
        assert f"{answered:,} answered, {abandoned:,} abandoned in queue" in p.stderr
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == contacts, 300,
                 f"{contacts:,} interactions stored (worker log {worker.log_path})", interval=2.0)
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
    finally:
        worker.stop()
