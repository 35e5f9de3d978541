"""Twilio TaskRouter event callbacks into ``ccpulse intake`` (the form and signature as Twilio's
documentation gives them, the signature computed here independently): three tasks become exact
records, a worker's break its not-ready time, a retried callback counts once, and a callback
signed with another key, or for another tenant, is refused."""
from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.integration.test_intake import intake  # noqa: F401 -- the fixture: worker, intake process
from tests.services import run_cli, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_261_600  # 2026-01-01 10:00 UTC
AUTH = "0123456789abcdef0123456789abcdef"


def sign(key: str, url: str, form: dict[str, str]) -> str:
    """As Twilio documents it: the URL, then each parameter name and value sorted by name; HMAC-SHA1."""
    payload = url + "".join(f"{k}{form[k]}" for k in sorted(form))
    return base64.b64encode(hmac.new(key.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def callback(port: int, tenant: str, form: dict[str, str], key: str = AUTH) -> int:
    url = f"http://127.0.0.1:{port}/v1/twilio/{tenant}"
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Twilio-Signature": sign(key, url, form)})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def ev(n: int, kind: str, at: int, **kw: str) -> dict[str, str]:
    return {"EventType": kind, "Sid": f"EV{n:032d}", "Timestamp": str(T0 + at), "AccountSid": "AC1",
            "WorkspaceSid": "WS1", "TaskChannelUniqueName": "voice", **kw}


def test_task_router_callbacks_become_exact_records(intake: Any) -> None:  # noqa: F811
    env, w, port = intake
    run_cli({**env, "TWILIO_AUTH_TOKEN": AUTH}, "intake", "twilio", "--tenant", "flex")
    q = {"TaskQueueName": "Support", "TaskQueueSid": "WQ1"}
    events = [
        ev(1, "worker.activity.update", 0, WorkerName="alice", WorkerActivityName="Available"),
        ev(2, "task.created", 5, TaskSid="WT1", TaskAttributes='{"from": "+15550001"}', **q),
        ev(3, "reservation.accepted", 20, TaskSid="WT1", WorkerName="alice"),
        ev(4, "task.wrapup", 140, TaskSid="WT1", WorkerName="alice"),
        ev(5, "task.completed", 170, TaskSid="WT1", WorkerName="alice"),      # 30 s of wrap-up
        ev(6, "task.created", 30, TaskSid="WT2", **q),
        ev(7, "task.canceled", 75, TaskSid="WT2", TaskCanceledReason="hangup", **q),
        ev(8, "task.created", 200, TaskSid="WT3", **q),
        ev(9, "reservation.created", 201, TaskSid="WT3", WorkerName="alice"),  # skipped
        ev(10, "reservation.accepted", 203, TaskSid="WT3", WorkerName="alice"),
        ev(11, "task.completed", 263, TaskSid="WT3", WorkerName="alice"),     # completed without a wrap-up
        ev(12, "worker.activity.update", 300, WorkerName="alice", WorkerActivityName="Break"),
        ev(13, "worker.activity.update", 900, WorkerName="alice", WorkerActivityName="Available"),
    ]
    assert [callback(port, "flex", e) for e in events] == [200] * len(events)
    assert callback(port, "flex", events[2]) == 200                      # Twilio's retry of a callback
    assert callback(port, "flex", events[2], key="wrong") == 403          # not signed with the account's key
    assert callback(port, "other", events[2]) == 403                      # no auth token for that tenant
    assert callback(port, "flex", {"EventType": "task.created", "Sid": "EV99", "Timestamp": "soon"}) == 200
    wait_for(lambda: w.query("SELECT interaction_id, outcome, wait_ms, talk_ms, acw_ms FROM ccpulse.interactions_current "
                             "WHERE tenant = 'flex' ORDER BY interaction_id")
             == [("WT1", "answered", 15_000, 120_000, 30_000), ("WT2", "abandoned", 45_000, 0, 0),
                 ("WT3", "answered", 3_000, 60_000, 0)], 60, "the three tasks as records", interval=1.0)
    wait_for(lambda: w.query("SELECT sum(ms) FROM ccpulse.agent_not_ready_15m WHERE tenant = 'flex' "
                             "AND agent_id = 'alice' AND reason = 'Break'") == [(600_000,)], 60, "alice's break")
    wait_for(lambda: w.query("SELECT reason FROM ccpulse.dead_letters FINAL WHERE source_topic = 'twilio:flex'")
             == [("invalid_value",)], 60, "the callback with a bad time dead-lettered")
