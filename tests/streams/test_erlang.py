"""The simulator as an Erlang queue, measured with the KPI maths, against queueing theory.

With exponential talk, no hold/transfer/ACW, no breaks or shifts, a fixed Poisson arrival
rate and ``priority_share=0`` (pure FIFO), one simulated queue is exactly M/M/c+M (Erlang A),
or M/M/c (Erlang C) when nobody abandons. Long runs, measured two ways (streams.domain.kpi over every
record, and a plain recount of the truth records), must fall within a stated statistical
tolerance of the analytic values of tests/erlang.py (sources cited there).

Which measured fraction estimates which analytic quantity (T = 20 s; short abandons S = 0, so
no abandon is short: simulated patience is at least 1 ms, and SA == 0 is asserted):

| measured (kpi-definitions.md)                 | analytic (per arriving contact, FIFO)        |
|-----------------------------------------------|----------------------------------------------|
| SL abandons_count_against  A_T / (A + Ab − SA) | P(answered and wait <= T)                    |
| SL ignore_abandons         A_T / A             | P(wait <= T | answered)                      |
| SL abandons_within_t_ok    (A_T + Ab_T)/(A+Ab) | P(wait <= T), answered or abandoned          |
| SL abandons_within_t_ignored A_T/(A+Ab−Ab_T)   | P(answered, wait <= T) / (1 − P(abandoned, wait <= T)) |
| abandon rate               (Ab − SA)/(A+Ab−SA) | P(abandon) = θ·E[Q]/λ                        |
| ASA                        wait of answered / A | E[wait | answered]                          |
| average wait               all waits / (A+Ab)  | E[wait] = E[Q]/λ (Little)                    |
| answered at once (wait 0)  / all               | P(an arrival finds a free agent)             |

Tolerance. The run after a warm-up is cut into B = 20 consecutive batches; each figure is
computed over the whole run (summed counts, then the formula) and over each batch, and its
standard error is the batch standard deviation / sqrt(B) (the method of batch means: A. M.
Law, *Simulation Modeling and Analysis*, the chapter on output data analysis). A batch spans
at least 1,900 contacts (19,000 s of simulated time; 4,900 and 9,900 contacts in the two main
runs), over 10 times the queue's relaxation time, roughly 1/(cμ(1 − sqrt(ρ))²) ≈ 1,600 s
(the M/M/1 relaxation time at the pooled rate cμ; abandonment only shortens it), so batch
figures are close to independent and normal, and (measured − analytic)/SE follows Student's
t with 19 degrees of freedom: P(|t| > 4) = 7.7e-4 per comparison, about 1 % over the 15
comparisons here. We assert |measured − analytic| <= 4 SE. The bias left by the ratio
estimators and the warm-up is O(1/n), and the simulator's millisecond clock and 1 s floor on
talk time move the means by < 0.02 %, both far below one SE (a 1,000,000-contact run, SE
a quarter of these, agreed within 1.6 SE). So that the test cannot pass by being vague,
4 SE is also asserted to be at most PRECISION (25 %) of the analytic value; in fact it is
2-10 % everywhere but the Erlang C ASA (18 %: its waits are heavy-tailed at ρ = 0.86).
The seeds are fixed, so a run is reproducible; a failure prints every figure with its z.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any, Callable

import pytest

from streams.domain import kpi
from streams.config.centre import QueueConfig
from streams.traffic.simulate import QueueSpec, SimConfig, TenantSpec, simulate
from streams.domain.erlang import ErlangA, ErlangC

LAM, MU, THETA, C = 1 / 10, 1 / 60, 1 / 120, 7  # 10 s between calls, 60 s talk, 120 s patience, 7 agents
T = 20                                            # SL threshold, seconds
WARM_UP = 2_000                                   # first contacts dropped (the queue starts empty)
BATCHES = 20
Z = 4.0                                           # standard errors allowed
PRECISION = 0.25                                  # 4 SE must be below this share of the analytic value
QUEUE = QueueConfig(sl_threshold_s=T, short_abandon_s=0)

Records = list[dict[str, Any]]


def run(seed: int, interactions: int, patience_s: float | None, priority_share: float = 0.0) -> Records:
    """Truth records of one Erlang queue, in arrival order, without the warm-up."""
    q = QueueSpec("q", agents=C, mean_talk_s=1 / MU, mean_acw_s=0, mean_patience_s=patience_s,
                  service="exponential", hold_prob=0, transfer_prob=0, csat_prob=0,
                  arrival_rate_per_s=LAM, priority_share=priority_share)
    sim = simulate(SimConfig(seed=seed, interactions=interactions, breaks=False, shifts=False,
                             tenants=(TenantSpec("t", "UTC", (q,)),)))
    recs = sorted(sim.truth.values(), key=lambda r: r["offered_at_ms"])
    assert len(recs) == interactions
    return recs[WARM_UP:]


def batches(recs: Records) -> list[Records]:
    size = len(recs) // BATCHES
    return [recs[i * size:(i + 1) * size] for i in range(BATCHES)]


def kpi_counts(recs: Records) -> kpi.Vector:
    """streams.domain.kpi: every part every record contributes, summed (intervals do not matter here)."""
    v = kpi.zero()
    for r in recs:
        for _ts, part in kpi.contribution(r, QUEUE):
            kpi.add(v, part)
    return v


def recount(recs: Records) -> Counter:
    """The same counts straight from the truth, without streams.domain.kpi."""
    n: Counter = Counter()
    for r in recs:
        w = r["wait_ms"]
        if r["outcome"] == "answered":
            n["answered"] += 1
            n["answered_in_sl"] += w <= T * 1000
            n["wait_answered_ms"] += w
        else:
            n["abandoned"] += 1
            n["abandoned_in_sl"] += w <= T * 1000
            n["short_abandons"] += w <= 0
            n["wait_abandoned_ms"] += w
        n["at_once"] += w == 0
    return n


def _left(n: Counter) -> int:
    return n["answered"] + n["abandoned"]


#: name -> (the figure by streams.domain.kpi's formula, the same written out here on the recount)
FIGURES: dict[str, tuple[Callable[[dict], float | None], Callable[[Counter], float]]] = {
    "sl_abandons_count_against": (lambda c: kpi.service_level(c, "abandons_count_against"),
                                  lambda n: n["answered_in_sl"] / _left(n)),
    "sl_ignore_abandons": (lambda c: kpi.service_level(c, "ignore_abandons"),
                           lambda n: n["answered_in_sl"] / n["answered"]),
    "sl_abandons_within_t_ok": (lambda c: kpi.service_level(c, "abandons_within_t_ok"),
                                lambda n: (n["answered_in_sl"] + n["abandoned_in_sl"]) / _left(n)),
    "sl_abandons_within_t_ignored": (lambda c: kpi.service_level(c, "abandons_within_t_ignored"),
                                     lambda n: n["answered_in_sl"] / (_left(n) - n["abandoned_in_sl"])),
    "abandon_rate": (kpi.abandon_rate, lambda n: n["abandoned"] / _left(n)),
    "asa_s": (kpi.asa_s, lambda n: n["wait_answered_ms"] / 1000 / n["answered"]),
    "avg_wait_s": (kpi.avg_wait_s, lambda n: (n["wait_answered_ms"] + n["wait_abandoned_ms"]) / 1000 / _left(n)),
}


def measure(recs: Records) -> dict[str, tuple[float, float]]:
    """Each figure over the whole run (kpi maths on the summed counts) with its batch-means
    standard error; the kpi counts and figures are first checked against the plain recount."""
    parts = batches(recs)
    by_kpi, by_hand = [kpi_counts(p) for p in parts], [recount(p) for p in parts]
    total = kpi.zero()
    for v in by_kpi:
        kpi.add(total, v)
    whole, direct = kpi.as_dict(total), sum(by_hand, Counter())
    for f in ("answered", "answered_in_sl", "abandoned", "abandoned_in_sl", "short_abandons",
              "wait_answered_ms", "wait_abandoned_ms"):
        assert whole[f] == direct[f], f
    assert whole["offered"] == sum(map(len, parts)) == direct["answered"] + direct["abandoned"]
    assert whole["short_abandons"] == 0  # S = 0: the SL variants compare as in the table above
    out: dict[str, tuple[float, float]] = {}
    for name, (formula, written_out) in FIGURES.items():
        value = formula(whole)
        assert value == pytest.approx(written_out(direct), rel=1e-12), name
        values = [formula(kpi.as_dict(v)) for v in by_kpi]
        out[name] = value, statistics.stdev(values) / math.sqrt(BATCHES)
    at_once = [n["at_once"] / len(p) for n, p in zip(by_hand, parts)]
    out["answered_at_once"] = (direct["at_once"] / sum(map(len, parts)),
                               statistics.stdev(at_once) / math.sqrt(BATCHES))
    return out


def check(measured: dict[str, tuple[float, float]], theory: dict[str, float]) -> None:
    table = "\n".join(f"{k:30} measured {measured[k][0]:10.5f}  SE {measured[k][1]:8.5f}  analytic {v:10.5f}  "
                      f"z {(measured[k][0] - v) / measured[k][1]:+.2f}" for k, v in theory.items())
    for name, expected in theory.items():
        value, se = measured[name]
        assert abs(value - expected) <= Z * se, f"{name} off by more than {Z} SE:\n{table}"
        assert Z * se <= PRECISION * expected, f"{name}: too few contacts for a meaningful check:\n{table}"


# --- the analytic formulas themselves -------------------------------------------------

def test_erlang_c_known_values() -> None:
    assert ErlangC(lam=2, mu=1, c=3).p_wait == pytest.approx(4 / 9, rel=1e-12)  # a = 2, c = 3
    mm1 = ErlangC(lam=0.6, mu=1, c=1)  # M/M/1: P(wait) = ρ, E[W] = ρ/(μ − λ)
    assert mm1.p_wait == pytest.approx(0.6, rel=1e-12)
    assert mm1.asa == pytest.approx(0.6 / 0.4, rel=1e-12)
    assert mm1.p_answered_within(2) == pytest.approx(1 - 0.6 * math.exp(-0.4 * 2), rel=1e-12)


@pytest.mark.parametrize("theta", [0.0, 1e-9])
def test_erlang_a_without_abandonment_is_erlang_c(theta: float) -> None:
    a, c = ErlangA(LAM, MU, theta, C), ErlangC(LAM, MU, C)
    rel = 1e-9 if theta == 0 else 1e-6
    assert a.p_abandon == pytest.approx(0, abs=1e-6) and a.p_abandon_tagged == pytest.approx(0, abs=1e-6)
    assert a.asa == pytest.approx(c.asa, rel=rel)
    assert a.mean_wait == pytest.approx(c.asa, rel=rel)
    for t in (0, 5, 20, 60, 300):
        assert a.p_answered_within(t) == pytest.approx(c.p_answered_within(t), rel=rel), t
    assert a.within(0)[0] == pytest.approx(1 - c.p_wait, rel=rel)


@pytest.mark.parametrize("lam,mu,theta,c", [(LAM, MU, THETA, C), (0.2, 1 / 30, 1 / 20, 4), (1.0, 0.1, 0.5, 8)])
def test_erlang_a_two_routes_agree(lam: float, mu: float, theta: float, c: int) -> None:
    """The stationary chain (θ·E[Q]/λ, Little) and the tagged customer's chain are separate
    computations of the same quantities; the last case is overloaded (λ > cμ), which only
    abandonment keeps stable."""
    e = ErlangA(lam, mu, theta, c)
    assert e.p_abandon == pytest.approx(e.p_abandon_tagged, rel=1e-9)
    assert e.mean_wait == pytest.approx(e.mean_wait_tagged, rel=1e-9)
    # Long enough that no arrival is still waiting: each phase ends at rate >= cμ + θ, and
    # P(Poisson(400) < number of phases) is negligible.
    answered, abandoned = e.within(400 / (c * mu + theta))
    assert answered == pytest.approx(e.p_answered, rel=1e-9)
    assert abandoned == pytest.approx(e.p_abandon, rel=1e-9)
    prev = (0.0, 0.0)
    for t in (0, 1, 10, 30, 100):
        now = e.within(t)
        assert now[0] >= prev[0] - 1e-12 and now[1] >= prev[1] - 1e-12  # distribution functions
        prev = now


# --- the simulator against them -------------------------------------------------------

@pytest.fixture(scope="module")
def erlang_a_run() -> Records:
    return run(seed=1, interactions=100_000, patience_s=1 / THETA)


@pytest.fixture(scope="module")
def erlang_c_run() -> Records:
    return run(seed=1, interactions=200_000, patience_s=None)


def test_simulated_erlang_a_matches_theory(erlang_a_run: Records) -> None:
    e = ErlangA(LAM, MU, THETA, C)
    ans_t, ab_t = e.within(T)
    check(measure(erlang_a_run), {
        "sl_abandons_count_against": ans_t,                  # ≈ 0.777
        "sl_ignore_abandons": ans_t / e.p_answered,          # ≈ 0.839
        "sl_abandons_within_t_ok": ans_t + ab_t,             # ≈ 0.826
        "sl_abandons_within_t_ignored": ans_t / (1 - ab_t),  # ≈ 0.817
        "abandon_rate": e.p_abandon,                         # ≈ 0.0732
        "asa_s": e.asa,                                      # ≈ 8.11 s
        "avg_wait_s": e.mean_wait,                           # ≈ 8.79 s
        "answered_at_once": e.within(0)[0],                  # ≈ 0.556
    })


def test_simulated_erlang_c_matches_theory(erlang_c_run: Records) -> None:
    e = ErlangC(LAM, MU, C)
    m = measure(erlang_c_run)
    assert m["abandon_rate"][0] == 0
    check(m, {
        "sl_abandons_count_against": e.p_answered_within(T),  # = ignore_abandons here; ≈ 0.560
        "sl_ignore_abandons": e.p_answered_within(T),
        "asa_s": e.asa,                                        # ≈ 36.8 s
        "answered_at_once": 1 - e.p_wait,                      # ≈ 0.386
    })


def test_priority_keeps_abandonment_and_mean_wait() -> None:
    """With the default 10 % priority contacts served first, the number in system is still the
    same birth–death chain (service and patience are exponential and identical for all, and the
    discipline is work-conserving), so abandonment and the mean wait of all contacts still match;
    the waiting-time distribution (SL, ASA) does not, and is not compared."""
    e = ErlangA(LAM, MU, THETA, C)
    m = measure(run(seed=2, interactions=40_000, patience_s=1 / THETA, priority_share=0.1))
    check(m, {"abandon_rate": e.p_abandon, "avg_wait_s": e.mean_wait, "answered_at_once": e.within(0)[0]})
