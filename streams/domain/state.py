"""Pure interaction state machine: a set of events in, one interaction record out.

The state keeps every distinct event (by ``event_id``) as a small *fact*; the record is
folded from the facts sorted by event time. A set has no order and no multiplicity, so
the record is the same whatever order the events arrived in and however often each was
delivered -- the property Kafka's at-least-once, out-of-order delivery needs.

Nothing here does I/O; the faust agent persists the state (a JSON-able dict) in a
changelog-backed table and decides when to emit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, TypedDict

from schemas.events import Event

#: Fact = [ts_ms, type, tenant, channel, attrs]; attrs holds only the fields the fold reads.
Fact = list[Any]


class State(TypedDict, total=False):
    """One contact's state as the changelog stores it (orjson). The keys stay one letter:
    hundreds of thousands of states are kept and sent, and the wire format is the stored one.
    """

    f: dict[str, Fact]        # facts by event id: the contact's whole history (state.py)
    x: int                    # 1: closed without its final event (timeout, or the event cap)
    v: int                    # version of the last record emitted (``version_of``)
    o: int                    # 1: events were refused over CCPULSE_MAX_EVENTS_PER_INTERACTION
    p: int                    # the events-topic partition that folds it (worker/flows/interactions.py)
    l: int                    # newest event time (ms): the partition clock is rebuilt from it
    k: list[Any]              # its contribution to the interval figures (windows.Entry)
    a: dict[str, Any]         # agent segments last told to the agents' fold (app.tell_agents)

#: Tie-break for events of one interaction in the same millisecond: the lifecycle order.
#: Producers must keep a re-queued contact's next answer at least 1 ms after its transfer.
TYPE_RANK = {
    "dialed": -5, "dial_result": -4, "ivr_entered": -3, "ivr_step": -2, "ivr_left": -1,
    "offered": 0, "answered": 1, "first_response": 2, "hold_started": 3, "hold_ended": 4,
    "transferred": 5, "abandoned": 6, "ended": 7, "wrapup_ended": 8, "csat": 9, "qa_evaluated": 10,
}
_ATTRS = ("queue", "customer_id", "priority", "agent_id", "to_queue", "to_agent",
          "disposition", "resolved", "score", "callback", "ivr", "step", "result", "campaign", "list_id",
          "record_id", "reason", "recording", "right_party", "converted", "evaluator", "form",
          "critical_failure")
#: An IVR exit that ends the contact there (no queue follows); a dial result that ends the attempt.
IVR_FINAL = ("self_served", "hung_up", "transferred_out")
NOT_CONNECTED = ("no_answer", "busy", "answering_machine", "invalid_number", "dialer_abandoned")


_ATTRS_OF: dict[type, tuple[str, ...]] = {}


def fact_of(event: Event) -> tuple[str, Fact]:
    """The (event_id, fact) pair the state keeps for an interaction event."""
    names = _ATTRS_OF.get(type(event))
    if names is None:  # once per event type: getattr misses are slow on pydantic models
        names = _ATTRS_OF[type(event)] = tuple(k for k in _ATTRS if k in type(event).model_fields)
    d = event.__dict__
    attrs = {k: v for k in names if (v := d[k]) is not None}
    return event.event_id, [event.ts_ms, event.type, event.tenant, event.channel, attrs]


def _sort_key(item: tuple[str, Fact]) -> tuple[int, int, str]:
    eid, f = item
    return f[0], TYPE_RANK[f[1]], eid


def new_state() -> State:
    """f: facts by event id; x: closed by timeout; v: last emitted version; o (when set):
    events were refused over the cap (``admit``)."""
    return {"f": {}, "x": 0, "v": 0}


def admit(state: State, facts: list[tuple[str, Fact]], cap: int) -> tuple[list[tuple[str, Fact]], list[int]]:
    """The facts the state may take under ``cap`` events, and the indexes of those refused.

    A contact with more events than any real one has (a producer loop, an attack) would make
    every fold and changelog message of it grow without bound. Known event ids (redeliveries)
    are always admitted; new ones past the cap are refused, and the state is closed and
    flagged (``o``) so its record says so.
    """
    known = state["f"]
    room = cap - len(known)
    admitted, refused, new = [], [], set()
    for i, (eid, fact) in enumerate(facts):
        if eid in known or eid in new:
            admitted.append((eid, fact))
        elif room > 0:
            room -= 1
            new.add(eid)
            admitted.append((eid, fact))
        else:
            refused.append(i)
    if refused and not state.get("o"):
        state["o"] = 1
        state["x"] = 1
    return admitted, refused


def merge(state: State, facts: Iterable[tuple[str, Fact]]) -> bool:
    """Add facts in place; True when the state changed.

    Two different payloads under one event id (a producer bug) resolve to the smaller
    fact, so even that case does not depend on arrival order.
    """
    changed = False
    known = state["f"]
    for eid, fact in facts:
        old = known.get(eid)
        if old is None:
            known[eid] = fact
            changed = True
        elif old != fact and _canon(fact) < _canon(old):
            known[eid] = fact
            changed = True
    return changed


def _canon(fact: Fact) -> tuple:
    return fact[0], TYPE_RANK[fact[1]], fact[2], fact[3], sorted(fact[4].items(), key=repr)


@dataclass(slots=True)  # slots: the fold reads and writes these a few times per fact
class _Fold:
    """Running values of one pass over the sorted facts."""

    tenant: str = ""
    channel: str = ""
    queues: list[str] = field(default_factory=list)
    customer_id: str | None = None
    priority: int = 0
    agent_id: str | None = None
    first_agent_id: str | None = None
    offered_at: int | None = None
    answered_at: int | None = None
    abandoned_at: int | None = None
    ended_at: int | None = None
    wrapup_at: int | None = None
    first_response_at: int | None = None
    last_at: int = 0
    wait: int = 0
    connected: int = 0
    hold: int = 0
    holds: int = 0
    transfers: int = 0
    disposition: str | None = None
    resolved: bool | None = None
    csat: int | None = None
    csat_at: int | None = None
    in_queue_since: int | None = None
    connected_since: int | None = None
    hold_since: int | None = None
    anomalies: list[str] = field(default_factory=list)
    #: Agent handling segments [agent, connected from, to, ACW until (0 = ACW pending, None = no ACW)].
    segments: list[list[Any]] = field(default_factory=list)
    callback: bool = False
    campaign: str | None = None
    list_id: str | None = None
    record_id: str | None = None
    dialed_at: int | None = None
    dial_result: str | None = None
    right_party: bool | None = None
    converted: bool | None = None
    ivr: str | None = None
    ivr_entered_at: int | None = None
    ivr_left_at: int | None = None
    ivr_result: str | None = None
    ivr_path: list[str] = field(default_factory=list)
    transfer_reasons: list[str] = field(default_factory=list)
    recording: str | None = None
    qa: dict[str, tuple[float, bool]] = field(default_factory=dict)  # form -> latest (score, critical)

    def flag(self, what: str) -> None:
        if what not in self.anomalies:
            self.anomalies.append(what)

    def enter_queue(self, ts: int, queue: str | None) -> None:
        self.leave_agent(ts)
        if queue and (not self.queues or self.queues[-1] != queue):
            self.queues.append(queue)
        if self.in_queue_since is None:
            self.in_queue_since = ts

    def leave_queue(self, ts: int) -> None:
        if self.in_queue_since is not None:
            self.wait += ts - self.in_queue_since
            self.in_queue_since = None

    def open_segment(self, ts: int, agent: str | None) -> None:
        if agent:
            self.segments.append([agent, ts, None, None])

    def close_segment(self, ts: int) -> None:
        if self.segments and self.segments[-1][2] is None:
            self.segments[-1][2] = ts

    def leave_agent(self, ts: int) -> None:
        self.close_segment(ts)
        if self.hold_since is not None:
            self.hold += ts - self.hold_since
            self.hold_since = None
        if self.connected_since is not None:
            self.connected += ts - self.connected_since
            self.connected_since = None


def _fold(facts: dict[str, Fact]) -> _Fold:
    s = _Fold()
    items = sorted(facts.items(), key=_sort_key)
    first = items[0][1]
    s.tenant, s.channel = first[2], first[3]
    for _eid, (ts, typ, tenant, channel, a) in items:
        if tenant != s.tenant:
            s.flag("tenant_changed")
        if channel != s.channel:
            s.flag("channel_changed")
        s.last_at = ts
        if typ == "offered":
            if s.offered_at is None:
                s.offered_at = ts
                s.customer_id = a.get("customer_id")
                s.priority = a.get("priority", 0)
                s.callback = bool(a.get("callback"))
            s.enter_queue(ts, a.get("queue"))
        elif typ == "answered":
            if s.in_queue_since is None and s.offered_at is None and s.dialed_at is None:
                s.flag("answered_without_offer")  # (an outbound call is answered without one)
            s.leave_queue(ts)
            if s.answered_at is None:
                s.answered_at = ts
                s.first_agent_id = a.get("agent_id")
            if s.connected_since is None:
                s.connected_since = ts
                s.open_segment(ts, a.get("agent_id"))
            elif a.get("agent_id") != s.agent_id:
                s.close_segment(ts)
                s.open_segment(ts, a.get("agent_id"))
            s.agent_id = a.get("agent_id")
        elif typ == "abandoned":
            if s.in_queue_since is None:
                s.flag("abandoned_while_not_queued")
            s.leave_queue(ts)
            if s.abandoned_at is None:
                s.abandoned_at = ts
        elif typ == "hold_started":
            if s.connected_since is None:
                s.flag("hold_while_not_connected")
            elif s.hold_since is None:
                s.hold_since = ts
                s.holds += 1
        elif typ == "hold_ended":
            if s.hold_since is not None:
                s.hold += ts - s.hold_since
                s.hold_since = None
        elif typ == "transferred":
            s.transfers += 1
            if a.get("to_queue"):
                s.enter_queue(ts, a["to_queue"])
            elif a.get("to_agent"):
                s.agent_id = a["to_agent"]
                if s.connected_since is not None:
                    s.close_segment(ts)
                    s.open_segment(ts, a["to_agent"])
        elif typ == "ended":
            if s.in_queue_since is not None:
                # The customer left while queued: an abandon by another name.
                s.leave_queue(ts)
                if s.answered_at is None and s.abandoned_at is None:
                    s.abandoned_at = ts
            s.leave_agent(ts)
            if s.segments and s.segments[-1][3] is None:
                s.segments[-1][3] = 0  # after-call work pending until the wrap-up
            s.ended_at = ts
        elif typ == "wrapup_ended":
            if s.ended_at is None:
                s.flag("wrapup_without_end")
            s.wrapup_at = ts
            if s.segments and s.segments[-1][3] == 0:
                s.segments[-1][3] = ts
            s.disposition = a.get("disposition", s.disposition)
            if "resolved" in a:
                s.resolved = a["resolved"]
        elif typ == "first_response":
            if s.first_response_at is None:
                s.first_response_at = ts
        elif typ == "csat":
            s.csat, s.csat_at = a["score"], ts
        elif typ == "ivr_entered":
            # First entry and last exit, whatever their order: two systems' clocks may put
            # the exit a little before the entry (the time in the IVR is then 0, not less).
            if s.ivr_entered_at is None:
                s.ivr_entered_at, s.ivr = ts, a.get("ivr")
        elif typ == "ivr_step":
            s.ivr_path.append(a["step"])
        elif typ == "ivr_left":
            s.ivr_left_at, s.ivr_result = ts, a["result"]
        elif typ == "dialed":
            if s.dialed_at is None:
                s.dialed_at = ts
                s.campaign, s.list_id, s.record_id = a["campaign"], a.get("list_id"), a.get("record_id")
        elif typ == "dial_result":
            s.dial_result = a["result"]
        elif typ == "qa_evaluated":
            s.qa[a["form"]] = (a["score"], bool(a.get("critical_failure")))
        if typ == "transferred" and a.get("reason"):
            s.transfer_reasons.append(a["reason"])
        elif typ == "ended" and a.get("recording"):
            s.recording = a["recording"]
        elif typ == "wrapup_ended":
            s.right_party = a.get("right_party", s.right_party)
            s.converted = a.get("converted", s.converted)
    return s


def is_complete(s: _Fold) -> bool:
    """Nothing more is expected (a CSAT may still come, and is then applied)."""
    if s.in_queue_since is not None or s.connected_since is not None:
        return False
    if s.answered_at is None:
        return (s.abandoned_at is not None or s.dial_result in NOT_CONNECTED
                or (s.offered_at is None and s.ivr_result in IVR_FINAL))
    return s.ended_at is not None and s.wrapup_at is not None and s.wrapup_at >= s.ended_at


def version_of(state: State) -> int:
    """Monotonic in the state: more facts, or the same facts closed by the timeout."""
    return 2 * len(state["f"]) + int(state["x"]) + 2 * int(state.get("o", 0))  # o: no fact comes after it


def build_record(interaction_id: str, state: State, s: _Fold | None = None) -> dict[str, Any]:
    """The interaction record for the facts held now (a dict shaped as InteractionRecord)."""
    s = s or _fold(state["f"])
    end = s.last_at
    # Open intervals at a timeout are closed at the last event seen, never in the future.
    wait = s.wait + (end - s.in_queue_since if s.in_queue_since is not None else 0)
    hold = s.hold + (end - s.hold_since if s.hold_since is not None else 0)
    connected = s.connected + (end - s.connected_since if s.connected_since is not None else 0)
    acw = 0
    if s.wrapup_at is not None and s.ended_at is not None and s.wrapup_at >= s.ended_at:
        acw = s.wrapup_at - s.ended_at
    if s.answered_at is not None:
        outcome = "answered"
    elif s.abandoned_at is not None:
        outcome = "abandoned"
    elif s.offered_at is None and s.ivr_result in IVR_FINAL:
        outcome = "ivr"  # left in the IVR: served by it, hung up in it, or sent elsewhere
    elif s.dial_result in NOT_CONNECTED:
        outcome = "not_connected"
    else:
        outcome = "unanswered"
    ivr_ms = 0
    if s.ivr_entered_at is not None:
        ivr_end = s.ivr_left_at if s.ivr_left_at is not None else (s.offered_at or s.answered_at or end)
        ivr_ms = max(0, ivr_end - s.ivr_entered_at)
    qa = list(s.qa.values())
    return {
        "interaction_id": interaction_id,
        "tenant": s.tenant,
        "channel": s.channel,
        "queue": s.queues[-1] if s.queues else None,
        "first_queue": s.queues[0] if s.queues else None,
        "queues": s.queues,
        "customer_id": s.customer_id,
        "priority": s.priority,
        "agent_id": s.agent_id,
        "first_agent_id": s.first_agent_id,
        "offered_at_ms": s.offered_at,
        "answered_at_ms": s.answered_at,
        "abandoned_at_ms": s.abandoned_at if s.answered_at is None else None,
        "ended_at_ms": s.ended_at,
        "wrapup_ended_at_ms": s.wrapup_at,
        "first_response_at_ms": s.first_response_at,
        "last_event_at_ms": s.last_at,
        "wait_ms": wait,
        "talk_ms": connected - hold,
        "hold_ms": hold,
        "acw_ms": acw,
        "holds": s.holds,
        "transfers": s.transfers,
        "outcome": outcome,
        "disposition": s.disposition,
        "resolved": s.resolved,
        "csat": s.csat,
        "csat_at_ms": s.csat_at,
        "closed_by_timeout": bool(state["x"]) and not is_complete(s),
        "anomalies": sorted([*s.anomalies, "too_many_events"] if state.get("o") else s.anomalies),
        "n_events": len(state["f"]),
        "version": version_of(state),
        "direction": "outbound" if s.dialed_at is not None else (
            "callback" if s.callback or s.channel == "callback" else "inbound"),
        "campaign": s.campaign,
        "list_id": s.list_id,
        "record_id": s.record_id,
        "dialed_at_ms": s.dialed_at,
        "dial_result": s.dial_result,
        "right_party": s.right_party,
        "converted": s.converted,
        "ivr": s.ivr,
        "ivr_entered_at_ms": s.ivr_entered_at,
        "ivr_ms": ivr_ms,
        "ivr_result": s.ivr_result,
        "ivr_path": s.ivr_path,
        "transfer_reasons": s.transfer_reasons,
        "recording": s.recording,
        "qa_evaluations": len(qa),
        "qa_score": round(sum(x for x, _ in qa) / len(qa), 4) if qa else None,
        "qa_critical": any(c for _, c in qa) if qa else None,
    }


def agent_segments(s: _Fold, state: State) -> dict[str, list[list[int | None]]]:
    """Each agent's handling of this contact: [[connected from, to, ACW until], ...].

    ``to`` is None while connected; ``ACW until`` is 0 while after-call work is pending and
    None when the agent did none (it transferred the contact away). Once the interaction is
    closed by the timeout, open ends close at its last event: no agent stays busy forever.
    """
    out: dict[str, list[list[int | None]]] = {}
    closed = bool(state["x"])
    for agent, start, end, acw in s.segments:
        if closed and end is None:
            end = s.last_at
        if closed and acw == 0:
            acw = max(s.last_at, end)
        out.setdefault(agent, []).append([start, end, acw])
    return out


def fold(state: State) -> _Fold:
    """One pass over the state's facts (what build_record, due_record and KPIs read)."""
    return _fold(state["f"])


