"""End-to-end latency: from an event's production to the live KPI figure that counts it
being readable in ClickHouse, at a steady rate (1,000 events/s by default).

The second phase of ``ccpulse bench`` (bench/pipeline.py), on the same private broker
but with its own topics, app id, embedded ClickHouse and worker.

Design (exact, no sampling): every message is a new contact's ``offered`` event, stamped
with the wall clock at the moment it is handed to the producer (that same instant is its
production time), keyed by its interaction id, all on one queue. Each one therefore adds
exactly 1 to ``offered`` of that queue's live windows (``kpi_live``; the 60-minute window
covers the whole run, and the contacts stay waiting, well within the 4-hour interaction
timeout). A poller asks the worker's /sql endpoint every ``poll_s`` (50 ms) for

    SELECT sum(offered) FROM <db>.kpi_live WHERE window_minutes = 60 AND queue = '<q>'

and when the count first reaches ≥ k, events 1..k not yet seen get latency = (time the
answer came back − their production time). Percentiles (nearest rank) are over every event.

What bounds it:
- the live figures are recomputed every ``windows.refresh_s`` of the centre file. The
  bench writes a centre file with ``windows: {refresh_s: 0.2}`` (the default is 1 s), so
  the timer alone adds refresh_s/2 = 0.1 s on average and up to 0.2 s;
- the worker takes a batch when ``sink_batch_size`` (10,000) events are waiting or
  ``sink_batch_seconds`` after the first of them arrived (streams/kafka/inbox.py): at 1,000
  events/s batches never fill, so an event waits for its batch up to that long, plus the
  previous batch's processing and awaited writes, as a deployment with those settings
  would see;
- the producer is configured as ccpulse's own (streams/traffic/producer.py: acks=all, 20 ms linger);
- the poll: one query every ``poll_s`` (50 ms; at least 10 ms after the previous answer),
  which adds ~25 ms on average; the answer time also includes the query (~20 ms). The
  worker runs its queries and its inserts on one ClickHouse thread (embedded chdb), so
  polling costs the measured path something: at 20 ms spacing the polls took a quarter of
  the worker's samples in a profile, hence 50 ms. The JSON reports the mean poll spacing
  and the median round trip.

A warm-up second on another queue (not counted) comes first, so the first measured events
do not pay for the worker's first inserts.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.harness import (_cpu_s, _health, _note, _rss_mb, bench_settings, prepare,
                            start_worker)
from streams.config.settings import Settings
from streams.worker.query import worker_headers

REFRESH_S = 0.2
POLL_S = 0.05
#: Shortest pause between an answer and the next poll (slow answers: no back-to-back polls).
POLL_PAUSE_S = 0.01
TENANT = "bench"


class _Sql:
    """Scalar queries over one kept-alive HTTP connection to the worker's /sql endpoint."""

    def __init__(self, s: Settings) -> None:
        self.host, self.port = "127.0.0.1", s.web_port
        self.settings = s
        self.conn: http.client.HTTPConnection | None = None

    def scalar(self, sql: str) -> Any:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.conn.request("POST", "/sql", body=json.dumps({"sql": sql}),
                                  headers=worker_headers(self.settings))  # its token, as ccpulse sql sends it
                r = self.conn.getresponse()
                body = json.loads(r.read())
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if r.status != 200:
                raise RuntimeError(f"/sql: {body.get('error', body)}")
            return body["rows"][0][0] if body["rows"] else None
        return None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _offered(iid: str, queue: str, t: float) -> bytes:
    ts = datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")
    return json.dumps({"type": "offered", "event_id": f"{iid}:1", "ts": ts, "tenant": TENANT,
                       "interaction_id": iid, "channel": "voice", "queue": queue},
                      separators=(",", ":")).encode()


