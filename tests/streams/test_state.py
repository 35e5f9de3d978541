"""The pure state machine: exact records for known lifecycles, and the properties the
stream relies on -- same record for any arrival order and any number of redeliveries."""
from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import parse_event
from schemas.records import InteractionRecord
from streams.domain.state import build_record, due_record, fact_of, merge, new_state, version_of

T0 = 1_767_258_000_000  # 2026-01-01T09:00:00Z


def ev(typ: str, t_ms: int, n: int, iid: str = "i1", **kw: Any) -> dict[str, Any]:
    from datetime import datetime, timezone

    ts = datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
    return {"type": typ, "event_id": f"{iid}:{n}", "ts": ts, "tenant": "acme", "interaction_id": iid,
            "channel": kw.pop("channel", "voice"), **kw}


def fold(events: list[dict[str, Any]]) -> dict[str, Any]:
    s = new_state()
    merge(s, [fact_of(parse_event(json.dumps(e))) for e in events])
    return build_record("i1", s)


def answered_call() -> list[dict[str, Any]]:
    return [
        ev("offered", T0, 1, queue="sales", customer_id="c9", priority=2),
        ev("answered", T0 + 12_345, 2, agent_id="ann"),
        ev("hold_started", T0 + 60_000, 3),
        ev("hold_ended", T0 + 90_500, 4),
        ev("ended", T0 + 200_000, 5),
        ev("wrapup_ended", T0 + 230_000, 6, disposition="sale", resolved=True),
        ev("csat", T0 + 86_400_000, 7, score=4),
    ]


def test_answered_call_has_exact_durations() -> None:
    r = fold(answered_call())
    assert r["outcome"] == "answered"
    assert r["wait_ms"] == 12_345
    assert r["hold_ms"] == 30_500
    assert r["talk_ms"] == 200_000 - 12_345 - 30_500
    assert r["acw_ms"] == 30_000
    assert (r["holds"], r["transfers"], r["csat"], r["resolved"], r["disposition"]) == (1, 0, 4, True, "sale")
    assert (r["queue"], r["customer_id"], r["priority"], r["agent_id"]) == ("sales", "c9", 2, "ann")
    assert r["offered_at_ms"] == T0 and r["answered_at_ms"] == T0 + 12_345
    assert r["anomalies"] == [] and r["closed_by_timeout"] is False
    InteractionRecord.model_validate(r)


def test_transfer_to_queue_adds_the_second_wait_and_keeps_first_answer() -> None:
    r = fold([
        ev("offered", T0, 1, queue="sales"),
        ev("answered", T0 + 10_000, 2, agent_id="ann"),
        ev("transferred", T0 + 70_000, 3, to_queue="billing", agent_id="ann"),
        ev("offered", T0 + 70_000, 4, queue="billing"),
        ev("answered", T0 + 95_000, 5, agent_id="bob"),
        ev("ended", T0 + 155_000, 6),
        ev("wrapup_ended", T0 + 160_000, 7),
    ])
    assert r["wait_ms"] == 10_000 + 25_000
    assert r["talk_ms"] == 60_000 + 60_000
    assert r["queues"] == ["sales", "billing"] and r["queue"] == "billing" and r["first_queue"] == "sales"
    assert (r["first_agent_id"], r["agent_id"], r["transfers"]) == ("ann", "bob", 1)
    assert r["answered_at_ms"] == T0 + 10_000 and r["acw_ms"] == 5_000


def test_abandon_is_complete_without_wrapup() -> None:
    s = new_state()
    merge(s, [fact_of(parse_event(json.dumps(e))) for e in
              [ev("offered", T0, 1, queue="q"), ev("abandoned", T0 + 3_000, 2)]])
    r = due_record("i1", s, now_ms=T0 + 3_000, timeout_ms=10**9)
    assert r is not None and r["outcome"] == "abandoned" and r["wait_ms"] == 3_000
    assert r["abandoned_at_ms"] == T0 + 3_000 and r["ended_at_ms"] is None
    assert due_record("i1", s, now_ms=T0 + 10**10, timeout_ms=1) is None  # emitted already


