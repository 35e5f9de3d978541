"""``ccpulse forecast``: contacts offered, AHT and the agents needed per queue and 30 minutes for
the rest of the tenant's current day and the days after (streams/domain/forecast.py,
streams/domain/erlang.py). "Today" is the newest business day with figures, so a replayed
history forecasts its own next week."""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from streams.cli.common import CliError, print_result, settings_of

PER_DAY = 48
COLUMNS = ["tenant", "queue", "day", "interval", "offered", "offered_low", "offered_high", "aht_s",
           "required_agents", "note"]


def configure(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add("forecast", cmd_forecast, "contacts, AHT and agents needed per queue and 30 minutes, for the rest of "
                                       "today and the days after (from the history in ClickHouse)")
    sp.add_argument("--tenant", action="append", help="only this tenant (repeat; default: every tenant with figures)")
    sp.add_argument("--queue", action="append", help="only this queue (repeat)")
    sp.add_argument("--days", type=int, default=7, help="days after today to forecast (default 7)")
    sp.add_argument("--history-days", type=int, default=56, help="days of history to learn from (default 56)")
    sp.add_argument("--format", choices=["table", "csv", "json"], default="table")


def cmd_forecast(args: argparse.Namespace) -> int:
    from streams.config.centre import load_centre
    from streams.domain.recount import quote
    from streams.worker.query import run_query

    s = settings_of(args)
    centre = load_centre(s.centre_config)
    db = s.clickhouse_database

    def q(sql: str) -> list[tuple[Any, ...]]:
        try:
            return run_query(s, sql).rows
        except ConnectionError as e:
            raise CliError(str(e)) from None

    try:
        tenants = args.tenant or [r[0] for r in q(f"SELECT DISTINCT tenant FROM {db}.queue_settings FINAL ORDER BY tenant")]
        literals = {t: quote(t) for t in tenants}
        queue_filter = (" AND queue IN (" + ", ".join(quote(x) for x in args.queue) + ")") if args.queue else ""
    except ValueError as e:
        raise CliError(str(e)) from None
    out: list[list[Any]] = []
    for tenant in tenants:
        out += _tenant(tenant, literals[tenant], queue_filter, centre, db, q, args.days, args.history_days)
    if not out:
        raise CliError("no figures to forecast from: run the pipeline first (ccpulse demo), or check --tenant/--queue")
    print_result(COLUMNS, out, args.format)
    return 0


def _tenant(tenant: str, lit: str, queue_filter: str, centre: Any, db: str, q: Callable[[str], list[tuple[Any, ...]]],
            days_ahead: int, history_days: int) -> list[list[Any]]:
    from streams.domain.erlang import patience_rate, required_agents
    from streams.domain.forecast import TooLittleHistory, aht_profile, forecast_counts

    tc = centre.tenant(tenant)
    zone = ZoneInfo(tc.timezone)
    today_rows = q(f"SELECT toString(max(local_day)) FROM {db}.kpi_interval_parts WHERE tenant = {lit}")
    if not today_rows or not today_rows[0][0] or str(today_rows[0][0]).startswith("1970"):
        return []
    today = date.fromisoformat(str(today_rows[0][0])[:10])
    first = today - timedelta(days=history_days)
    start = datetime.combine(first, tc.daily_reset, tzinfo=zone)
    rows = q(f"SELECT queue, toUnixTimestamp(interval_start), sum(offered), sum(handled), "
             f"sum(talk_ms + hold_ms + acw_ms), sum(abandoned), sum(wait_answered_ms + wait_abandoned_ms) "
             f"FROM {db}.kpi_intervals_15m WHERE tenant = {lit} AND queue != ''{queue_filter} "
             f"AND interval_start >= toDateTime({int(start.timestamp())}) GROUP BY queue, interval_start")
    n_days = (today - first).days  # whole days before today
    series: dict[str, list[list[float]]] = defaultdict(lambda: [[0.0] * (n_days * PER_DAY) for _ in range(3)])
    patience: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    reset = timedelta(hours=tc.daily_reset.hour, minutes=tc.daily_reset.minute)
    for queue, at, offered, handled, handle_ms, abandoned, wait_ms in rows:
        local = datetime.fromtimestamp(int(at), tz=zone) - reset
        d = (local.date() - first).days
        if 0 <= d < n_days:
            slot = d * PER_DAY + local.hour * 2 + local.minute // 30
            for i, v in enumerate((offered, handled, float(handle_ms) / 1000)):
                series[queue][i][slot] += float(v)
        patience[queue][0] += float(abandoned)
        patience[queue][1] += float(wait_ms) / 1000
    out: list[list[Any]] = []
    for queue in sorted(series):
        offered, handled, handle_s = series[queue]
        days_with = next((i for i in range(n_days) if any(offered[i * PER_DAY:(i + 1) * PER_DAY])), n_days)
        try:
            f = forecast_counts(offered[days_with * PER_DAY:], PER_DAY, days_ahead + 1)
        except TooLittleHistory as e:
            out.append([tenant, queue, today.isoformat(), "", None, None, None, None, None, f"too little history: {e}"])
            continue
        aht = aht_profile(handled[days_with * PER_DAY:], handle_s[days_with * PER_DAY:], PER_DAY, days_ahead + 1)
        qc = centre.queue(tenant, queue)
        theta = patience_rate(int(patience[queue][0]), patience[queue][1])
        for i in range(len(f.mean)):
            day, slot = today + timedelta(days=i // PER_DAY), i % PER_DAY
            lam, a = f.mean[i] / 1800, float(aht[i])
            need = None
            if lam > 0 and a > 0 and not math.isnan(a):
                need = required_agents(lam, 1 / a, theta, qc.sl_threshold_s, qc.sl_goal, qc.sl_variant).agents
            label = (datetime(2000, 1, 1) + reset + timedelta(minutes=30 * slot)).strftime("%H:%M")
            out.append([tenant, queue, day.isoformat(), label, round(float(f.mean[i]), 1),
                        round(float(f.low[i]), 1), round(float(f.high[i]), 1),
                        None if math.isnan(a) else round(a, 1), need, ""])
    return out
