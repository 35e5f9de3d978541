"""KPI formulas against the worked definitions, and where each contact is counted."""
from __future__ import annotations

import pytest

from streams.domain import kpi
from streams.config.centre import QueueConfig

Q = QueueConfig(sl_threshold_s=20, short_abandon_s=5)
#: 10 answered (7 within 20 s), 5 abandoned (2 within 20 s, 1 of them within 5 s).
COUNTS = {**dict.fromkeys(kpi.FIELDS, 0), "answered": 10, "answered_in_sl": 7, "abandoned": 5,
          "abandoned_in_sl": 2, "short_abandons": 1, "wait_answered_ms": 150_000, "wait_abandoned_ms": 200_000,
          "handled": 4, "talk_ms": 800_000, "hold_ms": 100_000, "acw_ms": 100_000, "transferred": 2,
          "csat_ratings": 3, "csat_good": 2, "first_responses": 2, "first_response_ms": 30_000}


@pytest.mark.parametrize("variant, expected", [
    ("abandons_count_against", 7 / (10 + 5 - 1)),
    ("ignore_abandons", 7 / 10),
    ("abandons_within_t_ok", (7 + 2) / (10 + 5)),
    ("abandons_within_t_ignored", 7 / (10 + 5 - 2)),
])
def test_service_level_variants(variant: str, expected: float) -> None:
    assert kpi.service_level(COUNTS, variant) == pytest.approx(expected, abs=1e-15)


def test_other_figures() -> None:
    assert kpi.abandon_rate(COUNTS) == pytest.approx((5 - 1) / (15 - 1))
    assert kpi.asa_s(COUNTS) == 15.0
    assert kpi.avg_wait_s(COUNTS) == pytest.approx(350 / 15)
    assert kpi.avg_abandon_s(COUNTS) == 40.0
    assert kpi.aht_s(COUNTS) == 250.0
    assert kpi.transfer_rate(COUNTS) == 0.2
    assert kpi.csat(COUNTS) == pytest.approx(2 / 3)
    assert kpi.first_response_s(COUNTS) == 15.0


def test_empty_denominators_are_no_data_not_zero_or_hundred() -> None:
    empty = dict.fromkeys(kpi.FIELDS, 0)
    assert all(v is None for v in kpi.figures([0] * kpi.N, Q).values())
    only_short = {**empty, "abandoned": 2, "abandoned_in_sl": 2, "short_abandons": 2}
    assert kpi.service_level(only_short, "abandons_count_against") is None
    assert kpi.abandon_rate(only_short) is None
    with pytest.raises(ValueError):
        kpi.service_level(empty, "nonsense")


def rec(**kw: object) -> dict:
    base = {"tenant": "t", "queue": "q", "channel": "voice", "offered_at_ms": 1_000, "answered_at_ms": None,
            "abandoned_at_ms": None, "ended_at_ms": None, "wrapup_ended_at_ms": None, "first_response_at_ms": None,
            "wait_ms": 0, "talk_ms": 0, "hold_ms": 0, "acw_ms": 0, "transfers": 0, "csat": None}
    return {**base, **kw}


def test_answered_contact_is_counted_at_offer_answer_and_wrapup() -> None:
    r = rec(answered_at_ms=21_000, wait_ms=20_000, ended_at_ms=81_000, wrapup_ended_at_ms=91_000,
            talk_ms=50_000, hold_ms=10_000, acw_ms=10_000, csat=4, transfers=1, first_response_at_ms=25_000)
    (t1, offer), (t2, exit_), (t3, handle) = kpi.contribution(r, Q)
    assert (t1, t2, t3) == (1_000, 21_000, 91_000)
    assert kpi.as_dict(offer)["offered"] == 1 and sum(offer) == 1
    e = kpi.as_dict(exit_)
    assert (e["answered"], e["answered_in_sl"], e["wait_answered_ms"], e["max_wait_ms"]) == (1, 1, 20_000, 20_000)
    assert (e["transferred"], e["csat_ratings"], e["csat_good"], e["first_response_ms"]) == (1, 1, 1, 4_000)
    h = kpi.as_dict(handle)
    assert (h["handled"], h["talk_ms"], h["hold_ms"], h["acw_ms"]) == (1, 50_000, 10_000, 10_000)
    assert h["billable_talk_minutes"] == 1


@pytest.mark.parametrize(("talk_ms", "minutes"), [(0, 0), (1, 1), (60_000, 1), (60_001, 2), (119_999, 2)])
def test_billable_minutes_count_every_started_minute(talk_ms: int, minutes: int) -> None:
    r = rec(answered_at_ms=2_000, ended_at_ms=9_000, talk_ms=talk_ms)
    assert kpi.as_dict(kpi.contribution(r, Q)[-1][1])["billable_talk_minutes"] == minutes


def test_a_vector_of_the_release_before_billable_minutes_is_read_in_this_layout() -> None:
    """States and live parts written by the previous release are one field shorter: the
    upgrade keeps every other count under its own name (a retraction subtracts the right one)."""
    new = kpi.contribution(rec(answered_at_ms=21_000, wait_ms=20_000, csat=5), Q)[1][1]
    old = [x for f, x in zip(kpi.FIELDS, new) if f != "billable_talk_minutes"]
    assert kpi.upgrade(old) == new and kpi.upgrade(new) is new and len(new) == kpi.N


def test_threshold_is_inclusive_and_short_abandons_are_marked() -> None:
    _, (_, v) = kpi.contribution(rec(abandoned_at_ms=6_000, wait_ms=5_000), Q)
    d = kpi.as_dict(v)
    assert (d["abandoned"], d["abandoned_in_sl"], d["short_abandons"]) == (1, 1, 1)
    _, (_, v) = kpi.contribution(rec(abandoned_at_ms=6_001, wait_ms=5_001), Q)
    assert kpi.as_dict(v)["short_abandons"] == 0
    _, (_, v) = kpi.contribution(rec(answered_at_ms=21_001, wait_ms=20_001), Q)
    assert kpi.as_dict(v)["answered_in_sl"] == 0


def test_still_queued_contact_only_counts_as_offered() -> None:
    assert [t for t, _ in kpi.contribution(rec(), Q)] == [1_000]


def test_handled_without_wrapup_books_at_the_end() -> None:
    parts = kpi.contribution(rec(answered_at_ms=2_000, ended_at_ms=9_000, talk_ms=7_000), Q)
    assert parts[-1][0] == 9_000 and kpi.as_dict(parts[-1][1])["handled"] == 1


def test_add_and_retract_are_inverse_except_for_the_max() -> None:
    a = kpi.zero()
    v = kpi.contribution(rec(answered_at_ms=21_000, wait_ms=20_000), Q)[1][1]
    kpi.add(a, v)
    kpi.add(a, v, -1)
    assert a[:kpi.MAX_I] == [0] * kpi.MAX_I and a[kpi.MAX_I] == 20_000  # a rescan lowers the max


def test_add_sums_each_field_and_refuses_a_vector_of_another_layout() -> None:
    a = list(range(kpi.N))
    v = [2 * i for i in range(kpi.N)]
    kpi.add(a, v)
    assert a[:kpi.MAX_I] == [3 * i for i in range(kpi.MAX_I)] and a[kpi.MAX_I] == 2 * kpi.MAX_I
    kpi.add(a, v, -1)
    assert a[:kpi.MAX_I] == list(range(kpi.MAX_I)) and a[kpi.MAX_I] == 2 * kpi.MAX_I
    # An 18-field vector from before billable minutes would shift every count after it.
    with pytest.raises(ValueError, match="kpi.upgrade"):
        kpi.add(a, v[:-1])
