"""End to end on real parts: Tansu broker → faust worker processes → ClickHouse.

ClickHouse must hold exactly the simulator's ground truth -- every interaction once,
exact durations and outcomes -- after in-order delivery, after duplicated and shuffled
delivery, and after the worker is SIGKILLed mid-stream and restarted.
"""
from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from streams.traffic.simulate import SimConfig, Simulation, simulate
from tests.integration.pipeline_helpers import event_messages, expected_records, send, wait_for_truth
from tests.services import Worker, run_cli, wait_for

pytestmark = pytest.mark.integration

N = 10_000


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(SimConfig(seed=11, interactions=N))


def _all_messages(sim: Simulation) -> list:
    return event_messages(sorted(sim.events + sim.agent_events, key=lambda e: e["ts"]))


def _prepare(env: dict[str, str]) -> None:
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")


def _counts(worker: Worker) -> tuple[int, int, int]:
    (raw,) = worker.query("SELECT count() FROM ccpulse.raw_events FINAL")[0]
    (dead,) = worker.query("SELECT count() FROM ccpulse.dead_letters FINAL")[0]
    (total,) = worker.query("SELECT count() FROM ccpulse.interactions")[0]
    return raw, dead, total


def test_in_order_delivery_stores_exactly_the_ground_truth(pipeline_env: dict[str, str], tmp_path: Path,
                                                           sim: Simulation) -> None:
    _prepare(pipeline_env)
    worker = Worker(pipeline_env, tmp_path / "worker.log").start()
    try:
        messages = _all_messages(sim)
        send(pipeline_env, messages)
        wait_for_truth(worker, expected_records(sim.truth))
        raw, dead, _ = _counts(worker)
        assert (raw, dead) == (len(messages), 0)
        wait_for(lambda: worker.health()["events"] == len(messages), 30, "all messages counted")
    finally:
        worker.stop()


def test_duplicated_and_shuffled_delivery_gives_the_same_records(pipeline_env: dict[str, str], tmp_path: Path,
                                                                 sim: Simulation) -> None:
    # Whole-stream shuffling puts CSATs days ahead of calls; keep states long enough for that.
    pipeline_env["CCPULSE_STATE_RETENTION_S"] = str(90 * 86400)
    _prepare(pipeline_env)
    messages = _all_messages(sim)
    rnd = random.Random(5)
    delivered = messages + rnd.sample(messages, len(messages) // 3)
    rnd.shuffle(delivered)
    worker = Worker(pipeline_env, tmp_path / "worker.log").start()
    try:
        send(pipeline_env, delivered)
        wait_for_truth(worker, expected_records(sim.truth))
        raw, dead, _ = _counts(worker)
        assert (raw, dead) == (len(messages), 0)  # duplicates collapse by event id
    finally:
        worker.stop()


def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(pipeline_env: dict[str, str], tmp_path: Path,
                                                                   sim: Simulation) -> None:
    _prepare(pipeline_env)
    messages = _all_messages(sim)
    send(pipeline_env, messages)
    worker = Worker(pipeline_env, tmp_path / "worker1.log").start()
    wait_for(lambda: worker.health()["events"] >= len(messages) // 3, 120, "a third of the stream processed",
             interval=0.05)
    worker.kill(signal.SIGKILL)
    worker = Worker(pipeline_env, tmp_path / "worker2.log").start()
    try:
        wait_for_truth(worker, expected_records(sim.truth))
        raw, dead, _ = _counts(worker)
        assert (raw, dead) == (len(messages), 0)
        # The restarted worker recovered the state table from the changelog: it did not
        # re-emit records for interactions finished before the kill as if they were new.
        h = worker.health()
        assert h["states"] == N, h
    finally:
        worker.stop()


def test_server_backend_stores_exactly_the_ground_truth(pipeline_env: dict[str, str], tmp_path: Path,
                                                        clickhouse_server) -> None:
    small = simulate(SimConfig(seed=3, interactions=2_000))
    pipeline_env["CCPULSE_CLICKHOUSE_URL"] = clickhouse_server.url("ccpulse")
    _prepare(pipeline_env)
    worker = Worker(pipeline_env, tmp_path / "worker.log").start()
    try:
        run_cli(pipeline_env, "db", "migrate")  # a second run is a no-op
        send(pipeline_env, _all_messages(small))
        wait_for_truth(worker, expected_records(small.truth, legacy=True), legacy=True)
    finally:
        worker.stop()


def test_a_restarted_worker_takes_up_exactly_where_the_stopped_one_committed(
        pipeline_env: dict[str, str], tmp_path: Path, sim: Simulation) -> None:
    """Graceful stop, then a backlog waiting when the next worker starts: it reads every
    message after the committed offsets once. Records fetched between recovery's resume
    and its seek to the committed offsets used to be taken too, then read again after the
    seek (a demo run processed up to a third of its events twice)."""
    _prepare(pipeline_env)
    messages = _all_messages(sim)
    first, rest = messages[:len(messages) // 2], messages[len(messages) // 2:]
    worker = Worker(pipeline_env, tmp_path / "worker1.log").start()
    send(pipeline_env, first)
    wait_for(lambda: worker.health()["events"] == len(first), 120, "the first half processed")
    worker.stop()
    send(pipeline_env, rest)  # waiting before the next worker starts
    worker = Worker(pipeline_env, tmp_path / "worker2.log").start()
    try:
        wait_for_truth(worker, expected_records(sim.truth))
        time.sleep(2)  # anything read twice would be counted by now
        assert worker.health()["events"] == len(rest)
    finally:
        worker.stop()
