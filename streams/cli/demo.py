"""``ccpulse demo``: from nothing to numbers on one machine.

Starts the local broker, creates topics, migrates the embedded ClickHouse, runs a worker
process, feeds it, waits until every event is processed and stored, prints a summary,
and stops the worker so ``ccpulse sql`` can open the data directly afterwards.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from streams.config.settings import Settings
from streams.worker.process import WorkerExited, WorkerProcess


def _step(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "streams.cli", *args]


def _is_local_broker(s: Settings) -> bool:
    hosts = s.bootstrap_servers
    return len(hosts) == 1 and urlparse(f"//{hosts[0]}").hostname in ("127.0.0.1", "localhost") \
        and urlparse(f"//{hosts[0]}").port == s.dev_broker_port


def run_demo(s: Settings, args: argparse.Namespace) -> int:
    from streams.cli import devstack
    from streams.cli.common import CliError, print_result
    from streams.cli.common import replay_messages as _replay_messages
    from streams.cli.common import sim_messages as _sim_messages
    from streams.traffic.producer import produce
    from streams.worker.topics import create_topics

    from streams.config.centre import EXAMPLE_CENTRE

    if s.centre_config is None and EXAMPLE_CENTRE.exists():
        # The demo runs with real rules: a copy of the example centre file in the state folder,
        # which every later command against that folder (worker, verify, report) reads too.
        own = s.state_dir / "centre.yaml"
        s.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EXAMPLE_CENTRE, own)
        s = s.model_copy(update={"centre_config": own})
        _step(f"centre file {own}: a copy of {EXAMPLE_CENTRE.name} (edit it, or set CCPULSE_CENTRE_CONFIG)")
    elif s.centre_config is not None:
        _step(f"centre file {s.centre_config}")
    if _is_local_broker(s):
        _step("starting the local broker")
        try:
            st = devstack.up(s.state_dir, s.dev_broker_port)
        except devstack.DevStackError as e:
            raise CliError(str(e)) from None
        print(f"    127.0.0.1:{st.port} (pid {st.pid})")
    _step(f"creating topics on {s.broker}")
    try:
        for spec, status in create_topics(s):
            print(f"    {spec.name} ({spec.partitions} partitions): {status}")
    except ConnectionError as e:
        raise CliError(str(e)) from None
    _step(f"migrating ClickHouse at {s.clickhouse_url}")
    mig = subprocess.run(_cli("db", "migrate"), capture_output=True, text=True)
    if mig.returncode:
        raise CliError(f"migration failed: {mig.stderr.strip() or mig.stdout.strip()}")
    print(f"    {mig.stdout.strip()}")

    if args.replay:
        _step(f"reading {args.replay} ({args.format})")
        messages, stats = _replay_messages(Path(args.replay), args.format)
        if stats is not None:
            print("    " + stats.summary())
    else:
        _step(f"simulating {args.interactions:,} interactions (seed {args.seed})")
        messages, _truth = _sim_messages(args)

    log_path = s.state_dir / "worker.log"
    s.state_dir.mkdir(parents=True, exist_ok=True)
    _step(f"starting a worker (log: {log_path})")
    worker = WorkerProcess.for_settings(s, log_path).start()
    try:
        _wait_ready(worker, args.timeout)
        _step(f"producing {len(messages):,} messages")
        produced = produce(s, messages, total=len(messages), label="    produced")
        _step("processing")
        h = _wait_processed(s, worker, produced, args.timeout)
        h = _wait_recounted(s, worker, args.timeout) or h
        _step("summary")
        try:
            _summary(s, h, print_result)
        except ConnectionError as e:
            raise CliError(f"{e} (the data is stored; query it with `ccpulse sql`)") from None
    finally:
        worker.stop()
    print("\nThe data stays in the embedded ClickHouse. Try:\n"
          "  ccpulse sql \"SELECT queue, interval_start, offered, sl_abandons_count_against, asa_s "
          "FROM ccpulse.kpi_intervals_30m ORDER BY offered DESC LIMIT 10\"\n"
          "  ccpulse sql \"SELECT tenant, queue, state, agents FROM ccpulse.agents_by_state ORDER BY ALL\"\n"
          "Stop the local broker with: ccpulse dev down")
    return 0


def _check_alive(worker: WorkerProcess) -> None:
    from streams.cli.common import CliError

    try:
        worker.alive_or_raise()
    except WorkerExited as e:
        raise CliError(str(e)) from None


def _wait_ready(worker: WorkerProcess, timeout: float) -> None:
    from streams.cli.common import CliError

    try:
        took = worker.wait_ready(timeout)
    except (WorkerExited, TimeoutError) as e:
        raise CliError(str(e)) from None
    print(f"    ready after {took:.1f} s")


def _wait_processed(s: Settings, worker: WorkerProcess, produced: int, timeout: float) -> dict[str, Any]:
    """Until every produced message is consumed and every emitted record is stored."""
    from streams.cli.common import CliError

    start = time.monotonic()
    tty = sys.stderr.isatty()
    done_once = False
    while time.monotonic() - start < timeout:
        _check_alive(worker)
        try:
            h = worker.health()
        except OSError:  # alive but too busy to answer within 5 s (a long timer run): ask again
            time.sleep(0.5)
            continue
        stored = h["rows_written"].get("interactions", 0)
        line = (f"    events {h['events']:,}/{produced:,}  records stored {stored:,}/{h['records_emitted']:,}"
                f"  dead letters {h['dead_letters']:,}")
        if tty:
            sys.stderr.write("\r" + line + "   ")
            sys.stderr.flush()
        idle = not any(a.get("in_batch_since") for a in h["agents"].values())
        done = h["events"] >= produced and stored >= h["records_emitted"] and idle \
            and h["rows_written"].get("dead_letters", 0) >= h["dead_letters"]
        if done and done_once:  # twice in a row: a record sent in the last batch is stored too
            if tty:
                sys.stderr.write("\n")
            print(f"{line}  ({time.monotonic() - start:.1f} s)")
            return h
        done_once = done
        time.sleep(0.5)
    raise CliError(f"not all events were processed within {timeout:.0f} s; see {worker.log_path}")


def _health(worker: WorkerProcess, timeout: float) -> dict[str, Any]:
    """The worker's /health, asked again while it is alive but too busy to answer in 5 s."""
    from streams.cli.common import CliError

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        _check_alive(worker)
        try:
            return worker.health()
        except OSError:
            time.sleep(0.5)
    raise CliError(f"the worker did not answer on its health page within {timeout:.0f} s; see {worker.log_path}")