def _produce_paced(s: Settings, queue: str, n: int, rate: float, times: list[float], tag: str) -> None:
    """Send n offered events at ``rate``/s, appending each one's production time to ``times``."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=20,
                      batch_size=256 * 1024, client_id="ccpulse-bench-latency")
    try:
        p.partitions_for(s.topic_events)  # metadata first: not part of any event's latency
        start = time.time()
        for k in range(n):
            wait = start + k / rate - time.time()
            if wait > 0:
                time.sleep(wait)
            iid = f"{tag}-{queue}-{k:07d}"
            t = time.time()
            p.send(s.topic_events, key=iid.encode(), value=_offered(iid, queue, t))
            times.append(t)
        p.flush()
    finally:
        p.close()


def _live_sql(s: Settings, queue: str) -> str:
    return (f"SELECT sum(offered) FROM {s.clickhouse_database}.kpi_live "
            f"WHERE window_minutes = 60 AND queue = '{queue}'")


def _run(s: Settings, sql: _Sql, queue: str, n: int, rate: float, poll_s: float, tag: str,
         query_s: list[float], grace_s: float = 30.0) -> tuple[list[float], float]:
    """Produce n events at rate while polling the live figure; (latencies in s, seconds
    produced). Appends each poll's round trip (seconds) to ``query_s``."""
    times: list[float] = []
    err: list[BaseException] = []

    def producer() -> None:
        try:
            _produce_paced(s, queue, n, rate, times, tag)
        except BaseException as e:  # noqa: BLE001 -- reported by the poller
            err.append(e)

    th = threading.Thread(target=producer, name="bench-latency-producer", daemon=True)
    q = _live_sql(s, queue)
    lat: list[float] = []
    th.start()
    last_change, last_count = time.time(), -1
    while len(lat) < n:
        t0 = time.time()
        count = int(sql.scalar(q) or 0)
        t1 = time.time()
        sent = len(times)  # read after the answer: every event counted was appended before
        for i in range(len(lat), min(count, sent)):
            lat.append(t1 - times[i])
        if count != last_count:
            last_change, last_count = t1, count
        if err:
            raise RuntimeError(f"producing failed: {err[0]!r}") from err[0]
        if not th.is_alive() and t1 - last_change > grace_s:
            raise RuntimeError(f"the live figure stopped at {count:,} of {n:,} events for {grace_s:.0f} s")
        query_s.append(t1 - t0)
        time.sleep(max(t0 + poll_s - time.time(), t1 + POLL_PAUSE_S - time.time(), 0.0))
    th.join()
    produced_s = times[-1] - times[0] if len(times) > 1 else 0.0
    return lat, produced_s


def _pct(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    return sorted_vals[max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)]


def measure_latency(workdir: Path, port: int, seconds: float = 30.0, rate: float = 1000.0,
                    refresh_s: float = REFRESH_S, poll_s: float = POLL_S, warmup_s: float = 1.0) -> dict[str, Any]:
    tag = f"lat{os.getpid()}"
    centre = workdir / "centre-latency.yaml"
    centre.write_text(f"# ccpulse bench (latency): live figures every {refresh_s} s (default 5 s)\n"
                      f"windows: {{refresh_s: {refresh_s}}}\n")
    s = bench_settings(workdir, port, tag, centre_config=centre)
    log_path = workdir / "worker-latency.log"
    worker = None
    sql = _Sql(s)
    try:
        prepare(s)
        _note(f"latency: worker with windows.refresh_s = {refresh_s} s ({centre.name}); "
              f"{rate:,.0f} offered events/s for {seconds:g} s, polling kpi_live every {poll_s * 1000:.0f} ms")
        worker = start_worker(s, log_path)
        deadline = time.monotonic() + 120
        while True:
            worker.alive_or_raise()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the latency worker did not get its partitions within 120 s; see {log_path}")
            try:
                h = _health(s)
            except OSError:
                time.sleep(0.2)
                continue
            if sum(a.startswith(s.topic_events + ":") for a in h["assigned"]) >= s.partitions:
                break
            time.sleep(0.2)
        n_warm = max(1, int(rate * warmup_s))
        _run(s, sql, "bench-warmup", n_warm, rate, poll_s, tag, [])
        worker.alive_or_raise()
        n = max(1, int(rate * seconds))
        query_s: list[float] = []
        t_start, cpu_start = time.time(), _cpu_s(worker.pid)
        lat, produced_s = _run(s, sql, "bench-latency", n, rate, poll_s, tag, query_s)
        polled_s = time.time() - t_start
        cpu_share = (_cpu_s(worker.pid) - cpu_start) / polled_s
        rss = _rss_mb(worker.pid)
        h = _health(s)
    finally:
        sql.close()
        if worker is not None:
            worker.stop()
    ms = sorted(x * 1000 for x in lat)
    achieved = (n - 1) / produced_s if produced_s else None
    _note(f"latency: {n:,} events in {produced_s:.1f} s; p50 {_pct(ms, 50):,.0f} ms, "
          f"p99 {_pct(ms, 99):,.0f} ms, max {ms[-1]:,.0f} ms")
    return {
        "e2e_p50_ms": round(_pct(ms, 50), 1), "e2e_p99_ms": round(_pct(ms, 99), 1),
        "e2e_p90_ms": round(_pct(ms, 90), 1), "e2e_max_ms": round(ms[-1], 1),
        "e2e_min_ms": round(ms[0], 1), "e2e_mean_ms": round(sum(ms) / len(ms), 1),
        "latency_events": n, "latency_seconds": seconds,
        "latency_rate_events_per_s": round(achieved, 1) if achieved else None,
        "latency_refresh_s": refresh_s, "latency_poll_ms": round(poll_s * 1000),
        "latency_polls": len(query_s), "latency_poll_every_ms": round(polled_s / max(1, len(query_s)) * 1000, 1),
        "latency_poll_query_p50_ms": round(_pct(sorted(query_s), 50) * 1000, 1),
        "latency_sink_batch_seconds": s.sink_batch_seconds,
        "latency_worker_rss_mb": round(rss, 1),
        "latency_worker_cpu_share": round(cpu_share, 2),  # worker CPU seconds per second (1.0 = one core)
        "latency_dead_letters": h.get("dead_letters"),
    }
