"""The worker's other paths on real parts: bad input, timeouts, and queries through it."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from streams.traffic.producer import Outgoing, from_event
from tests.integration.pipeline_helpers import send
from tests.services import Worker, run_cli, wait_for

pytestmark = pytest.mark.integration

T0 = 1_767_258_000_000


def ev(typ: str, t_ms: int, iid: str, n: int, **kw: Any) -> dict[str, Any]:
    ts = datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
    return {"type": typ, "event_id": f"{iid}:{n}", "ts": ts, "tenant": "acme", "interaction_id": iid,
            "channel": "voice", **kw}


def call(iid: str, t: int) -> list[dict[str, Any]]:
    return [ev("offered", t, iid, 1, queue="sales"), ev("answered", t + 20_000, iid, 2, agent_id="a1"),
            ev("ended", t + 140_000, iid, 3), ev("wrapup_ended", t + 150_000, iid, 4, resolved=True)]


def same_partition_as(key: str, partitions: int) -> str:
    """Another interaction id that Kafka's default partitioner puts on the same partition."""
    from streams.domain.keys import partition_of

    want = partition_of(key.encode(), partitions)
    return next(k for i in range(1000) if partition_of((k := f"later{i}").encode(), partitions) == want)


def _start(env: dict[str, str], tmp_path: Path) -> Worker:
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    return Worker(env, tmp_path / "worker.log").start()


def test_bad_messages_go_to_dead_letters_and_good_ones_still_count(pipeline_env: dict[str, str],
                                                                   tmp_path: Path) -> None:
    """Every reason, once; and the caps: a contact past its event cap is closed and flagged,
    new contacts past the open-contact cap wait in the dead letters, an oversized message's
    dead letter fits the broker."""
    env = dict(pipeline_env, CCPULSE_MAX_EVENTS_PER_INTERACTION="10", CCPULSE_MAX_OPEN_CONTACTS="6",
               CCPULSE_INTERACTION_TIMEOUT_S="60")  # the open-contact count is refreshed every 6 s
    worker = _start(env, tmp_path)
    try:
        good = [m for i in range(5) for m in map(from_event, call(f"g{i}", T0 + i * 1000))]
        ok = call("x", T0)[0]
        bad = [
            Outgoing("events", b"k1", b"{not json"),
            Outgoing("events", b"k2", b"\xff\xfe\x00"),
            Outgoing("events", b"x", json.dumps({**ok, "type": "teleported"}).encode()),
            Outgoing("events", b"x", json.dumps({k: v for k, v in ok.items() if k != "ts"}).encode()),
            Outgoing("events", b"x", json.dumps({**ok, "priority": -1}).encode()),
            Outgoing("events", b"wrong-key", json.dumps(ok).encode()),
            Outgoing("agent_events", b"a1", json.dumps(ok).encode()),
            Outgoing("events", b"x", json.dumps({**ok, "ts": "1970-01-01T00:00:00Z"}).encode()),
            Outgoing("events", b"x", json.dumps({**ok, "ts": "2999-01-01T00:00:00Z"}).encode()),
            Outgoing("events", b"x", json.dumps({**ok, "note": "x" * 1_200_000}).encode()),  # over the broker's 1 MB
            Outgoing("events", b"x", json.dumps({**ok, "mood": "happy"}).encode()),
        ]
        # A producer in a loop: 2 + 2 x 12 events on one contact, 10 allowed.
        loop = [ev("offered", T0, "loop", 1, queue="sales"), ev("answered", T0 + 5_000, "loop", 2, agent_id="a2")]
        loop += [ev(typ, T0 + 10_000 + k * 1000, "loop", 3 + k, ) for k, typ in
                 enumerate(["hold_started", "hold_ended"] * 12)]
        mixed = good[:10] + bad + good[10:] + [from_event(e) for e in loop]
        send(env, mixed)
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.dead_letters FINAL")[0][0] == len(bad) + 16, 60,
                 "dead letters stored")
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == 6, 60,
                 "good interactions stored")
        reasons = sorted(r[0] for r in worker.query("SELECT reason FROM ccpulse.dead_letters FINAL "
                                                    "WHERE reason != 'too_many_events'"))
        assert reasons == sorted(["invalid_json", "invalid_utf8", "unknown_type", "missing_field",
                                  "invalid_value", "key_mismatch", "wrong_topic", "timestamp_too_old",
                                  "timestamp_in_future", "too_large", "unknown_field"])
        by_reason = dict(worker.query("SELECT reason, sum(messages) FROM ccpulse.dead_letters_by_reason GROUP BY reason"))
        assert by_reason == {**{r: 1 for r in reasons}, "too_many_events": 16}
        payloads = {bytes.fromhex(r[0]) for r in worker.query("SELECT hex(payload) FROM ccpulse.dead_letters FINAL "
                                                              "WHERE reason != 'too_many_events'")}
        huge = bad[9].value
        assert payloads == {m.value for m in bad if m is not bad[9]} | {huge[:64 * 1024]}
        (error,) = worker.query("SELECT error FROM ccpulse.dead_letters FINAL WHERE reason = 'too_large'")[0]
        assert f"of {len(huge):,} bytes" in error and hashlib.sha256(huge).hexdigest() in error
        refused = {json.loads(bytes.fromhex(r[0]))["event_id"] for r in worker.query(
            "SELECT hex(payload) FROM ccpulse.dead_letters FINAL WHERE reason = 'too_many_events'")}
        assert refused == {e["event_id"] for e in loop[10:]}  # the first ten are the contact's
        rows = worker.query("SELECT interaction_id, wait_ms, talk_ms, acw_ms FROM ccpulse.interactions FINAL "
                            "WHERE interaction_id != 'loop' ORDER BY interaction_id")
        assert rows == [(f"g{i}", 20_000, 120_000, 10_000) for i in range(5)]
        assert worker.query("SELECT n_events, holds, closed_by_timeout, anomalies FROM ccpulse.interactions FINAL "
                            "WHERE interaction_id = 'loop'") == [(10, 4, True, ["too_many_events"])]
        # Open contacts: six new ones came, none is open now (the loop's is closed); six more
        # may open, the other two wait in the dead letters.
        wait_for(lambda: worker.health()["limits"]["open_contacts"] == 0, 30, "the open-contact count refreshed")
        send(env, [from_event(ev("offered", T0 + 200_000 + i, f"open{i}", 1, queue="sales")) for i in range(8)])
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.dead_letters FINAL "
                                      "WHERE reason = 'too_many_open_contacts'")[0][0] == 2, 60, "the two refused")
        wait_for(lambda: worker.health()["limits"]["open_contacts"] == 6, 30, "six open")
        assert worker.health()["limits"]["near_limit"] is True
    finally:
        worker.stop()


