"""The connectors and the HTTP intake against one real broker, worker and ``ccpulse intake`` process
(each test its own tenant):

- ``ccpulse connect asterisk``: the documented queue_log (tests/data/asterisk) becomes exact
  records, agent pauses and dead letters; a connector SIGKILLed in the middle of a growing file,
  then restarted, loses and repeats nothing;
- ``ccpulse connect amazon-connect``: the documented contact records become exact records;
- ``ccpulse intake``: a tenant's token writes that tenant's events and no other's, bad batches are
  refused whole with the reason, a retried batch counts once;
- Twilio TaskRouter callbacks (the signature computed here from Twilio's description) become
  exact records; a callback signed with another key, or for another tenant, is refused.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import make_env
from tests.services import REPO, Broker, Worker, ccpulse_cmd, free_port, run_cli, wait_for
from tests.streams.test_amazon_connect import EXPECTED as CTR_EXPECTED

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Worker, int]]:
    """A worker and an intake process on topics of their own."""
    tmp = tmp_path_factory.mktemp("connectors")
    env = make_env(tmp, broker)
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    w = Worker(env, tmp / "worker.log").start()
    port = free_port()
    server = subprocess.Popen(ccpulse_cmd("intake", "--port", str(port)), env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=open(tmp / "intake.log", "w"))
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

LOG = REPO / "tests" / "data" / "asterisk" / "queue_log"
TRUTH = {  # tests/data/asterisk/README.md
    "1767261605.1": ("answered", 12_000, 120_000, 0),
    "1767261610.3": ("abandoned", 30_000, 0, 0),
    "1767261620.4": ("answered", 10_000, 60_000, 1),
    "1767261760.6": ("abandoned", 60_000, 0, 0),
    "1767262100.7": ("answered", 5_000, 60_000, 0),
}
RECORDS = ("SELECT interaction_id, outcome, wait_ms, talk_ms, transfers FROM ccpulse.interactions_current "
           "WHERE tenant = '{}' ORDER BY interaction_id")


def stored(w: Worker, tenant: str = "pbx") -> dict[str, tuple]:
    return {r[0]: tuple(r[1:]) for r in w.query(RECORDS.format(tenant))}


def test_the_documented_queue_log_becomes_exact_records_pauses_and_dead_letters(site: Any) -> None:
    env, w, _ = site
    p = run_cli(env, "connect", "asterisk", "--queue-log", str(LOG), "--tenant", "pbx")
    assert "23 lines read so far:" in p.stdout and "2 skipped" in p.stdout and "2 dead letters" in p.stdout
    wait_for(lambda: stored(w) == TRUTH, 60, "the five calls stored exactly", interval=1.0)
    wait_for(lambda: w.query("SELECT reason, count() FROM ccpulse.dead_letters FINAL WHERE source_topic LIKE 'asterisk:%' "
                             "GROUP BY reason ORDER BY reason")
             == [("garbled_line", 1), ("unknown_verb", 1)], 60, "the two bad lines dead-lettered", interval=1.0)
    wait_for(lambda: w.query("SELECT sum(ms) FROM ccpulse.agent_not_ready_15m WHERE tenant = 'pbx' AND agent_id = 'SIP/1002' "
                             "AND reason = 'lunch'") == [(300_000,)], 60, "SIP/1002's lunch", interval=1.0)
    kpis = w.query("SELECT sum(offered), sum(answered), sum(abandoned), sum(wait_answered_ms) "
                   "FROM ccpulse.kpi_intervals_15m WHERE tenant = 'pbx'")
    assert kpis == [(5, 3, 2, 27_000)]
    # Again: from its stored position there is nothing new; --from-start replays it all, and the same
    # event ids change nothing.
    assert "23 lines read so far:" in run_cli(env, "connect", "asterisk", "--queue-log", str(LOG), "--tenant", "pbx").stdout
    p = run_cli(env, "connect", "asterisk", "--queue-log", str(LOG), "--tenant", "pbx", "--from-start")
    assert "46 lines read so far:" in p.stdout
    time.sleep(3)
    assert stored(w) == TRUTH
    assert w.query("SELECT count(), uniqExact(event_id) FROM ccpulse.raw_events FINAL WHERE tenant = 'pbx'") == [(25, 25)]
    (mine,) = [x for x in json.loads(run_cli(env, "connect", "status", "--format", "json").stdout) if x["source"] == str(LOG)]
    assert mine["connector"] == "asterisk" and mine["dead_letters"] == 4 and mine["lines"] == 46


def test_a_connector_killed_mid_file_and_restarted_loses_and_repeats_nothing(site: Any, tmp_path: Path) -> None:
    env, w, _ = site
    lines = LOG.read_text().splitlines(keepends=True)
    live = tmp_path / "queue_log"
    live.write_text("".join(lines[:9]))
    cmd = ccpulse_cmd("connect", "asterisk", "--queue-log", str(live), "--tenant", "pbx2", "--follow")
    first = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = Path(env["CCPULSE_STATE_DIR"]) / "connectors"
    wait_for(lambda: any(json.loads(p.read_text())["source"] == str(live) and json.loads(p.read_text())["lines"] >= 9
                         for p in status.glob("*.status.json")), 60,
             "the connector through the first lines", interval=0.3)
    with live.open("a") as f:
        f.write("".join(lines[9:15]))
    time.sleep(0.3)
    first.send_signal(signal.SIGKILL)  # wherever it is: between reading, sending and storing its position
    first.wait(10)
    with live.open("a") as f:
        f.write("".join(lines[15:]))
    second = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for(lambda: stored(w, "pbx2") == TRUTH, 60, "the five calls stored exactly after the restart", interval=1.0)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    raw = w.query("SELECT count(), uniqExact(event_id) FROM ccpulse.raw_events FINAL WHERE tenant = 'pbx2'")
    assert raw[0][0] == raw[0][1] == 25  # every event once (tests/data/asterisk/README.md)


CTR_SQL = ("SELECT interaction_id, toString(direction), outcome, wait_ms, talk_ms, hold_ms, acw_ms, transfers "
       "FROM ccpulse.interactions_current WHERE tenant = 'aws' ORDER BY interaction_id")


def test_contact_records_become_exact_records(site: Any, tmp_path: Path) -> None:
    env, w, _ = site
    folder = tmp_path / "ctr"
    folder.mkdir()
    for f in (REPO / "tests" / "data" / "amazon-connect").glob("*.json*"):
        shutil.copy(f, folder / f.name)
    p = run_cli(env, "connect", "amazon-connect", "--ctr", str(folder), "--tenant", "aws")
    assert "7 contact records read so far" in p.stdout and "1 dead letters" in p.stdout

    def stored() -> dict[str, tuple]:
        return {r[0]: tuple(r[1:]) for r in w.query(CTR_SQL)}

    wait_for(lambda: stored() == CTR_EXPECTED, 60, "the five contacts stored exactly", interval=1.0)
    wait_for(lambda: w.query("SELECT reason FROM ccpulse.dead_letters FINAL WHERE source_topic LIKE 'amazon-connect:%'")
             == [("missing_field",)], 60,
             "the broken record dead-lettered", interval=1.0)
    run_cli(env, "connect", "amazon-connect", "--ctr", str(folder), "--tenant", "aws", "--from-start")
    time.sleep(3)
    assert stored() == CTR_EXPECTED
    assert w.query("SELECT count(), uniqExact(event_id) FROM ccpulse.raw_events FINAL WHERE tenant = 'aws'") == [(22, 22)]  # 6 + 2 + 5 + 4 + 5 events, each once


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


def test_a_tenants_token_writes_its_events_only_and_bad_batches_are_refused_whole(site: Any) -> None:
    env, w, port = site
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
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/stats", headers={"Authorization": f"Bearer {acme}"})
    stats = json.loads(urllib.request.urlopen(req, timeout=5).read())  # acme's own counts, nobody else's
    assert stats["tenant"] == "acme" and stats["accepted"] == 17 and stats["by_reason"] == {
        "content_type": 1, "invalid_events": 1, "invalid_json": 1, "too_large": 1}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/stats", headers={"Authorization": f"Bearer {globex}"})
    assert json.loads(urllib.request.urlopen(req, timeout=5).read())["by_reason"] == {"wrong_tenant": 1}


TW0 = int(time.time()) // 3600 * 3600 - 7200  # two hours ago: within the agents' lateness horizon, whatever ran before
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


def tw_ev(n: int, kind: str, at: int, **kw: str) -> dict[str, str]:
    return {"EventType": kind, "Sid": f"EV{n:032d}", "Timestamp": str(TW0 + at), "AccountSid": "AC1",
            "WorkspaceSid": "WS1", "TaskChannelUniqueName": "voice", **kw}


def test_task_router_callbacks_become_exact_records(site: Any) -> None:
    env, w, port = site
    run_cli({**env, "TWILIO_AUTH_TOKEN": AUTH}, "intake", "twilio", "--tenant", "flex")
    q = {"TaskQueueName": "Support", "TaskQueueSid": "WQ1"}
    events = [
        tw_ev(1, "worker.activity.update", 0, WorkerName="alice", WorkerActivityName="Available"),
        tw_ev(2, "task.created", 5, TaskSid="WT1", TaskAttributes='{"from": "+15550001"}', **q),
        tw_ev(3, "reservation.accepted", 20, TaskSid="WT1", WorkerName="alice"),
        tw_ev(4, "task.wrapup", 140, TaskSid="WT1", WorkerName="alice"),
        tw_ev(5, "task.completed", 170, TaskSid="WT1", WorkerName="alice"),      # 30 s of wrap-up
        tw_ev(6, "task.created", 30, TaskSid="WT2", **q),
        tw_ev(7, "task.canceled", 75, TaskSid="WT2", TaskCanceledReason="hangup", **q),
        tw_ev(8, "task.created", 200, TaskSid="WT3", **q),
        tw_ev(9, "reservation.created", 201, TaskSid="WT3", WorkerName="alice"),  # skipped
        tw_ev(10, "reservation.accepted", 203, TaskSid="WT3", WorkerName="alice"),
        tw_ev(11, "task.completed", 263, TaskSid="WT3", WorkerName="alice"),     # completed without a wrap-up
        tw_ev(12, "worker.activity.update", 300, WorkerName="alice", WorkerActivityName="Break"),
        tw_ev(13, "worker.activity.update", 900, WorkerName="alice", WorkerActivityName="Available"),
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


def test_connect_run_follows_every_source_the_centre_file_names(site: Any, tmp_path: Path) -> None:
    env, w, _ = site
    log = tmp_path / "queue_log"
    shutil.copy(LOG, log)
    ctr = tmp_path / "ctr"
    ctr.mkdir()
    for f in (REPO / "tests" / "data" / "amazon-connect").glob("*.json*"):
        shutil.copy(f, ctr / f.name)
    centre = tmp_path / "centre.yaml"
    centre.write_text(f"connectors:\n  asterisk: [{{queue_log: {log}, tenant: pbx3}}]\n"
                      f"  amazon_connect: [{{ctr: {ctr}, tenant: aws3}}]\n")
    run_env = {**env, "CCPULSE_CENTRE_CONFIG": str(centre)}
    p = subprocess.Popen(ccpulse_cmd("connect", "run"), env=run_env, cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: stored(w, "pbx3") == TRUTH, 60, "the queue_log's calls", interval=1.0)
        wait_for(lambda: {r[0]: tuple(r[1:]) for r in w.query(CTR_SQL.replace("'aws'", "'aws3'"))} == CTR_EXPECTED,
                 60, "the contact records", interval=1.0)
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "following 2 source(s)" in out


def test_connect_run_keeps_the_other_sources_going_while_one_fails_and_clears_its_error(site: Any,
                                                                                         tmp_path: Path) -> None:
    """A contact-record folder that is not there yet (an unmounted share): the queue_log is read
    all the same, `connect status` shows the failing source, and once the folder appears its
    records are read and the error leaves the status (issue 24)."""
    env, w, _ = site
    log = tmp_path / "queue_log"
    shutil.copy(LOG, log)
    ctr = tmp_path / "not-mounted-yet"
    centre = tmp_path / "centre.yaml"
    centre.write_text(f"connectors:\n  asterisk: [{{queue_log: {log}, tenant: pbx4}}]\n"
                      f"  amazon_connect: [{{ctr: {ctr}, tenant: aws4}}]\n")
    run_env = {**env, "CCPULSE_CENTRE_CONFIG": str(centre)}

    def failing() -> list[str]:
        rows = json.loads(run_cli(run_env, "connect", "status", "--format", "json").stdout)
        return [r["error"] for r in rows if r.get("error") and str(ctr) in str(r.get("source"))]

    p = subprocess.Popen(ccpulse_cmd("connect", "run"), env=run_env, cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: stored(w, "pbx4") == TRUTH, 60, "the queue_log's calls, beside the failing source",
                 interval=1.0)
        wait_for(failing, 30, "the failing source in connect status", interval=0.5)
        assert "FileNotFoundError" in failing()[0] and "next try in" in failing()[0]
        ctr.mkdir()
        for f in (REPO / "tests" / "data" / "amazon-connect").glob("*.json*"):
            shutil.copy(f, ctr / f.name)
        wait_for(lambda: {r[0]: tuple(r[1:]) for r in w.query(CTR_SQL.replace("'aws'", "'aws4'"))} == CTR_EXPECTED,
                 90, "the contact records once the folder is there", interval=1.0)
        wait_for(lambda: not failing(), 30, "the error gone from connect status", interval=0.5)
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
