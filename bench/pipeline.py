"""Throughput through the whole path (broker → worker → ClickHouse) against the ceiling of
a bare aiokafka consumer reading the same topic in the same run.

Everything runs on private resources: its own local broker on a free port, its own
topics and an embedded ClickHouse in a temporary folder.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from streams.settings import Settings, load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _note(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


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


def _env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    for k, v in s.model_dump(mode="json").items():
        env[f"CCPULSE_{k.upper()}"] = str(v)
    return env


def _health(s: Settings) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{s.web_port}/health", timeout=5) as r:
        return json.loads(r.read())


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(events_wanted: int, workdir: Path) -> dict[str, Any]:
    from streams import devstack
    from streams.producer import from_event, produce
    from streams.simulate import SimConfig, simulate
    from streams.topics import create_topics

    port = _free_port()
    tag = f"bench{os.getpid()}"
    s = load_settings(broker=f"kafka://127.0.0.1:{port}", broker_flavour="tansu", dev_broker_port=port,
                      state_dir=workdir / "state", clickhouse_url=f"chdb://{workdir / 'chdb'}", app_id=tag,
                      topic_events=f"{tag}.events", topic_agent_events=f"{tag}.agent-events",
                      topic_interactions=f"{tag}.interactions", topic_dead_letters=f"{tag}.dead-letters",
                      web_port=_free_port(), session_timeout_s=4, log_level="warning")
    devstack.up(s.state_dir, port)
    worker = None
    try:
        create_topics(s)
        subprocess.run([sys.executable, "-m", "streams.cli", "db", "migrate"], env=_env(s), check=True,
                       capture_output=True)
        # ~7 interaction events per contact; agent events come on top.
        sim = simulate(SimConfig(seed=7, interactions=max(1000, events_wanted // 7)))
        events = sorted(sim.events, key=lambda e: e["ts"])
        messages = [from_event(e) for e in events]
        _note(f"producing {len(messages):,} events ({len(sim.truth):,} interactions)")
        produced = produce(s, messages, total=len(messages), label="bench: produced", progress=False)

        _note("bare aiokafka consumer (ceiling)")
        bare_s = asyncio.run(_bare_consume(s, s.topic_events, produced))

        _note("worker: broker → validate → state → records → ClickHouse")
        log = open(workdir / "worker.log", "ab")
        worker = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=_env(s), stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 600
        h: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited {worker.returncode}; see {workdir / 'worker.log'}")
            try:
                h = _health(s)
            except OSError:
                time.sleep(0.3)
                continue
            if h["events"] >= produced and h["rows_written"].get("interactions", 0) >= len(sim.truth):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the worker did not finish within 600 s")
        elapsed = h["last_write_at"] - h["first_event_at"]
        rss = _rss_mb(worker.pid)
        pipe_rate = produced / elapsed
        ceiling = produced / bare_s
        return {
            "events": produced, "interactions": len(sim.truth),
            "events_per_s": round(pipe_rate), "ceiling_events_per_s": round(ceiling),
            "ratio": round(pipe_rate / ceiling, 4), "pipeline_s": round(elapsed, 2),
            "bare_consumer_s": round(bare_s, 2), "worker_rss_mb": round(rss, 1),
            "clickhouse": "chdb (embedded)", "broker": "tansu (local)", "partitions": s.partitions,
        }
    finally:
        if worker and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        devstack.down(s.state_dir, port)


def run_bench(_s: Settings, args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ccpulse-bench-") as d:
        r = measure(args.events, Path(d))
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{'events through the pipeline':32} {r['events']:>12,}")
        print(f"{'pipeline events/s (1 worker)':32} {r['events_per_s']:>12,}")
        print(f"{'bare consumer events/s':32} {r['ceiling_events_per_s']:>12,}")
        print(f"{'ratio pipeline / bare consumer':32} {r['ratio']:>12.3f}")
        print(f"{'worker RSS (MB)':32} {r['worker_rss_mb']:>12,.0f}")
    return 0
