"""The ``ccpulse`` command line: one entry point for set-up, producing, the worker and queries."""
from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from streams.cli.common import CliError, print_result  # noqa: F401 -- the command line's own
from streams.cli.common import replay_messages as _replay_messages
from streams.cli.common import settings_of as _settings
from streams.cli.common import sim_messages as _sim_messages
from streams.config.settings import ConfigError, Settings


def cmd_config(args: argparse.Namespace) -> int:
    from streams.config.centre import load_centre

    s = _settings(args)
    for k, v in s.dump().items():
        print(f"{k:24} {v}")
    centre = load_centre(s.centre_config)  # a bad centre file fails here, before a worker starts
    w = centre.windows
    print(f"{'centre':24} {len(centre.tenants)} tenants, {len(centre.known_queues())} queues configured; "
          f"default SL {centre.defaults.sl_goal:.0%} in {centre.defaults.sl_threshold_s} s "
          f"({centre.defaults.sl_variant}); rolling {', '.join(map(str, w.rolling_minutes))} min")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from streams.worker.topics import create_topics

    s = _settings(args)
    try:
        for spec, st in create_topics(s):
            print(f"{spec.name:40} {spec.partitions:3} partitions  {st}")
    except ConnectionError as e:
        raise CliError(str(e)) from None
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from streams.clickhouse import ClickHouseError
    from streams.clickhouse.connect import connect
    from streams.clickhouse.migrate import migrate

    s = _settings(args)
    try:
        ch = connect(s.clickhouse_url, s.clickhouse_database)
        applied = migrate(ch)
        ch.close()
    except ClickHouseError as e:
        raise CliError(str(e)) from None
    print(f"applied {', '.join(applied)}" if applied else "database is up to date")
    return 0


def cmd_db_access(args: argparse.Namespace) -> int:
    from urllib.parse import urlparse

    from streams.clickhouse.access import Password, users_xml
    from streams.config.centre import load_centre

    s = _settings(args)
    tenants = sorted(set(load_centre(s.centre_config).tenants) | set(args.tenant or []))
    path = urlparse(s.clickhouse_url).path.strip("/")
    database = path if s.clickhouse_url.startswith("clickhouse://") and path else s.clickhouse_database
    try:
        xml = users_xml(database, tenants, reader=args.reader, reader_password=Password(env=args.reader_env),
                        **({"networks": args.network} if args.network else {}), legacy=args.legacy)
    except ValueError as e:  # two tenants that would share a user, a bad network
        raise CliError(str(e)) from None
    if args.out:
        Path(args.out).write_text(xml)
        print(f"wrote {args.out}: read-only user {args.reader!r} (password from ${args.reader_env}) and "
              f"{len(tenants)} client users ({', '.join(tenants) or 'none: name tenants in the centre file or --tenant'}); "
              "copy it to the server's users.d/ (ClickHouse 22.x or later; --legacy for older servers)",
              file=sys.stderr)
    else:
        sys.stdout.write(xml)
    return 0


def cmd_compose_env(args: argparse.Namespace) -> int:
    """Random secrets for every variable docker-compose.yml requires (``${VAR:?...}``): the
    stack has no default password. Values already in the file are kept, so running it again
    (or after a new client tenant is added) changes no password that is in use."""
    import re
    import secrets

    compose = Path(args.compose)
    if not compose.is_file():
        raise CliError(f"{compose} not found: run this next to docker-compose.yml, or pass --compose")
    required = sorted(set(re.findall(r"\$\{(\w+):\?", compose.read_text())))
    out = Path(args.out)
    lines = out.read_text().splitlines() if out.exists() else []
    have = {ln.split("=", 1)[0].strip() for ln in lines if "=" in ln and not ln.lstrip().startswith("#")}
    added = [v for v in required if v not in have]
    if not lines:
        lines = ["# Secrets of docker-compose.yml, written by `ccpulse compose-env`. Keep this file private."]
    lines += [f"{v}={secrets.token_urlsafe(24)}" for v in added]  # URL-safe: one goes into a URL
    from streams.config.private import write_private

    write_private(out, "\n".join(lines) + "\n")  # 0600 from its first byte, never chmod-ed after
    kept = len(required) - len(added)
    print(f"{out}: {len(added)} new secrets ({', '.join(added) or 'none'}), {kept} kept; "
          "docker compose reads it from this directory", file=sys.stderr)
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from streams.cli import devstack

    s = _settings(args)
    try:
        if args.action == "up":
            st = devstack.up(s.state_dir, s.dev_broker_port)
            print(f"broker running on 127.0.0.1:{st.port} (pid {st.pid}, log {st.log})")
        elif args.action == "down":
            print(devstack.down(s.state_dir, s.dev_broker_port))
        else:
            st = devstack.status(s.state_dir, s.dev_broker_port)
            print(f"broker: {st.detail} (port {st.port}, log {st.log})")
            return 0 if st.running else 1
    except devstack.DevStackError as e:
        raise CliError(str(e)) from None
    return 0


