"""Teams with history, on the embedded engine: an agent's intervals and handled contacts belong
to the team its latest login named then, else to the centre file's team; one who moves keeps
its earlier figures with its earlier team. Checked against figures worked out by hand."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from schemas.events import parse_event
from streams.clickhouse import ClickHouse, rows
from streams.clickhouse.connect import connect
from streams.clickhouse.migrate import migrate
from streams.config.centre import CentreConfig, load_centre
from streams.domain.agents import IntervalFigures

T0 = 1_772_352_000_000  # 2026-03-01 08:00 UTC
Q = 15 * 60_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


@pytest.fixture
def ch(tmp_path: Path) -> Iterator[ClickHouse]:
    c = connect(f"chdb://{tmp_path / 'chdb'}", "teamtest")
    migrate(c)
    yield c
    c.close()


def login(agent: str, at: int, n: int, **team: Any) -> tuple[Any, str, int, int, bytes]:
    e = {"type": "agent_login", "event_id": f"{agent}:{n}", "ts": iso(at), "tenant": "acme", "agent_id": agent,
         "queues": ["sales"], **team}
    raw = json.dumps(e).encode()
    return parse_event(raw), "agent-events", 0, n, raw


def interval_row(agent: str, start: int) -> tuple[str, str, dict[int, Any]]:
    """A quarter hour a third each ready, busy and in after-call work."""
    f = IntervalFigures(held_ms=Q // 3 * 2, max_held=1)
    f.ms.update(ready=Q // 3, busy=Q // 3, acw=Q // 3)
    return "acme", agent, {start: f}


def test_a_moved_agent_keeps_its_history_and_unnamed_agents_take_the_centre_files_team(ch: ClickHouse,
                                                                                       tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("tenants: {acme: {teams: {blue: {department: sales, agents: [ann, cy]}}}}\n")
    centre: CentreConfig = load_centre(tmp_path / "c.yaml")
    ch.insert(rows.TEAM_CONFIG_TABLE, rows.team_config_batch(centre, 1))
    # ann's logins name red, then green from the third interval; cy's never name one; bo is in no team.
    ch.insert(rows.RAW_EVENTS_TABLE, rows.raw_event_batch([
        login("ann", T0 + 60_000, 1, team="red", department="sales"),
        login("ann", T0 + 2 * Q + 5_000, 2, team="green", department="support"),
        login("cy", T0, 1), login("bo", T0, 1)]))
    figures = [interval_row(a, T0 + i * Q) for a in ("ann", "cy", "bo") for i in range(4)]
    intervals, reasons = rows.agent_batches(figures, 1)
    ch.insert(rows.AGENT_INTERVALS_TABLE, intervals)
    got = ch.query("SELECT agent_id, toUnixTimestamp(interval_start) * 1000 - %d, team, department "
                   "FROM teamtest.agent_intervals_team ORDER BY agent_id, interval_start" % T0).rows
    assert [tuple(r) for r in got] == [
        ("ann", 0, "red", "sales"), ("ann", Q, "red", "sales"),          # the login at 08:01 counts from 08:00
        ("ann", 2 * Q, "green", "support"), ("ann", 3 * Q, "green", "support"),
        ("bo", 0, "", ""), ("bo", Q, "", ""), ("bo", 2 * Q, "", ""), ("bo", 3 * Q, "", ""),
        ("cy", 0, "blue", "sales"), ("cy", Q, "blue", "sales"), ("cy", 2 * Q, "blue", "sales"),
        ("cy", 3 * Q, "blue", "sales")]
    teams = ch.query("SELECT team, sum(agents), sum(logged_in_ms), any(occupancy), any(available_share) "
                     "FROM teamtest.team_intervals_15m GROUP BY team ORDER BY team").rows
    assert [tuple(r[:3]) for r in teams] == [("blue", 4, 4 * Q), ("green", 2, 2 * Q), ("red", 2, 2 * Q)]
    assert all(r[3] == pytest.approx(2 / 3) and r[4] == pytest.approx(1.0) for r in teams)

    # The centre file changes: cy leaves blue for red. The latest write is the configuration in force.
    (tmp_path / "c.yaml").write_text("tenants: {acme: {teams: {blue: {agents: [ann]}, red: {agents: [cy]}}}}\n")
    ch.insert(rows.TEAM_CONFIG_TABLE, rows.team_config_batch(load_centre(tmp_path / "c.yaml"), 2))
    assert ch.query("SELECT agent_id, team FROM teamtest.team_config_current ORDER BY agent_id").rows == [
        ("ann", "blue"), ("cy", "red")]
