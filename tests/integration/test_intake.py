"""``ccpulse intake`` as its own process in front of a real broker and worker: a tenant's token
writes that tenant's events and no other's, bad batches are refused whole with the reason, a
retried batch counts once, and accepted events become records."""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import make_env
from tests.services import REPO, Broker, Worker, ccpulse_cmd, free_port, run_cli, wait_for

pytestmark = pytest.mark.integration


def post(port: int, body: Any, token: str | None, content_type: str = "application/json") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type, **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def too_large(port: int, token: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/v1/events")
    for k, v in (("Content-Type", "application/json"), ("Authorization", f"Bearer {token}"),
                 ("Content-Length", str(20 * 1024 * 1024))):
        conn.putheader(k, v)
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def call(tenant: str, iid: str, t0: datetime, answered_after_s: int) -> list[dict[str, Any]]:
    def ev(typ: str, at: datetime, n: int, **kw: Any) -> dict[str, Any]:
        return {"type": typ, "event_id": f"{iid}:{n}", "ts": at.isoformat(), "tenant": tenant, "interaction_id": iid,
                "channel": "chat", **kw}
    a = t0 + timedelta(seconds=answered_after_s)
    return [ev("offered", t0, 1, queue="web"), ev("answered", a, 2, agent_id="bot-desk"),
            ev("ended", a + timedelta(seconds=90), 3), ev("wrapup_ended", a + timedelta(seconds=100), 4)]


@pytest.fixture
def intake(broker: Broker, tmp_path: Path) -> Iterator[tuple[dict[str, str], Worker, int]]:
    env = make_env(tmp_path, broker)
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    w = Worker(env, tmp_path / "worker.log").start()
    port = free_port()
    server = subprocess.Popen(ccpulse_cmd("intake", "--port", str(port)), env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "intake.log", "w"))
    try:
        wait_for(lambda: _up(port), 30, "the intake listening", interval=0.2)
        yield env, w, port
    finally:
        server.terminate()
        server.wait(20)
        w.stop()


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
            return True
    except OSError:
        return False


def test_a_tenants_token_writes_its_events_only_and_bad_batches_are_refused_whole(intake: Any) -> None:
    env, w, port = intake
    acme = run_cli(env, "intake", "token", "--tenant", "acme").stdout.strip()
    globex = run_cli(env, "intake", "token", "--tenant", "globex").stdout.strip()
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    batch = call("acme", "w-1", t0, 12) + call("acme", "w-2", t0 + timedelta(minutes=1), 40)
    assert post(port, batch, None)[0] == 401
    assert post(port, batch, "cci_not-a-token")[0] == 401
    assert post(port, batch, acme, content_type="text/plain")[0] == 415
    status, body = post(port, batch, globex)  # another tenant's token
    assert status == 403 and body["reason"] == "wrong_tenant" and body["indexes"] == list(range(8))
    bad = batch[:3] + [{**batch[3], "ts": "yesterday"}, {"type": "nonsense"}]
    status, body = post(port, bad, acme)
    assert status == 400 and [(e["index"], e["reason"]) for e in body["errors"]] == [(3, "invalid_value"),
                                                                                      (4, "unknown_type")]
    assert post(port, b"{not json", acme)[0] == 400
    assert too_large(port, acme) == 413  # refused on its Content-Length, before the body is read
    assert post(port, batch, acme) == (202, {"accepted": 8})
    assert post(port, batch, acme) == (202, {"accepted": 8})  # a client's retry: the same ids count once
    assert post(port, batch[0], acme) == (202, {"accepted": 1})  # a single event, not a list
    wait_for(lambda: w.query("SELECT interaction_id, wait_ms, talk_ms FROM ccpulse.interactions_current "
                             "WHERE tenant = 'acme' ORDER BY interaction_id") == [("w-1", 12_000, 90_000),
                                                                                ("w-2", 40_000, 90_000)],
             60, "the accepted contacts as records", interval=1.0)
    assert w.query("SELECT count() FROM ccpulse.raw_events FINAL WHERE tenant = 'acme'") == [(8,)]
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    assert health["accepted"] == 17 and health["by_reason"]["wrong_tenant"] == 1