def waiting_since(s: _Fold, state: State) -> int | None:
    """When the contact started waiting, if it is in a queue now (and not closed by timeout)."""
    return s.in_queue_since if state["x"] == 0 else None


def due_record(interaction_id: str, state: State, now_ms: int, timeout_ms: int,
               s: _Fold | None = None) -> dict[str, Any] | None:
    """The record to emit now, or None; marks the state emitted (and timed out) in place.

    A record is due when the interaction is complete, or when its last event is older
    than ``timeout_ms`` at event-time ``now_ms`` -- and it differs from what was emitted.
    """
    if not state["f"] or state["v"] == version_of(state):
        return None  # nothing new since the last emission
    fold = s or _fold(state["f"])
    if not is_complete(fold) and not state.get("o"):  # over the cap: closed now
        if now_ms - fold.last_at < timeout_ms:  # last_at: the newest fact (they are folded in time order)
            return None
        state["x"] = 1
    record = build_record(interaction_id, state, fold)
    if record["version"] <= state["v"]:
        return None
    state["v"] = record["version"]
    return record


@dataclass
class Sweep:
    """What one pass over a worker's states found (``sweep``)."""

    expired: list[bytes] = field(default_factory=list)            # closed long enough ago: forget
    closed: list[tuple[bytes, dict[str, Any], _Fold]] = field(default_factory=list)  # records due now
    still_open: int = 0
    held: int = 0
    oldest_open: dict[int, int] = field(default_factory=dict)     # partition -> first event of its oldest open contact


