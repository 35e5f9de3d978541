"""Throughput through the whole path (broker → worker → ClickHouse) against the ceiling of
a bare aiokafka consumer reading the same topic in the same run, then (bench/latency.py)
the end-to-end latency from an event's production to the live KPI figure in ClickHouse.

Everything runs on private resources: its own local broker on a free port, its own
topics and an embedded ClickHouse in a temporary folder.

Figures (``--json`` keys):

- ``events_per_s``: events / (first event seen by the worker → last ClickHouse write),
  every table included (raw events, interval KPIs, interaction records). KPIs are always
  on in the worker, so this is already the pipeline *with* every window computed.
- ``kpi_events_per_s``: the KPI path: events / (first event seen → the interval KPI rows of
  every contact readable in ClickHouse, i.e. ``sum(offered)`` of ``kpi_intervals_15m``
  through the worker's /sql endpoint equals the contacts offered). Polled every 50 ms.
- ``ceiling_events_per_s``: a bare aiokafka consumer reading the same topic; ``ratio`` =
  events_per_s / ceiling.
- ``e2e_p50_ms`` / ``e2e_p99_ms``: bench/latency.py.
- ``replay_month_s``: 30 days of the simulated three-tenant centre (about 3,000 contacts a
  day) through one worker, from the first event seen to the last record stored.
- ``backfill_month_s``: a month of history (the Anonymous Bank log where ../shared has it)
  loaded into a deployment holding live data, until ``ccpulse verify`` is clean
  (bench/backfill.py).
- ``panel_max_ms`` / ``panel_p50_ms`` / ``panel_over_300ms``: ClickHouse time of every dashboard
  query over a generated history of ``panel_interactions`` contacts (bench/panels.py).
- ``alert_p50_ms`` / ``alert_p99_ms`` / ``alert_max_ms``: breach-to-webhook latency with the
  default ``windows.refresh_s`` (1 s); ``alert_p99_ms_refresh_0_5s`` etc. with 0.5 s
  (bench/alerts.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (_children_cpu_s, _cpu_s, _engine_rss_mb, _health, _memory_mb, _note, _scalar,
                           _server_url, bench_settings, prepare, private_broker, start_worker)
from streams.config.settings import Settings

#: How often the KPI rows are looked for near the end of the throughput run.
KPI_POLL_S = 0.05
#: ... and before every event has been read (the pipeline's own span is timed by the worker).
PROGRESS_POLL_S = 0.5


#: 30 days of the simulator's default centre (~2,950 contacts a day).
MONTH_INTERACTIONS = 88_000


async def _bare_consume(s: Settings, topic: str, expected: int) -> float:
    """Seconds a plain aiokafka consumer takes to read ``expected`` messages."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(s.partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        n = 0
        t0 = time.perf_counter()
        while n < expected:
            batch = await c.getmany(timeout_ms=1000, max_records=10_000)
            n += sum(len(v) for v in batch.values())
        return time.perf_counter() - t0
    finally:
        await c.stop()


