"""Forecast rows for a tenant's queues, from its interval figures (pure: rows in, rows out).

Shared by ``ccpulse forecast`` (printed) and the worker's scheduled recompute (stored in the
``forecasts`` table the staffing board reads). "Today" is the tenant's newest business day with
figures, so a replayed history forecasts its own next days.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from streams.domain.erlang import patience_rate, required_agents
from streams.domain.forecast import TooLittleHistory, aht_profile, forecast_counts

PER_DAY = 48
SLOT_S = 1800


@dataclass(frozen=True)
class ForecastRow:
    tenant: str
    queue: str
    start_ms: int            # the half hour's start, UTC
    day: date                # the tenant's business day
    label: str               # local HH:MM
    offered: float | None
    low: float | None
    high: float | None
    aht_s: float | None
    required_agents: int | None
    note: str = ""


def history_sql(db: str, tenant_literal: str, since_s: int, queue_filter: str = "") -> str:
    """Per queue and 15 minutes since ``since_s``: offered, handled, handle seconds, abandoned, waits."""
    return (f"SELECT queue, toUnixTimestamp(interval_start), sum(offered), sum(handled), "
            f"sum(talk_ms + hold_ms + acw_ms), sum(abandoned), sum(wait_answered_ms + wait_abandoned_ms) "
            f"FROM {db}.kpi_intervals_15m WHERE tenant = {tenant_literal} AND queue != ''{queue_filter} "
            f"AND interval_start >= toDateTime({since_s}) GROUP BY queue, interval_start")


def today_sql(db: str, tenant_literal: str) -> str:
    return f"SELECT toString(max(local_day)) FROM {db}.kpi_interval_parts WHERE tenant = {tenant_literal}"


def window(centre: Any, tenant: str, today: date, history_days: int) -> tuple[date, int]:
    """The first day of history and its start (epoch seconds) in the tenant's time."""
    tc = centre.tenant(tenant)
    first = today - timedelta(days=history_days)
    return first, int(datetime.combine(first, tc.daily_reset, tzinfo=ZoneInfo(tc.timezone)).timestamp())


def forecast_rows(centre: Any, tenant: str, today: date, first: date, rows: Iterable[tuple[Any, ...]],
                  days_ahead: int) -> list[ForecastRow]:
    """``rows`` of ``history_sql``; the rest of ``today`` and ``days_ahead`` days after, per queue."""
    tc = centre.tenant(tenant)
    zone = ZoneInfo(tc.timezone)
    reset = timedelta(hours=tc.daily_reset.hour, minutes=tc.daily_reset.minute)
    n_days = (today - first).days
    series: dict[str, list[list[float]]] = defaultdict(lambda: [[0.0] * (n_days * PER_DAY) for _ in range(3)])
    waits: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for queue, at, offered, handled, handle_ms, abandoned, wait_ms in rows:
        local = datetime.fromtimestamp(int(at), tz=zone) - reset
        d = (local.date() - first).days
        if 0 <= d < n_days:
            slot = d * PER_DAY + local.hour * 2 + local.minute // 30
            for i, v in enumerate((offered, handled, float(handle_ms) / 1000)):
                series[queue][i][slot] += float(v)
        waits[queue][0] += float(abandoned)
        waits[queue][1] += float(wait_ms) / 1000
    out: list[ForecastRow] = []
    day0 = datetime.combine(today, tc.daily_reset, tzinfo=zone)
    for queue in sorted(series):
        offered, handled, handle_s = series[queue]
        lead = next((i for i in range(n_days) if any(offered[i * PER_DAY:(i + 1) * PER_DAY])), n_days)
        try:
            f = forecast_counts(offered[lead * PER_DAY:], PER_DAY, days_ahead + 1)
        except TooLittleHistory as e:
            out.append(ForecastRow(tenant, queue, int(day0.timestamp() * 1000), today, "", None, None, None, None, None,
                                   f"too little history: {e}"))
            continue
        aht = aht_profile(handled[lead * PER_DAY:], handle_s[lead * PER_DAY:], PER_DAY, days_ahead + 1)
        qc = centre.queue(tenant, queue)
        theta = patience_rate(int(waits[queue][0]), waits[queue][1])
        for i in range(len(f.mean)):
            day = today + timedelta(days=i // PER_DAY)
            slot = i % PER_DAY
            start = datetime.combine(day, tc.daily_reset, tzinfo=zone) + timedelta(seconds=SLOT_S * slot)
            lam, a = float(f.mean[i]) / SLOT_S, float(aht[i])
            need = None
            if lam > 0 and a > 0 and not math.isnan(a):
                need = required_agents(lam, 1 / a, theta, qc.sl_threshold_s, qc.sl_goal, qc.sl_variant).agents
            out.append(ForecastRow(tenant, queue, int(start.timestamp() * 1000), day,
                                   (datetime(2000, 1, 1) + reset + timedelta(seconds=SLOT_S * slot)).strftime("%H:%M"),
                                   round(float(f.mean[i]), 2), round(float(f.low[i]), 2), round(float(f.high[i]), 2),
                                   None if math.isnan(a) else round(a, 1), need))
    return out
