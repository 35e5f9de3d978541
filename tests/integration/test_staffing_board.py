"""The worker's scheduled forecasts and the staffing board, on three weeks of interval figures:
the stored forecast is the planning module's for the same history, and every panel of the board
runs with Grafana's macros and gives its panel type what it needs, with figures from the tables."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterator

import pytest

from streams.clickhouse import rows
from streams.clickhouse.connect import connect
from streams.config.centre import load_centre
from streams.domain import kpi
from streams.domain.staffing import now as needed_now
from streams.domain import planning
from streams.domain.agents import IntervalFigures
from streams.grafana.macros import expand
from tests.conftest import make_env
from tests.integration.test_panel_queries import BOARDS, _items, _post, check_shape
from tests.services import Broker, Worker, run_cli, wait_for
from tests.streams.test_forecast_cli import DAY0, DAYS, Q15, write_history

pytestmark = pytest.mark.integration
TODAY = DAY0 + timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def planned(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("staffing")
    env = make_env(tmp, broker)
    env["CCPULSE_FORECAST_INTERVAL_S"] = "2"
    run_cli(env, "setup")
    # Stored as figures of no partition of the worker's (a history recounted from elsewhere): the
    # worker keeps its own partitions' rows equal to their records, and this history has none.
    write_history(env["CCPULSE_CLICKHOUSE_URL"], partition=65535)
    ch = connect(env["CCPULSE_CLICKHOUSE_URL"], env.get("CCPULSE_CLICKHOUSE_DATABASE", "ccpulse"))
    start = int(datetime.combine(TODAY, time(), timezone.utc).timestamp() * 1000)
    figures = []
    for agent in ("ann", "bob", "cy"):
        per = {}
        for quarter in range(32, 72):
            f = IntervalFigures()
            f.ms.update(ready=Q15 // 2, busy=Q15 // 2)
            per[start + quarter * Q15] = f
        figures.append(("acme", agent, per))
    intervals, _ = rows.agent_batches(figures, 1)
    ch.insert(rows.AGENT_INTERVALS_TABLE, intervals)
    # The last 15 minutes of the live stream (a partition no worker owns: the worker leaves it be).
    live = kpi.zero()
    for f, v in (("offered", 40), ("answered", 36), ("abandoned", 4), ("handled", 30), ("talk_ms", 30 * 200_000),
                 ("wait_answered_ms", 36 * 20_000), ("wait_abandoned_ms", 4 * 60_000)):
        live[kpi.IDX[f]] = v
    for window in (5, 15, 60):
        ch.insert(rows.KPI_LIVE_TABLE, rows.kpi_live_batch(
            [(65535, ("acme", "sales", "voice"), window, live, 0, None, start + 60 * Q15)], 1))
    ch.insert(rows.AGENT_LIVE_TABLE, rows.agent_live_batch(
        [("acme", a, ("ready", "", start + 40 * Q15, 0, ["sales"])) for a in ("ann", "bob", "cy")], start + 60 * Q15, 1))
    ch.close()
    w = Worker(env, tmp / "worker.log").start()
    try:
        wait_for(lambda: w.query("SELECT count() FROM ccpulse.forecasts")[0][0] > 0, 120, "forecasts stored", interval=1.0)
        wait_for(lambda: w.query("SELECT count() FROM ccpulse.staffing_live")[0][0] > 0, 60, "staffing now stored",
                 interval=1.0)
        yield w
    finally:
        w.stop()


def test_the_stored_forecast_is_the_planning_modules(planned: Worker) -> None:
    centre = load_centre(None)
    first, since = planning.window(centre, "acme", TODAY, 56)
    history = planned.query(planning.history_sql("ccpulse", "'acme'", since))
    want = {(r.queue, r.start_ms): (r.offered, r.required_agents)
            for r in planning.forecast_rows(centre, "acme", TODAY, first, history, 7) if r.offered is not None}
    got = {(q, int(t) * 1000): (o, n) for q, t, o, n in planned.query(
        "SELECT queue, toUnixTimestamp(interval_start), offered, required_agents FROM ccpulse.forecasts FINAL "
        "WHERE offered IS NOT NULL")}
    assert got == want and len(got) == 8 * 48
    notes = planned.query("SELECT queue, note FROM ccpulse.forecasts FINAL WHERE offered IS NULL")
    assert [(q, n[:18]) for q, n in notes] == [("fresh", "too little history")]


def _values(board: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in BOARDS[board]["templating"]["list"]:
        out[v["name"]] = "acme" if v["name"] == "tenant" else (["sales"] if v["multi"] else "sales")
    return out


@pytest.mark.parametrize("board,kind,item,sql", list(_items("staffing.json")))
def test_every_staffing_query_gives_its_panel_what_it_needs(planned: Worker, board: str, kind: str,
                                                            item: dict[str, Any], sql: str) -> None:
    lo = int(datetime.combine(TODAY - timedelta(days=2), time(), timezone.utc).timestamp() * 1000)
    expanded = expand(sql, from_ms=lo, to_ms=lo + 10 * 86_400_000, interval_s=1800, variables=_values(board),
                      all_values={"tenant": ["acme"], "queue": ["sales", "fresh"]})
    types = [(r[0], r[1]) for r in _post(planned, f"DESCRIBE ({expanded})")["rows"]]
    check_shape(kind, item, types, _post(planned, expanded)["rows"])


def test_the_next_hours_need_more_agents_than_the_three_available(planned: Worker) -> None:
    panel = next(p for p in BOARDS["staffing.json"]["panels"] if p["title"].startswith("Next hours"))
    sql = expand(panel["targets"][0]["rawSql"], from_ms=0, to_ms=1, interval_s=1800, variables=_values("staffing.json"),
                 all_values={"tenant": ["acme"], "queue": ["sales", "fresh"]})
    got = _post(planned, sql)["rows"]
    assert 1 <= len(got) <= 8 and all(r[4] == 3 and r[5] == r[3] - 3 for r in got)
    assert date.fromisoformat(str(got[0][1])[:10]) >= TODAY


def test_the_agents_needed_now_are_erlang_a_at_the_windows_rate(planned: Worker) -> None:
    got = planned.query("SELECT queue, offered, required_agents, available, expected_sl FROM ccpulse.staffing_live "
                        "FINAL WHERE tenant = 'acme'")
    want = needed_now(40, 900, 30, 30 * 200_000, 4, 36 * 20_000 + 4 * 60_000, 3, 20, 0.8, "abandons_count_against")
    assert got == [("sales", 40, want["required_agents"], 3, pytest.approx(want["expected_sl"]))]
    assert want["required_agents"] > 3  # 40 contacts of 200 s in 15 minutes: more than the three on the floor
