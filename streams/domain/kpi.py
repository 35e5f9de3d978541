"""Contact-centre KPI maths, pure: what one interaction adds to which interval, and the
formulas over the summed counts (docs/kpis.md).

Everything is additive integer counts and millisecond sums, so partial figures from
several partitions or workers add up exactly, and a corrected interaction is applied as
"subtract what it added before, add what it adds now". The same rules are written in SQL
in sql/migrations/004_kpi_sql_views.modern.sql; a test holds the two to equal results.

Where a contact is counted (the interval is the one its timestamp falls in):
- ``offered``: when it was first offered.
- answered / abandoned, within-T counts, waits, CSAT, first response, transfers: when it
  *left the queue* (first answer, or abandon), as Cisco does. Its queue is the last one
  it waited in; its wait is every queue stint summed (Talkdesk).
- handled, talk/hold/ACW and billable minutes: when its wrap-up ended (or it ended, when
  no wrap-up came), as Genesys books AHT.
"""
from __future__ import annotations

from operator import add as _plus, sub as _minus
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from streams.config.centre import QueueConfig

#: Additive counts of one interval, in this order everywhere (stream, rows, SQL).
COUNT_FIELDS: tuple[str, ...] = (
    "offered", "answered", "answered_in_sl", "abandoned", "abandoned_in_sl", "short_abandons",
    "wait_answered_ms", "wait_abandoned_ms", "handled", "talk_ms", "hold_ms", "acw_ms",
    "transferred", "csat_ratings", "csat_good", "first_responses", "first_response_ms",
    "billable_talk_minutes",
)
#: Non-additive: the longest wait of the contacts that left the queue (needs a rescan to lower).
MAX_FIELD = "max_wait_ms"
FIELDS: tuple[str, ...] = COUNT_FIELDS + (MAX_FIELD,)
N = len(FIELDS)
IDX = {f: i for i, f in enumerate(FIELDS)}
MAX_I = IDX[MAX_FIELD]

Vector = list[int]
#: [(timestamp ms, vector)], at most three parts: offer, queue exit, handling.
Contribution = list[list[Any]]


def zero() -> Vector:
    return [0] * N


def contribution(rec: Mapping[str, Any], q: QueueConfig) -> Contribution:
    """The parts one interaction record adds to the intervals, each with its timestamp.

    Outbound attempts add none: a queue's service level, waits and abandons are about the
    customers who called in (and queued callbacks); campaigns have their own figures."""
    parts: Contribution = []
    if rec.get("direction") == "outbound":
        return parts
    if rec.get("offered_at_ms") is not None:
        v = zero()
        v[IDX["offered"]] = 1
        parts.append([rec["offered_at_ms"], v])
    exit_at, answered = exit_time(rec)
    if exit_at is not None:
        v = zero()
        wait = rec["wait_ms"]
        t_ms, s_ms = q.sl_threshold_s * 1000, q.short_abandon_s * 1000
        if answered:
            v[IDX["answered"]] = 1
            v[IDX["answered_in_sl"]] = int(wait <= t_ms)
            v[IDX["wait_answered_ms"]] = wait
            v[IDX["transferred"]] = int(rec["transfers"] > 0)
            if rec.get("first_response_at_ms") is not None:
                v[IDX["first_responses"]] = 1
                v[IDX["first_response_ms"]] = max(0, rec["first_response_at_ms"] - rec["answered_at_ms"])
        else:
            v[IDX["abandoned"]] = 1
            v[IDX["abandoned_in_sl"]] = int(wait <= t_ms)
            v[IDX["short_abandons"]] = int(wait <= s_ms)
            v[IDX["wait_abandoned_ms"]] = wait
        if rec.get("csat") is not None:
            v[IDX["csat_ratings"]] = 1
            v[IDX["csat_good"]] = int(rec["csat"] >= 4)
        v[MAX_I] = wait
        parts.append([exit_at, v])
    handled_at = handled_time(rec)
    if handled_at is not None:
        v = zero()
        v[IDX["handled"]] = 1
        v[IDX["talk_ms"]], v[IDX["hold_ms"]], v[IDX["acw_ms"]] = rec["talk_ms"], rec["hold_ms"], rec["acw_ms"]
        v[IDX["billable_talk_minutes"]] = billable_minutes(rec["talk_ms"])
        parts.append([handled_at, v])
    return parts


