"""``ccpulse staffing`` on a real pipeline's day: the volumes it staffs for are the simulator's,
interval by interval; Erlang A never asks for more agents than Erlang C (impatient callers take
some load away); staffed agents come from the agents' own time per state."""
from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.integration.conftest import SimulatedRun
from tests.services import run_cli

pytestmark = pytest.mark.integration
Q15 = 15 * 60_000


def test_staffing_plan_of_the_simulated_day(simulated_run: SimulatedRun) -> None:
    london = ZoneInfo("Europe/London")
    truth = Counter((r["queue"], datetime.fromtimestamp(r["offered_at_ms"] // Q15 * Q15 / 1000, london).strftime("%H:%M"))
                    for r in simulated_run.sim.truth.values()
                    if r["tenant"] == "acme" and r["offered_at_ms"] is not None
                    and datetime.fromtimestamp(r["offered_at_ms"] / 1000, london).date().isoformat() == "2026-03-02")
    p = run_cli(simulated_run.env, "staffing", "--tenant", "acme", "--day", "2026-03-02", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    offered = {(r["queue"], r["interval"]): int(r["offered"]) for r in rows if int(r["offered"])}
    assert offered == dict(truth)
    planned = [r for r in rows if r["required_erlang_a"] not in ("", "0")]
    assert len(planned) > 20
    assert all(int(r["required_erlang_a"]) <= int(r["required_erlang_c"]) for r in planned)
    assert sum(float(r["staffed"]) > 0 for r in planned) > len(planned) // 2
    chat = [r for r in planned if r["queue"] == "acme-chat"]
    assert chat and all("contacts per agent at once" in r["note"] for r in chat)  # chats count concurrency


def test_staffing_for_an_unknown_day_says_what_to_do(simulated_run: SimulatedRun) -> None:
    p = run_cli(simulated_run.env, "staffing", "--tenant", "acme", "--day", "2020-01-01", check=False)
    assert p.returncode == 2 and "no figures for tenant 'acme' on 2020-01-01" in p.stderr
