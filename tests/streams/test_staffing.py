"""Staffing by Erlang C and A (streams/domain/erlang.py), proven two ways: the recommended number
of agents against values worked out from the textbook formulas, and against the project's own
simulator -- a queue staffed with the recommendation meets its service-level goal within
statistical tolerance, and one agent fewer misses it -- for small and large queues, short and
long patience, and no abandonment at all."""
from __future__ import annotations

import math
import statistics

import pytest

from streams.domain.erlang import ErlangC, erlang_b, expected, patience_rate, required_agents
from streams.traffic.simulate import QueueSpec, SimConfig, TenantSpec, simulate

Z = 4.0  # standard errors allowed between the simulation and the theory


def test_textbook_values() -> None:
    # Erlang B(5, 3) = 0.1101 and C(5, 3) = 0.2362 (a = 3 Erlangs on 5 servers; Gross et al.)
    assert erlang_b(5, 3) == pytest.approx(0.110054, abs=1e-6)
    assert ErlangC(lam=1, mu=1 / 3, c=5).p_wait == pytest.approx(0.236152, abs=1e-6)
    # 100 calls in 30 min, 180 s each: a = 10 Erlangs. 80/20 by the textbook formula written out
    # (P_wait = a^c/c! · c/(c−a) / (Σ_{k<c} a^k/k! + a^c/c! · c/(c−a)), SL = 1 − P_wait·e^{−(c−a)T/AHT}):
    def textbook_sl(c: int, a: float = 10.0, t: float = 20, aht: float = 180) -> float:
        top = a ** c / math.factorial(c) * c / (c - a)
        p_wait = top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)
        return 1 - p_wait * math.exp(-(c - a) * t / aht)

    need = min(c for c in range(11, 40) if textbook_sl(c) >= 0.8)
    lam, mu = 100 / 1800, 1 / 180
    e = required_agents(lam, mu, 0.0, 20, 0.8)
    assert e.agents == need == 14 and e.service_level == pytest.approx(textbook_sl(14), rel=1e-9)
    assert expected(lam, mu, 0.0, 13, 20).service_level == pytest.approx(textbook_sl(13), rel=1e-9)
    assert textbook_sl(13) < 0.8 <= textbook_sl(14)
    assert e.occupancy == pytest.approx(10 / 14) and e.abandon_rate == 0
    # Patience from history: 30 abandons over 10,000 s of waiting by everyone -> θ = 0.003/s (mean 333 s).
    assert patience_rate(30, 10_000) == pytest.approx(0.003) and patience_rate(0, 500) == 0.0
    # Impatient callers need fewer agents for the same goal (some of the load leaves).
    assert required_agents(lam, mu, 1 / 60, 20, 0.8).agents < 14


def _simulated_sl(lam: float, mu: float, theta: float, agents: int, threshold_s: int, n: int) -> tuple[float, float]:
    """Service level (answered within T / offered) of a simulated Erlang queue, with its batch-means
    standard error; the first 10 % of contacts (an empty queue warming up) left out."""
    q = QueueSpec("q", agents=agents, mean_talk_s=1 / mu, mean_acw_s=0,
                  mean_patience_s=None if theta == 0 else 1 / theta, service="exponential", hold_prob=0,
                  transfer_prob=0, csat_prob=0, arrival_rate_per_s=lam, priority_share=0)
    sim = simulate(SimConfig(seed=agents, interactions=n, breaks=False, shifts=False, tenants=(TenantSpec("t", "UTC", (q,)),)))
    recs = sorted(sim.truth.values(), key=lambda r: r["offered_at_ms"])[n // 10:]
    within = [r["outcome"] == "answered" and r["wait_ms"] <= threshold_s * 1000 for r in recs]
    size = len(within) // 20
    means = [sum(within[i * size:(i + 1) * size]) / size for i in range(20)]
    return sum(within) / len(within), statistics.stdev(means) / math.sqrt(20)


@pytest.mark.parametrize("lam,mu,theta,n", [
    (1 / 30, 1 / 180, 1 / 60, 24_000),      # small queue (6 Erlangs), short patience (1 min)
    (1 / 4, 1 / 240, 1 / 600, 30_000),      # large queue (60 Erlangs), long patience (10 min)
    (1 / 10, 1 / 60, 0.0, 30_000),          # nobody abandons: Erlang C
], ids=["small-impatient", "large-patient", "erlang-c"])
def test_the_recommendation_meets_the_goal_and_one_agent_fewer_misses_it(lam: float, mu: float, theta: float,
                                                                         n: int) -> None:
    goal, t = 0.8, 20
    rec = required_agents(lam, mu, theta, t, goal)
    fewer = expected(lam, mu, theta, rec.agents - 1, t)
    assert rec.service_level >= goal > fewer.service_level
    sl, se = _simulated_sl(lam, mu, theta, rec.agents, t, n)
    sl_fewer, se_fewer = _simulated_sl(lam, mu, theta, rec.agents - 1, t, n)
    table = (f"{rec.agents} agents: simulated {sl:.4f} ± {se:.4f}, theory {rec.service_level:.4f}; "
             f"{rec.agents - 1}: simulated {sl_fewer:.4f} ± {se_fewer:.4f}, theory {fewer.service_level:.4f}")
    assert abs(sl - rec.service_level) <= Z * se and abs(sl_fewer - fewer.service_level) <= Z * se_fewer, table
    assert sl >= goal - Z * se and sl_fewer < goal, table


def test_an_interval_plan_from_a_queues_figures() -> None:
    from streams.domain.staffing import QueueDay, need

    day = QueueDay(handled=200, handle_ms=200 * 180_000, abandoned=20, wait_ms=40_000_000, concurrency=1.0)
    n = need(offered=50, handled=40, handle_ms=40 * 180_000, day=day, staffed=12.5, threshold_s=20, goal=0.8,
             variant="abandons_count_against")
    # 50 contacts in 15 min, 180 s each: 10 Erlangs; patience 40,000 s of waiting / 20 abandons = 2,000 s
    assert (n.aht_s, n.patience_s, n.required_c) == (180.0, 2000.0, 14)
    assert n.required_a == required_agents(50 / 900, 1 / 180, 1 / 2000, 20, 0.8).agents <= 14
    assert n.gap == round(12.5 - n.required_a, 2)
    assert n.expected_sl == pytest.approx(expected(50 / 900, 1 / 180, 1 / 2000, 12, 20).service_level)  # 12 whole agents
    chats = need(offered=50, handled=40, handle_ms=40 * 180_000, day=QueueDay(200, 200 * 180_000, 20, 40_000_000, 2.5),
                 staffed=5, threshold_s=20, goal=0.8, variant="abandons_count_against")
    assert chats.required_c == math.ceil(14 / 2.5) and "2.5 contacts per agent" in chats.note
    thin = need(offered=3, handled=1, handle_ms=60_000, day=QueueDay(2, 120_000, 0, 0, 1.0), staffed=1,
                threshold_s=20, goal=0.8, variant="abandons_count_against")
    assert thin.required_a is None and thin.note.startswith("too little history")
