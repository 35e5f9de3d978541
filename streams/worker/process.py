"""``ccpulse worker`` as a child process: started, watched through its ``/health`` and
stopped the same way by ``ccpulse demo``, the benchmarks (bench/harness.py) and the tests
(tests/services.py), so the three cannot drift apart.

The worker runs in a session of its own: stopping it signals the whole group (its
embedded-engine child included), never the caller's terminal.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from streams.config.settings import Settings

class WorkerExited(RuntimeError):
    """The worker process ended while it was expected to run."""


@dataclass
class WorkerProcess:
    env: Mapping[str, str]
    log_path: Path
    port: int = 0                      # its web port; 0: CCPULSE_WEB_PORT of ``env``
    events_topic: str = ""             # ready once assigned a partition of it; "": from ``env``
    host: str = "127.0.0.1"
    cwd: Path | None = None            # None: the caller's (relative paths in settings resolve there)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.port = self.port or int(self.env.get("CCPULSE_WEB_PORT", "6066"))
        self.events_topic = self.events_topic or self.env.get("CCPULSE_TOPIC_EVENTS", "ccpulse.events")

    @classmethod
    def for_settings(cls, s: Settings, log_path: Path, env: Mapping[str, str] | None = None) -> "WorkerProcess":
        return cls(dict(os.environ if env is None else env), log_path, port=s.web_port, events_topic=s.topic_events,
                   host=s.web_host if s.web_host not in ("0.0.0.0", "::") else "127.0.0.1")

    def start(self) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=dict(self.env),
                                         cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def alive_or_raise(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise WorkerExited(f"the worker exited with code {self.proc.returncode}; last log lines "
                               f"({self.log_path}):\n{self.log_tail(15)}")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{self.host}:{self.port}/health", timeout=5) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def ready(self) -> bool:
        """Assigned a partition of the events topic (so it consumes)."""
        return any(a.startswith(self.events_topic + ":") for a in self.health()["assigned"])

    def wait_ready(self, timeout: float) -> float:
        """Seconds until ready; ``WorkerExited`` if it ends, ``TimeoutError`` after ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.alive_or_raise()
            try:
                if self.ready():
                    return time.monotonic() - start
            except OSError:
                pass  # not listening yet
            time.sleep(0.3)
        raise TimeoutError(f"the worker was not ready within {timeout:.0f} s; see {self.log_path}")

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout)

    def stop(self, timeout: float = 30, escalate: bool = True) -> None:
        """SIGTERM (it stores what it holds and commits), then SIGKILL after ``timeout``;
        without ``escalate`` a worker that does not stop raises ``TimeoutExpired`` (tests)."""
        if self.proc and self.proc.poll() is None:
            try:
                self.kill(signal.SIGTERM, timeout)
            except subprocess.TimeoutExpired:
                if not escalate:
                    raise
                self.kill(signal.SIGKILL, 10)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
