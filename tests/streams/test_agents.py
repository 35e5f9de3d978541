"""Agent timelines: states, concurrency and intervals from events and handled contacts."""
from __future__ import annotations

import random

from streams.domain import agents as ag

T0 = 1_767_258_000_000  # a quarter-hour boundary
S = 1000


def agent_with(*events: tuple[int, str, str | None]) -> dict:
    st = ag.new_agent_state()
    for i, (t, typ, reason) in enumerate(events):
        ag.merge_event(st, f"e{i}", T0 + t * S, typ, "acme", reason, ["sales"] if typ == "agent_login" else None)
    return st


DAY = [(0, "agent_login", None), (1, "agent_ready", None), (300, "agent_not_ready", "break"),
       (1200, "agent_ready", None), (1500, "agent_logout", None)]


def test_a_voice_agent_day_in_intervals() -> None:
    st = agent_with(*DAY)
    ag.set_contact(st, "c1", [[T0 + 60 * S, T0 + 180 * S, T0 + 200 * S]], "acme")
    figs = ag.per_interval(ag.timeline(st, T0, T0 + 1800 * S), 900 * S)
    a, b = figs[T0], figs[T0 + 900 * S]
    assert a.ms == {"busy": 120 * S, "acw": 20 * S, "ready": 159 * S, "not_ready": 601 * S, "logged_out": 0}
    assert a.not_ready == {"logged_in": 1 * S, "break": 600 * S}
    assert a.occupancy == 140 / 299 and a.max_held == 1 and a.held_ms == 140 * S
    assert b.ms == {"busy": 0, "acw": 0, "ready": 300 * S, "not_ready": 300 * S, "logged_out": 300 * S}
    assert b.logged_in_ms == 600 * S


def test_concurrent_chats_count_busy_once() -> None:
    st = agent_with((0, "agent_login", None), (0, "agent_ready", None))
    ag.set_contact(st, "c1", [[T0 + 10 * S, T0 + 70 * S, T0 + 80 * S]], "acme")
    ag.set_contact(st, "c2", [[T0 + 40 * S, T0 + 100 * S, T0 + 100 * S]], "acme")
    f = ag.per_interval(ag.timeline(st, T0, T0 + 200 * S), 900 * S)[T0]
    assert f.ms["busy"] == 90 * S and f.ms["acw"] == 0 and f.ms["ready"] == 110 * S
    assert f.max_held == 2 and f.held_ms == (60 + 10 + 60) * S


def test_pending_acw_runs_until_now_and_current_state() -> None:
    st = agent_with((0, "agent_login", None), (0, "agent_ready", None))
    ag.set_contact(st, "c1", [[T0 + 10 * S, T0 + 70 * S, 0]], "acme")  # ended, wrap-up not done yet
    state, reason, since, held, queues = ag.current(st, T0 + 100 * S)
    assert (state, since, held, queues) == ("acw", T0 + 70 * S, 1, ["sales"])
    ag.set_contact(st, "c1", [[T0 + 10 * S, T0 + 70 * S, T0 + 90 * S]], "acme")
    assert ag.current(st, T0 + 100 * S)[:3] == ("ready", "", T0 + 90 * S)
    assert ag.set_contact(st, "c1", [], "acme") and "c1" not in st["c"]


def test_order_and_redelivery_do_not_matter() -> None:
    events = [(i, *e) for i, e in enumerate(DAY)]
    want = ag.timeline(agent_with(*DAY), T0, T0 + 1800 * S)
    for seed in range(5):
        shuffled = events + events[:2]
        random.Random(seed).shuffle(shuffled)
        st = ag.new_agent_state()
        for i, t, typ, reason in shuffled:
            ag.merge_event(st, f"e{i}", T0 + t * S, typ, "acme", reason)
        assert ag.timeline(st, T0, T0 + 1800 * S) == want


