"""Aggregates stay exact under any sequence of corrections: applying updates one by one
equals rebuilding from the final states, and equals a brute-force recount."""
from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain import kpi
from streams.domain.windows import INTERVAL_MS, MINUTE_MS, PartitionKpis, floor

NOW = 1_800_000_000_000 - 1_800_000_000_000 % INTERVAL_MS + 7 * MINUTE_MS
GROUPS = [("t", "q1", "voice"), ("t", "q2", "chat")]


def entry(group: int, parts: list[tuple[int, int, int]], waiting: int | None) -> list:
    """parts: (minutes before NOW, count field index, value); the max field takes the value too."""
    contribution = []
    for ago, field_i, value in parts:
        v = kpi.zero()
        v[field_i] = value
        v[kpi.MAX_I] = value
        contribution.append([NOW - ago * MINUTE_MS, v])
    return [*GROUPS[group], contribution, waiting]


entries = st.builds(
    entry,
    st.integers(0, 1),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, kpi.MAX_I - 1), st.integers(0, 10_000)), max_size=3),
    st.one_of(st.none(), st.integers(NOW - 3_600_000, NOW)),
)
updates = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.one_of(st.none(), entries)), max_size=25)


def brute(final: dict[str, list | None], grain: int, horizon: int) -> dict:
    out: dict = defaultdict(kpi.zero)
    for e in final.values():
        if e is None:
            continue
        for ts, v in e[3]:
            if floor(ts, grain) >= horizon:
                kpi.add(out[(*e[:3], floor(ts, grain))], v)
    return dict(out)


def fresh() -> PartitionKpis:
    return PartitionKpis(0, lateness_ms=2 * 3600_000, rolling_minutes=(5, 60))


@settings(max_examples=300, deadline=None)
@given(updates)
def test_incremental_equals_rebuild_equals_brute_force(seq: list) -> None:
    kp = fresh()
    state: dict[str, list | None] = {}
    for iid, new in seq:
        kp.apply(iid, state.get(iid), new, NOW)
        state[iid] = new
        kp.rescan_max(e for e in state.values() if e is not None)
    rebuilt = fresh()
    rebuilt.rebuild([(i, e) for i, e in state.items() if e is not None], NOW)
    nonzero = lambda d: {k: v for k, v in d.items() if any(v)}  # noqa: E731
    want_i = brute(state, INTERVAL_MS, floor(NOW - 2 * 3600_000, INTERVAL_MS))
    assert nonzero(kp.intervals) == nonzero(rebuilt.intervals) == nonzero(want_i)
    want_m = brute(state, MINUTE_MS, floor(NOW, MINUTE_MS) - 61 * MINUTE_MS)
    assert nonzero(kp.minutes) == nonzero(rebuilt.minutes) == nonzero(want_m)
    assert kp.waiting == rebuilt.waiting


def test_rolling_windows_pin_their_boundaries() -> None:
    """A 5-minute window is the current minute and the four before it: an event exactly
    5 minutes before the current minute's start is out."""
    kp = fresh()
    answered = kpi.FIELDS.index("answered")
    cur = floor(NOW, MINUTE_MS)
    for i, ts in enumerate([cur, cur - 4 * MINUTE_MS, cur - 4 * MINUTE_MS - 1, cur - 59 * MINUTE_MS, NOW + MINUTE_MS]):
        v = kpi.zero()
        v[answered] = 1
        kp.apply(f"i{i}", None, [*GROUPS[0], [[ts, v]], None], NOW)
    live = {w: vec[answered] for _, w, vec, _, _ in kp.live(NOW)}
    assert live == {5: 2, 60: 4}  # an event in a later minute than now is in no window yet


def test_waiting_now_and_oldest() -> None:
    kp = fresh()
    kp.apply("a", None, [*GROUPS[0], [], NOW - 50_000], NOW)
    kp.apply("b", None, [*GROUPS[0], [], NOW - 20_000], NOW)
    kp.apply("c", None, [*GROUPS[1], [], NOW - 10_000], NOW)
    rows = {(g, w): (n, oldest) for g, w, _, n, oldest in kp.live(NOW)}
    assert rows[(GROUPS[0], 5)] == (2, NOW - 50_000) and rows[(GROUPS[1], 60)] == (1, NOW - 10_000)
    kp.apply("a", [*GROUPS[0], [], NOW - 50_000], [*GROUPS[0], [], None], NOW)
    rows = {(g, w): (n, oldest) for g, w, _, n, oldest in kp.live(NOW)}
    assert rows[(GROUPS[0], 5)] == (1, NOW - 20_000)