def _wait_recounted(s: Settings, worker: WorkerProcess, timeout: float) -> dict[str, Any] | None:
    """Until the intervals that late or historic data changed past the stream's lateness
    horizon are recounted from their stored records (the worker's figure check)."""
    from streams.cli.common import CliError

    h = _health(worker, timeout)
    if not h["figures"]["pending_late"]:
        return None
    _step(f"recounting {h['figures']['pending_late']:,} periods from their records "
          "(data older than the stream's lateness horizon)")
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        _check_alive(worker)
        h = _health(worker, timeout)
        if not h["figures"]["pending_late"]:
            print(f"    done ({time.monotonic() - start:.1f} s; {h['figures']['repaired']:,} interval rows rewritten)")
            return h
        time.sleep(0.5)
    raise CliError(f"late intervals were not recounted within {timeout:.0f} s; see {worker.log_path} "
                   "(`ccpulse recompute --from D --to D` does it on request)")


def _summary(s: Settings, h: dict[str, Any], print_result: Any) -> None:
    from streams.worker.query import query_worker

    db = s.clickhouse_database
    total = query_worker(s, f"SELECT count() FROM {db}.interactions_current").rows[0][0]
    dead = query_worker(s, f"SELECT count() FROM {db}.dead_letters FINAL").rows[0][0]
    print(f"    interactions stored (whole database): {total:,}   dead letters: {dead:,}   "
          f"raw events stored by this run: {h['rows_written'].get('raw_events', 0):,}")
    # The stream's own interval figures, summed over the run (views in sql/migrations/003_*).
    res = query_worker(s, f"""
        SELECT tenant, queue, sum(offered) AS n_offered, sum(answered) AS n_answered, sum(abandoned) AS n_abandoned,
               round(100 * sum(answered_in_sl) / nullIf(sum(answered) + sum(abandoned) - sum(short_abandons), 0), 1)
                   AS sl_pct,
               round(100 * (sum(abandoned) - sum(short_abandons))
                     / nullIf(sum(answered) + sum(abandoned) - sum(short_abandons), 0), 1) AS abandon_pct,
               round(sum(wait_answered_ms) / 1000 / nullIf(sum(answered), 0), 1) AS asa_s,
               round((sum(talk_ms) + sum(hold_ms) + sum(acw_ms)) / 1000 / nullIf(sum(handled), 0), 1) AS aht_s,
               round(100 * sum(csat_good) / nullIf(sum(csat_ratings), 0), 1) AS csat_pct
        FROM {db}.kpi_intervals_15m GROUP BY tenant, queue ORDER BY tenant, queue""")
    print_result(res.columns, res.rows, "table")
    if dead:
        res = query_worker(s, f"SELECT reason, messages FROM {db}.dead_letters_by_reason ORDER BY messages DESC")
        print_result(res.columns, res.rows, "table")
