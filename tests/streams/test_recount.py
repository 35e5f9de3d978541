"""The recount from the records, held to an independent count of the simulator's truth, and
the comparison/repair rules the worker and ``ccpulse verify`` act on."""
from __future__ import annotations

from streams.domain import kpi
from streams.domain import recount as rc
from streams.traffic.simulate import SimConfig, simulate
from streams.worker.verify import Confirmations, spans
from streams.domain.windows import INTERVAL_MS
from tests.integration.test_kpis import THRESHOLDS, independent_intervals

SIM = simulate(SimConfig(seed=3, interactions=800))


def thresholds(t: str, q: str, c: str, start: int) -> rc.Thresholds:
    sl, short = THRESHOLDS.get(q, (20, 5))
    return rc.Thresholds(sl, short)


def records(partitions: int = 4) -> list[dict]:
    return [dict(r, source_partition=n % partitions) for n, r in enumerate(SIM.truth.values())]


def test_recount_summed_over_partitions_equals_the_independent_count() -> None:
    got = rc.totals(rc.recount(records(), thresholds, 0, 2**62))
    want = independent_intervals(SIM.truth)
    assert {(t, q, c, s): tuple(v) for (_, t, q, c, s), v in got.items()} == want
    assert sum(v[kpi.IDX["offered"]] for v in got.values()) == len(SIM.truth) == 800


def test_recount_keeps_only_parts_inside_the_range_and_splits_by_partition() -> None:
    recs = records()
    all_rows = rc.recount(recs, thresholds, 0, 2**62)
    starts = sorted({k[4] for k in all_rows})
    lo, hi = starts[10], starts[20]
    part = rc.recount(recs, thresholds, lo, hi)
    assert part == {k: v for k, v in all_rows.items() if lo <= k[4] < hi}
    assert {k[0] for k in part} == {0, 1, 2, 3}
    # each partition's rows are the recount of that partition's records alone
    p1 = rc.recount([r for r in recs if r["source_partition"] == 1], thresholds, lo, hi)
    assert p1 == {k: v for k, v in part.items() if k[0] == 1}


def test_a_stored_row_that_differs_is_found_with_its_fields_and_repaired_to_the_recount() -> None:
    recounted = rc.recount(records(), thresholds, 0, 2**62)
    stored = {k: list(v) for k, v in recounted.items()}
    key = sorted(stored)[5]
    stored[key][kpi.IDX["offered"]] += 3
    stored[key][kpi.IDX["csat_ratings"]] = 0
    ghost = (2, "acme", "acme-sales", "voice", 0)  # a row no record is in: must read zero
    stored[ghost] = kpi.zero()
    stored[ghost][kpi.IDX["answered"]] = 4
    diffs = rc.compare(stored, recounted)
    assert [d.key for d in diffs] == sorted([key, ghost])
    d = next(d for d in diffs if d.key == key)
    want_fields = ["offered"] + (["csat_ratings"] if recounted[key][kpi.IDX["csat_ratings"]] else [])
    assert list(d.fields) == want_fields
    assert d.stored_values[0] == recounted[key][kpi.IDX["offered"]] + 3
    fixes = dict(rc.repairs(stored, recounted, diffs))
    assert fixes[key] == recounted[key] and fixes[ghost] == kpi.zero()
    assert rc.compare({**stored, **fixes}, recounted) == []


def test_a_changed_threshold_is_judged_by_the_row_that_stored_it() -> None:
    rec = dict(next(r for r in SIM.truth.values() if r["outcome"] == "answered" and r["wait_ms"] > 3000),
               source_partition=0)
    exit_at = rec["answered_at_ms"] - rec["answered_at_ms"] % INTERVAL_MS
    secs = rec["wait_ms"] // 1000

    def judged(sl: int) -> int:
        rows = rc.recount([rec], lambda *_: rc.Thresholds(sl, 5), 0, 2**62)
        return rows[(0, rec["tenant"], rec["queue"], rec["channel"], exit_at)][kpi.IDX["answered_in_sl"]]

    assert judged(secs + 1) == 1
    assert judged(secs - 1) == 0


def test_legacy_servers_skip_only_first_response() -> None:
    a = {(0, "t", "q", "c", 0): kpi.zero()}
    b = {(0, "t", "q", "c", 0): kpi.zero()}
    b[(0, "t", "q", "c", 0)][kpi.IDX["first_response_ms"]] = 999
    assert rc.compare(a, b, skip=rc.legacy_skip("legacy")) == []
    assert len(rc.compare(a, b, skip=rc.legacy_skip("modern"))) == 1


