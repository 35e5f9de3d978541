"""``ccpulse report client``: the monthly report an outsourcing centre sends its client."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from streams.cli.common import CliError, settings_of

FORMATS = ("pdf", "csv", "xlsx")


def configure(add: Callable[..., argparse.ArgumentParser]) -> None:
    rp = add("report", lambda a: 0, "reports for the centre's clients")
    sub = rp.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    c = sub.add_parser("client", help="one client's month: volumes, service level against the contract's goal, "
                                      "abandonment, CSAT and the bill in the client's billing model (centre file)")
    c.set_defaults(fn=cmd_client)
    c.add_argument("--tenant", required=True, help="the client (tenant)")
    c.add_argument("--month", required=True, help="YYYY-MM, the client's business days of that month")
    c.add_argument("--format", choices=FORMATS, default="pdf")
    c.add_argument("--out", help="file to write (default: report-TENANT-MONTH.FORMAT)")


def day_rows_sql(db: str, tenant_literal: str, yyyymm: int) -> str:
    from streams.reports.client import COUNT_FIELDS

    sums = ", ".join(f"sum({f})" for f in COUNT_FIELDS)
    return (f"SELECT toString(local_day), queue, {sums} FROM {db}.kpi_daily "
            f"WHERE tenant = {tenant_literal} AND toYYYYMM(local_day) = {yyyymm} "
            "GROUP BY local_day, queue ORDER BY local_day, queue")


def cmd_client(args: argparse.Namespace) -> int:
    from streams.config.centre import load_centre
    from streams.domain.recount import quote
    from streams.reports.client import build, month_of
    from streams.reports.render import summary_lines, write
    from streams.worker.query import run_query

    s = settings_of(args)
    try:
        year, month = month_of(args.month)
        tenant = quote(args.tenant)
    except ValueError as e:
        raise CliError(str(e)) from None
    centre = load_centre(s.centre_config)
    db = s.clickhouse_database
    try:
        days = run_query(s, day_rows_sql(db, tenant, year * 100 + month)).rows
        settings: dict[str, Any] = {str(q): (float(g), str(v)) for q, g, v in run_query(
            s, f"SELECT queue, sl_goal, toString(sl_variant) FROM {db}.queue_settings FINAL WHERE tenant = {tenant}").rows}
    except ConnectionError as e:
        raise CliError(str(e)) from None
    if not days:
        raise CliError(f"no figures for tenant {args.tenant!r} in {args.month}: check the name "
                       f"(ccpulse sql \"SELECT DISTINCT tenant FROM {db}.queue_settings\") and the month")
    report = build(args.tenant, args.month, days, settings, centre.tenant(args.tenant).billing,
                   centre.queue(args.tenant, "").sl_goal)
    out = Path(args.out or f"report-{args.tenant}-{args.month}.{args.format}")
    try:
        write(report, out, args.format)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e}") from None
    lines = dict(summary_lines(report))
    print(f"wrote {out} ({len(report.days)} days, {len(report.queues)} queues)")
    for key in ("Contacts offered", "Handled", "Service level", "Billed"):
        print(f"    {key}: {lines[key]}")
    return 0
