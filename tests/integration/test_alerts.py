"""SLA alerts on real parts: traffic breaks and then restores service level; the worker's
alert agent sums the partitions' live figures, fires once and resolves once, writes the
history to ClickHouse and delivers signed webhooks to a real local HTTP server."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams.worker.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from streams.traffic.producer import from_event
from tests.integration.pipeline_helpers import send
from tests.services import Worker, free_port, run_cli, wait_for

pytestmark = pytest.mark.integration

T0 = 1_767_258_000_000
CENTRE = """
tenants: {acme: {queues: {sales: {sl_goal: 0.8, sl_threshold_s: 20}}}}
windows: {rolling_minutes: [5, 60], refresh_s: 0.5}
alerts:
  rules:
    - {name: sl-goal, metric: service_level, threshold: goal, window_minutes: 60, min_sample: 5,
       for_s: 0, recover_for_s: 0, severity: critical, queues: [sales]}
"""


class Recorder(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 -- http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.received.append((dict(self.headers), body))
        self.send_response(400 if self.path == "/refuse" else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def call(iid: str, t: int, wait_s: int) -> list[dict[str, Any]]:
    def ev(typ: str, at: int, n: int, **kw: Any) -> dict[str, Any]:
        return {"type": typ, "event_id": f"{iid}:{n}", "ts": _iso(at), "tenant": "acme", "interaction_id": iid,
                "channel": "voice", **kw}
    return [ev("offered", t, 1, queue="sales"), ev("answered", t + wait_s * 1000, 2, agent_id="a1")]


def start(pipeline_env: dict[str, str], tmp_path: Path, centre: str = CENTRE,
          hook_path: str | None = "/hook", **env: str) -> tuple[Worker, ThreadingHTTPServer]:
    """A webhook receiver on a free port, this test's centre file, topics, tables and a worker."""
    Recorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = tmp_path / "centre.yaml"
    cfg.write_text(centre)
    pipeline_env["CCPULSE_CENTRE_CONFIG"] = str(cfg)
    if hook_path:
        pipeline_env["CCPULSE_ALERT_WEBHOOK_URL"] = f"http://127.0.0.1:{server.server_port}{hook_path}"
    pipeline_env.update(env)
    run_cli(pipeline_env, "setup")
    run_cli(pipeline_env, "db", "migrate")
    return Worker(pipeline_env, tmp_path / "w1.log").start(), server


