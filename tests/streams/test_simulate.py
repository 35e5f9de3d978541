"""The simulator: reproducible, valid against the contract, and its truth agrees with an
independent fold of its own events by the state machine."""
from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from schemas.events import parse_event
from streams.domain import state as sm
from streams.traffic.simulate import QueueSpec, SimConfig, Simulation, TenantSpec, event_time_order, simulate


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(SimConfig(seed=4, interactions=3_000))


def test_same_seed_same_traffic_other_seed_other_ids() -> None:
    a, b = simulate(SimConfig(seed=9, interactions=300)), simulate(SimConfig(seed=9, interactions=300))
    assert a.events == b.events and a.agent_events == b.agent_events and a.truth == b.truth
    c = simulate(SimConfig(seed=10, interactions=300))
    assert not set(a.truth) & set(c.truth)  # a second run with another seed never overwrites the first


def test_every_event_is_valid_and_ids_are_unique(sim: Simulation) -> None:
    for e in sim.events + sim.agent_events:
        parse_event(json.dumps(e))
    ids = [e["event_id"] for e in sim.events + sim.agent_events]
    assert len(ids) == len(set(ids))
    assert len(sim.truth) == 3_000


def test_truth_equals_the_state_machine_fold_of_the_events(sim: Simulation) -> None:
    by_iid: dict[str, list] = defaultdict(list)
    for e in sim.events:
        by_iid[e["interaction_id"]].append(sm.fact_of(parse_event(json.dumps(e))))
    assert set(by_iid) == set(sim.truth)
    for iid, facts in by_iid.items():
        st = sm.new_state()
        sm.merge(st, facts)
        assert sm.build_record(iid, st) == sim.truth[iid], iid


def test_traffic_has_the_features_a_centre_has(sim: Simulation) -> None:
    t = list(sim.truth.values())
    outcomes = Counter(r["outcome"] for r in t)
    assert set(outcomes) == {"answered", "abandoned"}
    assert 0.02 < outcomes["abandoned"] / len(t) < 0.3
    assert {r["channel"] for r in t} >= {"voice", "chat", "callback"}
    assert len({r["tenant"] for r in t}) == 3
    assert any(r["transfers"] for r in t) and any(r["holds"] for r in t) and any(r["csat"] for r in t)
    assert all(r["first_response_at_ms"] for r in t if r["channel"] == "chat" and r["outcome"] == "answered")
    # CSATs come minutes to days after the contact.
    late = [r["csat_at_ms"] - r["wrapup_ended_at_ms"] for r in t if r["csat"]]
    assert min(late) >= 60_000 and max(late) > 86_400_000


def test_agents_follow_a_legal_state_sequence(sim: Simulation) -> None:
    """login → ready ⇄ not_ready … → logout, never two logins without a logout."""
    by_agent: dict[str, list[str]] = defaultdict(list)
    for e in event_time_order(sim):
        if e["type"].startswith("agent_"):
            by_agent[e["agent_id"]].append(e["type"])
    assert by_agent
    for agent, types in by_agent.items():
        logged_in = False
        for typ in types:
            if typ == "agent_login":
                assert not logged_in, agent
                logged_in = True
            else:
                assert logged_in, (agent, typ)
                logged_in = typ != "agent_logout"
        assert not logged_in, f"{agent} never logged out"
    assert Counter(e["reason"] for e in sim.agent_events if e["type"] == "agent_not_ready").keys() == {"break", "lunch"}


def test_answering_agents_are_logged_in_and_chat_agents_hold_several() -> None:
    sim = simulate(SimConfig(seed=2, interactions=1_500))
    # Within one millisecond, an agent frees a slot (transfer, wrap-up) before taking the next contact.
    events = sorted(event_time_order(sim), key=lambda e: (e["ts"], e["type"] not in ("transferred", "wrapup_ended")))
    logged_in: set[str] = set()
    active: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    for e in events:
        if e["type"] == "agent_login":
            logged_in.add(e["agent_id"])
        elif e["type"] == "agent_logout":
            assert active[e["agent_id"]] == 0, "logged out with a contact in hand"
            logged_in.discard(e["agent_id"])
        elif e["type"] == "answered":
            assert e["agent_id"] in logged_in
            active[e["agent_id"]] += 1
            peak[e["agent_id"]] = max(peak[e["agent_id"]], active[e["agent_id"]])
        elif e["type"] in ("wrapup_ended", "transferred"):
            active[e["agent_id"]] -= 1
    assert max(peak[a] for a in peak if ".chat" in a or "-chat" in a) > 1
    assert max(peak[a] for a in peak if "-sales" in a) == 1


def test_erlang_a_configuration_is_plain_poisson_and_exponential() -> None:
    q = QueueSpec("q", agents=3, mean_talk_s=60, mean_acw_s=0, mean_patience_s=None, service="exponential",
                  hold_prob=0, transfer_prob=0, csat_prob=0, arrival_rate_per_s=0.02)
    sim = simulate(SimConfig(seed=1, interactions=4_000, breaks=False, shifts=False,
                             tenants=(TenantSpec("t", "UTC", (q,)),)))
    t = sorted(sim.truth.values(), key=lambda r: r["offered_at_ms"])
    gaps = [(b["offered_at_ms"] - a["offered_at_ms"]) / 1000 for a, b in zip(t, t[1:])]
    talk = [r["talk_ms"] / 1000 for r in t]
    assert abs(sum(gaps) / len(gaps) - 50) < 2.5      # 1/λ = 50 s, ±3 standard errors
    assert abs(sum(talk) / len(talk) - 60) < 3.0      # 1/μ = 60 s
    assert all(r["outcome"] == "answered" and r["acw_ms"] == 0 and r["holds"] == 0 for r in t)