def test_late_updates_leave_frozen_intervals_alone_and_are_counted() -> None:
    kp = fresh()
    v = kpi.zero()
    v[0] = 1
    kp.apply("x", None, [*GROUPS[0], [[NOW - 3 * 3600_000, v]], None], NOW)
    assert kp.intervals == {} and kp.late_updates == 1


def test_expire_forgets_old_intervals_and_minutes() -> None:
    kp = fresh()
    v = kpi.zero()
    v[0] = 1
    kp.apply("x", None, [*GROUPS[0], [[NOW - 90 * MINUTE_MS, v], [NOW, v]], None], NOW)
    kp.expire(NOW + 3 * 3600_000)
    assert kp.intervals == {} and kp.minutes == {}


def test_a_rebuild_zeroes_stored_intervals_no_interaction_is_in_any_more() -> None:
    """A contact counted in q1 was transferred to q2 before a crash; the q1 row stored
    before it stays in the sums unless the rebuilt partition writes it again as zeros."""
    kp = fresh()
    v = kpi.zero()
    v[0] = 1
    kp.rebuild([("x", [*GROUPS[1], [[NOW, v]], None])], NOW)
    kp.take_dirty()
    here = floor(NOW, INTERVAL_MS)
    stale = ("t", "q1", "voice", here)
    frozen = ("t", "q1", "voice", floor(NOW - 3 * 3600_000, INTERVAL_MS))  # past lateness: left as stored
    kp.zero_stored([stale, frozen, ("t", "q2", "chat", here)], NOW)
    assert kp.take_dirty() == [(stale, kpi.zero())]
    assert kp.intervals[("t", "q2", "chat", here)] == v  # intervals it has keep their figures


def test_a_part_past_the_lateness_horizon_is_left_to_the_recount_and_named_for_it() -> None:
    kp = PartitionKpis(0, 3_600_000, [5, 15, 60])
    old = entry(0, [(3 * 60, kpi.IDX["offered"], 1)], None)  # three hours before NOW: past the hour
    kp.apply("t\x1fa", None, old, NOW)
    start = floor(NOW - 3 * 3_600_000, INTERVAL_MS)
    assert kp.intervals == {} and kp.late_updates == 1
    assert kp.late_keys == {(*GROUPS[0], start)}
    kp.late_keys.clear()
    kp.apply("t\x1fa", old, None, NOW)  # retracted past the horizon: that interval changes too
    assert kp.late_keys == {(*GROUPS[0], start)}
    kp.late_keys.clear()
    kp.rebuild([("t\x1fa", old)], NOW)  # a restart: its rows may never have been written, recount them
    assert kp.late_keys == {(*GROUPS[0], start)} and kp.late_updates == 1  # but not counted as late news


def test_an_interval_expired_by_the_wall_clock_is_late_even_for_an_older_event_time() -> None:
    """A quiet night moves the clock on by wall time and the interval leaves memory; a part
    judged by an older event time must not start it again from zero (a partial row over a
    complete one): it is late, for the recount."""
    kp = PartitionKpis(0, 3_600_000, [5, 15, 60])
    e = entry(0, [(30, kpi.IDX["offered"], 1)], None)
    kp.apply("t\x1fa", None, e, NOW)
    kp.expire(NOW + 3 * 3_600_000)  # three hours later by the wall clock
    start = floor(NOW - 30 * MINUTE_MS, INTERVAL_MS)
    assert all(k[3] != start for k in kp.intervals)
    kp.apply("t\x1fb", None, entry(0, [(30, kpi.IDX["offered"], 1)], None), NOW)  # judged at the old NOW
    assert all(k[3] != start for k in kp.intervals) and (*GROUPS[0], start) in kp.late_keys


def test_a_closing_contact_names_its_parts_past_the_horizon_for_the_recount() -> None:
    kp = PartitionKpis(0, 3_600_000, [5, 15, 60])
    e = entry(0, [(3 * 60, kpi.IDX["offered"], 1), (10, kpi.IDX["handled"], 1)], None)
    kp.mark_settled(e, NOW)
    assert kp.late_keys == {(*GROUPS[0], floor(NOW - 3 * 3_600_000, INTERVAL_MS))}
