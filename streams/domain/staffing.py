"""How many agents each queue needs, interval by interval, from what its figures say (pure).

For a queue and 15-minute interval: the arrival rate is its offered contacts over the interval;
the handle time its AHT there (the day's when it handled none); the patience rate the day's
abandonments over the day's total waiting (``erlang.patience_rate``). Erlang C (nobody
abandons) and Erlang A (they do, at that rate) give the fewest agents that reach the queue's own
service-level goal by its own formula; Erlang A also the service level, ASA and abandonment the
agents actually staffed can be expected to give. A chat agent handling several contacts at
once counts as that many servers (its observed average concurrency). A queue with too little
history gets a note instead of a guess.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from streams.domain.erlang import expected, patience_rate, required_agents

INTERVAL_S = 900
MIN_HANDLED = 5    # contacts handled in the day before its AHT is trusted
MIN_OFFERED = 1    # an interval with no contact needs nobody


@dataclass(frozen=True)
class QueueDay:
    """A queue's day, for the rates the intervals share."""

    handled: int
    handle_ms: int
    abandoned: int
    wait_ms: int            # every contact's wait, answered and abandoned
    concurrency: float      # average contacts an agent of the queue holds at once (1 for voice)


@dataclass(frozen=True)
class IntervalNeed:
    offered: int
    aht_s: float | None
    patience_s: float | None      # mean patience (1/θ); None: nobody abandoned
    required_c: int | None        # Erlang C
    required_a: int | None        # Erlang A
    staffed: float                # agent-intervals available (ready, busy or ACW) / the interval
    expected_sl: float | None     # Erlang A, with the staffed agents
    expected_abandon: float | None
    note: str = ""

    @property
    def gap(self) -> float | None:
        return None if self.required_a is None else round(self.staffed - self.required_a, 2)


def need(offered: int, handled: int, handle_ms: int, day: QueueDay, staffed: float, threshold_s: int,
         goal: float, variant: str) -> IntervalNeed:
    if day.handled < MIN_HANDLED:
        return IntervalNeed(offered, None, None, None, None, staffed, None, None,
                            f"too little history: {day.handled} contacts handled this day (needs {MIN_HANDLED})")
    aht_ms = handle_ms / handled if handled else day.handle_ms / day.handled
    theta = patience_rate(day.abandoned, day.wait_ms / 1000)
    patience = None if theta == 0 else 1 / theta
    if offered < MIN_OFFERED:
        return IntervalNeed(offered, aht_ms / 1000, patience, 0, 0, staffed, None, None, "no contacts")
    lam, mu = offered / INTERVAL_S, 1000 / aht_ms
    k = max(1.0, day.concurrency)
    c = required_agents(lam, mu, 0.0, threshold_s, goal, variant).agents
    a = required_agents(lam, mu, theta, threshold_s, goal, variant).agents
    servers = math.floor(staffed * k)
    exp_sl = exp_ab = None
    if servers >= 1 and (theta > 0 or lam < servers * mu):
        e = expected(lam, mu, theta, servers, threshold_s, variant)
        exp_sl, exp_ab = e.service_level, e.abandon_rate
    elif servers >= 1 or offered:
        exp_sl, exp_ab = 0.0, None
    return IntervalNeed(offered, aht_ms / 1000, patience, math.ceil(c / k), math.ceil(a / k), staffed, exp_sl,
                        exp_ab, "" if k == 1 else f"{k:.1f} contacts per agent at once")


def now(offered: int, window_s: int, handled: int, handle_ms: int, abandoned: int, wait_ms: int, available: int,
        threshold_s: int, goal: float, variant: str) -> dict[str, object]:
    """Agents a queue needs at the rate of its last rolling window, and what those available now
    can be expected to give (Erlang A; patience from the window's abandons and waits)."""
    out: dict[str, object] = {"offered": offered, "available": available, "note": ""}
    if offered == 0:
        out.update(required_agents=0, note="no contacts in the window")
        return out
    if handled == 0:
        out["note"] = "no contact handled in the window: no handle time to staff by"
        return out
    aht_ms = handle_ms / handled
    theta = patience_rate(abandoned, wait_ms / 1000)
    lam, mu = offered / window_s, 1000 / aht_ms
    out.update(aht_s=round(aht_ms / 1000, 1), patience_s=None if theta == 0 else round(1 / theta, 1),
               required_agents=required_agents(lam, mu, theta, threshold_s, goal, variant).agents)
    if available >= 1 and (theta > 0 or lam < available * mu):
        e = expected(lam, mu, theta, available, threshold_s, variant)
        out.update(expected_sl=e.service_level, expected_abandon=e.abandon_rate)
    elif available == 0 or theta == 0:
        out.update(expected_sl=0.0)
    return out
