"""The torture run (issue 23): workers SIGKILLed at random points, hundreds of times, on a
loaded machine, and then every figure compared with a run that was never killed.

Each round sends the next slice of a simulated day and kills a worker at one of four
points, in turn, each at a random moment within it:

- ``first-commit``: a worker just ready, before its first commit;
- ``send-commit``: as soon as a batch is folded, inside its send, store and commit;
- ``recovery``: a restarted worker while it joins the group and reads its changelogs;
- ``rebalance``: one of two workers while the second one joins (partitions moving).

A busy process runs on every core throughout. At the end the survivors finish the stream
and the tortured deployment must hold exactly what a reference deployment fed the same
events without any kill holds: every record (and their number equals the simulator's
ground truth), every interval figure (``kpi_intervals_15m``) and every agent figure
(``agent_intervals_15m``, ``agent_handled_15m``). Both run on a ClickHouse server, which
several workers can share. ``ccpulse bench --torture N``; a CI test runs a few rounds.
"""
from __future__ import annotations

import os
import random
from collections import Counter
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.harness import _env, _free_port, _note, bench_settings, prepare, private_broker
from streams.clickhouse.connect import connect
from streams.clickhouse.devserver import ClickHouseServer
from streams.traffic.producer import from_event, produce
from streams.traffic.simulate import SimConfig, event_time_order, simulate
from streams.worker.process import WorkerExited, WorkerProcess

KINDS = ("first-commit", "send-commit", "recovery", "rebalance")
#: What is compared, and the columns that say when a row was written rather than what it holds.
TABLES = ("interactions FINAL", "kpi_intervals_15m", "agent_intervals_15m", "agent_handled_15m")
#: Rows that hold no time at all read the same whether written or not: the agent-figures timer
#: writes zero rows for every agent it knows up to its horizon, and which intervals that covers
#: depends on when it ran (a restart moves it), not on what happened.
SKIP_EMPTY = {"agent_intervals_15m": "logged_in_ms + ready_ms + busy_ms + acw_ms + not_ready_ms + held_ms + max_held > 0"}
NOT_COMPARED = {"version", "updated_at", "stored_at", "written_at", "computed_at", "received_at"}


