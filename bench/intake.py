"""The HTTP intake under load: ``intake_events_per_s`` accepted (answered 202, the broker holding
them) and ``intake_p99_ms``, the 99th percentile of a request's answer, with 16 clients each
posting batches of 100 contacts' events (400 events a request) to ``ccpulse intake`` on a private
broker."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.harness import _env, _free_port, _note, _rss_mb, bench_settings, prepare

CLIENTS, REQUESTS, CONTACTS = 16, 40, 100


def _batch(client: int, n: int) -> bytes:
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    out = []
    for c in range(CONTACTS):
        iid = f"b{client}-{n}-{c}"
        for k, (typ, dt, extra) in enumerate((("offered", 0, {"queue": "web"}), ("answered", 20, {"agent_id": "a1"}),
                                              ("ended", 200, {}), ("wrapup_ended", 230, {}))):
            out.append({"type": typ, "event_id": f"{iid}:{k}", "ts": (t0 + timedelta(seconds=dt)).isoformat(),
                        "tenant": "bench", "interaction_id": iid, "channel": "chat", **extra})
    return json.dumps(out).encode()


def _start_intake(workdir: Path, port: int, tag: str) -> tuple[subprocess.Popen, int, str]:
    """``ccpulse intake`` on its own topics and a free port, listening; its process, port and a
    token of tenant ``bench``."""
    s = bench_settings(workdir, port, tag)
    prepare(s)
    env = _env(s)
    token = subprocess.run([sys.executable, "-m", "streams.cli", "intake", "token", "--tenant", "bench"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    http_port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "streams.cli", "intake", "--port", str(http_port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return server, http_port, token


def measure_intake(workdir: Path, port: int) -> dict[str, Any]:
    server, http_port, token = _start_intake(workdir, port, "benchintake")
    try:
        bodies = [[_batch(c, n) for n in range(REQUESTS)] for c in range(CLIENTS)]
        latencies: list[float] = []
        accepted = [0]
        lock = threading.Lock()

        def client(c: int) -> None:
            for body in bodies[c]:
                req = urllib.request.Request(f"http://127.0.0.1:{http_port}/v1/events", data=body, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {token}"})
                t = time.perf_counter()
                with urllib.request.urlopen(req, timeout=60) as r:
                    n = json.loads(r.read())["accepted"]
                with lock:
                    latencies.append((time.perf_counter() - t) * 1000)
                    accepted[0] += n

        _note(f"HTTP intake: {CLIENTS} clients x {REQUESTS} requests of {CONTACTS * 4} events")
        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(20)
    latencies.sort()
    return {"intake_events_per_s": round(accepted[0] / wall), "intake_p50_ms": round(statistics.median(latencies), 1),
            "intake_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1), "intake_events": accepted[0]}


def measure_intake_under_attack(workdir: Path, body_mb: int = 1024, idle: int = 500) -> dict[str, Any]:
    """``intake_under_attack_rss_mb``: the intake's peak RSS while, at once, a 1 GB chunked body
    is streamed at it with a valid token, ``idle`` connections send heads they never finish,
    and its broker is gone. ``intake_attack_health_ms``: a ``GET /health`` answered meanwhile."""
    import socket

    from streams.cli import devstack

    bport = _free_port()
    devstack.up(workdir / "state", bport)
    server, http_port, token = _start_intake(workdir, bport, "attackintake")
    socks: list[socket.socket] = []
    peak = [0.0]
    stop = threading.Event()
    try:
        devstack.down(workdir / "state", bport)  # the broker is gone for the rest of the stage

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_mb(server.pid))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        for _ in range(idle):
            c = socket.create_connection(("127.0.0.1", http_port), timeout=5)
            c.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(c)
        _note(f"HTTP intake under attack: a {body_mb:,} MB chunked body, {idle} unfinished heads, no broker")
        chunk = b"[" + b"1," * (512 * 1024 - 1) + b"1"
        with socket.create_connection(("127.0.0.1", http_port), timeout=30) as big:
            big.sendall(f"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            sent = 0
            try:
                for _ in range(body_mb):
                    big.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += 1
            except OSError:
                pass  # refused (413) and closed while it was still coming
        t = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=30):
            health_ms = (time.perf_counter() - t) * 1000
        stop.set()
        watcher.join()
    finally:
        stop.set()
        for c in socks:
            c.close()
        server.terminate()
        server.wait(20)
    return {"intake_under_attack_rss_mb": round(peak[0], 1), "intake_attack_body_mb_sent": sent,
            "intake_attack_health_ms": round(health_ms, 1)}