def sweep(states: Mapping[bytes, State | None], owned: set[int], now_of: Callable[[int], int], timeout_ms: int,
          retention_ms: int, ident: Callable[[bytes], str]) -> Sweep:
    """Close the contacts whose final event never came (their record is due by the timeout;
    the state is marked emitted in place), find the closed ones older than the retention,
    and count what stays open. ``now_of(partition)`` is that partition's event clock."""
    out = Sweep(oldest_open={p: now_of(p) for p in owned})
    for key, st in states.items():
        if st is None or st.get("p") not in owned:
            continue
        out.held += 1
        now = now_of(st["p"])
        if st["v"] == version_of(st):
            if now - st["l"] > retention_ms:
                out.expired.append(key)
            continue
        f = fold(st)
        record = due_record(ident(key), st, now, timeout_ms, f)
        if record:
            out.closed.append((key, record, f))
        else:  # still open: the intervals from its first event on are not settled
            out.still_open += 1
            first = min(fact[0] for fact in st["f"].values())
            if first < out.oldest_open[st["p"]]:
                out.oldest_open[st["p"]] = first
    return out


@dataclass
class Taken:
    """What one batch's facts did to one contact's state (``take_facts``)."""

    refused: list[int]                  # indexes of facts past the event cap: to the dead letters
    changed: bool                       # new facts (or the cap's flag): store, count, tell the agents
    fold: _Fold | None = None
    record: dict[str, Any] | None = None  # due now; or, for a redelivery, the last one sent, to send again


