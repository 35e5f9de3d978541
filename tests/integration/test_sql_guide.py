"""docs/sql-guide.md: every query in it runs on a real pipeline's output, and the figures the
examples give agree with a count straight from the simulator's ground truth."""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.integration.conftest import SimulatedRun

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "sql-guide.md"
Q15 = 15 * 60_000


def examples() -> dict[str, str]:
    """Title of the section above it -> SQL, for every ```sql block of the guide."""
    out: dict[str, str] = {}
    title = "intro"
    for block in re.split(r"^(#+ .*)$", GUIDE.read_text(), flags=re.M):
        if block.startswith("#"):
            title = block.lstrip("# ").strip()
            continue
        for i, sql in enumerate(re.findall(r"```sql\n(.*?)```", block, flags=re.S)):
            out[title if not i else f"{title} {i + 1}"] = sql.strip()
    return out


def test_the_guide_has_the_examples_the_data_team_asked_for() -> None:
    assert {"Busiest intervals", "Service level by weekday and hour", "Agents' AHT distribution",
            "Repeat contacts", "A client's monthly bill", "Billing by started minute", "Campaign results",
            "IVR containment", "Quality beside satisfaction", "Team report"} <= set(examples())


@pytest.mark.parametrize("title", sorted(examples()))
def test_every_example_runs_and_returns_rows(simulated_run: SimulatedRun, title: str) -> None:
    assert simulated_run.query(examples()[title]), f"{title}: no rows"


def test_view_columns_all_have_comments(simulated_run: SimulatedRun) -> None:
    rows = simulated_run.query(examples()["SQL guide for the data team"])
    assert {r[0] for r in rows} == {"contacts", "interval_kpis", "daily_kpis", "agent_daily",
                                    "channel_mix_daily", "client_billing_daily"}
    assert [r[:2] for r in rows if not r[3]] == []


def test_busiest_interval_matches_the_ground_truth(simulated_run: SimulatedRun) -> None:
    per = Counter((r["tenant"], r["offered_at_ms"] - r["offered_at_ms"] % Q15) for r in simulated_run.sim.truth.values()
                  if r["offered_at_ms"] is not None)
    top = simulated_run.query(examples()["Busiest intervals"])
    assert [r[2] for r in top] == sorted(per.values(), reverse=True)[:10]


def test_repeat_contacts_match_the_ground_truth(simulated_run: SimulatedRun) -> None:
    by_customer: dict[tuple, list] = defaultdict(list)
    for r in simulated_run.sim.truth.values():
        if r["customer_id"] is not None:
            by_customer[(r["tenant"], r["customer_id"])].append(r)
    want: Counter = Counter()
    for (tenant, _), contacts in by_customer.items():
        contacts.sort(key=lambda r: r["offered_at_ms"])
        for r, nxt in zip(contacts, contacts[1:]):
            # the view's times are whole seconds apart at this grain: compare as ClickHouse does
            if r["outcome"] == "answered" and nxt["offered_at_ms"] // 1000 - r["offered_at_ms"] // 1000 <= 7 * 86_400:
                want[tenant] += 1
    got = {r[0]: r[1] for r in simulated_run.query(examples()["Repeat contacts"])}
    assert got == dict(want)


def test_aht_distribution_counts_every_handled_contact_once(simulated_run: SimulatedRun) -> None:
    rows = simulated_run.query(examples()["Agents' AHT distribution"])
    truth = [r for r in simulated_run.sim.truth.values() if r["outcome"] == "answered"
             and r["wrapup_ended_at_ms"] is not None and r["agent_id"] is not None]
    assert sum(r[1] for r in rows) == len(truth)
    per_agent = Counter(r["agent_id"] for r in truth)
    assert {r[0]: r[1] for r in rows} == dict(per_agent)
    assert all(r[3] <= r[4] for r in rows)  # p50 <= p90


