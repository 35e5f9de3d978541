"""What every benchmark shares: a private broker, a worker started, watched and stopped,
and its resource use read from /proc. bench/pipeline.py and the others import it; it
imports none of them."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from streams.config.settings import Settings, load_settings
from streams.worker.process import WorkerProcess


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _note(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    for k, v in s.model_dump(mode="json").items():
        if v is not None:  # an unset optional (centre_config) must stay unset, not become "None"
            env[f"CCPULSE_{k.upper()}"] = str(v)
    for k, v in s.model_dump().items():  # secrets: the real value, not the JSON mask
        if hasattr(v, "get_secret_value"):
            env[f"CCPULSE_{k.upper()}"] = v.get_secret_value()
    return env


def _health(s: Settings) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{s.web_port}/health", timeout=5) as r:
        return json.loads(r.read())


def _scalar(s: Settings, sql: str) -> Any:
    """The one value a query returns, through the worker's /sql endpoint (it owns chdb)."""
    from streams.worker.query import query_worker

    res = query_worker(s, sql, timeout_s=10)
    return res.rows[0][0] if res.rows else None


def _memory_mb(pid: int) -> dict[str, float]:
    """VmRSS, and its two parts: private memory (RssAnon: states, batches, chdb's heap) and
    pages mapped from files (RssFile: mostly libchdb's code, shared and reclaimable)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1]) / 1024
    return out


def child_pids(pid: int) -> list[int]:
    """Child processes of every thread of ``pid`` (the engine's is started by the sink's thread)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _children_cpu_s(pid: int) -> float:
    """CPU seconds of the worker's child processes (its embedded engine), 0 without any."""
    total = 0.0
    for c in child_pids(pid):
        try:
            total += _cpu_s(c)
        except OSError:
            continue
    return total


def _engine_rss_mb(pid: int) -> float | None:
    """RSS of the worker's embedded-engine process (streams/clickhouse/engine.py), None without one."""
    total = [_memory_mb(c).get("VmRSS", 0.0) for c in child_pids(pid)]
    return round(sum(total), 1) if total else None


def _rss_mb(pid: int) -> float:
    return _memory_mb(pid).get("VmRSS", float("nan"))


def _cpu_s(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of a process so far (all its threads), or of one thread:
    the main one runs the event loop and every agent."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_settings(workdir: Path, port: int, tag: str, **extra: Any) -> Settings:
    """Settings of one private run: its own topics (every ``topic_*`` setting), app id, web
    port and embedded ClickHouse."""
    topics = {name: f"{tag}.{name[len('topic_'):].replace('_', '-')}"
              for name in Settings.model_fields if name.startswith("topic_")}
    return load_settings(**{
        "broker": f"kafka://127.0.0.1:{port}", "dev_broker_port": port,
        "state_dir": workdir / "state", "clickhouse_url": f"chdb://{workdir / ('chdb-' + tag)}", "app_id": tag,
        **topics, "web_port": _free_port(), "session_timeout_s": 4, "log_level": "warning", **extra})


def prepare(s: Settings) -> None:
    """Topics and tables of a run."""
    from streams.worker.topics import create_topics

    create_topics(s)
    subprocess.run([sys.executable, "-m", "streams.cli", "db", "migrate"], env=_env(s), check=True,
                   capture_output=True)


def start_worker(s: Settings, log_path: Path, env: dict[str, str] | None = None) -> WorkerProcess:
    """The bench's worker, as the demo and the tests run one (streams/worker/process.py)."""
    return WorkerProcess.for_settings(s, log_path, env=env or _env(s)).start()


@contextmanager
def private_broker(workdir: Path) -> Iterator[int]:
    """A Tansu broker on a free port for the whole bench; its port."""
    from streams.cli import devstack

    port = _free_port()
    devstack.up(workdir / "state", port)
    try:
        yield port
    finally:
        devstack.down(workdir / "state", port)


def _server_url(url: str, database: str) -> str:
    """``url`` (clickhouse://user:password@host:port/any) with the run's own database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))
