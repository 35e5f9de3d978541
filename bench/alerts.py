"""Breach-to-webhook latency: from the production of the traffic that breaks a service
level to the arrival of the matching signed "firing" webhook at a local HTTP server.

The third phase of ``ccpulse bench`` (bench/pipeline.py), on the same private broker but
with its own topics, app id, embedded ClickHouse and worker for each configuration
measured.

Design: a centre file with one rule that matches every queue (no ``queues``/``tenants``;
the bench tenant is not configured, so the defaults apply: goal 0.8 of contacts answered
within 20 s)::

    {name: bench-sl, metric: service_level, threshold: goal, window_minutes: 5, min_sample: 5,
     for_s: 0, recover_for_s: 0, severity: critical}

An *episode* ``k`` uses a fresh queue ``q{k}``: ten contacts offered at now − 60 s and
answered at now (event timestamps are the wall clock), i.e. service level 0 on 10 contacts
that left the queue. The twenty events are handed to the producer back to back (ccpulse's
own producer settings: acks=all, 20 ms linger) and flushed; the production time is the
moment the last one (the last ``answered``) was handed over. The latency is the arrival
time of the first ``firing`` webhook whose JSON body names ``q{k}`` minus that. Each queue
fires once and stays firing (it never recovers), so episodes are independent. After each
arrival the next episode waits a random 0..refresh_s (seeded), so the episodes sample every
phase of the live-figures timer instead of always the same one. One warm-up episode (not
counted) first pays for the worker's first inserts.

What the path is made of (every piece is the deployment's own, nothing is tuned except
``windows.refresh_s`` where said):

- the events batch: ``sink_batch_seconds`` (0.2 s by default) after the previous batch at most;
- the ``live-kpis`` timer, every ``windows.refresh_s``: the dominant term, 0..refresh_s.
  It publishes each partition's figures of the rule's window to the live-parts topic;
- the ``alerts`` agent: a batch of live parts (again ≤ ``sink_batch_seconds``), the sum
  over partitions, the rule step, the ClickHouse insert of the alerts rows and the send to
  the alerts topic;
- the ``deliver-alerts`` agent: reads the alerts topic (batches of ≤ 100 within 50 ms),
  hands each notification to the notifiers and the HTTP POST goes out.

So expect roughly refresh_s/2 + ~0.5 s on average and refresh_s + ~0.5–1 s at worst (with
5 s the p99 could not be under 3 s, which is why the default became 1 s).
``windows.refresh_s`` defaults to 1 s; ``alert_p99_ms`` is measured with that default,
and ``alert_p99_ms_refresh_0_5s`` with ``refresh_s: 0.5``. With 20 episodes the nearest-rank
p99 is the largest of the 20 (p99 = max); raise ``--alert-episodes`` for a real tail.

The receiver verifies each webhook's signature (streams/worker/notify.py ``verify``) and the JSON
counts the bad ones (expect 0) and any second "firing" for one queue (expect 0).
"""
from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.harness import (
    _env,
    _free_port,
    _health,
    _note,
    bench_settings,
    prepare,
    start_worker,
)
from streams.worker.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from streams.config.settings import Settings
from streams.worker.process import WorkerProcess

DEFAULT_REFRESH_S = 1.0
FAST_REFRESH_S = 0.5
TENANT = "bench"
CALLS = 10
WAIT_S = 60
MIN_SAMPLE = 5
WINDOW_MINUTES = 5
SECRET = "bench-secret"
#: An episode whose webhook has not come this long after refresh_s is a failure.
EPISODE_TIMEOUT_S = 60.0

CENTRE = """\
# ccpulse bench (alerts): live figures every {refresh} s (the default is 1 s)
windows: {{refresh_s: {refresh}}}
alerts:
  rules:
    - {{name: bench-sl, metric: service_level, threshold: goal, window_minutes: {window}, min_sample: {min_sample},
       for_s: 0, recover_for_s: 0, severity: critical}}
"""