def test_monthly_bill_matches_the_ground_truth(simulated_run: SimulatedRun) -> None:
    # Billing counts the contacts of the client's queues: not outbound attempts (campaigns bill apart).
    truth = [r for r in simulated_run.sim.truth.values() if r["direction"] != "outbound"]
    handled = Counter(r["tenant"] for r in truth if r["outcome"] == "answered" and r["wrapup_ended_at_ms"])
    talk: dict[str, float] = defaultdict(float)
    for r in truth:
        if r["outcome"] == "answered" and r["wrapup_ended_at_ms"]:
            talk[r["tenant"]] += r["talk_ms"] / 60_000
    rows = simulated_run.query(examples()["A client's monthly bill"])
    got_handled: Counter = Counter()
    got_talk: dict[str, float] = defaultdict(float)
    for tenant, _month, n, minutes, _handle in rows:
        got_handled[tenant] += n
        got_talk[tenant] += minutes
    assert got_handled == handled
    for t in handled:
        assert got_talk[t] == pytest.approx(talk[t], abs=0.01 * len(rows))
    started: Counter = Counter()
    for r in truth:
        if r["outcome"] == "answered" and r["wrapup_ended_at_ms"]:
            started[r["tenant"]] += -(-r["talk_ms"] // 60_000)
    by_day: Counter = Counter()
    for tenant, _month, n, minutes in simulated_run.query(examples()["Billing by started minute"]):
        by_day[tenant] += minutes
    assert by_day == started and sum(started.values()) > sum(talk.values())  # per contact, not summed talk
    billed = simulated_run.query(examples()["Billing by started minute 2"])
    acme = [r for r in truth if r["tenant"] == "acme" and r["outcome"] == "answered" and r["wrapup_ended_at_ms"]]
    assert sum(r[2] for r in billed) == len(acme)
    assert sum(r[3] for r in billed) == sum(-(-r["talk_ms"] // 60_000) for r in acme)


def test_campaign_and_ivr_examples_match_the_ground_truth(simulated_run: SimulatedRun) -> None:
    truth = simulated_run.sim.truth.values()
    attempts = Counter(r["campaign"] for r in truth if r["direction"] == "outbound")
    got: Counter = Counter()
    for _tenant, campaign, _day, n, *_ in simulated_run.query(examples()["Campaign results"]):
        got[campaign] += n
    assert got == attempts and attempts
    sessions = Counter(r["tenant"] for r in truth if r["ivr_entered_at_ms"] is not None)
    served = Counter(r["tenant"] for r in truth if r["ivr_result"] == "self_served")
    per_tenant: Counter = Counter()
    contained: Counter = Counter()
    for tenant, _hour, n, containment, *_ in simulated_run.query(examples()["IVR containment"]):
        per_tenant[tenant] += n
        contained[tenant] += round(n * containment)
    assert per_tenant == sessions and contained == served
    evaluated = Counter(r["tenant"] for r in truth if r["qa_evaluations"])
    rows = simulated_run.query(examples()["Quality beside satisfaction"])
    assert sum(r[3] for r in rows) == sum(evaluated.values()) > 0


def test_every_quality_evaluation_is_in_the_evaluations_view(simulated_run: SimulatedRun) -> None:
    truth = [r for r in simulated_run.sim.truth.values() if r["qa_evaluations"]]
    rows = simulated_run.query("SELECT tenant, interaction_id, score, critical_failure, length(mapKeys(sections)) "
                               "FROM ccpulse.qa_latest ORDER BY tenant, interaction_id")
    want = sorted((r["tenant"], r["interaction_id"], r["qa_score"], int(r["qa_critical"]), 4) for r in truth)
    assert [tuple(r) for r in rows] == want and want


def test_team_report_counts_every_contact_a_team_agent_handled(simulated_run: SimulatedRun) -> None:
    teamed = {e["agent_id"] for e in simulated_run.sim.agent_events if e["type"] == "agent_login" and e.get("team")}
    handled = sum(r["outcome"] == "answered" and r["agent_id"] in teamed for r in simulated_run.sim.truth.values())
    rows = simulated_run.query(examples()["Team report"])
    assert sum(r[3] for r in rows) == handled > 0