def _preflight(s: Settings) -> None:
    """Broker and ClickHouse reachable before faust starts: faust reports neither in one line
    (an unreachable broker ends in a traceback), and a worker that cannot store must not run."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from streams.config.centre import load_centre
    from streams.clickhouse import ClickHouseError, data_path_locked
    from streams.clickhouse.connect import connect

    load_centre(s.centre_config)  # a bad centre file is the first thing to fix
    try:
        KafkaAdminClient(bootstrap_servers=s.bootstrap_servers, client_id="ccpulse-preflight",
                         request_timeout_ms=10000, bootstrap_timeout_ms=5000).close()
    except KafkaError:
        raise CliError(f"no Kafka broker at {s.broker}: start one (`ccpulse dev up` locally) "
                       "or fix CCPULSE_BROKER") from None
    if s.clickhouse_url.startswith("chdb://"):
        path = s.clickhouse_url[len("chdb://"):]
        # A worker killed a moment ago: its engine process notices within a fraction of a second.
        deadline = time.monotonic() + 5
        while data_path_locked(path) and time.monotonic() < deadline:
            time.sleep(0.2)
        if data_path_locked(path):
            raise CliError(f"the embedded ClickHouse at {path} is held by another process (a running worker?): "
                           "stop it, or give this worker its own CCPULSE_CLICKHOUSE_URL")
        return
    try:
        connect(s.clickhouse_url, s.clickhouse_database).close()
    except ClickHouseError as e:
        raise CliError(str(e)) from None


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.redact import install_log_redaction

    install_log_redaction()

    from streams.worker.app import create_app

    try:  # uvloop: the event loop's own bookkeeping was a tenth of the worker's time
        import mode.loop

        mode.loop.use("uvloop")
    except ImportError:
        pass
    s = _settings(args)
    _preflight(s)
    app = create_app(s)
    # The worker keeps hundreds of thousands of small, acyclic objects (interaction and agent
    # states); with CPython's default thresholds the collector keeps rescanning them. Collect
    # young objects every million allocations instead (figures: docs/testing.md, "gc").
    gc.set_threshold(1_000_000, 20, 100)

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            # Without this faust builds a debug record for every message it sends.
            for name in ("faust", "mode", "aiokafka", "kafka"):
                logging.getLogger(name).setLevel(max(level or logging.INFO, logging.INFO))

    Worker(app, loglevel=s.log_level, quiet=True).execute_from_commandline()
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.traffic.producer import produce

    s = _settings(args)
    messages, truth = _sim_messages(args)
    if args.truth:
        with open(args.truth, "w") as f:
            for rec in truth.values():
                f.write(json.dumps(rec) + "\n")
    try:
        produce(s, messages, rate=args.rate, total=len(messages), label="simulated events")
    except ConnectionError as e:
        raise CliError(str(e)) from None
    print(f"{len(truth):,} interactions, {len(messages):,} messages to {s.broker}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.traffic.producer import produce

    s = _settings(args)
    messages, stats = _replay_messages(Path(args.file), args.format)
    if stats is not None:
        print(stats.summary(), file=sys.stderr)
    try:
        produce(s, messages, rate=args.rate, total=len(messages), label=f"replayed {args.format}")
    except ConnectionError as e:
        raise CliError(str(e)) from None
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from streams.worker.query import run_query

    s = _settings(args)
    try:
        res = run_query(s, args.query)
    except ConnectionError as e:
        raise CliError(str(e)) from None
    print_result(res.columns, res.rows, args.format)
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from streams.config.centre import load_centre

    s = _settings(args)
    centre = load_centre(s.centre_config)
    if args.action == "list":
        from streams.worker.query import run_query

        print(f"{len(centre.alerts.rules)} rules: " + (", ".join(
            f"{r.name} ({r.metric} {'<' if r.metric == 'service_level' else '>'} {r.threshold}, "
            f"{r.window_minutes} min, {r.severity})" for r in centre.alerts.rules) or "none configured"))
        try:
            res = run_query(s, f"SELECT status, severity, rule, tenant, queue, channel, round(value, 3) AS value, "
                               f"threshold, started_at, last_at, alert_id FROM {s.clickhouse_database}.alerts_current "
                               "ORDER BY status = 'firing' DESC, last_at DESC LIMIT 50")
        except ConnectionError as e:
            raise CliError(str(e)) from None
        print_result(res.columns, res.rows, args.format)
        return 0
    return _alerts_test(s, centre, args.rule)


def _alerts_test(s: Settings, centre: Any, rule_name: str | None) -> int:
    """Send a test notification of one rule through every configured channel."""
    import asyncio
    import time

    from streams.worker.flows.alerting import notifiers_for
    from streams.worker.notify import Notification

    rules = {r.name: r for r in centre.alerts.rules}
    if rule_name not in rules:
        raise CliError(f"no alert rule {rule_name!r} in the centre file; rules: {', '.join(rules) or 'none'}")
    r = rules[rule_name]
    now = int(time.time() * 1000)
    n = Notification(alert_id=f"{r.name}/test/{now}", rule=r.name, severity=r.severity, status="test",
                     tenant=(r.tenants or ("*",))[0], queue=(r.queues or ("*",))[0],
                     channel=(r.channels or ("*",))[0], metric=r.metric, value=None,
                     threshold=float(r.threshold) if r.threshold != "goal" else centre.defaults.sl_goal,
                     started_at_ms=now, at_ms=now, summary=f"test notification for rule {r.name}")

    async def go() -> list[Any]:
        out = notifiers_for(s)
        for x in out:
            await x.start()
            x.enqueue(n)
        for x in out:
            await x.stop(drain_timeout_s=30)
        return out

    failed = 0
    for x in asyncio.run(go()):
        name = getattr(x, "name", type(x).__name__)
        print(f"{name:10} sent {x.sent}  dead {x.dead}" + (f"  last error: {x.last_error}" if x.last_error else ""))
        failed += x.dead
    if failed:
        raise CliError("a test notification was not delivered; check the URL, the secret and that the receiver "
                       "answers 2xx (see above)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.cli.demo import run_demo

    return run_demo(_settings(args), args)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.torture is not None:
        from bench.torture import run_torture_cli

        return run_torture_cli(args)
    from bench.pipeline import run_bench

    return run_bench(_settings(args), args)


def _day(text: str) -> Any:
    from datetime import datetime, timezone

    try:
        d = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from None
    return d.replace(tzinfo=timezone.utc)


# --- parser ---------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ccpulse", description="Streaming KPI pipeline for contact centres.")
    p.add_argument("--config", help="YAML settings file (same as CCPULSE_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    add("config", cmd_config, "show the effective settings (secrets masked)")
    ce = add("compose-env", cmd_compose_env, "write random secrets for docker-compose.yml into .env (keeps those set)")
    ce.add_argument("--compose", default="docker-compose.yml", help="the compose file whose ${VAR:?} it fills")
    ce.add_argument("--out", default=".env", help="the env file to write or complete")
    add("setup", cmd_setup, "create the Kafka topics with their partition counts")
    db = add("db", lambda a: 0, "ClickHouse schema")
    dbs = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dbs.add_parser("migrate", help="apply pending SQL migrations").set_defaults(fn=cmd_db_migrate)
    acc = dbs.add_parser("access", help="users.d file: a read-only user and one user per client tenant "
                                        "that sees only its own rows")
    acc.set_defaults(fn=cmd_db_access)
    acc.add_argument("--tenant", action="append", help="a client tenant (besides those of the centre file)")
    acc.add_argument("--reader", default="grafana", help="the read-only user of Grafana and the data team")
    acc.add_argument("--reader-env", default="CLICKHOUSE_GRAFANA_PASSWORD",
                     help="environment variable the server reads that user's password from")
    acc.add_argument("--out", help="write here instead of standard output")
    acc.add_argument("--network", action="append",
                     help="address or CIDR range the users may connect from (repeat; default: loopback and private ranges)")
    acc.add_argument("--legacy", action="store_true",
                     help="for ClickHouse before 20.x: no grants or setting constraints (those servers refuse them)")
    from streams.grafana.cli import configure as configure_grafana

    configure_grafana(add("grafana", lambda a: 0, "Grafana: build dashboards and alert rules, publish them"))
    dev = add("dev", cmd_dev, "the local Kafka-protocol broker (development and CI)")
    dev.add_argument("action", choices=["up", "down", "status"])
    add("worker", cmd_worker, "run a faust worker")

    def sim_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--interactions", type=int, default=10_000, help="contacts to simulate (default 10000)")
        sp.add_argument("--seed", type=int, default=1, help="random seed: same seed, same traffic")
        sp.add_argument("--duplicates", type=float, default=0.0, help="share of messages sent twice (0..1)")
        sp.add_argument("--shuffle", action="store_true", help="send in random order")
        sp.add_argument("--start", type=_day, help="first simulated day, UTC (YYYY-MM-DD; default 2026-03-02)")

    sim = add("simulate", cmd_simulate, "produce seeded, realistic contact-centre traffic")
    sim_args(sim)
    sim.add_argument("--rate", type=float, help="messages per second (default: as fast as possible)")
    sim.add_argument("--truth", help="write the intended interaction records (JSONL) here")
    al = add("alerts", cmd_alerts, "SLA alerts: current states, or a test notification")
    al.add_argument("action", choices=["list", "test"])
    al.add_argument("rule", nargs="?", help="with test: the rule to send a test notification for")
    al.add_argument("--format", choices=["table", "csv", "json"], default="table")
    rp = add("replay", cmd_replay, "produce events from a file")
    rp.add_argument("file")
    rp.add_argument("--format", choices=["anonymous-bank", "jsonl"], default="jsonl")
    rp.add_argument("--rate", type=float, help="messages per second (default: as fast as possible)")
    from streams.cli.verify import configure as configure_verify

    configure_verify(add)
    from streams.cli.report import configure as configure_report
    from streams.cli.forecast import configure as configure_forecast
    from streams.cli.staffing import configure as configure_staffing

    from streams.cli.connect import configure as configure_connect
    from streams.cli.intake import configure as configure_intake

    configure_report(add)
    configure_staffing(add)
    configure_forecast(add)
    configure_connect(add)
    configure_intake(add)
    q = add("sql", cmd_sql, "query ClickHouse (through the worker when it owns the embedded engine)")
    q.add_argument("query")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table")
    demo = add("demo", cmd_demo, "start everything locally, feed it, and summarise")
    sim_args(demo)
    demo.add_argument("--replay", help="feed this file instead of simulated traffic")
    demo.add_argument("--format", choices=["anonymous-bank", "jsonl"], default="anonymous-bank")
    demo.add_argument("--timeout", type=float, default=600, help="seconds to wait for the worker")
    bench = add("bench", cmd_bench, "measure throughput, end-to-end KPI latency and breach-to-webhook alert latency")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--events", type=int, default=200_000, help="events to push through")
    bench.add_argument("--latency-seconds", type=float, default=30.0,
                       help="seconds of steady 1,000 events/s for the end-to-end latency (default 30)")
    bench.add_argument("--skip-latency", action="store_true", help="throughput only, no latency phase")
    bench.add_argument("--skip-alerts", action="store_true", help="no breach-to-webhook alert latency phase")
    bench.add_argument("--alert-episodes", type=int, default=20,
                       help="breaches per refresh setting for the alert latency (default 20)")
    bench.add_argument("--panel-interactions", type=int, default=10_000_000,
                       help="contacts of history the dashboard queries are timed over (default 10 million)")
    bench.add_argument("--skip-panels", action="store_true", help="no dashboard query timing")
    bench.add_argument("--skip-month", action="store_true", help="no month replay")
    bench.add_argument("--year-interactions", type=int, default=100_000_000,
                       help="contacts of the year stage (a large outsourcer's year: 20 tenants, 400 queues, "
                            "5,000 agents; every dashboard query timed cold and warm)")
    bench.add_argument("--year-days", type=int, default=365, help="days the year stage's contacts span")
    bench.add_argument("--skip-year", action="store_true", help="no year stage")
    bench.add_argument("--month-interactions", type=int, default=88_000,
                       help="contacts of the simulated month replayed (default 88,000; smaller for a quick run)")
    bench.add_argument("--server-url", metavar="URL",
                       help="also run the throughput phase with the worker writing to this ClickHouse server "
                            "(clickhouse://user:password@host:9000/any; a private database, dropped after)")
    bench.add_argument("--torture", type=int, metavar="N",
                       help="only the torture run: N SIGKILLs of workers at random points on a loaded machine, "
                            "then every record, interval and agent figure compared with a run never killed "
                            "(needs clickhouse-server; ./run bench installs it)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (CliError, ConfigError) as e:
        from streams.redact import redact

        print(f"ccpulse: {redact(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
