"""Every command of the README's command table, once, as a user types it (issue 25).

One deployment in a folder of its own with the defaults (only its ports and folders set so it
cannot meet another test's): the demo first, then each command the table lists, each checked
for what a user would look at. A command added to the table without a run here fails
``test_every_readme_command_has_a_smoke_run``. ``ccpulse bench`` runs in test_bench.py
(at small sizes: it takes minutes); ``grafana push`` has no Grafana here, so its run is the
one-line error a user gets when none answers.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.services import REPO, Worker, ccpulse_cmd, free_port, run_cli, wait_for

pytestmark = pytest.mark.integration

#: README command -> where its smoke run is (this file unless said).
ELSEWHERE = {"bench": "tests/integration/test_bench.py"}
SMOKED = {"demo", "dev", "setup", "db migrate", "db access", "compose-env", "worker", "simulate", "replay", "verify",
          "recompute", "report client", "staffing", "forecast", "connect asterisk", "connect status", "intake",
          "intake token", "intake twilio", "connect run", "connect amazon-connect", "sql", "grafana build",
          "grafana push", "config"}


def readme_commands() -> set[str]:
    """The commands of the README's table: ``ccpulse`` and its sub-command words."""
    out = set()
    for row in (REPO / "README.md").read_text().splitlines():
        if not row.startswith("| `ccpulse "):
            continue
        first = row.split(" | ")[0]
        for cmd in re.findall(r"`ccpulse ([^`]*)`", first):
            words = []
            for w in cmd.split():
                if not re.fullmatch(r"[a-z][a-z-]*", w):
                    break
                words.append(w)
            out.add(" ".join(words))
    return out


