"""Agent state over time, pure: login/ready/not-ready events plus the contacts an agent
handles, folded into a piecewise-constant timeline and cut into intervals.

An agent's state (kept in a changelog-backed table keyed by agent id, like interactions)
is the *set* of its own events by event id, and per interaction the handling segments the
interaction fold reported for it (replaced whole when they change). So, as for
interactions, arrival order and redeliveries cannot change the figures.

State at an instant (kpi-definitions.md, "Agents"): busy while connected to at least one
contact (talking or holding; concurrent chats count once), else acw while doing after-call
work for at least one, else ready / not_ready(reason) as last set, else logged_out.
Occupancy = (busy + acw) / (busy + acw + ready).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

#: Same-millisecond order of an agent's own events (login first, logout last).
RANK = {"agent_login": 0, "agent_ready": 1, "agent_not_ready": 2, "agent_logout": 3}
STATES = ("busy", "acw", "ready", "not_ready", "logged_out")

AgentState = dict[str, Any]  # {"f": {event_id: [ts, type, reason, queues]}, "c": {iid: segments}, "t": tenant}


def new_agent_state() -> AgentState:
    return {"f": {}, "c": {}, "t": ""}


def merge_event(st: AgentState, event_id: str, ts: int, typ: str, tenant: str,
                reason: str | None = None, queues: list[str] | None = None) -> bool:
    """Add one agent event; True when it is new (a redelivery changes nothing)."""
    if event_id in st["f"]:
        return False
    st["f"][event_id] = [ts, typ, reason, queues]
    st["t"] = st["t"] or tenant
    return True


def set_contact(st: AgentState, iid: str, segments: list[list[int | None]], tenant: str) -> bool:
    """The agent's handling of one contact, as the interaction fold sees it now."""
    if not segments:
        return st["c"].pop(iid, None) is not None
    if st["c"].get(iid) == segments:
        return False
    st["c"][iid] = segments
    st["t"] = st["t"] or tenant
    return True


@dataclass(frozen=True)
class Piece:
    start: int
    end: int
    state: str
    reason: str
    held: int  # contacts held (connected or in ACW), for chat concurrency


def _facts(st: AgentState) -> list[list[Any]]:
    return sorted(st["f"].values(), key=lambda f: (f[0], RANK[f[1]]))


def _presence(typ: str, reason: str | None, cur: tuple[bool, str, str]) -> tuple[bool, str, str]:
    """(logged in, ready | not_ready, reason) after one of the agent's own events."""
    if typ == "agent_login":
        return True, "not_ready", "logged_in"
    if typ == "agent_logout":
        return False, cur[1], cur[2]
    if typ == "agent_ready":
        return True, "ready", ""
    return True, "not_ready", reason or ""


def timeline(st: AgentState, start: int, end: int) -> list[Piece]:
    """The agent's states between ``start`` and ``end`` (ms), cut wherever anything changes.

    One sweep over the agent's events and the ends of its contacts: linear in what happened
    in the window (plus the events before it, to know the state at ``start``).
    """
    if end <= start:
        return []
    facts = _facts(st)
    deltas: list[tuple[int, int, int]] = []  # (time, d connected, d acw) inside the window
    connected = in_acw = 0
    for segments in st["c"].values():
        for s0, s1, acw in segments:
            s1e = end if s1 is None else s1
            acw_end = None if acw is None else (end if acw == 0 else acw)
            for lo, hi, dc, da in ((s0, s1e, 1, 0), (s1e, acw_end, 0, 1)):
                if hi is None or hi <= start or lo >= end or hi <= lo:
                    continue
                if lo <= start:
                    connected += dc
                    in_acw += da
                else:
                    deltas.append((lo, dc, da))
                if hi < end:
                    deltas.append((hi, -dc, -da))
    deltas.sort()
    pres: tuple[bool, str, str] = (False, "not_ready", "")
    i = 0
    while i < len(facts) and facts[i][0] <= start:
        pres = _presence(facts[i][1], facts[i][2], pres)
        i += 1
    cuts = sorted({start, end} | {f[0] for f in facts[i:] if f[0] < end} | {t for t, _, _ in deltas})
    out: list[Piece] = []
    j = 0
    for a, b in zip(cuts, cuts[1:]):
        while i < len(facts) and facts[i][0] <= a:
            pres = _presence(facts[i][1], facts[i][2], pres)
            i += 1
        while j < len(deltas) and deltas[j][0] <= a:
            connected += deltas[j][1]
            in_acw += deltas[j][2]
            j += 1
        if connected:
            state, why = "busy", ""
        elif in_acw:
            state, why = "acw", ""
        elif pres[0]:
            state, why = pres[1], pres[2]
        else:
            state, why = "logged_out", ""
        held = connected + in_acw
        if out and (out[-1].state, out[-1].reason, out[-1].held) == (state, why, held):
            out[-1] = Piece(out[-1].start, b, state, why, held)
        else:
            out.append(Piece(a, b, state, why, held))
    return out