def test_trim_keeps_the_state_setting_events() -> None:
    st = agent_with(*DAY)
    ag.set_contact(st, "c1", [[T0 + 60 * S, T0 + 180 * S, T0 + 200 * S]], "acme")
    before = ag.timeline(st, T0 + 1300 * S, T0 + 1800 * S)
    ag.trim(st, T0 + 1300 * S)
    assert ag.timeline(st, T0 + 1300 * S, T0 + 1800 * S) == before
    assert st["c"] == {} and len(st["f"]) < len(DAY)
    # It says from when it is whole: the figures never rewrite an interval before that from it.
    assert ag.complete_from(st) == T0 + 1300 * S
    ag.trim(st, T0 + 100 * S)  # an older horizon forgets nothing more and keeps the mark
    assert ag.complete_from(st) == T0 + 1300 * S and ag.complete_from(agent_with(*DAY)) == 0


def _stored(figs: dict) -> dict:
    """What agent_intervals keeps of each interval (logged-out time is no column)."""
    return {k: (f.logged_in_ms, f.ms["ready"], f.ms["busy"], f.ms["acw"], f.ms["not_ready"], f.held_ms, f.max_held,
                f.not_ready) for k, f in figs.items()}


def test_last_event_at_is_the_newest_own_event_in_any_arrival_order() -> None:
    assert ag.last_event_at(agent_with(*reversed(DAY))) == T0 + 1500 * S
    st = agent_with(*DAY[:2])
    ag.set_contact(st, "c1", [[T0 + 60 * S, T0 + 180 * S, T0 + 200 * S]], "acme")  # contacts are not its events
    assert ag.last_event_at(st) == T0 + 1 * S
    assert ag.last_event_at(ag.new_agent_state()) is None


def test_idle_since_is_when_nothing_more_can_change() -> None:
    st = agent_with(*DAY)  # logs out at 1500 s
    ag.set_contact(st, "c1", [[T0 + 60 * S, T0 + 180 * S, T0 + 200 * S]], "acme")
    assert ag.idle_since(st) == T0 + 1500 * S
    ag.set_contact(st, "c2", [[T0 + 1400 * S, T0 + 1550 * S, T0 + 1600 * S]], "acme")  # wrap-up after logout
    assert ag.idle_since(st) == T0 + 1600 * S
    ag.set_contact(st, "c3", [[T0 + 1450 * S, T0 + 1700 * S, 0]], "acme")  # still in ACW
    assert ag.idle_since(st) is None
    assert ag.idle_since(agent_with(*DAY[:-1])) is None  # logged in
    assert ag.idle_since(ag.new_agent_state()) is None


def test_after_idle_since_the_stored_figures_do_not_change() -> None:
    rnd = random.Random(3)
    kinds = ["agent_login", "agent_ready", "agent_not_ready", "agent_logout"]
    checked = 0
    for _ in range(300):
        events = sorted((rnd.randrange(0, 3600), rnd.choice(kinds), "break") for _ in range(rnd.randrange(1, 8)))
        st = agent_with(*events)
        for c in range(rnd.randrange(0, 3)):
            s0 = rnd.randrange(0, 3600)
            s1 = s0 + rnd.randrange(1, 600)
            ag.set_contact(st, f"c{c}", [[T0 + s0 * S, T0 + s1 * S, T0 + (s1 + rnd.randrange(0, 60)) * S]], "acme")
        idle = ag.idle_since(st)
        if idle is None:
            continue
        checked += 1
        start = T0
        upto_idle = _stored(ag.per_interval(ag.timeline(st, start, idle), 900 * S))
        later = _stored(ag.per_interval(ag.timeline(st, start, idle + rnd.randrange(1, 8000) * S), 900 * S))
        zero = (0, 0, 0, 0, 0, 0, 0, {})
        assert {k: v for k, v in later.items() if v != zero} == {k: v for k, v in upto_idle.items() if v != zero}
    assert checked > 50
