"""``forecast_s``: the time to recompute every forecast of 100 queues from a year of history
each (streams/domain/forecast.py: Holt-Winters on 365 daily totals, then each weekday's
intraday profile over 365 x 48 half hours), on one core, as a scheduled recompute would."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.harness import _note

QUEUES, DAYS, PER_DAY, AHEAD = 100, 365, 48, 8


def history(seed: int) -> np.ndarray:
    """A year of half-hourly contacts: weekday and intraday seasonality, a trend, Poisson noise."""
    rnd = np.random.default_rng(seed)
    day = np.arange(DAYS)
    weekly = np.array([1.0, 1.0, 0.95, 0.9, 0.85, 0.4, 0.1])[day % 7]
    level = rnd.uniform(200, 3000) * weekly * (1 + 0.0005 * day)
    shape = np.exp(-0.5 * ((np.arange(PER_DAY) - 26) / 7.0) ** 2)
    shape /= shape.sum()
    return rnd.poisson(np.outer(level, shape)).ravel().astype(float)


def measure_forecast() -> dict[str, Any]:
    from streams.domain.forecast import forecast_counts

    series = [history(i) for i in range(QUEUES)]
    _note(f"forecasts: {QUEUES} queues x {DAYS} days of half-hourly history, {AHEAD} days ahead")
    start = time.process_time()
    wall = time.perf_counter()
    for y in series:
        forecast_counts(y, PER_DAY, AHEAD)
    return {"forecast_s": round(time.perf_counter() - wall, 2), "forecast_cpu_s": round(time.process_time() - start, 2),
            "forecast_queues": QUEUES, "forecast_history_days": DAYS}