def measure_throughput(events_wanted: int, workdir: Path, port: int, interactions: int | None = None,
                       tag_suffix: str = "", server_url: str | None = None) -> dict[str, Any]:
    """Events/s of one worker; on ``server_url`` (a ClickHouse server, a private database
    dropped afterwards) instead of the embedded engine when given."""
    from streams.traffic.producer import from_event, produce
    from streams.traffic.simulate import SimConfig, simulate

    tag = f"bench{os.getpid()}{tag_suffix}"
    s = bench_settings(workdir, port, tag, **({"clickhouse_url": _server_url(server_url, tag)} if server_url else {}))
    worker = None
    try:
        prepare(s)
        # The demo's traffic (IVR sessions, outbound attempts, quality scores with the queue
        # contacts): ~6 interaction events per queue contact all told; agent events come on top.
        sim = simulate(SimConfig.product(seed=7, interactions=interactions or max(1000, events_wanted // 6)))
        events = sorted(sim.events, key=lambda e: e["ts"])
        offered = len({e["interaction_id"] for e in events if e["type"] == "offered"})
        messages = [from_event(e) for e in events]
        _note(f"producing {len(messages):,} events ({len(sim.truth):,} interactions, {offered:,} offered)")
        produced = produce(s, messages, total=len(messages), label="bench: produced", progress=False)

        _note("bare aiokafka consumer (ceiling)")
        bare_s = asyncio.run(_bare_consume(s, s.topic_events, produced))

        _note("worker: broker → validate → state → KPIs → records → ClickHouse")
        log_path = workdir / "worker.log"
        worker = start_worker(s, log_path)
        kpi_sql = f"SELECT sum(offered) FROM {tag if server_url else s.clickhouse_database}.kpi_intervals_15m"
        deadline = time.monotonic() + 600
        h: dict[str, Any] = {}
        kpi_done_at: float | None = None
        kpi_seen = 0
        pipeline_done_at: float | None = None
        cpu_at_start: float | None = None
        engine_at_start = 0.0
        main_at_start = 0.0
        next_note = time.monotonic() + 30
        while True:
            worker.alive_or_raise()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not finish within 600 s: {h.get('events', 0):,} of "
                                   f"{produced:,} events, {h.get('rows_written', {}).get('interactions', 0):,} "
                                   f"of {len(sim.truth):,} interactions stored, sum(offered) {kpi_seen:,} of "
                                   f"{offered:,}; see {log_path}")
            try:
                h = _health(s)
            except OSError:
                time.sleep(0.3)
                continue
            if cpu_at_start is None and h["events"]:
                cpu_at_start = _cpu_s(worker.pid)  # start-up (imports, recovery) left out
                engine_at_start = _children_cpu_s(worker.pid)  # 0 if it starts with the first write
                main_at_start = _cpu_s(worker.pid, worker.pid)
            if h["events"] >= produced and kpi_done_at is None:
                # The interval rows of a batch are written with its raw events: look from here on.
                kpi_seen = int(_scalar(s, kpi_sql) or 0)
                if kpi_seen >= offered:
                    kpi_done_at = time.time()
            if pipeline_done_at is None and h["events"] >= produced and \
                    h["rows_written"].get("interactions", 0) >= len(sim.truth):
                pipeline_done_at, done_h, cpu_at_done = time.time(), h, _cpu_s(worker.pid)
                engine_cpu = _children_cpu_s(worker.pid) - engine_at_start
                main_at_done = _cpu_s(worker.pid, worker.pid)
            if pipeline_done_at is not None and kpi_done_at is not None:
                break
            if pipeline_done_at is not None and time.time() - pipeline_done_at > 30:
                _note(f"interval KPIs incomplete: sum(offered) = {kpi_seen:,} of {offered:,} "
                      "30 s after the pipeline finished")
                break
            if time.monotonic() > next_note:
                next_note += 30
                _note(f"worker: {h['events']:,}/{produced:,} events, "
                      f"{h['rows_written'].get('interactions', 0):,}/{len(sim.truth):,} interactions stored")
            # Every /health answer costs the worker's one busy thread: look often only near the end.
            # (and before the first event, whose CPU reading starts the worker's figure).
            time.sleep(KPI_POLL_S if h["events"] >= produced or not h["events"] else PROGRESS_POLL_S)
        # The timers keep writing (live figures): the pipeline's last write is the one
        # seen when it was first complete.
        h = done_h
        elapsed = h["last_write_at"] - h["first_event_at"]
        mem = _memory_mb(worker.pid)
        rss = mem.get("VmRSS", float("nan"))
        pipe_rate = produced / elapsed
        ceiling = produced / bare_s
        kpi_s = kpi_done_at - h["first_event_at"] if kpi_done_at is not None else None
        return {
            "events": produced, "interactions": len(sim.truth), "offered_contacts": offered,
            "events_per_s": round(pipe_rate), "ceiling_events_per_s": round(ceiling),
            "ratio": round(pipe_rate / ceiling, 4),
            "kpi_events_per_s": round(produced / kpi_s) if kpi_s else None,
            "pipeline_s": round(elapsed, 2), "kpi_s": round(kpi_s, 2) if kpi_s else None,
            "bare_consumer_s": round(bare_s, 2), "worker_rss_mb": round(rss, 1),
            "worker_rss_private_mb": round(mem.get("RssAnon", float("nan")), 1),
            "worker_rss_file_mb": round(mem.get("RssFile", float("nan")), 1),
            # The embedded engine runs in a child process of the worker (settings.engine_process).
            "engine_rss_mb": _engine_rss_mb(worker.pid),
            # CPU the worker used for the run: events per CPU second is what one core would
            # do if it had nothing else to run (the figures above depend on the machine's load).
            "worker_cpu_s": round(cpu_at_done - (cpu_at_start or 0.0), 1),
            "events_per_worker_cpu_s": round(produced / max(cpu_at_done - (cpu_at_start or 0.0), 1e-9)),
            # The embedded engine's process too (its start-up included when it began with the
            # first write): what "one core" has to carry with the embedded default.
            "engine_cpu_s": round(engine_cpu, 1),
            "events_per_cpu_s_with_engine": round(
                produced / max(cpu_at_done - (cpu_at_start or 0.0) + engine_cpu, 1e-9)),
            # The event loop's thread: busy ~1.0 of the run means it, not the broker or
            # ClickHouse, sets the pace (the GIL keeps Python work on one core).
            "worker_main_thread_cpu_s": round(main_at_done - main_at_start, 1),
            "worker_main_thread_busy": round((main_at_done - main_at_start) / elapsed, 2),
            "clickhouse": "server" if server_url else "chdb (embedded)", "broker": "tansu (local)", "partitions": s.partitions,
            "sink_batch_size": s.sink_batch_size, "sink_batch_seconds": s.sink_batch_seconds,
        }
    finally:
        if worker is not None:
            worker.stop()
        if server_url:
            from streams.clickhouse.connect import connect

            ch = connect(_server_url(server_url, "default"))
            try:
                ch.command(f"DROP DATABASE IF EXISTS {tag}")
            finally:
                ch.close()


def measure(events_wanted: int, workdir: Path, latency_seconds: float = 30.0,
            skip_latency: bool = False, skip_alerts: bool = False, alert_episodes: int = 20,
            panel_interactions: int = 10_000_000, skip_panels: bool = False,
            skip_month: bool = False, server_url: str | None = None,
            month_interactions: int = MONTH_INTERACTIONS, year_interactions: int = 100_000_000,
            year_days: int = 365, skip_year: bool = False) -> dict[str, Any]:
    from bench.alerts import measure_alerts
    from bench.latency import measure_latency
    from bench.panels import measure_panels, measure_year

    with private_broker(workdir) as port:
        r = measure_throughput(events_wanted, workdir, port)
        from bench.intake import measure_intake

        (workdir / "intake").mkdir(exist_ok=True)
        r.update(measure_intake(workdir / "intake", port))
        from bench.intake import measure_intake_under_attack

        (workdir / "intake-attack").mkdir(exist_ok=True)
        r.update(measure_intake_under_attack(workdir / "intake-attack"))
        if server_url:
            _note("the same events, the worker writing to the ClickHouse server (no embedded engine in it)")
            (workdir / "server").mkdir(exist_ok=True)
            srv = measure_throughput(events_wanted, workdir / "server", port, tag_suffix="s", server_url=server_url)
            r.update({f"server_{k}": srv[k] for k in ("events_per_s", "kpi_events_per_s", "worker_rss_mb",
                                                      "worker_rss_private_mb", "worker_rss_file_mb")})
        if skip_latency:
            r.update(e2e_p50_ms=None, e2e_p99_ms=None)
        else:
            r.update(measure_latency(workdir, port, seconds=latency_seconds))
        if skip_alerts:
            r.update(alert_p50_ms=None, alert_p99_ms=None)
        else:
            r.update(measure_alerts(workdir, port, episodes=alert_episodes))
        if skip_month:
            r.update(replay_month_s=None)
        else:
            _note(f"a month of the simulated centre ({month_interactions:,} contacts, 30 days) through one worker")
            (workdir / "month").mkdir(exist_ok=True)
            m = measure_throughput(0, workdir / "month", port, interactions=month_interactions, tag_suffix="m")
            r.update(replay_month_s=m["pipeline_s"], replay_month_events=m["events"],
                     replay_month_interactions=m["interactions"], replay_month_worker_rss_mb=m["worker_rss_mb"],
                     replay_month_engine_rss_mb=m["engine_rss_mb"])
            from bench.backfill import measure_backfill

            _note("a month of history loaded into a deployment that holds live data, until verify is clean")
            (workdir / "backfill").mkdir(exist_ok=True)
            r.update(measure_backfill(workdir / "backfill", port))
    if skip_panels:
        r.update(panel_max_ms=None)
    else:
        r.update(measure_panels(workdir, panel_interactions))
    if skip_year:
        r.update(year_panel_max_ms=None)
    else:
        r.update(measure_year(workdir, year_interactions, days=year_days))
    from bench.forecast import measure_forecast

    r.update(measure_forecast())
    return r


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def run_bench(_s: Settings, args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ccpulse-bench-") as d:
        r = measure(args.events, Path(d), latency_seconds=getattr(args, "latency_seconds", 30.0),
                    skip_latency=getattr(args, "skip_latency", False),
                    skip_alerts=getattr(args, "skip_alerts", False),
                    alert_episodes=getattr(args, "alert_episodes", 20),
                    panel_interactions=getattr(args, "panel_interactions", 10_000_000),
                    skip_panels=getattr(args, "skip_panels", False),
                    skip_month=getattr(args, "skip_month", False),
                    server_url=getattr(args, "server_url", None),
                    month_interactions=getattr(args, "month_interactions", MONTH_INTERACTIONS),
                    year_interactions=getattr(args, "year_interactions", 100_000_000),
                    year_days=getattr(args, "year_days", 365), skip_year=getattr(args, "skip_year", False))
    if args.json:
        print(json.dumps(r))
        return 0
    rows = [
        ("events through the pipeline", _fmt(r["events"], ",")),
        ("pipeline, all KPI windows on (1 worker)", f"{_fmt(r['events_per_s'], ',')} events/s"),
        ("KPI path: interval KPIs readable", f"{_fmt(r['kpi_events_per_s'], ',')} events/s"),
        ("bare consumer (ceiling)", f"{_fmt(r['ceiling_events_per_s'], ',')} events/s"),
        ("ratio pipeline / bare consumer", _fmt(r["ratio"], ".3f")),
        ("events per worker CPU second", f"{_fmt(r.get('events_per_worker_cpu_s'), ',')} events/s"),
        ("  counting the engine process's CPU too", f"{_fmt(r.get('events_per_cpu_s_with_engine'), ',')} events/s"),
        ("worker main thread busy (1.0 = all the run)", _fmt(r.get("worker_main_thread_busy"), ".2f")),
        ("worker RSS", f"{_fmt(r['worker_rss_mb'], ',.0f')} MB"),
        ("  private memory (RssAnon)", f"{_fmt(r.get('worker_rss_private_mb'), ',.0f')} MB"),
        ("  mapped from files (RssFile)", f"{_fmt(r.get('worker_rss_file_mb'), ',.0f')} MB"),
        ("embedded engine's process RSS", f"{_fmt(r.get('engine_rss_mb'), ',.0f')} MB"),
        ("HTTP intake: events accepted (16 clients, 400-event requests)", f"{_fmt(r.get('intake_events_per_s'), ',')} "
                                                                          f"events/s, p99 {_fmt(r.get('intake_p99_ms'), '')} ms"),
        ("HTTP intake's peak RSS under a 1 GB body, 500 unfinished heads and no broker at once",
         f"{_fmt(r.get('intake_under_attack_rss_mb'), ',')} MB (GET /health meanwhile: "
         f"{_fmt(r.get('intake_attack_health_ms'), '')} ms)"),
        ("forecast_s: 100 queues, a year of history each", f"{_fmt(r.get('forecast_s'), '')} s "
                                                           f"({_fmt(r.get('forecast_cpu_s'), '')} s CPU)"),
    ]
    if r.get("server_events_per_s") is not None:
        rows += [
            ("pipeline to a ClickHouse server", f"{_fmt(r['server_events_per_s'], ',')} events/s"),
            ("  worker RSS (private / files)", f"{_fmt(r['server_worker_rss_mb'], ',.0f')} MB "
             f"({_fmt(r['server_worker_rss_private_mb'], ',.0f')} / {_fmt(r['server_worker_rss_file_mb'], ',.0f')})"),
        ]
    if r.get("e2e_p50_ms") is not None or "latency_events" in r:
        rate = r.get("latency_rate_events_per_s")
        rows += [
            (f"e2e latency at {_fmt(rate, ',.0f')} events/s, p50", f"{_fmt(r['e2e_p50_ms'], ',.0f')} ms"),
            ("e2e latency, p99", f"{_fmt(r['e2e_p99_ms'], ',.0f')} ms"),
            ("e2e latency, max", f"{_fmt(r.get('e2e_max_ms'), ',.0f')} ms"),
            ("live refresh (windows.refresh_s)", f"{_fmt(r.get('latency_refresh_s'), '')} s"),
            ("poll spacing / median round trip", f"{_fmt(r.get('latency_poll_every_ms'), ',.0f')} / "
                                                 f"{_fmt(r.get('latency_poll_query_p50_ms'), ',.0f')} ms"),
            ("latency events / seconds", f"{_fmt(r.get('latency_events'), ',')} / "
                                         f"{_fmt(r.get('latency_seconds'), '')} s"),
            ("latency worker CPU (1.0 = one core)", _fmt(r.get("latency_worker_cpu_share"), ".2f")),
            ("latency worker RSS", f"{_fmt(r.get('latency_worker_rss_mb'), ',.0f')} MB"),
        ]
    else:
        rows.append(("e2e latency", "skipped (--skip-latency)"))
    if "alert_episodes" in r:
        rows += [
            (f"breach → webhook, refresh_s {_fmt(r.get('alert_refresh_s'), 'g')} s, p50",
             f"{_fmt(r['alert_p50_ms'], ',.0f')} ms"),
            ("breach → webhook, p99", f"{_fmt(r['alert_p99_ms'], ',.0f')} ms"),
            ("breach → webhook, max", f"{_fmt(r['alert_max_ms'], ',.0f')} ms"),
            ("breach → webhook, refresh_s 0.5 s, p50", f"{_fmt(r.get('alert_p50_ms_refresh_0_5s'), ',.0f')} ms"),
            ("breach → webhook, refresh_s 0.5 s, p99", f"{_fmt(r.get('alert_p99_ms_refresh_0_5s'), ',.0f')} ms"),
            ("alert episodes (each setting)", _fmt(r.get("alert_episodes"), ",")),
        ]
    else:
        rows.append(("breach → webhook latency", "skipped (--skip-alerts)"))
    if r.get("replay_month_s") is not None:
        rows += [
            (f"replay a month ({_fmt(r['replay_month_interactions'], ',')} contacts, "
             f"{_fmt(r['replay_month_events'], ',')} events)", f"{_fmt(r['replay_month_s'], ',.0f')} s"),
            ("worker RSS after the month", f"{_fmt(r['replay_month_worker_rss_mb'], ',.0f')} MB"),
            ("  its engine process's RSS", f"{_fmt(r.get('replay_month_engine_rss_mb'), ',.0f')} MB"),
        ]
        if r.get("backfill_month_s") is not None:
            rows += [
                (f"history load into live data ({r['backfill_source']}, {_fmt(r['backfill_contacts'], ',')} "
                 "contacts) until verify is clean", f"{_fmt(r['backfill_month_s'], ',.1f')} s"),
                ("  interval rows recounted from the records", _fmt(r["backfill_rows_recounted"], ",")),
            ]
    else:
        rows.append(("month replay", "skipped (--skip-month)"))
    if r.get("panel_max_ms") is not None:
        rows += [
            (f"dashboard queries over {_fmt(r['panel_interactions'], ',')} contacts", _fmt(r["panel_queries"], ",")),
            ("slowest query (median of 5)", f"{_fmt(r['panel_max_ms'], ',.0f')} ms"),
            ("median query", f"{_fmt(r['panel_p50_ms'], ',.0f')} ms"),
            ("queries over 300 ms", _fmt(r["panel_over_300ms"], ",")),
        ]
        print(f"slowest: {r['panel_slowest']}", file=sys.stderr)
    else:
        rows.append(("dashboard query times", "skipped (--skip-panels)"))
    if r.get("year_panel_max_ms") is not None:
        rows += [
            (f"a year: {_fmt(r['year_interactions'], ',')} contacts, {r['year_days']} days, {r['year_tenants']} "
             f"tenants, {r['year_queues']} queues, {_fmt(r['year_agents'], ',')} agents",
             f"generated in {_fmt(r['year_generate_s'], ',.0f')} s, {_fmt(r['year_data_mb'], ',.0f')} MB"),
            ("  slowest / median dashboard query, warm", f"{_fmt(r['year_panel_max_ms'], ',.0f')} / "
                                                          f"{_fmt(r['year_panel_p50_ms'], ',.0f')} ms"),
            ("  slowest / median dashboard query, cold", f"{_fmt(r['year_panel_cold_max_ms'], ',.0f')} / "
                                                          f"{_fmt(r['year_panel_cold_p50_ms'], ',.0f')} ms"),
            ("  queries over 300 ms (warm)", _fmt(r["year_panel_over_300ms"], ",")),
        ]
        print(f"slowest over the year: {r['year_panel_slowest']}", file=sys.stderr)
    else:
        rows.append(("a year of a large outsourcer", "skipped (--skip-year)"))
    for label, value in rows:
        print(f"{label:42} {value:>18}")
    return 0
