"""The bench is part of the product: ``ccpulse bench --json`` runs through every stage at HEAD
(issue 25). Small sizes here; figures are printed by the bench, never asserted."""
from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from tests.services import REPO, ccpulse_cmd

pytestmark = pytest.mark.integration

#: A figure of every stage: throughput, the intake, latency, alerts, the month and its
#: backfill, the dashboards and the forecasts.
FIGURES = ("events_per_s", "events_per_worker_cpu_s", "ratio", "worker_rss_mb", "intake_events_per_s",
           "e2e_p99_ms", "alert_p99_ms", "replay_month_s", "replay_month_worker_rss_mb", "backfill_month_s",
           "panel_max_ms", "panel_p50_ms", "forecast_s", "intake_under_attack_rss_mb",
           "year_generate_s", "year_panel_max_ms", "year_panel_p50_ms", "year_panel_cold_max_ms",
           "year_panel_cold_p50_ms")


def test_the_bench_runs_through_every_stage() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    p = subprocess.run(ccpulse_cmd("bench", "--json", "--events", "4000", "--latency-seconds", "3",
                                   "--alert-episodes", "2", "--month-interactions", "1500",
                                   "--panel-interactions", "20000", "--year-interactions", "20000",
                                   "--year-days", "2"),
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    bad = {k: r.get(k) for k in FIGURES if not isinstance(r.get(k), (int, float)) or not math.isfinite(r[k])}
    assert not bad, f"figures missing or not numbers: {bad}"
