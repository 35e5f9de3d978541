"""The monthly report an outsourcing centre sends a client, computed without I/O.

Its figures are the stream's daily figures (``kpi_daily``: the tenant's business days, queue
contacts only, outbound campaigns excluded) summed over the month; the billing follows the
tenant's contract in the centre file (``tenants.<t>.billing``): per handled contact, or per
talk minute to the second or rounded up per contact. Amounts are exact decimals, rounded to
the cent once, on the month's total units.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Sequence

from streams.config.centre import BillingConfig

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
VARIANT_LABELS = {
    "abandons_count_against": "answered in T / (answered + abandoned - short abandons)",
    "ignore_abandons": "answered in T / answered",
    "abandons_within_t_ok": "(answered + abandoned in T) / (answered + abandoned)",
    "abandons_within_t_ignored": "answered in T / (answered + abandoned after T)",
}


def month_of(text: str) -> tuple[int, int]:
    m = MONTH.match(text)
    if not m:
        raise ValueError(f"month {text!r}: write it as YYYY-MM, e.g. 2026-03")
    return int(m[1]), int(m[2])


@dataclass
class Counts:
    """Additive counts of one day or queue (kpi_daily's sums)."""

    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    abandoned_in_sl: int = 0
    short_abandons: int = 0
    wait_answered_ms: int = 0
    handled: int = 0
    talk_ms: int = 0
    hold_ms: int = 0
    acw_ms: int = 0
    billable_talk_minutes: int = 0
    csat_ratings: int = 0
    csat_good: int = 0

    def add(self, other: "Counts") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def service_level(self, variant: str = "abandons_count_against") -> float | None:
        a, ab, a_t, ab_t, sa = self.answered, self.abandoned, self.answered_in_sl, self.abandoned_in_sl, self.short_abandons
        num, den = {
            "ignore_abandons": (a_t, a),
            "abandons_within_t_ok": (a_t + ab_t, a + ab),
            "abandons_within_t_ignored": (a_t, a + ab - ab_t),
        }.get(variant, (a_t, a + ab - sa))
        return num / den if den else None

    @property
    def abandon_rate(self) -> float | None:
        den = self.answered + self.abandoned - self.short_abandons
        return (self.abandoned - self.short_abandons) / den if den else None

    @property
    def asa_s(self) -> float | None:
        return self.wait_answered_ms / 1000 / self.answered if self.answered else None

    @property
    def aht_s(self) -> float | None:
        return (self.talk_ms + self.hold_ms + self.acw_ms) / 1000 / self.handled if self.handled else None

    @property
    def csat(self) -> float | None:
        return self.csat_good / self.csat_ratings if self.csat_ratings else None

    @property
    def talk_minutes(self) -> Decimal:
        return (Decimal(self.talk_ms) / 60_000).quantize(Decimal("0.01"), ROUND_HALF_UP)


COUNT_FIELDS = tuple(f.name for f in fields(Counts))


@dataclass
class QueueLine:
    queue: str
    goal: float
    variant: str
    counts: Counts

    @property
    def service_level(self) -> float | None:
        return self.counts.service_level(self.variant)

    @property
    def met(self) -> bool | None:
        sl = self.service_level
        return None if sl is None else sl >= self.goal


@dataclass
class ClientReport:
    tenant: str
    month: str
    billing: BillingConfig
    sl_goal: float
    days: list[tuple[date, Counts]] = field(default_factory=list)
    queues: list[QueueLine] = field(default_factory=list)

    @property
    def total(self) -> Counts:
        out = Counts()
        for _, c in self.days:
            out.add(c)
        return out

    def units(self, c: Counts) -> Decimal:
        """What the contract bills for these counts."""
        if self.billing.unit == "contact":
            return Decimal(c.handled)
        if self.billing.rounding == "started_minute":
            return Decimal(c.billable_talk_minutes)
        return c.talk_minutes

    @property
    def unit_label(self) -> str:
        if self.billing.unit == "contact":
            return "handled contacts"
        return "talk minutes (each contact rounded up)" if self.billing.rounding == "started_minute" else "talk minutes"

    @property
    def amount(self) -> Decimal:
        return (self.units(self.total) * Decimal(str(self.billing.rate))).quantize(Decimal("0.01"), ROUND_HALF_UP)


def build(tenant: str, month: str, day_rows: Sequence[Sequence[Any]], settings: dict[str, tuple[float, str]],
          billing: BillingConfig, default_goal: float) -> ClientReport:
    """``day_rows``: (day, queue, *COUNT_FIELDS) per business day and queue; ``settings``: queue ->
    (goal, SL variant) as the stream counted them (queue_settings)."""
    report = ClientReport(tenant, month, billing, billing.sl_goal or default_goal)
    per_day: dict[date, Counts] = {}
    per_queue: dict[str, Counts] = {}
    for day, queue, *values in day_rows:
        c = Counts(*(int(v or 0) for v in values))
        d = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
        per_day.setdefault(d, Counts()).add(c)
        per_queue.setdefault(str(queue), Counts()).add(c)
    report.days = sorted(per_day.items())
    for queue, c in sorted(per_queue.items()):
        goal, variant = settings.get(queue, (default_goal, "abandons_count_against"))
        report.queues.append(QueueLine(queue or "(no queue)", float(goal), str(variant), c))
    return report
