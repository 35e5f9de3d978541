"""Agent figures on real parts: an agent's own events and the contacts the interaction
fold assigns to it meet on the agent's partition and become exact time-in-state rows."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from streams.producer import from_event
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


def test_time_in_state_per_interval_and_state_now(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "centre.yaml"
    cfg.write_text("windows: {refresh_s: 0.5}\n")
    pipeline_env["CCPULSE_CENTRE_CONFIG"] = str(cfg)
    run_cli(pipeline_env, "setup")
    run_cli(pipeline_env, "db", "migrate")
    worker = Worker(pipeline_env, tmp_path / "w.log").start()
    try:
        events = [
            agent_ev("agent_login", 0, 1, queues=["sales"]), agent_ev("agent_ready", 1, 2),
            call_ev("offered", 50, "c1", 1, queue="sales"),
            call_ev("answered", 60, "c1", 2, agent_id="ann"),  # ended/wrap-up name no agent: the fold knows
            call_ev("ended", 180, "c1", 3), call_ev("wrapup_ended", 200, "c1", 4, resolved=True),
            agent_ev("agent_not_ready", 300, 3, reason="break"), agent_ev("agent_ready", 1200, 4),
            call_ev("offered", 1300, "c2", 1, queue="sales"), call_ev("answered", 1310, "c2", 2, agent_id="ann"),
        ]
        send(pipeline_env, [from_event(e) for e in events + events[:3]])  # with redeliveries
        q = ("SELECT toUnixTimestamp(interval_start) * 1000, ready_ms, busy_ms, acw_ms, not_ready_ms "
             "FROM ccpulse.agent_intervals_15m WHERE agent_id = 'ann' ORDER BY interval_start")
        first = (T0, 159 * S, 120 * S, 20 * S, 601 * S)
        wait_for(lambda: worker.query(q)[:1] == [first], 60, "the first interval of the agent")
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