def test_breach_fires_once_and_recovery_resolves_once(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    worker, server = start(pipeline_env, tmp_path, CCPULSE_ALERT_WEBHOOK_SECRET="s3cret")
    try:
        # Ten calls wait 60 s (SL 0 %): breach. Then 40 answered in 5 s: 40/50 = 80 %, back at goal.
        bad = [e for i in range(10) for e in call(f"bad{i}", T0 + i * 1000, 60)]
        send(pipeline_env, [from_event(e) for e in bad])
        q = "SELECT status, rule, severity, queue, value, threshold FROM ccpulse.alerts FINAL ORDER BY at, status"
        wait_for(lambda: worker.query(q) == [("firing", "sl-goal", "critical", "sales", 0.0, 0.8)], 60,
                 "the alert to fire")
        good = [e for i in range(40) for e in call(f"good{i}", T0 + 100_000 + i * 1000, 5)]
        send(pipeline_env, [from_event(e) for e in good])
        wait_for(lambda: [r[0] for r in worker.query(q)] == ["firing", "resolved"], 60, "the alert to resolve")
        rows = worker.query("SELECT alert_id, status, value FROM ccpulse.alerts FINAL ORDER BY at")
        assert rows[0][0] == rows[1][0] and rows[0][0].startswith("sl-goal/acme/sales/voice/2026")  # one episode
        assert rows[1][2] == pytest.approx(0.8)
        assert worker.query("SELECT status FROM ccpulse.alerts_current") == [("resolved",)]
        wait_for(lambda: len(Recorder.received) == 2, 30, "two webhooks")
        statuses = []
        for headers, body in Recorder.received:
            assert verify(b"s3cret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
            payload = json.loads(body)
            statuses.append((payload["status"], payload["alert_id"] == rows[0][0], payload["queue"]))
        assert statuses == [("firing", True, "sales"), ("resolved", True, "sales")]
        h = worker.health()
        assert h["alerts"] == 2 and [n["sent"] for n in h["notifiers"]] == [2, 2]
        # The command line: current states through the worker, and a test notification.
        out = run_cli(pipeline_env, "alerts", "list", "--format", "csv").stdout
        assert "sl-goal (service_level < goal, 60 min, critical)" in out and "resolved,critical,sl-goal" in out
        run_cli(pipeline_env, "alerts", "test", "sl-goal")
        wait_for(lambda: len(Recorder.received) == 3, 30, "the test webhook")
        assert json.loads(Recorder.received[2][1])["status"] == "test"
        p = run_cli(pipeline_env, "alerts", "test", "nope", check=False)
        assert p.returncode == 2 and "rules: sl-goal" in p.stderr
        down = {**pipeline_env, "CCPULSE_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/hook"}
        p = run_cli(down, "alerts", "test", "sl-goal", check=False, timeout=90)
        assert p.returncode == 2 and "not delivered" in p.stderr and "Traceback" not in p.stderr
    finally:
        worker.stop()
        server.shutdown()


def test_a_worker_killed_while_firing_neither_repeats_nor_drops_the_alert(pipeline_env: dict[str, str],
                                                                         tmp_path: Path) -> None:
    import signal

    worker, server = start(pipeline_env, tmp_path)
    try:
        send(pipeline_env, [from_event(e) for i in range(10) for e in call(f"bad{i}", T0 + i * 1000, 60)])
        wait_for(lambda: len(Recorder.received) == 1, 60, "the firing webhook")
        worker.kill(signal.SIGKILL)
        worker = Worker(pipeline_env, tmp_path / "w2.log").start()
        send(pipeline_env, [from_event(e) for i in range(40) for e in call(f"good{i}", T0 + 100_000 + i * 1000, 5)])
        # A redelivered "firing" may arrive first (at-least-once): wait for the resolved one itself.
        wait_for(lambda: any(json.loads(b)["status"] == "resolved" for _, b in Recorder.received), 60,
                 "the resolved webhook")
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.alerts FINAL")[0][0] == 2, 30, "two alert rows")
        # Delivery is at-least-once: a webhook redelivered after the kill repeats the same
        # (alert_id, status, at_ms), which receivers de-duplicate on; a new firing would differ.
        got = list(dict.fromkeys((json.loads(b)["status"], json.loads(b)["alert_id"], json.loads(b)["at_ms"])
                                 for _, b in Recorder.received))
        assert [g[0] for g in got] == ["firing", "resolved"] and got[0][1] == got[1][1]
    finally:
        worker.stop()
        server.shutdown()


def test_an_alert_the_receiver_refuses_goes_to_the_dead_letters(pipeline_env: dict[str, str],
                                                                tmp_path: Path) -> None:
    worker, server = start(pipeline_env, tmp_path, hook_path="/refuse")
    try:
        send(pipeline_env, [from_event(e) for i in range(10) for e in call(f"bad{i}", T0 + i * 1000, 60)])
        q = "SELECT reason, error, key, payload FROM ccpulse.dead_letters FINAL"
        wait_for(lambda: len(worker.query(q)) == 1, 60, "the refused alert in dead_letters")
        reason, error, key, payload = worker.query(q)[0]
        assert reason == "alert_undelivered" and "HTTP 400" in error and len(Recorder.received) == 1
        assert key == json.loads(payload)["alert_id"] and json.loads(payload)["status"] == "firing"
        assert worker.query("SELECT count() FROM ccpulse.alerts FINAL") == [(1,)]  # the history keeps it
    finally:
        worker.stop()
        server.shutdown()


def test_too_few_ready_agents_while_contacts_wait(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    """Agents' states (agent partitions) and waiting contacts (interaction partitions) meet
    on the queue's own key in the alerts agent."""
    worker, server = start(pipeline_env, tmp_path, """
tenants: {acme: {queues: {sales: {}}}}
windows: {refresh_s: 0.5}
alerts:
  rules:
    - {name: staff, metric: ready_agents_while_waiting, threshold: 2, for_s: 0, recover_for_s: 0}
""", hook_path=None)
    try:
        def agent(typ: str, t: int, n: int, **kw: Any) -> dict[str, Any]:
            return {"type": typ, "event_id": f"ann:{n}", "ts": _iso(T0 + t * 1000), "tenant": "acme",
                    "agent_id": "ann", **kw}

        def contact(typ: str, t: int, iid: str, n: int, **kw: Any) -> dict[str, Any]:
            return {"type": typ, "event_id": f"{iid}:{n}", "ts": _iso(T0 + t * 1000), "tenant": "acme",
                    "interaction_id": iid, "channel": ch, **kw}

        ch = "voice"
        events = [agent("agent_login", 0, 1, queues=["sales"]), agent("agent_ready", 1, 2),
                  contact("offered", 10, "c1", 1, queue="sales")]
        ch = "chat"  # the rule counts the whole queue: every channel
        events.append(contact("offered", 11, "c2", 1, queue="sales"))
        send(pipeline_env, [from_event(e) for e in events])
        q = "SELECT status, value, threshold, channel FROM ccpulse.alerts FINAL ORDER BY at, status"
        wait_for(lambda: worker.query(q) == [("firing", 1.0, 2.0, "*")], 60, "the staffing alert")
        ch = "voice"
        send(pipeline_env, [from_event(contact("abandoned", 30, "c1", 2))])
        ch = "chat"
        send(pipeline_env, [from_event(contact("abandoned", 31, "c2", 2))])
        wait_for(lambda: [r[0] for r in worker.query(q)] == ["firing", "resolved"], 60, "resolved once the queue is empty")
    finally:
        worker.stop()
        server.shutdown()
