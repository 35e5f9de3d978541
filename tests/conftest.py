"""Fixtures that start the real services once per session and isolate each test by
unique app id, topic names and database."""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.services import Broker, ClickHouseServer, free_port

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("broker")).start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseServer]:
    if not ClickHouseServer.binary():
        if os.environ.get("CI"):
            pytest.fail("clickhouse-server is not installed: .ci/run must apt-get install it")
        pytest.skip("clickhouse-server not installed (apt-get install clickhouse-server)")
    srv = ClickHouseServer(tmp_path_factory.mktemp("clickhouse")).start()
    yield srv
    srv.stop()


def make_env(tmp_path: Path, broker: Broker) -> dict[str, str]:
    """Environment for ccpulse subprocesses: their own topics, group, state and chdb."""
    n = next(_counter)
    tag = f"t{os.getpid()}x{n}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    env.update({
        "CCPULSE_BROKER": broker.url,
        "CCPULSE_APP_ID": f"ccpulse-{tag}",
        "CCPULSE_TOPIC_EVENTS": f"{tag}.events",
        "CCPULSE_TOPIC_AGENT_EVENTS": f"{tag}.agent-events",
        "CCPULSE_TOPIC_INTERACTIONS": f"{tag}.interactions",
        "CCPULSE_TOPIC_DEAD_LETTERS": f"{tag}.dead-letters",
        "CCPULSE_TOPIC_AGENT_ACTIVITY": f"{tag}.agent-activity",
        "CCPULSE_TOPIC_LIVE_PARTS": f"{tag}.live-parts",
        "CCPULSE_TOPIC_ALERTS": f"{tag}.alerts",
        "CCPULSE_PARTITIONS": "4",
        "CCPULSE_SESSION_TIMEOUT_S": "4",
        "CCPULSE_COMMIT_INTERVAL_S": "0.5",
        "CCPULSE_STATE_DIR": str(tmp_path / "state"),
        "CCPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'chdb'}",
        "CCPULSE_WEB_PORT": str(free_port()),
        "CCPULSE_DEV_BROKER_PORT": str(broker.port),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture
def pipeline_env(tmp_path: Path, broker: Broker) -> dict[str, str]:
    """Environment for ccpulse subprocesses: this test's own topics, group, state and chdb."""
    return make_env(tmp_path, broker)