def test_every_readme_command_has_a_smoke_run() -> None:
    listed = readme_commands()
    assert len(listed) > 20
    assert listed == SMOKED | set(ELSEWHERE), (f"in the README, not smoke-run: {sorted(listed - SMOKED - set(ELSEWHERE))}; "
                                               f"smoke-run, not in the README: {sorted((SMOKED | set(ELSEWHERE)) - listed)}")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_each_readme_command_once_as_a_user_types_it(tmp_path: Path) -> None:
    port, web, intake_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    env.update({"CCPULSE_STATE_DIR": str(tmp_path / ".ccpulse"), "CCPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'chdb'}",
                "CCPULSE_DEV_BROKER_PORT": str(port), "CCPULSE_BROKER": f"kafka://127.0.0.1:{port}",
                "CCPULSE_WEB_PORT": str(web), "PYTHONUNBUFFERED": "1"})
    done: set[str] = set()

    def ccpulse(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        key = " ".join(a for a in args[:2] if re.fullmatch(r"[a-z][a-z-]*", a))
        done.add(key if key in SMOKED else args[0])
        return run_cli(env, *args, timeout=timeout, check=check)

    try:
        assert f"kafka://127.0.0.1:{port}" in ccpulse("config").stdout
        ccpulse("compose-env", "--out", str(tmp_path / ".env"))
        assert (tmp_path / ".env").stat().st_mode & 0o077 == 0 and "CLICKHOUSE_PASSWORD=" in (tmp_path / ".env").read_text()
        ccpulse("db", "access", "--tenant", "acme", "--out", str(tmp_path / "users.xml"))
        assert "<grafana>" in (tmp_path / "users.xml").read_text()
        demo = ccpulse("demo", "--interactions", "400", timeout=600)
        assert "ccpulse dev down" in demo.stdout
        assert "running" in ccpulse("dev", "status").stdout
        ccpulse("setup")
        ccpulse("db", "migrate")
        rows = json.loads(ccpulse("sql", "SELECT count() AS n, toString(toDate(min(offered_at))) AS d, "
                                         "toString(toDate(max(offered_at))) AS last FROM "
                                         "ccpulse.interactions_current WHERE offered_at IS NOT NULL",
                                  "--format", "json").stdout)
        assert rows[0]["n"] > 300
        day, last = rows[0]["d"], rows[0]["last"]
        verified = json.loads(ccpulse("verify", "--json").stdout)  # exit 0: every figure equals the recount
        assert verified["differences"] == [] and verified["rows_compared"] > 0
        ccpulse("recompute", "--from", day, "--to", day)
        ccpulse("report", "client", "--tenant", "acme", "--month", day[:7], "--out", str(tmp_path / "acme.pdf"))
        assert (tmp_path / "acme.pdf").read_bytes()[:5] == b"%PDF-"
        staffing = ccpulse("staffing", "--tenant", "acme", "--day", day, "--format", "csv").stdout
        assert staffing.splitlines()[0].count(",") >= 4 and len(staffing.splitlines()) > 10
        # The forecast learns from the days before the newest: one day alone is a clear error; a
        # second demo day gives it one, and each queue says it is too little (14 days by weekday).
        alone = ccpulse("forecast", "--tenant", "acme", "--days", "1", check=False)
        assert alone.returncode == 2 and "no history to forecast from" in alone.stderr, alone.stderr
        nxt = (datetime.fromisoformat(last) + timedelta(days=1)).date().isoformat()
        ccpulse("demo", "--interactions", "400", "--start", nxt, timeout=600)
        fc = ccpulse("forecast", "--tenant", "acme", "--days", "1", "--format", "csv").stdout.strip().splitlines()
        assert len(fc) >= 3 and all(line.startswith("acme,acme-") and "too little history: 1 days" in line
                                    for line in fc[1:]), fc
        # A worker of its own, fed by the simulator and by a replayed file.
        w = Worker(env, tmp_path / "worker.log").start()
        done.add("worker")
        try:
            before = w.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0]
            ccpulse("simulate", "--interactions", "30", "--seed", "99")
            wait_for(lambda: w.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] >= before + 30, 90,
                     "the simulated contacts stored", interval=1.0)
            t0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
            events = [{"type": "offered", "event_id": "rp-1:1", "ts": t0.isoformat(), "tenant": "acme",
                       "interaction_id": "rp-1", "channel": "voice", "queue": "acme-sales"},
                      {"type": "abandoned", "event_id": "rp-1:2", "ts": (t0 + timedelta(seconds=42)).isoformat(),
                       "tenant": "acme", "interaction_id": "rp-1", "channel": "voice"}]
            (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
            ccpulse("replay", str(tmp_path / "events.jsonl"), "--format", "jsonl")
            wait_for(lambda: w.query("SELECT outcome, wait_ms FROM ccpulse.interactions_current "
                                     "WHERE interaction_id = 'rp-1'") == [("abandoned", 42_000)], 60,
                     "the replayed contact", interval=1.0)
            # ccpulse sql while the worker holds the embedded engine: through the worker.
            assert ccpulse("sql", "SELECT 40 + 2 AS x", "--format", "csv").stdout.strip().splitlines()[-1] == "42"
            # Connectors.
            ccpulse("connect", "asterisk", "--queue-log", str(REPO / "tests/data/asterisk/queue_log"), "--tenant", "pbx")
            ctr = tmp_path / "ctr"
            ctr.mkdir()
            for f in (REPO / "tests/data/amazon-connect").glob("*.json*"):
                (ctr / f.name).write_bytes(f.read_bytes())
            ccpulse("connect", "amazon-connect", "--ctr", str(ctr), "--tenant", "aws")
            status = json.loads(ccpulse("connect", "status", "--format", "json").stdout)
            assert {s["connector"] for s in status} >= {"asterisk", "amazon-connect"}
            centre = tmp_path / "connectors.yaml"
            centre.write_text(f"connectors:\n  amazon_connect: [{{ctr: {ctr}, tenant: aws}}]\n")
            p = subprocess.Popen(ccpulse_cmd("connect", "run"), env={**env, "CCPULSE_CENTRE_CONFIG": str(centre)},
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            done.add("connect run")
            time.sleep(5)
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=30)
            assert p.returncode == 0 and "following 1 source(s)" in out, err
            # The HTTP intake: a token, a Twilio auth token, the server.
            token = ccpulse("intake", "token", "--tenant", "acme").stdout.strip()
            ccpulse_env = dict(env, TWILIO_AUTH_TOKEN="0123456789abcdef0123456789abcdef")
            p2 = run_cli(ccpulse_env, "intake", "twilio", "--tenant", "acme")
            done.add("intake twilio")
            assert p2.returncode == 0
            server = subprocess.Popen(ccpulse_cmd("intake", "--port", str(intake_port)), env=env, cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            done.add("intake")
            try:
                wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{intake_port}/health", timeout=2).status
                         == 200, 30, "the intake up", interval=0.5)
                ev = dict(events[0], event_id="in-1:1", interaction_id="in-1")
                req = urllib.request.Request(f"http://127.0.0.1:{intake_port}/v1/events", data=json.dumps([ev]).encode(),
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {token}"}, method="POST")
                assert urllib.request.urlopen(req, timeout=30).status == 202
            finally:
                server.send_signal(signal.SIGTERM)
                server.communicate(timeout=30)
        finally:
            w.stop()
        ccpulse("grafana", "build", "--out", str(tmp_path / "grafana"))
        assert len(list((tmp_path / "grafana").rglob("*.json"))) >= 5
        push = ccpulse("grafana", "push", "--url", f"http://127.0.0.1:{_closed_port()}", check=False)
        assert push.returncode == 2 and len(push.stderr.strip().splitlines()) == 1, push.stderr
        ccpulse("dev", "down")
        stopped = ccpulse("dev", "status", check=False)
        assert stopped.returncode == 1 and "not started" in stopped.stdout
    finally:
        run_cli(env, "dev", "down", check=False)
    assert done >= SMOKED, f"not run: {sorted(SMOKED - done)}"
