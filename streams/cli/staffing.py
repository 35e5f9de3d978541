"""``ccpulse staffing --tenant T --day D``: per queue and 15 minutes of the tenant's day, the agents
Erlang C and Erlang A say the queue needed for its goal, the agents it had, and what those could
be expected to give (streams/domain/staffing.py)."""
from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from streams.cli.common import CliError, print_result, settings_of

COLUMNS = ["queue", "interval", "offered", "aht_s", "patience_s", "required_erlang_c", "required_erlang_a",
           "staffed", "gap", "expected_sl", "expected_abandon", "note"]


def configure(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add("staffing", cmd_staffing, "agents each queue needed per 15 minutes of a day (Erlang C and A) "
                                       "against the agents it had")
    sp.add_argument("--tenant", required=True)
    sp.add_argument("--day", required=True, type=date.fromisoformat, help="the tenant's business day, YYYY-MM-DD")
    sp.add_argument("--format", choices=["table", "csv", "json"], default="table")


def cmd_staffing(args: argparse.Namespace) -> int:
    from streams.config.centre import load_centre
    from streams.domain.recount import quote
    from streams.domain.staffing import QueueDay, need
    from streams.worker.query import run_query

    s = settings_of(args)
    try:
        tenant = quote(args.tenant)
    except ValueError as e:
        raise CliError(str(e)) from None
    tc = load_centre(s.centre_config).tenant(args.tenant)
    zone = ZoneInfo(tc.timezone)
    start = datetime.combine(args.day, tc.daily_reset, tzinfo=zone)
    lo, hi = int(start.timestamp()), int((start + timedelta(days=1)).timestamp())
    db = s.clickhouse_database
    where = f"tenant = {tenant} AND local_day = toDate('{args.day.isoformat()}') AND queue != ''"

    def q(sql: str) -> list[tuple[Any, ...]]:
        try:
            return run_query(s, sql).rows
        except ConnectionError as e:
            raise CliError(str(e)) from None

    intervals = q(f"SELECT queue, toUnixTimestamp(interval_start), sum(offered), sum(handled), "
                  f"sum(talk_ms + hold_ms + acw_ms) FROM {db}.kpi_intervals_15m WHERE {where} "
                  "GROUP BY queue, interval_start ORDER BY queue, interval_start")
    if not intervals:
        planned = _from_forecast(args, s, tenant, q)
        if planned is None:
            raise CliError(f"no figures for tenant {args.tenant!r} on {args.day}: check the name and the day "
                           f"(ccpulse sql \"SELECT DISTINCT tenant, local_day FROM {db}.kpi_daily\")")
        print_result(COLUMNS, planned, args.format)
        return 0
    days = {r[0]: r[1:] for r in q(
        f"SELECT queue, sum(handled), sum(talk_ms + hold_ms + acw_ms), sum(abandoned), "
        f"sum(wait_answered_ms + wait_abandoned_ms) FROM {db}.kpi_intervals_15m WHERE {where} GROUP BY queue")}
    settings = {r[0]: (int(r[1]), float(r[2]), str(r[3])) for r in q(
        f"SELECT queue, sl_threshold_s, sl_goal, toString(sl_variant) FROM {db}.queue_settings FINAL "
        f"WHERE tenant = {tenant}")}
    # Agents available (ready, busy or after-call work) per queue they log in to, as agent-intervals.
    staffed_rows = q(
        f"SELECT l.q, toUnixTimestamp(a.interval_start), sum(a.ready_ms + a.busy_ms + a.acw_ms) / 900000, "
        f"sum(a.held_ms), sum(a.busy_ms + a.acw_ms) FROM {db}.agent_intervals_15m AS a "
        f"INNER JOIN (SELECT agent_id, arrayJoin(queues) AS q FROM {db}.agent_live FINAL WHERE tenant = {tenant}) AS l "
        f"ON l.agent_id = a.agent_id WHERE a.tenant = {tenant} AND a.interval_start >= toDateTime({lo}) "
        f"AND a.interval_start < toDateTime({hi}) GROUP BY l.q, a.interval_start")
    staffed: dict[tuple[str, int], float] = {}
    held: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for queue, at, agents, held_ms, work_ms in staffed_rows:
        staffed[(queue, int(at))] = float(agents)
        held[queue][0] += float(held_ms)
        held[queue][1] += float(work_ms)
    out = []
    for queue, at, offered, handled, handle_ms in intervals:
        threshold, goal, variant = settings.get(queue, (20, 0.8, "abandons_count_against"))
        dh, dhms, dab, dwait = days[queue]
        h, w = held[queue]
        day = QueueDay(int(dh), int(dhms), int(dab), int(dwait), h / w if w else 1.0)
        n = need(int(offered), int(handled), int(handle_ms), day, staffed.get((queue, int(at)), 0.0),
                 threshold, goal, variant)
        local = datetime.fromtimestamp(int(at), tz=zone).strftime("%H:%M")
        out.append([queue, local, n.offered, _r(n.aht_s, 1), _r(n.patience_s, 0), n.required_c, n.required_a,
                    round(n.staffed, 2), n.gap, _r(n.expected_sl, 3), _r(n.expected_abandon, 3), n.note])
    print_result(COLUMNS, out, args.format)
    return 0


def _from_forecast(args: argparse.Namespace, s: Any, tenant_literal: str,
                   q: Callable[[str], list[tuple[Any, ...]]]) -> list[list[Any]] | None:
    """A day after the newest one with figures: the plan is the forecast's (per half hour)."""
    from streams.config.centre import load_centre
    from streams.domain import planning

    newest = q(planning.today_sql(s.clickhouse_database, tenant_literal))
    if not newest or not newest[0][0] or str(newest[0][0]).startswith("1970"):
        return None
    today = date.fromisoformat(str(newest[0][0])[:10])
    ahead = (args.day - today).days
    if not 0 < ahead <= 62:
        return None
    centre = load_centre(s.centre_config)
    first, since = planning.window(centre, args.tenant, today, s.forecast_history_days)
    rows = planning.forecast_rows(centre, args.tenant, today, first,
                                  q(planning.history_sql(s.clickhouse_database, tenant_literal, since)), ahead)
    return [[r.queue, r.label, None if r.offered is None else round(r.offered, 1), r.aht_s, None, None,
             r.required_agents, None, None, None, None, r.note or f"forecast made {today}: 90 % band "
             f"{round(r.low or 0, 1)}-{round(r.high or 0, 1)} contacts"]
            for r in rows if r.day == args.day or (r.offered is None and r.note)]


def _r(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)



