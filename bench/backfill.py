"""A month of history loaded into a deployment that already holds live data, timed until
``ccpulse verify`` finds every figure equal to the recount from the records.

The live data (a simulated day ending now) sets the partition clocks to today, so every
historic event is far past the stream's lateness horizon: its intervals can only be counted
by the worker's recount from the stored records (streams/worker/verify.py). The month is the
Anonymous Bank log (``../shared/data/anonymous-bank/calls-august.csv``) when it is there,
else a simulated month a year back.

Figures (``--json`` keys): ``backfill_month_s`` (first historic message produced → verify
clean), ``backfill_contacts``, ``backfill_events``, ``backfill_rows_recounted`` (interval
rows the worker rewrote), ``backfill_source``.
"""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.harness import (_health, _note, bench_settings, prepare, start_worker)

AB_MONTH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "anonymous-bank" / "calls-august.csv"


def _history() -> tuple[list[Any], int, str, date, date]:
    from streams.traffic.producer import from_event

    if AB_MONTH.exists():
        from streams.traffic import replay

        stats = replay.AnonymousBankStats()
        events = [from_event(e) for e in replay.iter_anonymous_bank(AB_MONTH, stats=stats)]
        contacts = len({m.key for m in events if m.kind == "events"})
        return events, contacts, "anonymous-bank", date(2010, 7, 31), date(2010, 9, 1)
    from streams.traffic.simulate import SimConfig, event_time_order, simulate

    start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=400)
    sim = simulate(SimConfig(seed=17, interactions=88_000, start=start))
    return ([from_event(e) for e in event_time_order(sim)], len(sim.truth), "simulated month",
            start.date() - timedelta(days=1), start.date() + timedelta(days=33))


def measure_backfill(workdir: Path, port: int) -> dict[str, Any]:
    from streams.traffic.producer import from_event, produce
    from streams.traffic.simulate import SimConfig, event_time_order, simulate
    from streams.cli.verify import check

    s = bench_settings(workdir, port, "bf")
    prepare(s)
    log_path = workdir / "backfill-worker.log"
    worker = start_worker(s, log_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            worker.alive_or_raise()
            try:
                if any(a.startswith(s.topic_events + ":") for a in _health(s)["assigned"]):
                    break
            except OSError:
                pass
            time.sleep(0.3)
        # Live: a simulated day that ends about now.
        now = datetime.now(timezone.utc)
        live = simulate(SimConfig(seed=23, interactions=2_000, start=now - timedelta(hours=20)))
        live_msgs = [from_event(e) for e in event_time_order(live)
                     if datetime.fromisoformat(e["ts"]) <= now]
        produce(s, live_msgs, total=len(live_msgs), progress=False)
        _wait(s, worker, log_path, len(live_msgs), "the live day")
        history, contacts, source, first_day, last_day = _history()
        _note(f"backfill: {source}, {contacts:,} contacts, {len(history):,} messages into a live deployment")
        t0 = time.perf_counter()
        produce(s, history, total=len(history), progress=False)
        _wait(s, worker, log_path, len(live_msgs) + len(history), "the history")
        while True:
            worker.alive_or_raise()
            h = _health(s)
            if not h["figures"]["pending_late"]:
                out = check(s, first_day, last_day, None, False, "verify")
                if not out["differences"]:
                    break
            time.sleep(0.25)
        elapsed = time.perf_counter() - t0
        return {"backfill_month_s": round(elapsed, 1), "backfill_contacts": contacts,
                "backfill_events": len(history), "backfill_rows_recounted": h["figures"]["repaired"],
                "backfill_source": source}
    finally:
        if worker is not None:
            worker.stop()


def _wait(s: Any, worker: Any, log_path: Path, events: int, what: str) -> None:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        worker.alive_or_raise()
        h = _health(s)
        stored = h["rows_written"].get("interactions", 0)
        if h["events"] >= events and stored >= h["records_emitted"]:
            return
        time.sleep(0.25)
    raise RuntimeError(f"{what} was not processed within 900 s; see {log_path}")
