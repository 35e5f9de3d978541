"""Queueing theory: Erlang C (M/M/c) and Erlang A (M/M/c+M), FIFO, and the staffing they imply.

Used to staff queues (``required_agents``: the fewest agents that meet a queue's service-level
goal, with the service level, ASA and abandonment they can be expected to give) and, in the
tests, to check the simulator against theory.

Notation: arrival rate ``lam`` (Poisson), service rate ``mu`` (exponential talk, mean 1/mu),
patience rate ``theta`` (exponential patience, mean 1/theta; 0 = nobody abandons), ``c`` agents,
offered load a = lam/mu. "Wait" is the time in queue until answer or abandonment.

Sources:
- Erlang C: A. K. Erlang (1917). As stated in D. Gross, J. F. Shortle, J. M. Thompson and
  C. M. Harris, *Fundamentals of Queueing Theory*, 4th ed. (Wiley 2008), the M/M/c queue:
  C(c, a) = P(W > 0) = c·B / (c − a(1 − B)) with B = Erlang B(c, a) (computed by the
  recursion B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1))), P(W > t) = C·e^{−(cμ−λ)t} and
  E[W] = C / (cμ − λ) (= ASA: everyone is answered).
- Erlang A: C. Palm (1943); the birth–death model of O. Garnett, A. Mandelbaum and
  M. Reiman, "Designing a call center with impatient customers", Manufacturing & Service
  Operations Management 4(3), 2002, and the performance measures summarised in
  A. Mandelbaum and S. Zeltyn, "The M/M/n+G queue: summary of performance measures"
  (Technion, 2007). Rather than their closed forms (incomplete gamma functions) we compute
  the same measures numerically and exactly (up to a stated truncation):
  * the number in system n is a birth–death chain with birth rate λ and death rate
    min(n, c)·μ + max(n − c, 0)·θ; its stationary law π comes from the balance equations
    π_n·λ = π_{n+1}·d_{n+1}, truncated where the tail is below 1e-18;
  * P(abandon) = θ·E[queue length] / λ (abandonments happen at rate θ per waiting customer);
    E[wait of all contacts] = E[queue length] / λ (Little's law for the queue);
  * the wait of one (tagged) arrival, FIFO: by PASTA it sees n with probability π_n. If
    n < c it is answered at once. Otherwise k = n − c customers are ahead of it. While k are
    ahead, the next change comes at rate r_k = cμ + kθ + θ: a server frees or one of the k
    ahead abandons (rate cμ + kθ; then k → k − 1, or answered when k = 0), or the tagged
    customer's own patience runs out (rate θ; it abandons). Customers behind it never
    matter (FIFO). This absorbing chain gives P(answered), P(answered within t),
    P(abandoned within t), E[wait | answered] (the sojourns in the states are independent
    Exp(r_k) whichever way each ends), solved with uniformization for the time-t figures.
  With θ = 0 the same code is Erlang C (tests/streams/test_erlang.py checks that).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TAIL = 1e-18  # truncate the birth–death chain where the stationary tail is below this


def erlang_b(c: int, a: float) -> float:
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


@dataclass(frozen=True)
class ErlangC:
    lam: float
    mu: float
    c: int

    def __post_init__(self) -> None:
        if self.lam >= self.c * self.mu:
            raise ValueError("Erlang C needs λ < cμ (otherwise the queue grows without bound)")

    @property
    def p_wait(self) -> float:
        """C(c, a): the probability an arrival waits at all."""
        a = self.lam / self.mu
        b = erlang_b(self.c, a)
        return self.c * b / (self.c - a * (1 - b))

    def p_answered_within(self, t: float) -> float:
        """P(W <= t) = 1 − C·e^{−(cμ−λ)t}."""
        return 1 - self.p_wait * math.exp(-(self.c * self.mu - self.lam) * t)

    @property
    def asa(self) -> float:
        """E[W] = C / (cμ − λ), seconds when the rates are per second."""
        return self.p_wait / (self.c * self.mu - self.lam)


@dataclass(frozen=True)
class ErlangA:
    lam: float
    mu: float
    theta: float
    c: int

    def __post_init__(self) -> None:
        if self.theta < 0 or self.mu <= 0 or self.lam <= 0 or self.c < 1:
            raise ValueError("need λ > 0, μ > 0, θ >= 0, c >= 1")
        if self.theta == 0 and self.lam >= self.c * self.mu:
            raise ValueError("without abandonment λ < cμ is needed")

    # --- the number in system ---------------------------------------------------------

    def death(self, n: int) -> float:
        return min(n, self.c) * self.mu + max(n - self.c, 0) * self.theta

    def stationary(self) -> np.ndarray:
        """π_0 .. π_N of the birth–death chain, truncated where the tail is negligible."""
        p = [1.0]
        total = 1.0
        n = 0
        while True:
            n += 1
            nxt = p[-1] * self.lam / self.death(n)
            p.append(nxt)
            total += nxt
            if total > 1e250:  # rescale: a^n/n! overflows for very large loads
                p = [x / total for x in p]
                total = 1.0
            # past c the terms fall at least geometrically once λ < death(n): stop in the tail
            if n > self.c and self.lam < self.death(n + 1) and nxt < TAIL * total * (1 - self.lam / self.death(n + 1)):
                break
            if n > 10_000_000:
                raise RuntimeError("stationary law does not converge")
        return np.array(p) / total

    @property
    def mean_queue(self) -> float:
        pi = self.stationary()
        return float(sum(pi[n] * (n - self.c) for n in range(self.c + 1, len(pi))))

    @property
    def p_abandon(self) -> float:
        """θ·E[Q] / λ (rate of abandonments over the arrival rate)."""
        return self.theta * self.mean_queue / self.lam

    @property
    def mean_wait(self) -> float:
        """Mean wait of all contacts (answered or abandoned): E[Q] / λ (Little)."""
        return self.mean_queue / self.lam

    # --- the tagged arrival (FIFO, PASTA) ----------------------------------------------

    def _ahead(self) -> tuple[float, np.ndarray]:
        """P(answered at once), and P(an arrival finds k = 0, 1, .. customers ahead in queue)."""
        pi = self.stationary()
        return float(pi[: self.c].sum()), pi[self.c:]

    def _rates(self, k_max: int) -> tuple[np.ndarray, np.ndarray]:
        k = np.arange(k_max)
        advance = self.c * self.mu + k * self.theta  # a server frees or someone ahead leaves
        return advance, advance + self.theta       # ... or the tagged customer abandons

    @property
    def p_answered(self) -> float:
        """P(answered) from the tagged customer: Π over the states it passes of advance/total."""
        now, ahead = self._ahead()
        adv, tot = self._rates(len(ahead))
        through = np.cumprod(adv / tot)  # P(answered | k ahead) = Π_{i<=k} adv_i / tot_i
        return now + float((ahead * through).sum())

    @property
    def p_abandon_tagged(self) -> float:
        """1 − P(answered): the same quantity as ``p_abandon`` by another route (a cross-check)."""
        return 1 - self.p_answered

    @property
    def asa(self) -> float:
        """E[wait | answered]: given answered, the sojourns are independent Exp(tot_k)."""
        now, ahead = self._ahead()
        adv, tot = self._rates(len(ahead))
        through = np.cumprod(adv / tot)
        mean_wait_given = np.cumsum(1 / tot)  # Σ_{i<=k} 1/tot_i
        return float((ahead * through * mean_wait_given).sum()) / self.p_answered

    @property
    def mean_wait_tagged(self) -> float:
        """E[wait] of all contacts by the tagged chain (to cross-check Little's law)."""
        _, ahead = self._ahead()
        adv, tot = self._rates(len(ahead))
        # Starting with k ahead, it visits state i (<= k) with probability Π_{i<j<=k} adv_j/tot_j
        # and stays 1/tot_i there on average. Backwards: m_k = 1/tot_k + adv_k/tot_k · m_{k-1}.
        m = np.empty(len(ahead))
        prev = 0.0
        for k in range(len(ahead)):
            prev = m[k] = 1 / tot[k] + adv[k] / tot[k] * prev
        return float((ahead * m).sum())

    def within(self, t: float) -> tuple[float, float]:
        """(P(answered with wait <= t), P(abandoned with wait <= t)), by uniformization."""
        now, x = self._ahead()
        x = x.copy()
        adv, tot = self._rates(len(x))
        lam_u = float(tot.max())
        stay = 1 - tot / lam_u
        step_adv = adv / lam_u
        lt = lam_u * t
        terms = int(lt + 12 * math.sqrt(lt) + 40)
        answered = abandoned = 0.0   # absorbed mass after m uniformized steps
        p_ans_t = p_ab_t = 0.0
        for m in range(terms + 1):
            w = math.exp(-lt + m * math.log(lt) - math.lgamma(m + 1)) if lt > 0 else float(m == 0)
            p_ans_t += w * answered
            p_ab_t += w * abandoned
            answered += float(x[0] * step_adv[0])
            abandoned += float((x * self.theta).sum() / lam_u)
            nxt = x * stay
            nxt[:-1] += x[1:] * step_adv[1:]
            x = nxt
        return now + p_ans_t, p_ab_t

    def p_answered_within(self, t: float) -> float:
        return self.within(t)[0]


# --- staffing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    """What ``agents`` can be expected to give a queue (rates per second in, seconds out)."""

    agents: int
    service_level: float   # by the queue's formula (short abandons taken as none)
    asa_s: float           # mean wait of the answered
    abandon_rate: float    # share of the offered who abandon (Erlang A; 0 for Erlang C)
    occupancy: float       # busy share of the agents' time


def expected(lam: float, mu: float, theta: float, agents: int, threshold_s: float,
             variant: str = "abandons_count_against") -> Expected:
    """Erlang A (theta > 0, customers abandon) or C (theta == 0) figures for ``agents`` servers.

    Service level by variant, with every offered contact either answered or abandoned:
    ``abandons_count_against`` = P(answered within T); ``ignore_abandons`` = P(answered within
    T | answered); ``abandons_within_t_ok`` = P(answered or abandoned within T);
    ``abandons_within_t_ignored`` = P(answered within T) / (1 - P(abandoned within T)).
    An overloaded Erlang C queue (λ >= cμ) never meets any goal: service level 0."""
    if theta == 0:
        if lam >= agents * mu:
            return Expected(agents, 0.0, math.inf, 0.0, 1.0)
        c = ErlangC(lam, mu, agents)
        sl = c.p_answered_within(threshold_s)
        return Expected(agents, sl, c.asa, 0.0, lam / (agents * mu))
    a = ErlangA(lam, mu, theta, agents)
    answered_t, abandoned_t = a.within(threshold_s)
    p_ans = a.p_answered
    sl = {
        "ignore_abandons": answered_t / p_ans if p_ans else 0.0,
        "abandons_within_t_ok": answered_t + abandoned_t,
        "abandons_within_t_ignored": answered_t / (1 - abandoned_t) if abandoned_t < 1 else 0.0,
    }.get(variant, answered_t)
    return Expected(agents, sl, a.asa, 1 - p_ans, lam * p_ans / (agents * mu))


def required_agents(lam: float, mu: float, theta: float, threshold_s: float, goal: float,
                    variant: str = "abandons_count_against", max_agents: int = 5000) -> Expected:
    """The fewest agents whose expected service level reaches ``goal`` (and their figures).

    Starts at the load (λ/μ, fewer can never keep up without abandonment) and climbs; service
    level grows with every agent added, so the first that meets the goal is the answer."""
    if lam <= 0:
        return Expected(0, 1.0, 0.0, 0.0, 0.0)
    c = max(1, math.floor(lam / mu) if theta > 0 else math.floor(lam / mu) + 1)
    if theta > 0:
        c = max(1, c // 2)  # impatience carries some of the load: fewer than λ/μ may do
    while c <= max_agents:
        e = expected(lam, mu, theta, c, threshold_s, variant)
        if e.service_level >= goal:
            return e
        c += 1
    raise ValueError(f"no staffing up to {max_agents} agents reaches a service level of {goal}")


def patience_rate(abandoned: int, total_wait_s: float) -> float:
    """θ, the rate of exponential patience, from a queue's history: abandonments / the time all
    contacts spent waiting (the maximum-likelihood estimate when the answered contacts' waits
    are patience cut short by the answer). 0 when nobody abandoned."""
    if abandoned <= 0 or total_wait_s <= 0:
        return 0.0
    return abandoned / total_wait_s
