"""``ccpulse forecast`` as a planner runs it, on three weeks of interval figures in the embedded
engine: tomorrow's offered contacts are those the forecasting method gives for the same
history, and every interval names the agents needed by Erlang A; a queue with one week says
it has too little history."""
from __future__ import annotations

import csv
import io
import math
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from streams.clickhouse import rows
from streams.clickhouse.connect import connect
from streams.clickhouse.migrate import migrate
from streams.config.centre import QueueConfig
from streams.domain import kpi
from streams.domain.erlang import patience_rate, required_agents
from streams.domain.forecast import forecast_counts
from tests.services import run_cli

DAY0 = date(2026, 2, 1)   # a Sunday; UTC tenant (no centre file)
DAYS = 21
Q15 = 900_000


def volume(day: int, quarter: int) -> int:
    """Contacts per quarter hour: busy weekdays, quiet weekends, office hours, a gentle decline."""
    weekday = (DAY0 + timedelta(days=day)).weekday()
    if not 32 <= quarter < 72:  # 08:00-18:00
        return 0
    base = 3 if weekday >= 5 else 12
    return max(0, round(base * (1 - 0.01 * day) + (quarter % 4)))


def write_history(url: str, partition: int = 0) -> None:
    """Three weeks of interval figures of acme/sales, and one week of acme/fresh, into ``url``;
    ``partition``: the source partition they are stored as (a running worker zeroes the rows of
    its own partitions that no record accounts for)."""
    ch = connect(url, "ccpulse")
    migrate(ch)
    parts = []
    for d in range(DAYS):
        for quarter in range(96):
            n = volume(d, quarter)
            if not n and quarter % 8:
                continue
            v = kpi.zero()
            v[kpi.IDX["offered"]] = v[kpi.IDX["answered"]] = v[kpi.IDX["handled"]] = n
            v[kpi.IDX["talk_ms"]] = n * 240_000
            v[kpi.IDX["abandoned"]] = n // 6
            v[kpi.IDX["wait_answered_ms"]] = n * 30_000
            start = int(datetime.combine(DAY0 + timedelta(days=d), datetime.min.time(), timezone.utc).timestamp() * 1000)
            parts.append((partition, ("acme", "sales", "voice", start + quarter * Q15), v, QueueConfig(),
                          DAY0 + timedelta(days=d)))
            if d >= DAYS - 7:  # a second queue with one week only
                parts.append((partition, ("acme", "fresh", "voice", start + quarter * Q15), v, QueueConfig(),
                              DAY0 + timedelta(days=d)))
    ch.insert(rows.KPI_INTERVALS_TABLE, rows.kpi_interval_batch(parts, 1))
    ch.insert(rows.QUEUE_SETTINGS_TABLE, rows.queue_settings_batch([("acme", "sales", QueueConfig()),
                                                                     ("acme", "fresh", QueueConfig())]))
    ch.close()


def test_the_forecast_command_on_three_weeks_of_figures(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'chdb'}"
    write_history(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    env.update(CCPULSE_CLICKHOUSE_URL=url, CCPULSE_STATE_DIR=str(tmp_path / "state"))
    p = run_cli(env, "forecast", "--tenant", "acme", "--days", "2", "--format", "csv")
    got = list(csv.DictReader(io.StringIO(p.stdout)))
    fresh = [r for r in got if r["queue"] == "fresh"]
    assert len(fresh) == 1 and fresh[0]["note"].startswith("too little history: 6 days")

    # Today is the newest day with figures (day 20); the history is the 20 whole days before it.
    per_30 = np.array([volume(d, 2 * s) + volume(d, 2 * s + 1) for d in range(DAYS - 1) for s in range(48)], float)
    want = forecast_counts(per_30, 48, 3)
    sales = [r for r in got if r["queue"] == "sales"]
    assert len(sales) == 3 * 48 and sales[0]["day"] == (DAY0 + timedelta(days=DAYS - 1)).isoformat()
    assert [float(r["offered"]) for r in sales] == [round(float(x), 1) for x in want.mean]
    theta = patience_rate(sum(volume(d, q) // 6 for d in range(DAYS) for q in range(96)),
                          sum(volume(d, q) * 30 for d in range(DAYS) for q in range(96)))
    busy = next(r for r in sales if r["interval"] == "10:00" and r["day"] == sales[48]["day"])
    assert float(busy["aht_s"]) == 240.0
    lam = float(want.mean[48 + 20]) / 1800
    assert int(busy["required_agents"]) == required_agents(lam, 1 / 240, theta, 20, 0.8).agents
    assert not math.isnan(float(busy["offered_high"])) and float(busy["offered_low"]) <= float(busy["offered"])

    # ccpulse staffing for tomorrow (a day still to come) is the forecast's plan.
    tomorrow = (DAY0 + timedelta(days=DAYS)).isoformat()
    plan = list(csv.DictReader(io.StringIO(run_cli(env, "staffing", "--tenant", "acme", "--day", tomorrow,
                                                   "--format", "csv").stdout)))
    want_plan = {r["interval"]: r["required_agents"] for r in sales if r["day"] == tomorrow}
    got_plan = {r["interval"]: r["required_erlang_a"] for r in plan if r["queue"] == "sales"}
    assert got_plan == want_plan and len(got_plan) == 48
    assert all(r["note"].startswith("forecast made") for r in plan if r["queue"] == "sales")