def billable_minutes(talk_ms: int) -> int:
    """Talk rounded up to whole minutes, per contact: contracts that bill every started minute
    round each call, so the sum cannot be derived from summed talk afterwards."""
    return -(-talk_ms // 60_000)


def upgrade(v: Vector) -> Vector:
    """A vector kept by a release before ``billable_talk_minutes`` (one field shorter) in
    this release's layout; its billable minutes are 0, as are the rows it wrote."""
    if len(v) == N - 1:
        v.insert(IDX["billable_talk_minutes"], 0)
    return v


def exit_time(rec: Mapping[str, Any]) -> tuple[int | None, bool]:
    """When the contact left the queue, and whether an agent answered it."""
    if rec.get("answered_at_ms") is not None:
        return rec["answered_at_ms"], True
    if rec.get("abandoned_at_ms") is not None:
        return rec["abandoned_at_ms"], False
    return None, False


def handled_time(rec: Mapping[str, Any]) -> int | None:
    if rec.get("answered_at_ms") is None:
        return None
    return rec.get("wrapup_ended_at_ms") if rec.get("wrapup_ended_at_ms") is not None else rec.get("ended_at_ms")


def add(into: Vector, v: Sequence[int], sign: int = 1) -> None:
    """Add (sign 1) or retract (sign -1) a vector; the max only grows here."""
    if len(v) != N:
        raise ValueError(f"a KPI vector has {N} fields, not {len(v)} (kpi.upgrade converts older ones)")
    mx = into[MAX_I]
    into[:] = map(_plus if sign > 0 else _minus, into, v)  # element-wise (as fast as an index loop, measured)
    into[MAX_I] = max(mx, v[MAX_I]) if sign > 0 else mx


# --- formulas over summed counts -----------------------------------------------------

def _ratio(num: float, den: float) -> float | None:
    """An empty denominator is "no data" (None), never 0 % or 100 %."""
    return num / den if den > 0 else None


def service_level(c: Mapping[str, int], variant: str) -> float | None:
    a, a_t = c["answered"], c["answered_in_sl"]
    ab, ab_t, sa = c["abandoned"], c["abandoned_in_sl"], c["short_abandons"]
    if variant == "abandons_count_against":
        return _ratio(a_t, a + ab - sa)
    if variant == "ignore_abandons":
        return _ratio(a_t, a)
    if variant == "abandons_within_t_ok":
        return _ratio(a_t + ab_t, a + ab)
    if variant == "abandons_within_t_ignored":
        return _ratio(a_t, a + ab - ab_t)
    raise ValueError(f"unknown SL variant {variant!r}")


def abandon_rate(c: Mapping[str, int]) -> float | None:
    """(Ab − SA) / (contacts that left the queue − SA): short abandons left out of both sides."""
    sa = c["short_abandons"]
    return _ratio(c["abandoned"] - sa, c["answered"] + c["abandoned"] - sa)


def asa_s(c: Mapping[str, int]) -> float | None:
    return _ratio(c["wait_answered_ms"] / 1000, c["answered"])


def avg_wait_s(c: Mapping[str, int]) -> float | None:
    return _ratio((c["wait_answered_ms"] + c["wait_abandoned_ms"]) / 1000, c["answered"] + c["abandoned"])


def avg_abandon_s(c: Mapping[str, int]) -> float | None:
    return _ratio(c["wait_abandoned_ms"] / 1000, c["abandoned"])


def aht_s(c: Mapping[str, int]) -> float | None:
    return _ratio((c["talk_ms"] + c["hold_ms"] + c["acw_ms"]) / 1000, c["handled"])


def transfer_rate(c: Mapping[str, int]) -> float | None:
    return _ratio(c["transferred"], c["answered"])


def csat(c: Mapping[str, int]) -> float | None:
    return _ratio(c["csat_good"], c["csat_ratings"])


def first_response_s(c: Mapping[str, int]) -> float | None:
    return _ratio(c["first_response_ms"] / 1000, c["first_responses"])


def as_dict(v: Sequence[int]) -> dict[str, int]:
    return dict(zip(FIELDS, v))


def figures(v: Sequence[int], q: QueueConfig) -> dict[str, float | None]:
    """Every derived KPI of one interval's counts, by name."""
    c = as_dict(v)
    return {
        "service_level": service_level(c, q.sl_variant), "abandon_rate": abandon_rate(c),
        "asa_s": asa_s(c), "avg_wait_s": avg_wait_s(c), "avg_abandon_s": avg_abandon_s(c),
        "aht_s": aht_s(c), "transfer_rate": transfer_rate(c), "csat": csat(c),
        "first_response_s": first_response_s(c),
    }
