"""``ccpulse verify`` and ``ccpulse recompute``: stored figures against the recount.

The comparison runs where the data can be opened: directly (a server, or an embedded
engine no process holds), else inside the worker that owns the embedded engine (its
``POST /verify``, bound to localhost like ``/sql``).
"""
from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from datetime import date
from typing import Any

from streams.config.settings import Settings


class VerifyError(Exception):
    """Verification could not run; the message says what to do."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None


def configure(add: Any) -> None:
    v = add("verify", cmd_verify, "compare every stored interval figure with the recount from the records; "
                                  "exit 1 when any differs")
    r = add("recompute", cmd_recompute, "rewrite the interval figures of a period from the records "
                                        "(after loading history, or to repair what verify found)")
    for sp, required in ((v, False), (r, True)):
        sp.add_argument("--tenant", help="only this tenant (default: every tenant)")
        sp.add_argument("--from", dest="start", type=_date, required=required,
                        help="first day, UTC (YYYY-MM-DD)" + ("" if required else "; default: the oldest"))
        sp.add_argument("--to", dest="end", type=_date, required=required,
                        help="last day, UTC, included" + ("" if required else
                                                                 "; default: up to the interaction timeout ago (later "
                                                                 "intervals may hold contacts still open)"))
        sp.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("--repair", action="store_true", help="also rewrite what differs (as recompute does)")


def check(s: Settings, start: date | None, end: date | None, tenant: str | None, repair: bool,
          source: str) -> dict[str, Any]:
    from streams.config.centre import load_centre
    from streams.clickhouse import ClickHouseError, ClickHouseUnavailable
    from streams.clickhouse.connect import connect
    from streams.domain.recount import quote
    from streams.worker.verify import day_range, run

    if tenant is not None:
        try:
            quote(tenant)
        except ValueError as e:
            raise VerifyError(str(e)) from None
    lo, hi = day_range(start, end)
    if end is None:  # not the intervals whose contacts may still be open (no record yet)
        import time

        settled = int(time.time() * 1000 - s.interaction_timeout_s * 1000)
        hi = min(hi, settled - settled % 900_000)
    centre = load_centre(s.centre_config)
    try:
        ch = connect(s.clickhouse_url, s.clickhouse_database)
    except ClickHouseUnavailable:
        if s.clickhouse_url.startswith("chdb://"):
            return _through_worker(s, {"from_ms": lo, "to_ms": hi, "tenant": tenant, "repair": repair,
                                       "source": source})
        raise VerifyError(f"ClickHouse at {s.clickhouse_url} is unreachable: is it running?") from None
    except ClickHouseError as e:
        raise VerifyError(str(e)) from None
    try:
        return run(ch, centre, lo, hi, tenant, repair, source).as_json()
    except ClickHouseError as e:
        raise VerifyError(f"{e} (has `ccpulse db migrate` run?)") from None
    finally:
        ch.close()


def _through_worker(s: Settings, body: dict[str, Any]) -> dict[str, Any]:
    url = f"http://{s.web_host}:{s.web_port}/verify"
    from streams.worker.query import worker_headers

    try:
        headers = worker_headers(s)
    except ConnectionError as e:
        raise VerifyError(str(e)) from None
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise VerifyError(f"the worker refused: {e.read().decode(errors='replace')[:500]}") from None
    except (urllib.error.URLError, OSError) as e:
        raise VerifyError(f"the embedded ClickHouse is locked by another process but no worker answers at {url} "
                          f"({e}); stop that process or set CCPULSE_WEB_PORT to the worker's port") from None


def _report(out: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        print(json.dumps(out))
        return
    diffs = out["differences"]
    print(f"{verb} {out['from']} .. {out['to']}: {out['records']:,} records, {out['rows_compared']:,} interval rows; "
          f"{len(diffs):,} differ" + (f", {out['repaired']:,} partition rows rewritten" if out["repaired"] else ""))
    for d in diffs[:200]:
        what = ", ".join(f"{f} {a} -> {b}" for f, a, b in zip(d["fields"], d["stored"], d["recounted"]))
        print(f"  {d['tenant']}/{d['queue']}/{d['channel']} {d['interval_start']}: {what}")
    if len(diffs) > 200:
        print(f"  ... and {len(diffs) - 200:,} more (--json lists all)")


def cmd_verify(args: argparse.Namespace) -> int:
    from streams.cli.common import CliError
    from streams.cli.common import settings_of as _settings

    try:
        out = check(_settings(args), args.start, args.end, args.tenant, args.repair, "verify")
    except VerifyError as e:
        raise CliError(str(e)) from None
    _report(out, args.json, "verified")
    if out["differences"] and not args.repair and not args.json:
        print("stored figures differ from the records: `ccpulse recompute --from D --to D` rewrites them")
    return 1 if out["differences"] and not out["repaired"] else 0


def cmd_recompute(args: argparse.Namespace) -> int:
    from streams.cli.common import CliError
    from streams.cli.common import settings_of as _settings

    if args.end < args.start:
        raise CliError("--to is before --from")
    try:
        out = check(_settings(args), args.start, args.end, args.tenant, True, "recompute")
    except VerifyError as e:
        raise CliError(str(e)) from None
    _report(out, args.json, "recomputed")
    return 0
