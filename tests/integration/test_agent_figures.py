"""Agent figures on real parts: an agent's own events and the contacts the interaction
fold assigns to it meet on the agent's partition and become exact time-in-state rows."""
from __future__ import annotations

import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from streams.traffic.producer import from_event
from tests.integration.pipeline_helpers import send
from tests.services import Worker, run_cli, wait_for

pytestmark = pytest.mark.integration

T0 = 1_767_258_000_000  # a quarter-hour boundary
S = 1000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def agent_ev(typ: str, t: int, n: int, **kw: Any) -> dict[str, Any]:
    return {"type": typ, "event_id": f"ann:{n}", "ts": _iso(T0 + t * S), "tenant": "acme", "agent_id": "ann", **kw}


def call_ev(typ: str, t: int, iid: str, n: int, **kw: Any) -> dict[str, Any]:
    return {"type": typ, "event_id": f"{iid}:{n}", "ts": _iso(T0 + t * S), "tenant": "acme",
            "interaction_id": iid, "channel": "voice", **kw}


def shift_events() -> list[dict[str, Any]]:
    """Ann's first half hour: login, a call, a break, a second call still going."""
    return [
        agent_ev("agent_login", 0, 1, queues=["sales"]), agent_ev("agent_ready", 1, 2),
        call_ev("offered", 50, "c1", 1, queue="sales"),
        call_ev("answered", 60, "c1", 2, agent_id="ann"),  # ended/wrap-up name no agent: the fold knows
        call_ev("ended", 180, "c1", 3), call_ev("wrapup_ended", 200, "c1", 4, resolved=True),
        agent_ev("agent_not_ready", 300, 3, reason="break"), agent_ev("agent_ready", 1200, 4),
        call_ev("offered", 1300, "c2", 1, queue="sales"), call_ev("answered", 1310, "c2", 2, agent_id="ann"),
    ]


INTERVALS_Q = ("SELECT toUnixTimestamp(interval_start) * 1000, ready_ms, busy_ms, acw_ms, not_ready_ms "
               "FROM ccpulse.agent_intervals_15m WHERE agent_id = 'ann' ORDER BY interval_start")
#: T0's quarter hour: ready 1-60 and 200-300 s, busy on c1 60-180, ACW 180-200, not ready
#: 300-900 and the login second 0-1.
FIRST = (T0, 159 * S, 120 * S, 20 * S, 601 * S)


def test_agent_figures_survive_a_sigkill_before_the_timer_wrote_them(
        pipeline_env: dict[str, str], tmp_path: Path) -> None:
    """The events are processed and committed, the states are in their changelogs, and the
    worker dies before its agent-figures timer ran: what changed was only in its memory.
    The restarted worker does not read those events again, so it must recompute the
    figures from the recovered states (back to the lateness horizon)."""
    cfg = tmp_path / "centre.yaml"
    cfg.write_text("windows: {refresh_s: 3600}\n")  # the first worker's timer never fires
    pipeline_env["CCPULSE_CENTRE_CONFIG"] = str(cfg)
    run_cli(pipeline_env, "setup")
    run_cli(pipeline_env, "db", "migrate")
    events = shift_events()
    worker = Worker(pipeline_env, tmp_path / "w1.log").start()
    try:
        send(pipeline_env, [from_event(e) for e in events])
        wait_for(lambda: worker.health()["rows_written"].get("raw_events", 0) == len(events), 60,
                 "every event processed")
        time.sleep(3)  # offsets committed (every 1 s) and the agent-activity sends handled
        assert worker.query("SELECT count() FROM ccpulse.agent_intervals") == [(0,)]
        worker.kill(signal.SIGKILL)
    finally:
        worker.stop()
    cfg.write_text("windows: {refresh_s: 0.5}\n")
    worker = Worker(pipeline_env, tmp_path / "w2.log").start()
    try:
        wait_for(lambda: worker.query(INTERVALS_Q)[:1] == [FIRST], 60, "the first interval of the agent")
        assert worker.health()["events"] == 0  # nothing read again: the figures came from the states
        now_q = "SELECT state, toUnixTimestamp64Milli(since), held FROM ccpulse.agents_now WHERE agent_id = 'ann'"
        wait_for(lambda: worker.query(now_q) == [("busy", T0 + 1310 * S, 1)], 60, "ann busy now")
        second = worker.query(INTERVALS_Q)[1]
        assert second[:2] == (T0 + 900 * S, 110 * S) and second[4] == 300 * S
    finally:
        worker.stop()


def test_time_in_state_per_interval_and_state_now(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "centre.yaml"
    cfg.write_text("windows: {refresh_s: 0.5}\n")
    pipeline_env["CCPULSE_CENTRE_CONFIG"] = str(cfg)
    run_cli(pipeline_env, "setup")
    run_cli(pipeline_env, "db", "migrate")
    worker = Worker(pipeline_env, tmp_path / "w.log").start()
    try:
        events = shift_events()
        send(pipeline_env, [from_event(e) for e in events + events[:3]])  # with redeliveries
        q = INTERVALS_Q
        wait_for(lambda: worker.query(q)[:1] == [FIRST], 60, "the first interval of the agent")
        reasons = worker.query("SELECT reason, ms FROM ccpulse.agent_not_ready_15m WHERE agent_id = 'ann' "
                               f"AND toUnixTimestamp(interval_start) * 1000 = {T0} ORDER BY reason")
        assert reasons == [("break", 600 * S), ("logged_in", 1 * S)]
        (occ,) = worker.query(f"SELECT occupancy FROM ccpulse.agent_intervals_15m WHERE agent_id = 'ann' "
                              f"AND toUnixTimestamp(interval_start) * 1000 = {T0}")[0]
        assert occ == pytest.approx(140 / 299)
        # Now (event clock at t = 1310 s and beyond): busy with c2, in the sales queue.
        now_q = "SELECT state, toUnixTimestamp64Milli(since), held, queues FROM ccpulse.agents_now WHERE agent_id = 'ann'"
        wait_for(lambda: worker.query(now_q) == [("busy", T0 + 1310 * S, 1, ["sales"])], 60, "ann busy now")
        assert worker.query("SELECT queue, state, agents FROM ccpulse.agents_by_state") == [("sales", "busy", 1)]
        second = worker.query(q)[1]
        assert second[:2] == (T0 + 900 * S, 110 * S) and second[4] == 300 * S and second[2] >= 0
        handled = worker.query("SELECT handled, talk_ms, acw_ms FROM ccpulse.agent_handled_15m WHERE agent_id = 'ann'")
        assert handled == [(1, 120 * S, 20 * S)]
    finally:
        worker.stop()
