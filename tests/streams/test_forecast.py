"""Forecasts (streams/domain/forecast.py): on the Anonymous Bank month, trained on August 1-24 and
tested on August 25-31 per 30-minute interval, the WAPE beats the seasonal naive forecast (the
same interval a week earlier) for the whole centre and every queue with volume; the counts come
straight from the CSV here, not from the pipeline."""
from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date

import numpy as np
import pytest

from streams.domain.forecast import TooLittleHistory, aht_profile, forecast_counts, seasonal_naive, wape
from tests.services import SHARED

CALLS = SHARED / "data/anonymous-bank/calls-august.csv"
PER_DAY = 48  # 30-minute intervals


def offered_per_interval() -> dict[str, np.ndarray]:
    """Queue contacts (answered, or abandoned in queue) per queue and 30 minutes of August, by the
    time they were offered: q_start, or the IVR exit for those answered at once."""
    out: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(31 * PER_DAY))
    with CALLS.open(newline="") as f:
        for r in csv.DictReader(f):
            queued = r["q_start"] != "0:00:00" or int(r["q_time"]) > 0
            if r["outcome"] == "PHANTOM" or (r["outcome"] == "HANG" and not queued):
                continue
            h, m, s = map(int, (r["q_start"] if queued else r["vru_exit"]).split(":"))
            slot = (date.fromisoformat(r["date"]).day - 1) * PER_DAY + (h * 3600 + m * 60 + s) // 1800
            for key in (r["type"], "all queues"):
                out[key][slot] += 1
    return dict(out)


def test_the_anonymous_bank_week_ahead_beats_the_seasonal_naive_forecast() -> None:
    if not CALLS.exists():
        pytest.skip(f"{CALLS} is not here")
    train, test = 24 * PER_DAY, 7 * PER_DAY
    rows = []
    for queue, y in sorted(offered_per_interval().items()):
        actual = y[train:train + test]
        f = forecast_counts(y[:train], PER_DAY, 7)
        naive = seasonal_naive(y[:train], PER_DAY, 7)
        rows.append((queue, int(actual.sum()), wape(actual, f.mean), wape(actual, naive),
                     float(np.mean((actual >= f.low) & (actual <= f.high)))))
    table = "\n".join(f"{q:11} {n:6,} contacts  WAPE {m:.3f}  seasonal naive {b:.3f}  in the 90 % band {c:.0%}"
                      for q, n, m, b, c in rows)
    print("\n" + table)  # (docs/staffing.md quotes these)
    by = {q: (m, b, c) for q, _, m, b, c in rows}
    assert by["all queues"][0] < 0.8 * by["all queues"][1], table           # ~0.18 against ~0.23
    assert all(m < b for q, n, m, b, _ in rows if n >= 500), table           # every queue with volume
    assert 0.75 <= by["all queues"][2] <= 1.0, table                          # the band holds most intervals


def test_too_little_history_says_so_and_aht_follows_the_weekday_profile() -> None:
    with pytest.raises(TooLittleHistory, match="13 days of history"):
        forecast_counts(np.ones(13 * PER_DAY), PER_DAY, 7)
    handled = np.tile(np.r_[np.zeros(24), np.full(24, 2.0)], 14)   # contacts only in the afternoons
    handle_s = handled * np.tile(np.r_[np.zeros(24), np.full(24, 300.0)], 14)
    aht = aht_profile(handled, handle_s, PER_DAY, 2)
    assert aht.shape == (96,) and np.allclose(aht[24:48], 300.0) and np.allclose(aht[:24], 300.0)  # mornings: overall
