"""Contacts offered per interval ahead, from a queue's history (pure computation).

The method, in two steps a planner can check by hand:

1. **How many contacts a day**: Holt-Winters exponential smoothing (statsmodels) of the daily
   totals, with a damped additive trend and a multiplicative weekly season: each weekday keeps
   its own share of the week (a bank's Saturday is a tenth of its Sunday), and a trend fades
   instead of running on for ever.
2. **When in the day**: each weekday's intraday profile -- the share of that weekday's
   contacts in each interval, summed over every such weekday of the history -- spreads the
   day's total over its intervals.

Prediction intervals combine the two uncertainties: the smoothing's one-day-ahead error
(its in-sample residuals, scaled by the interval's share) and the Poisson noise of the
interval's own count. The baseline to beat is the seasonal naive forecast (the same interval a
week earlier): on the Anonymous Bank month this method's WAPE is lower (tests/streams/
test_forecast.py; figures in docs/staffing.md).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_DAYS = 14   # two weeks: the weekly season needs two of each weekday
Z90 = 1.6449    # a 90 % two-sided interval


class TooLittleHistory(ValueError):
    """Fewer whole days of history than a weekly season needs."""


@dataclass(frozen=True)
class Forecast:
    mean: np.ndarray    # contacts per interval
    low: np.ndarray     # 90 % prediction interval
    high: np.ndarray
    daily: np.ndarray   # the daily totals the intervals share


def forecast_counts(history: Sequence[float], per_day: int, days_ahead: int) -> Forecast:
    """``history``: contacts per interval over whole days, oldest first (``per_day`` a day); its
    day d is the same weekday as day d + 7. Returns the ``days_ahead`` days after it, interval by
    interval."""
    y = np.asarray(history, dtype=float)
    days = len(y) // per_day
    if days < MIN_DAYS:
        raise TooLittleHistory(f"{days} days of history: a forecast by weekday needs {MIN_DAYS}")
    y = y[len(y) - days * per_day:]
    by_day = y.reshape(days, per_day)
    totals = by_day.sum(axis=1)
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():  # convergence chatter on short, spiky series: the fit is still usable
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(np.maximum(totals, 1.0), trend="add", damped_trend=True, seasonal="mul",
                                   seasonal_periods=7, initialization_method="estimated").fit()
    daily = np.maximum(np.asarray(fit.forecast(days_ahead), dtype=float), 0.0)
    day_sd = float(np.std(np.asarray(fit.resid, dtype=float)[7:], ddof=1)) if days > 9 else 0.0
    mean, var = [], []
    for h in range(days_ahead):
        weekday = (days + h) % 7
        same = by_day[weekday::7]
        profile = same.sum(axis=0)
        share = profile / profile.sum() if profile.sum() else np.full(per_day, 1.0 / per_day)
        m = daily[h] * share
        mean.append(m)
        var.append((share * day_sd * math.sqrt(1 + h / 7)) ** 2 + m)  # the day's error grows with the horizon
    mu = np.concatenate(mean)
    sd = np.sqrt(np.concatenate(var))
    return Forecast(mu, np.maximum(mu - Z90 * sd, 0.0), mu + Z90 * sd, daily)


def seasonal_naive(history: Sequence[float], per_day: int, days_ahead: int) -> np.ndarray:
    """The baseline: each interval as the same interval a week earlier (repeated past a week)."""
    y = np.asarray(history, dtype=float)
    week = y[-7 * per_day:]
    return np.concatenate([week] * math.ceil(days_ahead / 7))[: days_ahead * per_day]


def wape(actual: Sequence[float], forecast: Sequence[float]) -> float:
    """Weighted absolute percentage error: sum |actual - forecast| / sum actual."""
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    return float(np.abs(a - f).sum() / a.sum())


def aht_profile(handled: Sequence[float], handle_s: Sequence[float], per_day: int, days_ahead: int) -> np.ndarray:
    """AHT per interval ahead: each weekday-and-interval's handle time over its handled contacts in
    the history (a ratio of sums), else the whole history's."""
    h = np.asarray(handled, dtype=float)
    s = np.asarray(handle_s, dtype=float)
    days = len(h) // per_day
    h, s = h[len(h) - days * per_day:].reshape(days, per_day), s[len(s) - days * per_day:].reshape(days, per_day)
    overall = s.sum() / h.sum() if h.sum() else float("nan")
    out = []
    for d in range(days_ahead):
        weekday = (days + d) % 7
        hh, ss = h[weekday::7].sum(axis=0), s[weekday::7].sum(axis=0)
        out.append(np.where(hh > 0, ss / np.maximum(hh, 1), overall))
    return np.concatenate(out)