def take_facts(state: State, facts: list[tuple[str, Fact]], partition: int, now_ms: int, timeout_ms: int,
               cap: int, interaction_id: str) -> Taken:
    """Fold a batch's facts of one contact into its state, in place.

    Only known facts is a redelivery after a crash between a batch's sends: the record of
    the version already emitted is given back to be sent again (the same version collapses
    downstream), or it could be missing."""
    flagged = bool(state.get("o"))
    facts, refused = admit(state, facts, cap)
    if merge(state, facts) or bool(state.get("o")) != flagged:
        state["p"] = partition
        f = fold(state)
        state["l"] = f.last_at  # the newest fact: the fold reads them in time order
        return Taken(refused, True, f, due_record(interaction_id, state, now_ms, timeout_ms, f))
    if not state["f"]:
        return Taken(refused, False)
    f = fold(state)
    emitted = state["v"] and state["v"] == version_of(state)
    return Taken(refused, False, f, build_record(interaction_id, state, f) if emitted else None)


def agent_updates(state: State, f: _Fold, changed: bool) -> list[tuple[str, list[list[int | None]]]]:
    """What each agent must be told of this contact: its handling segments, for every agent
    whose segments changed (or, on a replay, for every agent, since the first delivery may
    have stopped before those sends went out); an agent no longer in the contact gets []. The
    state remembers what was told (``a``)."""
    now_segs = agent_segments(f, state)
    old = state.get("a") or {}
    out = [(agent, now_segs.get(agent, [])) for agent in sorted(set(old) | set(now_segs))
           if not changed or old.get(agent) != now_segs.get(agent, [])]
    state["a"] = now_segs
    return out