def test_open_interaction_waits_for_timeout_then_closes_and_reopens_on_late_event() -> None:
    s = new_state()
    first = [ev("offered", T0, 1, queue="q"), ev("answered", T0 + 5_000, 2, agent_id="a")]
    merge(s, [fact_of(parse_event(json.dumps(e))) for e in first])
    assert due_record("i1", s, now_ms=T0 + 59_999 + 5_000, timeout_ms=60_000) is None
    r = due_record("i1", s, now_ms=T0 + 65_000, timeout_ms=60_000)
    assert r is not None and r["closed_by_timeout"] is True and r["talk_ms"] == 0 and r["version"] == 5
    late = [ev("ended", T0 + 100_000, 3), ev("wrapup_ended", T0 + 110_000, 4)]
    merge(s, [fact_of(parse_event(json.dumps(e))) for e in late])
    r2 = due_record("i1", s, now_ms=T0 + 110_000, timeout_ms=60_000)
    assert r2 is not None and r2["closed_by_timeout"] is False and r2["talk_ms"] == 95_000
    assert r2["version"] > r["version"]


def test_impossible_sequences_are_flagged_not_negative() -> None:
    r = fold([ev("answered", T0, 1, agent_id="a"), ev("ended", T0 + 1_000, 2),
              ev("wrapup_ended", T0 + 500, 3)])
    assert "answered_without_offer" in r["anomalies"] and "wrapup_without_end" in r["anomalies"]
    assert min(r["wait_ms"], r["talk_ms"], r["hold_ms"], r["acw_ms"]) >= 0
    assert r["acw_ms"] == 0


def test_conflicting_payloads_under_one_event_id_resolve_independently_of_order() -> None:
    a = ev("offered", T0, 1, queue="sales")
    b = dict(a, queue="billing")
    r1, r2 = fold([a, b]), fold([b, a])
    assert r1 == r2 and r1["n_events"] == 1


# --- properties ----------------------------------------------------------------------