@dataclass
class IntervalFigures:
    """One agent in one interval: milliseconds per state and contact-holding figures."""

    ms: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    not_ready: dict[str, int] = field(default_factory=dict)
    held_ms: int = 0      # ∫ contacts held dt: / (busy + acw) gives average concurrency
    max_held: int = 0

    @property
    def logged_in_ms(self) -> int:
        return sum(self.ms.values()) - self.ms["logged_out"]

    @property
    def occupancy(self) -> float | None:
        den = self.ms["busy"] + self.ms["acw"] + self.ms["ready"]
        return (self.ms["busy"] + self.ms["acw"]) / den if den else None


def per_interval(pieces: Iterable[Piece], grain_ms: int) -> dict[int, IntervalFigures]:
    out: dict[int, IntervalFigures] = {}
    for p in pieces:
        t = p.start
        while t < p.end:
            bucket = t - t % grain_ms
            upto = min(p.end, bucket + grain_ms)
            f = out.get(bucket)
            if f is None:  # not setdefault: that builds a throw-away IntervalFigures per piece
                f = out[bucket] = IntervalFigures()
            f.ms[p.state] += upto - t
            if p.state == "not_ready":
                f.not_ready[p.reason] = f.not_ready.get(p.reason, 0) + upto - t
            f.held_ms += p.held * (upto - t)
            f.max_held = max(f.max_held, p.held)
            t = upto
    return out


def first_seen(st: AgentState) -> int | None:
    """The agent's earliest event or contact (ms) that the state still holds."""
    times = [f[0] for f in st["f"].values()] + [seg[0] for segs in st["c"].values() for seg in segs]
    return min(times, default=None)


def last_contact_at(st: AgentState) -> int | None:
    """The newest contact time (a segment's start or end) the state holds: its contact clock
    after a restart."""
    return max((t for segs in st["c"].values() for seg in segs for t in seg[:2] if t), default=None)


def last_event_at(st: AgentState) -> int | None:
    """The agent's newest own event (ms) the state holds: its event clock after a restart."""
    return max((f[0] for f in st["f"].values()), default=None)


def idle_since(st: AgentState) -> int | None:
    """Since when the agent has been logged out with no contact connected or in ACW; None
    if it is not. From then on every interval holds only logged-out time, so figures
    already written up to that point cannot change until it has a new event or contact."""
    facts = _facts(st)
    if not facts or facts[-1][1] != "agent_logout":
        return None
    since = facts[-1][0]
    for segments in st["c"].values():
        for _s0, s1, acw in segments:
            if s1 is None or acw == 0:  # still connected, or in ACW
                return None
            since = max(since, s1, acw or 0)
    return since


def current(st: AgentState, now: int, lookback_ms: int = 12 * 3600_000) -> tuple[str, str, int, int, list[str]]:
    """(state, reason, since, contacts held, queues) at ``now``; ``since`` looks back at
    most ``lookback_ms`` (a state older than that reads as starting then)."""
    pieces = timeline(st, now - lookback_ms, now + 1)
    queues: list[str] = []
    for f in _facts(st):
        if f[1] == "agent_login" and f[0] <= now:
            queues = list(f[3] or [])
    if not pieces:
        return "logged_out", "", now, 0, queues
    last = pieces[-1]
    since = last.start
    for p in reversed(pieces[:-1]):  # how long it has been in this state (concurrency aside)
        if (p.state, p.reason) != (last.state, last.reason):
            break
        since = p.start
    return last.state, last.reason, since, last.held, queues


def complete_from(st: AgentState) -> int:
    """From when the state still holds everything (``trim`` forgot what ended before): its
    timeline is exact from here on, so no interval before it may be rewritten from it."""
    return int(st.get("h") or 0)


def trim(st: AgentState, horizon: int) -> None:
    """Forget what ended before ``horizon``, keeping the events that still set the state."""
    if horizon <= complete_from(st):
        return
    st["h"] = horizon
    facts = sorted(st["f"].items(), key=lambda kv: (kv[1][0], RANK[kv[1][1]]))
    keep_presence = keep_avail = None
    for eid, f in facts:
        if f[0] >= horizon:
            break
        if f[1] in ("agent_login", "agent_logout"):
            keep_presence = eid
        if f[1] in ("agent_login", "agent_ready", "agent_not_ready"):
            keep_avail = eid
        # the last login also carries the queues
    last_login = next((eid for eid, f in reversed(facts) if f[1] == "agent_login" and f[0] < horizon), None)
    for eid, f in facts:
        if f[0] < horizon and eid not in (keep_presence, keep_avail, last_login):
            del st["f"][eid]
    for iid, segs in list(st["c"].items()):
        if all(s[1] is not None and s[1] < horizon and (s[2] is None or 0 < s[2] < horizon) for s in segs):
            del st["c"][iid]
