"""Issue 23 on real parts: workers killed at every kind of point, and a worker whose
changelog is gone behind committed offsets.

The torture run is bench/torture.py (``ccpulse bench --torture N`` runs it with hundreds of
kills); here it runs one round of each kind on a loaded machine. The lost-state test plants
what the issue's evidence could have been: a consumer group committed past the start of
its events while the table's changelog holds nothing. The worker must refuse to start,
on both of the broker paths (Tansu's end offsets confirmed by fetch, and Kafka's as listed).
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.torture import KINDS, differences, run_torture
from streams.traffic.simulate import SimConfig, event_time_order, simulate
from streams.traffic.producer import from_event
from tests.integration.pipeline_helpers import send
from tests.services import Worker, run_cli, wait_for

pytestmark = pytest.mark.integration


def test_one_kill_of_each_kind_on_a_loaded_machine_changes_no_figure(tmp_path: Path, clickhouse_server) -> None:
    r = run_torture(len(KINDS), tmp_path, server_url=clickhouse_server.url("default"), seed=7, interactions=1_500)
    assert r["torture_kills_by_kind"] == dict.fromkeys(KINDS, 1)
    assert r["torture_records"] == r["torture_truth_records"] == 1_500
    assert r["torture_rows_compared"] > 1_500  # records, and interval and agent rows besides
    assert r["torture_differences_by_table"] == {t: 0 for t in r["torture_differences_by_table"]}


def test_the_comparison_sees_one_changed_figure() -> None:
    want = {"kpi_intervals_15m": [("'acme'", "'sales'", "3"), ("'acme'", "'sales'", "4")]}
    assert differences(want, want) == {"kpi_intervals_15m": 0}
    assert differences(want, {"kpi_intervals_15m": [("'acme'", "'sales'", "3"), ("'acme'", "'sales'", "5")]}) \
        == {"kpi_intervals_15m": 2}
    assert differences(want, {"kpi_intervals_15m": want["kpi_intervals_15m"][:1]}) == {"kpi_intervals_15m": 1}


async def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for ``group`` as a worker would have, without joining it."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in offsets]
        c.assign(tps)
        await c.commit({tp: OffsetAndMetadata(offsets[tp.partition], "") for tp in tps})
    finally:
        await c.stop()


@pytest.mark.parametrize("flavour", ["auto", "kafka"])
def test_a_worker_refuses_to_start_from_an_empty_changelog_behind_committed_offsets(
        pipeline_env: dict[str, str], tmp_path: Path, flavour: str) -> None:
    env = dict(pipeline_env, CCPULSE_BROKER_FLAVOUR=flavour)
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    small = simulate(SimConfig(seed=4, interactions=200))
    send(env, [from_event(e) for e in event_time_order(small)])
    bootstrap = env["CCPULSE_BROKER"].removeprefix("kafka://")
    asyncio.run(_commit(bootstrap, env["CCPULSE_APP_ID"], env["CCPULSE_TOPIC_EVENTS"], {0: 40, 2: 7}))
    worker = Worker(env, tmp_path / "worker.log").start(wait_ready=False)
    try:
        wait_for(lambda: worker.proc.poll() is not None, 90, "the worker to refuse to start")
        assert worker.proc.returncode == 78
        log = (tmp_path / "worker.log").read_text()
        changelog = f"{env['CCPULSE_APP_ID']}-interactions-changelog"
        events = env["CCPULSE_TOPIC_EVENTS"]
        assert f"{changelog}[0] is empty, yet {events}[0] is committed at offset 40" in log
        assert f"{changelog}[2] is empty, yet {events}[2] is committed at offset 7" in log
        assert f"{changelog}[1]" not in log.split("CRITICAL", 1)[1]  # partitions 1 and 3 were never processed
        assert "--reset-offsets --to-earliest" in log
    finally:
        worker.kill()