@st.composite
def lifecycles(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A plausible interaction: queue stints, maybe transfers, holds, chats, CSAT."""
    t = T0 + draw(st.integers(0, 10**6))
    n = iter(range(1, 1000))
    channel = draw(st.sampled_from(["voice", "chat", "email"]))
    out = [ev("offered", t, next(n), queue="q0", channel=channel)]
    stints = draw(st.integers(1, 3))
    for i in range(stints):
        # A re-queued contact is answered at least 1 ms after its transfer: within one
        # millisecond the fold can only order events by TYPE_RANK (answer before transfer).
        t += draw(st.integers(0 if i == 0 else 1, 120_000))
        if draw(st.booleans()) and i == 0 and stints == 1:
            out.append(ev("abandoned", t, next(n), channel=channel))
            return out
        out.append(ev("answered", t, next(n), agent_id=f"a{i}", channel=channel))
        if channel == "chat":
            out.append(ev("first_response", t + draw(st.integers(0, 30_000)), next(n), channel=channel))
        # Holds last at least 1 ms and sit strictly inside the talk: only a transfer and
        # its re-offer, or an offer and an immediate answer, share a millisecond for real.
        for _ in range(draw(st.integers(0, 2))):
            t += draw(st.integers(1, 60_000))
            out.append(ev("hold_started", t, next(n), channel=channel))
            t += draw(st.integers(1, 60_000))
            out.append(ev("hold_ended", t, next(n), channel=channel))
        t += draw(st.integers(1, 300_000))
        if i < stints - 1:
            out.append(ev("transferred", t, next(n), to_queue=f"q{i + 1}", channel=channel))
            out.append(ev("offered", t, next(n), queue=f"q{i + 1}", channel=channel))
    out.append(ev("ended", t, next(n), channel=channel))
    t += draw(st.integers(0, 120_000))
    out.append(ev("wrapup_ended", t, next(n), disposition="x", resolved=draw(st.booleans()), channel=channel))
    if draw(st.booleans()):
        out.append(ev("csat", t + draw(st.integers(0, 10**8)), next(n), score=draw(st.integers(1, 5)), channel=channel))
    return out


@settings(max_examples=300, deadline=None)
@given(lifecycles(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_record_is_independent_of_order_and_duplicates(events: list[dict[str, Any]], rnd: random.Random,
                                                        dups: int) -> None:
    expected = fold(events)
    delivered = events + [rnd.choice(events) for _ in range(dups * len(events) // 2)]
    rnd.shuffle(delivered)
    # Deliver in several batches, as the agent does.
    s = new_state()
    cut = sorted(rnd.sample(range(len(delivered) + 1), min(3, len(delivered) + 1)))
    for lo, hi in zip([0, *cut], [*cut, len(delivered)]):
        merge(s, [fact_of(parse_event(json.dumps(e))) for e in delivered[lo:hi]])
    assert build_record("i1", s) == expected
    assert expected["anomalies"] == []
    InteractionRecord.model_validate(expected)


@settings(max_examples=300, deadline=None)
@given(lifecycles())
def test_durations_add_up(events: list[dict[str, Any]]) -> None:
    r = fold(events)
    if r["outcome"] == "answered":
        # Everything from offer to end is either queued, talking or on hold.
        assert r["wait_ms"] + r["talk_ms"] + r["hold_ms"] == r["ended_at_ms"] - r["offered_at_ms"]
        assert r["acw_ms"] == r["wrapup_ended_at_ms"] - r["ended_at_ms"]
    else:
        assert r["wait_ms"] == r["abandoned_at_ms"] - r["offered_at_ms"]


_TYPES = ["offered", "answered", "abandoned", "hold_started", "hold_ended", "transferred", "ended",
          "wrapup_ended", "first_response", "csat", "ivr_entered", "ivr_step", "ivr_left", "dialed",
          "dial_result", "qa_evaluated"]


@st.composite
def arbitrary_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Any mix of event types and times, most of them nonsense: the fold must cope."""
    out = []
    for i in range(draw(st.integers(1, 12))):
        typ = draw(st.sampled_from(_TYPES))
        kw: dict[str, Any] = {}
        if typ == "offered":
            kw["queue"] = draw(st.sampled_from(["a", "b"]))
        elif typ == "answered":
            kw["agent_id"] = draw(st.sampled_from(["x", "y"]))
        elif typ == "transferred":
            kw[draw(st.sampled_from(["to_queue", "to_agent"]))] = "z"
        elif typ == "csat":
            kw["score"] = draw(st.integers(1, 5))
        elif typ == "ivr_step":
            kw["step"] = draw(st.sampled_from(["m1", "m2"]))
        elif typ == "ivr_left":
            kw["result"] = draw(st.sampled_from(["to_queue", "self_served", "hung_up", "transferred_out"]))
        elif typ == "dialed":
            kw["campaign"] = draw(st.sampled_from(["c1", "c2"]))
        elif typ == "dial_result":
            kw["result"] = draw(st.sampled_from(["connected", "no_answer", "dialer_abandoned"]))
        elif typ == "qa_evaluated":
            kw.update(agent_id="x", evaluator="e", form=draw(st.sampled_from(["f1", "f2"])),
                      score=draw(st.sampled_from([50.0, 75.5, 100.0])), critical_failure=draw(st.booleans()))
        out.append(ev(typ, T0 + draw(st.integers(0, 5)) * 1000, i, **kw))
    return out


@settings(max_examples=500, deadline=None)
@given(arbitrary_events(), st.randoms(use_true_random=False))
def test_any_event_set_folds_to_one_valid_record_whatever_the_order(events: list[dict[str, Any]],
                                                                    rnd: random.Random) -> None:
    expected = fold(events)
    shuffled = events[:]
    rnd.shuffle(shuffled)
    assert fold(shuffled) == expected
    assert min(expected["wait_ms"], expected["talk_ms"], expected["hold_ms"], expected["acw_ms"]) >= 0
    InteractionRecord.model_validate(expected)


def test_version_grows_with_facts_and_timeout() -> None:
    s = new_state()
    merge(s, [fact_of(parse_event(json.dumps(ev("offered", T0, 1, queue="q"))))])
    v1 = version_of(s)
    s["x"] = 1
    v2 = version_of(s)
    merge(s, [fact_of(parse_event(json.dumps(ev("answered", T0 + 1, 2, agent_id="a"))))])
    assert v1 < v2 < version_of(s)


def test_a_contact_over_its_event_cap_is_closed_and_flagged_and_redeliveries_still_count() -> None:
    from streams.domain.state import admit

    events = answered_call()[:2] + [ev("hold_started" if k % 2 == 0 else "hold_ended", T0 + 20_000 + k * 1000, 3 + k)
                                    for k in range(10)]
    facts = [fact_of(parse_event(json.dumps(e))) for e in events]
    s = new_state()
    took, refused = admit(s, facts[:5], cap=6)
    assert (len(took), refused, s.get("o")) == (5, [], None)
    merge(s, took)
    record = due_record("i1", s, T0 + 21_000, 3_600_000)
    assert record is None  # open, and recent: nothing to emit yet
    before = version_of(s)
    took, refused = admit(s, facts[:2] + facts[5:], cap=6)  # two redeliveries, then seven new
    assert [eid for eid, _ in took] == [facts[0][0], facts[1][0], facts[5][0]] and refused == list(range(3, 9))
    merge(s, took)
    assert s["o"] == 1 and s["x"] == 1 and version_of(s) > before
    record = due_record("i1", s, T0 + 21_000, 3_600_000)  # closed now, not after the timeout
    assert record is not None and record["anomalies"] == ["too_many_events"] and record["n_events"] == 6
    assert record["closed_by_timeout"] is True
    took, refused = admit(s, facts, cap=6)  # everything again: the known six pass, nothing new
    assert len(took) == 6 and refused == list(range(6, 12))
    assert not merge(s, took) and due_record("i1", s, T0 + 30_000, 3_600_000) is None


def test_a_state_at_its_event_cap_fits_in_one_changelog_message() -> None:
    """The changelog keeps each contact's state in one message: at the cap, with every field
    as long as the schema allows (128 four-byte characters), it still fits the 1 MB that
    brokers accept by default, with room for the key and headers."""
    import orjson

    from streams.config.settings import Settings
    from streams.domain.state import admit

    cap = Settings.model_fields["max_events_per_interaction"].default
    big = "\U0001d538" * 128  # 𝔸: four bytes in UTF-8
    events = [ev("transferred", T0 + k, 0, iid="i1", to_queue=big, agent_id=big) | {"event_id": f"{big[:120]}{k:08d}"}
              for k in range(cap + 50)]
    s = new_state()
    took, refused = admit(s, [fact_of(parse_event(json.dumps(e))) for e in events], cap)
    merge(s, took)
    s.update(p=3, l=T0, k=["t" * 128, "q" * 128, "chat", [], None], a={big: [[T0, T0, T0]]})
    size = len(orjson.dumps(s))
    assert len(refused) == 50 and size < 900_000, f"{size:,} bytes at the cap of {cap}"


def test_a_sweep_closes_what_timed_out_forgets_what_is_old_and_counts_what_stays_open() -> None:
    from streams.domain.state import sweep

    def state_of(events: list[dict[str, Any]], p: int) -> dict[str, Any]:
        s = new_state()
        merge(s, [fact_of(parse_event(json.dumps(e))) for e in events])
        s["p"], s["l"] = p, max(f[0] for f in s["f"].values())
        return s

    done = state_of(answered_call()[:-1], 0)  # (without the CSAT a day later)
    assert due_record("done", done, T0 + 300_000, 3_600_000) is not None  # emitted: closed
    silent = state_of([ev("offered", T0, 1, iid="silent", queue="sales")], 0)
    waiting = state_of([ev("offered", T0 + 7_000_000, 1, iid="waiting", queue="sales")], 1)
    other = state_of([ev("offered", T0, 1, iid="other", queue="sales")], 2)  # a partition not owned
    states = {b"t\x1fdone": done, b"t\x1fsilent": silent, b"t\x1fwaiting": waiting, b"t\x1fother": other,
              b"t\x1fgone": None}
    now = T0 + 7_200_000  # two hours on
    found = sweep(states, {0, 1}, lambda p: now, timeout_ms=3_600_000, retention_ms=3_000_000,
                  ident=lambda k: k.decode().split("\x1f")[1])
    assert found.expired == [b"t\x1fdone"]  # closed 1 h 55 min ago, retention 50 min
    assert [(k, r["interaction_id"], r["closed_by_timeout"]) for k, r, _ in found.closed] == \
        [(b"t\x1fsilent", "silent", True)]  # offered 2 h ago, nothing since
    assert (found.still_open, found.held) == (1, 3)
    assert found.oldest_open == {0: now, 1: T0 + 7_000_000}
    assert silent["v"] == version_of(silent) and silent["x"] == 1  # marked emitted in place
    again = sweep(states, {0, 1}, lambda p: now, 3_600_000, 3_000_000, lambda k: k.decode())
    assert again.closed == []  # emitted once


def test_taking_a_batch_of_facts_new_then_redelivered_then_over_the_cap() -> None:
    from streams.domain.state import take_facts

    facts = [fact_of(parse_event(json.dumps(e))) for e in answered_call()[:-1]]  # complete, no CSAT
    s = new_state()
    first = take_facts(s, facts[:2], 3, T0 + 20_000, 3_600_000, 500, "i1")
    assert (first.refused, first.changed, first.record) == ([], True, None)  # open: nothing due yet
    assert (s["p"], s["l"]) == (3, facts[1][1][0])
    done = take_facts(s, facts, 3, T0 + 240_000, 3_600_000, 500, "i1")
    assert done.changed and done.record is not None and done.record["outcome"] == "answered"
    again = take_facts(s, facts[2:], 3, T0 + 250_000, 3_600_000, 500, "i1")  # a redelivery after a crash
    assert not again.changed and again.record == done.record  # the same version, to send again
    assert take_facts(new_state(), [], 0, T0, 3_600_000, 500, "x") == \
        take_facts(new_state(), [], 0, T0, 3_600_000, 500, "x")  # nothing, nothing
    holds = [fact_of(parse_event(json.dumps(ev("hold_started" if k % 2 == 0 else "hold_ended",
                                                 T0 + 20_000 + k * 1000, 10 + k)))) for k in range(8)]
    over = take_facts(s, holds, 3, T0 + 300_000, 3_600_000, 10, "i1")  # 6 known + 4 room, cap 10
    assert over.refused == [4, 5, 6, 7] and over.changed and over.record["anomalies"] == ["too_many_events"]


def test_agents_are_told_only_what_changed_and_everything_on_a_replay() -> None:
    from streams.domain.state import agent_updates, fold

    s = new_state()
    merge(s, [fact_of(parse_event(json.dumps(e))) for e in answered_call()[:2]])  # offered, answered by ann
    first = agent_updates(s, fold(s), True)
    assert [a for a, _ in first] == ["ann"] and first[0][1][0][0] == T0 + 12_345  # connected from
    assert agent_updates(s, fold(s), True) == []  # nothing changed: nothing to tell
    assert [a for a, _ in agent_updates(s, fold(s), False)] == ["ann"]  # a replay tells again
    s["a"]["bob"] = [[T0, T0 + 1, None]]  # bob was told of a segment this contact no longer has
    assert ("bob", []) in agent_updates(s, fold(s), True)


def test_ivr_outbound_and_quality_fold_to_exact_records() -> None:
    """The IVR, an outbound call and a late evaluation, worked out by hand."""
    r = fold([ev("ivr_entered", T0, 1, ivr="main"), ev("ivr_step", T0 + 4_000, 2, step="main>billing"),
              ev("ivr_step", T0 + 9_000, 3, step="intent:balance"), ev("ivr_left", T0 + 20_000, 4, result="to_queue"),
              ev("offered", T0 + 20_001, 5, queue="sales"), ev("answered", T0 + 50_001, 6, agent_id="ann"),
              ev("transferred", T0 + 60_000, 7, to_agent="bob", reason="escalation"),
              ev("ended", T0 + 90_000, 8, recording="https://rec.example/i1"),
              ev("wrapup_ended", T0 + 95_000, 9),
              ev("qa_evaluated", T0 + 86_400_000, 10, agent_id="bob", evaluator="sue", form="f1", score=70.0),
              ev("qa_evaluated", T0 + 90_000_000, 11, agent_id="bob", evaluator="sue", form="f1", score=90.0),
              ev("qa_evaluated", T0 + 86_400_000, 12, agent_id="bob", evaluator="tom", form="f2", score=60.0,
                 critical_failure=True)])
    assert (r["direction"], r["outcome"], r["ivr"], r["ivr_ms"], r["ivr_result"], r["ivr_path"]) == (
        "inbound", "answered", "main", 20_000, "to_queue", ["main>billing", "intent:balance"])
    assert (r["wait_ms"], r["talk_ms"], r["transfer_reasons"], r["recording"]) == (
        30_000, 39_999, ["escalation"], "https://rec.example/i1")
    # f1's later 90 replaces its 70; the mean with f2's 60 is 75; f2's critical failure counts
    assert (r["qa_evaluations"], r["qa_score"], r["qa_critical"]) == (2, 75.0, True)
    out = fold([ev("dialed", T0, 1, campaign="renewals", list_id="l1", record_id="p7"),
                ev("dial_result", T0 + 15_000, 2, result="connected"), ev("answered", T0 + 15_000, 3, agent_id="ann"),
                ev("ended", T0 + 75_000, 4), ev("wrapup_ended", T0 + 80_000, 5, disposition="sale",
                                                   right_party=True, converted=True)])
    assert (out["direction"], out["outcome"], out["campaign"], out["record_id"], out["dial_result"],
            out["talk_ms"], out["acw_ms"], out["converted"], out["anomalies"], out["offered_at_ms"]) == (
        "outbound", "answered", "renewals", "p7", "connected", 60_000, 5_000, True, [], None)
    dropped = fold([ev("dialed", T0, 1, campaign="renewals"), ev("dial_result", T0 + 9_000, 2, result="dialer_abandoned")])
    assert (dropped["outcome"], dropped["dial_result"], dropped["closed_by_timeout"]) == (
        "not_connected", "dialer_abandoned", False)
    hung = fold([ev("ivr_entered", T0, 1), ev("ivr_left", T0 - 5_000, 2, result="hung_up")])  # exit logged first
    assert (hung["outcome"], hung["ivr_ms"], hung["queue"]) == ("ivr", 0, None)