@contextmanager
def cpu_load(on: bool = True) -> Iterator[None]:
    """A busy process on every core."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)] \
        if on else []
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()


@dataclass
class Deployment:
    """One app id, its topics and database, and the workers running it."""

    name: str
    env: dict[str, str]
    workdir: Path
    settings: Any
    workers: list[WorkerProcess] = field(default_factory=list)
    started: int = 0
    stalls: int = 0

    def start(self) -> WorkerProcess:
        self.started += 1
        env = dict(self.env, CCPULSE_WEB_PORT=str(_free_port()))
        w = WorkerProcess(env, self.workdir / f"{self.name}-worker{self.started}.log").start()
        self.workers.append(w)
        return w

    def alive(self) -> list[WorkerProcess]:
        """Workers still running; one that exited to be restarted (75: it found itself
        stalled, the safety net) is restarted, any other exit is an error."""
        for w in list(self.workers):
            code = w.poll()
            if code is None:
                continue
            self.workers.remove(w)
            if code == 75:
                self.stalls += 1
                _note(f"{self.name}: a worker exited to be restarted (stalled); see {w.log_path}")
                self.start()
            elif code != -signal.SIGKILL:
                raise WorkerExited(f"{self.name}: a worker exited with {code}:\n{w.log_tail(30)}")
        return self.workers

    def kill(self, w: WorkerProcess) -> None:
        w.kill(signal.SIGKILL)
        if w in self.workers:
            self.workers.remove(w)

    def stop(self) -> None:
        for w in self.workers:
            w.stop(timeout=30)
        self.workers.clear()


def _events_seen(w: WorkerProcess) -> int:
    try:
        return int(w.health()["events"])
    except (OSError, ValueError, KeyError):
        return -1


def _ready(w: WorkerProcess) -> bool:
    try:
        return w.ready()
    except OSError:
        return False


def _wait(pred: Callable[[], bool], timeout: float, what: str, dep: Deployment, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dep.alive()
        if pred():
            return
        time.sleep(every)
    raise TimeoutError(f"{dep.name}: timed out after {timeout:.0f} s waiting for {what}")


def _one(dep: Deployment) -> WorkerProcess:
    """A ready worker of ``dep``, started if none runs."""
    live = dep.alive() or [dep.start()]
    w = live[0]
    _wait(lambda: _ready(w), 120, "a worker ready", dep, every=0.1)
    return w


def kill_round(dep: Deployment, kind: str, rnd: random.Random) -> str:
    """Kill a worker of ``dep`` at a random moment of ``kind``; says what was killed when."""
    if kind == "first-commit":
        for w in list(dep.alive()):
            dep.kill(w)
        w = dep.start()
        _wait(lambda: _ready(w), 120, "a worker ready", dep)
        delay = rnd.uniform(0.0, 0.9)  # the commit interval is 1 s
        time.sleep(delay)
        dep.kill(w)
        return f"{delay:.2f} s after ready"
    if kind == "send-commit":
        w = _one(dep)
        seen = _events_seen(w)
        _wait(lambda: _events_seen(w) > seen, 60, "a batch folded", dep, every=0.01)
        delay = rnd.uniform(0.0, 0.3)
        time.sleep(delay)
        dep.kill(w)
        return f"{delay:.2f} s after a batch was folded"
    if kind == "recovery":
        for w in list(dep.alive()):
            dep.kill(w)
        w = dep.start()
        delay = rnd.uniform(0.5, 4.0)  # python start, join (half the 4 s session), changelog reads
        time.sleep(delay)
        state = "ready" if _ready(w) else "not ready"
        dep.kill(w)
        return f"{delay:.2f} s after start ({state})"
    # rebalance: a second worker joins a running one; one of the two dies while partitions move
    a = _one(dep)
    b = dep.start()
    delay = rnd.uniform(0.5, 5.0)
    time.sleep(delay)
    victim = rnd.choice([a, b])
    dep.kill(victim)
    return f"{'the joining' if victim is b else 'the running'} worker, {delay:.2f} s into the join"


def _columns(ch: Any, db: str, table: str) -> list[str]:
    name = table.split()[0]
    rows = ch.query(f"SELECT name FROM system.columns WHERE database = '{db}' AND table = '{name}'").rows
    return [r[0] for r in rows if r[0] not in NOT_COMPARED]


def snapshot(url: str, db: str) -> dict[str, list[tuple]]:
    """Every compared table of ``db``, sorted rows of the compared columns."""
    ch = connect(url)
    try:
        out = {}
        for t in TABLES:
            cols = _columns(ch, db, t)
            where = f" WHERE {SKIP_EMPTY[t]}" if t in SKIP_EMPTY else ""
            out[t] = sorted(tuple(map(repr, r)) for r in ch.query(f"SELECT {', '.join(cols)} FROM {db}.{t}{where}").rows)
        return out
    finally:
        ch.close()


def differences(want: dict[str, list[tuple]], got: dict[str, list[tuple]]) -> dict[str, int]:
    """Per table, rows in one and not the other (0 everywhere: equal)."""
    out = {}
    for t in want:
        a, b = Counter(want[t]), Counter(got.get(t, []))
        out[t] = sum(((a - b) + (b - a)).values())
    return out


def examples(want: dict[str, list[tuple]], got: dict[str, list[tuple]], most: int = 5) -> str:
    """A few rows per table only the reference has (-) or only the tortured run has (+)."""
    lines = []
    for t in want:
        a, b = Counter(want[t]), Counter(got.get(t, []))
        for sign, rows in (("-", a - b), ("+", b - a)):
            for row in sorted(rows)[:most]:
                lines.append(f"{t} {sign} {', '.join(row)}")
    return "\n".join(lines)


def settle(url: str, db: str, dep: Deployment, records: int, timeout: float = 600) -> dict[str, list[tuple]]:
    """A snapshot once every record is stored and nothing changed for 6 s (timers included)."""
    last: dict[str, list[tuple]] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dep.alive()
        snap = snapshot(url, db)
        if len(snap["interactions FINAL"]) == records and snap == last:
            return snap
        last = snap
        time.sleep(6)
    raise TimeoutError(f"{dep.name}: the figures did not settle within {timeout:.0f} s "
                       f"({len((last or {}).get('interactions FINAL', []))} of {records} records)")


def run_torture(kills: int, workdir: Path, server_url: str | None = None, seed: int = 23,
                interactions: int | None = None, load: bool = True) -> dict[str, Any]:
    """Returns ``torture_kills``, ``torture_differences`` (0: every figure equal), the kills
    per kind, the stalls the safety net restarted, and the seconds the whole run took."""
    t0 = time.monotonic()
    rnd = random.Random(seed)
    interactions = interactions or max(1_500, 60 * kills)
    sim = simulate(SimConfig(seed=seed, interactions=interactions))
    messages = [from_event(e) for e in event_time_order(sim)]
    server = None
    if server_url is None:
        server = ClickHouseServer(workdir / "clickhouse").start()
        server_url = server.url("default")
    try:
        with private_broker(workdir) as port:
            deps = {}
            for name in ("reference", "tortured"):
                db = f"torture_{name}"
                s = bench_settings(workdir / name, port, f"torture-{name}-{seed}",
                                   clickhouse_url=_with_db(server_url, db), commit_interval_s=1.0)
                prepare(s)
                deps[name] = Deployment(name, _env(s), workdir, s)
            ref, tort = deps["reference"], deps["tortured"]

            _note(f"torture: reference run, {len(messages):,} events of {interactions:,} contacts, no kill")
            produce(ref.settings, messages, total=len(messages), progress=False)
            _one(ref)
            want = settle(_with_db(server_url, "torture_reference"), "torture_reference", ref, len(sim.truth))
            ref.stop()

            log: list[str] = []
            per_kind = dict.fromkeys(KINDS, 0)
            slices = [messages[i * len(messages) // kills:(i + 1) * len(messages) // kills] for i in range(kills)]
            with cpu_load(load):
                for n in range(kills):
                    produce(tort.settings, slices[n], total=len(slices[n]), progress=False)
                    kind = KINDS[n % len(KINDS)]
                    what = kill_round(tort, kind, rnd)
                    per_kind[kind] += 1
                    log.append(f"{n + 1}: {kind}, {what}")
                    if (n + 1) % 10 == 0 or n + 1 == kills:
                        _note(f"torture: {n + 1}/{kills} kills ({what})")
                _one(tort)
                got = settle(_with_db(server_url, "torture_tortured"), "torture_tortured", tort, len(sim.truth))
            diff = differences(want, got)
            tort.stop()
            if any(diff.values()):
                _note("torture: figures differ from the run never killed; examples:\n" + examples(want, got))
            (workdir / "torture-kills.log").write_text("\n".join(log) + "\n")
            return {
                "torture_kills": kills, "torture_differences": sum(diff.values()),
                "torture_differences_by_table": diff,
                "torture_records": len(got["interactions FINAL"]), "torture_truth_records": len(sim.truth),
                "torture_rows_compared": sum(len(v) for v in want.values()),
                "torture_kills_by_kind": per_kind, "torture_stall_restarts": tort.stalls,
                "torture_workers_started": tort.started, "torture_s": round(time.monotonic() - t0, 1),
            }
    finally:
        for d in locals().get("deps", {}).values():
            for w in d.workers:
                w.kill(signal.SIGKILL)
        if server is not None:
            server.stop()


def _with_db(url: str, db: str) -> str:
    from bench.harness import _server_url

    return _server_url(url, db)


def run_torture_cli(args: Any) -> int:
    """``ccpulse bench --torture N [--json] [--server-url URL]``: exit 1 when any figure differs."""
    import json
    import tempfile

    if args.torture < 1:
        print("ccpulse bench: --torture takes the number of kills (1 or more)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ccpulse-torture-") as d:
        r = run_torture(args.torture, Path(d), server_url=getattr(args, "server_url", None))
    if args.json:
        print(json.dumps(r))
    else:
        print(f"kills: {r['torture_kills']:,} ({', '.join(f'{k} {v}' for k, v in r['torture_kills_by_kind'].items())}), "
              f"on a loaded machine, in {r['torture_s']:,.0f} s")
        print(f"records: {r['torture_records']:,} of {r['torture_truth_records']:,} contacts; rows compared: "
              f"{r['torture_rows_compared']:,}")
        print(f"differences from the run never killed: {r['torture_differences']} {r['torture_differences_by_table']}")
        print(f"stalled workers restarted by the safety net: {r['torture_stall_restarts']}")
    return 0 if r["torture_differences"] == 0 and r["torture_records"] == r["torture_truth_records"] else 1