def test_interaction_without_final_event_is_closed_by_timeout_then_corrected(pipeline_env: dict[str, str],
                                                                             tmp_path: Path) -> None:
    pipeline_env["CCPULSE_INTERACTION_TIMEOUT_S"] = "60"
    worker = _start(pipeline_env, tmp_path)
    try:
        stuck = call("stuck", T0)[:2]  # offered, answered; the end never comes (yet)
        # Event time moves 10 minutes on, on the same partition: each partition keeps its own
        # event clock (a quiet one is moved on by the wall clock alone).
        later = call(same_partition_as("stuck", 4), T0 + 10 * 60_000)
        send(pipeline_env, map(from_event, stuck + later))
        q = "SELECT outcome, closed_by_timeout, wait_ms, talk_ms FROM ccpulse.interactions FINAL WHERE interaction_id = 'stuck'"
        wait_for(lambda: worker.query(q) == [("answered", 1, 20_000, 0)], 60, "the stuck interaction closed by timeout")
        send(pipeline_env, map(from_event, call("stuck", T0)[2:]))
        wait_for(lambda: worker.query(q) == [("answered", 0, 20_000, 120_000)], 60, "the late end applied")
        assert worker.health()["timed_out"] == 1
    finally:
        worker.stop()


def test_sql_command_goes_through_the_worker_then_direct(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    worker = _start(pipeline_env, tmp_path)
    try:
        send(pipeline_env, map(from_event, call("s1", T0) + call("s2", T0)))
        wait_for(lambda: worker.query("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == 2, 60, "stored")
        p = run_cli(pipeline_env, "sql", "SELECT interaction_id, talk_ms FROM ccpulse.interactions FINAL "
                                         "ORDER BY interaction_id", "--format", "csv")
        assert p.stdout.splitlines() == ["interaction_id,talk_ms", "s1,120000", "s2,120000"]
        p = run_cli(pipeline_env, "sql", "DROP TABLE ccpulse.interactions", check=False)
        assert p.returncode == 2 and "read-only" in p.stderr
    finally:
        worker.stop()
    p = run_cli(pipeline_env, "sql", "SELECT count() FROM ccpulse.interactions FINAL", "--format", "json")
    assert json.loads(p.stdout) == [{"count()": 2}]