def test_tenant_literals_are_escaped_or_refused() -> None:
    assert rc.quote("acme-é.1") == "'acme-é.1'"
    for bad in ("", "a b", "x\x00", "y" * 129, "o'brien", "a\\b", "ac\u202eme"):
        try:
            rc.quote(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_a_difference_is_confirmed_only_when_two_passes_in_a_row_see_the_same() -> None:
    c = Confirmations()
    d1 = rc.Difference((0, "t", "q", "c", 0), ("offered",), (1,), (2,))
    everything = lambda k: True  # noqa: E731
    assert c.confirm([d1], everything) == []
    assert c.confirm([d1], everything) == [d1]
    # a record stored between two passes changes the recount: not confirmed, starts again
    d2 = rc.Difference((0, "t", "q", "c", INTERVAL_MS), ("offered",), (1,), (2,))
    d2b = rc.Difference(d2.key, ("offered",), (1,), (3,))
    assert c.confirm([d2], everything) == []
    assert c.confirm([d2b], everything) == []
    assert c.confirm([d2b], everything) == [d2b]
    # a key outside this pass's scope keeps what an earlier pass saw
    d3 = rc.Difference((1, "t", "q", "c", 0), ("offered",), (0,), (1,))
    assert c.confirm([d3], lambda k: k[0] == 1) == []
    assert c.confirm([], lambda k: k[0] == 0) == []
    assert c.confirm([d3], lambda k: k[0] == 1) == [d3]


def test_late_intervals_are_read_in_spans_split_at_day_gaps() -> None:
    day = 86_400_000
    starts = [0, INTERVAL_MS, 5 * INTERVAL_MS, 400 * day, 400 * day + INTERVAL_MS]
    assert spans(starts) == [(0, 6 * INTERVAL_MS), (400 * day, 400 * day + 2 * INTERVAL_MS)]
    assert spans([]) == []


def test_late_spans_are_merged_ripen_and_are_done_after_two_equal_passes() -> None:
    from streams.worker.verify import LateSpans

    day = 86_400_000
    ls = LateSpans()
    assert ls.add(0, [0, INTERVAL_MS, 10 * day], now=100.0)
    assert ls.as_stored(0) == [[0, 2 * INTERVAL_MS], [10 * day, 10 * day + INTERVAL_MS]]
    assert ls.ripe(0, 101.0) == []  # its records may not be stored yet
    ripe = ls.ripe(0, 103.0)
    assert len(ripe) == 2
    assert not ls.settle(0, ripe, [INTERVAL_MS])  # the first differs: it starts counting again
    assert ls.settle(0, ripe, [])  # the second span: equal twice, done
    assert ls.as_stored(0) == [[0, 2 * INTERVAL_MS]]
    ls.add(0, [3 * INTERVAL_MS], now=200.0)  # new late data next to it: one span, waiting again
    assert ls.as_stored(0) == [[0, 4 * INTERVAL_MS]] and ls.ripe(0, 201.0) == []
    restored = LateSpans()
    restored.restore(0, ls.as_stored(0), now=300.0)  # the partition's next owner
    assert restored.as_stored(0) == ls.as_stored(0) and restored.pending() == 1
    restored.drop({1})
    assert restored.pending() == 0


def test_a_repair_keeps_what_the_stream_added_since_it_read_the_row_and_never_goes_negative() -> None:
    from streams.worker.verify import chunks, rebased, with_kept

    at_read, recounted = kpi.zero(), kpi.zero()
    at_read[kpi.IDX["offered"]], recounted[kpi.IDX["offered"]] = 8, 5  # the aggregate drifted: 3 too many
    current = list(at_read)
    current[kpi.IDX["offered"]] += 2  # two contacts folded after the records were read
    assert rebased(current, at_read, recounted)[kpi.IDX["offered"]] == 7
    assert rebased(None, at_read, recounted) == recounted
    assert rebased(list(recounted), None, recounted)[kpi.IDX["offered"]] == 10  # all it holds came after
    low = list(at_read)
    low[kpi.IDX["offered"]] = 1
    assert rebased(low, at_read, recounted)[kpi.IDX["offered"]] == 0  # clamped, not -2
    stored = kpi.zero()
    stored[kpi.IDX["first_response_ms"]], recounted[kpi.IDX["first_response_ms"]] = 1_234, 1_000
    assert with_kept(recounted, stored, ("first_response_ms",))[kpi.IDX["first_response_ms"]] == 1_234
    week = 7 * 86_400_000
    assert chunks([(0, 2 * week + 5)]) == [(0, week), (week, 2 * week), (2 * week, 2 * week + 5)]


def test_a_pass_that_began_before_late_data_arrived_does_not_settle_its_span() -> None:
    from streams.worker.verify import LateSpans

    ls = LateSpans()
    ls.add(0, [0], now=100.0)
    ripe = ls.ripe(0, 103.0)
    ls.add(0, [INTERVAL_MS], now=104.0)  # during the pass: new late data in the same span
    assert not ls.settle(0, ripe, [], pass_start=103.0) and not ls.settle(0, ripe, [], pass_start=103.5)
    ripe = ls.ripe(0, 110.0)
    assert not ls.settle(0, ripe, [], pass_start=110.0)
    assert ls.settle(0, ripe, [], pass_start=115.0) and ls.pending() == 0