class _Inbox:
    """Webhooks received: the first "firing" arrival time per queue, plus sanity counters."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.firing: dict[str, float] = {}
        self.received = 0
        self.duplicates = 0
        self.bad_signatures = 0

    def record(self, at: float, headers: Any, body: bytes) -> None:
        ok = verify(SECRET.encode(), headers.get(TIMESTAMP_HEADER, ""), body, headers.get(SIGNATURE_HEADER, ""))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        with self.cond:
            self.received += 1
            self.bad_signatures += not ok
            if payload.get("status") == "firing":
                q = payload.get("queue")
                if q in self.firing:
                    self.duplicates += 1
                else:
                    self.firing[q] = at
            self.cond.notify_all()

    def wait_firing(self, queue: str, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: queue in self.firing, timeout)
            return self.firing.get(queue)


def _server(inbox: _Inbox) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            at = time.time()  # the whole request is in: it has arrived
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            inbox.record(at, self.headers, body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bench-alerts-webhook", daemon=True).start()
    return server


def _ev(typ: str, iid: str, n: int, t: float, **kw: Any) -> bytes:
    ts = datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")
    return json.dumps({"type": typ, "event_id": f"{iid}:{n}", "ts": ts, "tenant": TENANT, "interaction_id": iid,
                       "channel": "voice", **kw}, separators=(",", ":")).encode()


def _episode(producer: Any, s: Settings, tag: str, queue: str) -> float:
    """Produce one breach on ``queue``; the production time of its last event."""
    now = time.time()
    iids = [f"{tag}-{queue}-{i:02d}" for i in range(CALLS)]
    for iid in iids:
        producer.send(s.topic_events, key=iid.encode(), value=_ev("offered", iid, 1, now - WAIT_S, queue=queue))
    for iid in iids:
        producer.send(s.topic_events, key=iid.encode(), value=_ev("answered", iid, 2, now, agent_id="bench-a1"))
    sent = time.time()
    producer.flush()
    return sent


def _start_worker(s: Settings, log_path: Path) -> WorkerProcess:
    # bench.harness._env dumps settings as JSON, where a SecretStr is "**********": set it here.
    return start_worker(s, log_path, env={**_env(s), "CCPULSE_ALERT_WEBHOOK_SECRET": SECRET})


def _wait_ready(s: Settings, worker: WorkerProcess, log_path: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    want = {s.topic_events, s.topic_live_parts}
    while True:
        worker.alive_or_raise()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the alerts worker did not get its partitions within {timeout_s:.0f} s; see {log_path}")
        try:
            h = _health(s)
        except OSError:
            time.sleep(0.2)
            continue
        if all(sum(a.startswith(t + ":") for a in h["assigned"]) >= s.partitions for t in want):
            return
        time.sleep(0.2)


def _pct(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    return sorted_vals[max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)]


def _one_config(workdir: Path, port: int, refresh_s: float, episodes: int, seed: int) -> dict[str, Any]:
    from kafka import KafkaProducer

    name = str(refresh_s).replace(".", "_")
    tag = f"alr{name}x{os.getpid()}"
    centre = workdir / f"centre-alerts-{name}.yaml"
    centre.write_text(CENTRE.format(refresh=refresh_s, window=WINDOW_MINUTES, min_sample=MIN_SAMPLE))
    inbox = _Inbox()
    server = _server(inbox)
    s = bench_settings(workdir, port, tag, centre_config=centre,
                       alert_webhook_url=f"http://127.0.0.1:{server.server_port}/hook")
    log_path = workdir / f"worker-alerts-{name}.log"
    worker = None
    producer = None
    rng = random.Random(seed)
    lat: list[float] = []
    try:
        prepare(s)
        _note(f"alerts: worker with windows.refresh_s = {refresh_s:g} s ({centre.name}); {episodes} breaches "
              f"({CALLS} calls answered after {WAIT_S} s on a fresh queue each), webhook to a local server")
        worker = _start_worker(s, log_path)
        _wait_ready(s, worker, log_path)
        producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=20,
                                 client_id="ccpulse-bench-alerts")
        producer.partitions_for(s.topic_events)  # metadata first: not part of any latency
        timeout = refresh_s + EPISODE_TIMEOUT_S
        for k in range(-1, episodes):  # -1: the warm-up episode, not counted
            queue = "warmup" if k < 0 else f"q{k:03d}"
            sent = _episode(producer, s, tag, queue)
            arrived = inbox.wait_firing(queue, timeout)
            worker.alive_or_raise()
            if arrived is None:
                raise RuntimeError(f"alerts: no firing webhook for {queue} within {timeout:.0f} s "
                                   f"({inbox.received} webhooks received so far); see {log_path}")
            if k >= 0:
                lat.append(arrived - sent)
            time.sleep(rng.uniform(0, refresh_s))  # the next breach at a random phase of the timer
        time.sleep(min(2.0, refresh_s))  # room for a (wrong) second firing to show up
        h = _health(s)
    finally:
        if producer is not None:
            producer.close()
        if worker is not None:
            worker.stop()
        server.shutdown()
        server.server_close()
    ms = sorted(x * 1000 for x in lat)
    _note(f"alerts (refresh_s {refresh_s:g} s): {episodes} episodes; p50 {_pct(ms, 50):,.0f} ms, "
          f"p99 {_pct(ms, 99):,.0f} ms, max {ms[-1]:,.0f} ms")
    return {
        "p50_ms": round(_pct(ms, 50), 1), "p90_ms": round(_pct(ms, 90), 1), "p99_ms": round(_pct(ms, 99), 1),
        "max_ms": round(ms[-1], 1), "min_ms": round(ms[0], 1), "mean_ms": round(sum(ms) / len(ms), 1),
        "refresh_s": refresh_s, "webhooks": inbox.received, "duplicate_firing": inbox.duplicates,
        "bad_signatures": inbox.bad_signatures, "worker_alerts": h.get("alerts"),
    }


def measure_alerts(workdir: Path, port: int, episodes: int = 20, seed: int = 4) -> dict[str, Any]:
    """``alert_*`` keys: the default refresh (1 s), then ``*_refresh_0_5s`` with refresh_s 0.5."""
    if episodes < 1:
        raise ValueError("--alert-episodes must be at least 1")
    base = _one_config(workdir, port, DEFAULT_REFRESH_S, episodes, seed)
    fast = _one_config(workdir, port, FAST_REFRESH_S, episodes, seed + 1)
    out: dict[str, Any] = {
        "alert_p50_ms": base["p50_ms"], "alert_p99_ms": base["p99_ms"], "alert_max_ms": base["max_ms"],
        "alert_p90_ms": base["p90_ms"], "alert_min_ms": base["min_ms"], "alert_mean_ms": base["mean_ms"],
        "alert_episodes": episodes, "alert_refresh_s": base["refresh_s"],
        "alert_webhooks": base["webhooks"], "alert_duplicate_firing": base["duplicate_firing"],
        "alert_bad_signatures": base["bad_signatures"],
    }
    for k in ("p50_ms", "p99_ms", "max_ms", "p90_ms", "min_ms", "mean_ms", "duplicate_firing", "bad_signatures"):
        out[f"alert_{k}_refresh_0_5s"] = fast[k]
    return out
