"""``ccpulse forecast``: contacts offered, AHT and the agents needed per queue and 30 minutes for
the rest of the tenant's newest day and the days after (streams/domain/planning.py)."""
from __future__ import annotations

import argparse
from datetime import date
from typing import Any, Callable

from streams.cli.common import CliError, print_result, settings_of

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
    from streams.domain import planning
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
        queue_filter = (" AND queue IN (" + ", ".join(quote(x) for x in args.queue) + ")") if args.queue else ""
        literals = {t: quote(t) for t in tenants}
    except ValueError as e:
        raise CliError(str(e)) from None
    out: list[list[Any]] = []
    newest_days: list[str] = []
    for tenant in tenants:
        newest = q(planning.today_sql(db, literals[tenant]))
        if not newest or not newest[0][0] or str(newest[0][0]).startswith("1970"):
            continue
        today = date.fromisoformat(str(newest[0][0])[:10])
        newest_days.append(today.isoformat())
        first, since = planning.window(centre, tenant, today, args.history_days)
        rows = q(planning.history_sql(db, literals[tenant], since, queue_filter))
        for r in planning.forecast_rows(centre, tenant, today, first, rows, args.days):
            out.append([r.tenant, r.queue, r.day.isoformat(), r.label, r.offered and round(r.offered, 1),
                        r.low and round(r.low, 1), r.high and round(r.high, 1), r.aht_s, r.required_agents, r.note])
    if not out and newest_days:
        raise CliError(f"no history to forecast from: the forecast learns from the days before the newest one "
                       f"({max(newest_days)}) and there are none; load earlier days first (ccpulse demo --start DAY, "
                       f"ccpulse demo --replay FILE) or check --queue")
    if not out:
        raise CliError("no figures to forecast from: run the pipeline first (ccpulse demo), or check --tenant/--queue")
    print_result(COLUMNS, out, args.format)
    return 0
