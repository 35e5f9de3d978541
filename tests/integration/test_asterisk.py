"""``ccpulse connect asterisk`` through a real broker and worker: the documented queue_log
(tests/data/asterisk) becomes exact records, agent pauses and dead letters; and a connector
SIGKILLed in the middle of a growing file, then restarted, loses and repeats nothing."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import make_env
from tests.services import REPO, Broker, Worker, ccpulse_cmd, run_cli, wait_for

pytestmark = pytest.mark.integration
LOG = REPO / "tests" / "data" / "asterisk" / "queue_log"
TRUTH = {  # tests/data/asterisk/README.md
    "1767261605.1": ("answered", 12_000, 120_000, 0),
    "1767261610.3": ("abandoned", 30_000, 0, 0),
    "1767261620.4": ("answered", 10_000, 60_000, 1),
    "1767261760.6": ("abandoned", 60_000, 0, 0),
    "1767262100.7": ("answered", 5_000, 60_000, 0),
}
RECORDS = ("SELECT interaction_id, outcome, wait_ms, talk_ms, transfers FROM ccpulse.interactions_current "
           "WHERE tenant = 'pbx' ORDER BY interaction_id")


@pytest.fixture
def pbx(broker: Broker, tmp_path: Path) -> Iterator[tuple[dict[str, str], Worker]]:
    env = make_env(tmp_path, broker)
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    w = Worker(env, tmp_path / "worker.log").start()
    try:
        yield env, w
    finally:
        w.stop()


def stored(w: Worker) -> dict[str, tuple]:
    return {r[0]: tuple(r[1:]) for r in w.query(RECORDS)}


def test_the_documented_queue_log_becomes_exact_records_pauses_and_dead_letters(pbx: tuple[dict[str, str], Worker]) -> None:
    env, w = pbx
    p = run_cli(env, "connect", "asterisk", "--queue-log", str(LOG), "--tenant", "pbx")
    assert "23 lines read so far:" in p.stdout and "2 skipped" in p.stdout and "2 dead letters" in p.stdout
    wait_for(lambda: stored(w) == TRUTH, 60, "the five calls stored exactly", interval=1.0)
    wait_for(lambda: w.query("SELECT reason, count() FROM ccpulse.dead_letters FINAL GROUP BY reason ORDER BY reason")
             == [("garbled_line", 1), ("unknown_verb", 1)], 60, "the two bad lines dead-lettered", interval=1.0)
    wait_for(lambda: w.query("SELECT sum(ms) FROM ccpulse.agent_not_ready_15m WHERE agent_id = 'SIP/1002' "
                             "AND reason = 'lunch'") == [(300_000,)], 60, "SIP/1002's lunch", interval=1.0)
    kpis = w.query("SELECT sum(offered), sum(answered), sum(abandoned), sum(wait_answered_ms) "
                   "FROM ccpulse.kpi_intervals_15m WHERE tenant = 'pbx'")
    assert kpis == [(5, 3, 2, 27_000)]
    # Again: from its stored position there is nothing new; --from-start replays it all, and the same
    # event ids change nothing.
    assert "23 lines read so far:" in run_cli(env, "connect", "asterisk", "--queue-log", str(LOG), "--tenant", "pbx").stdout
    p = run_cli(env, "connect", "asterisk", "--queue-log", str(LOG), "--tenant", "pbx", "--from-start")
    assert "46 lines read so far:" in p.stdout
    time.sleep(3)
    assert stored(w) == TRUTH
    assert w.query("SELECT count(), uniqExact(event_id) FROM ccpulse.raw_events FINAL WHERE tenant = 'pbx'") == [(25, 25)]
    status = json.loads(run_cli(env, "connect", "status", "--format", "json").stdout)
    assert status[0]["connector"] == "asterisk" and status[0]["dead_letters"] == 4 and status[0]["lines"] == 46


def test_a_connector_killed_mid_file_and_restarted_loses_and_repeats_nothing(pbx: tuple[dict[str, str], Worker],
                                                                            tmp_path: Path) -> None:
    env, w = pbx
    lines = LOG.read_text().splitlines(keepends=True)
    live = tmp_path / "queue_log"
    live.write_text("".join(lines[:9]))
    cmd = ccpulse_cmd("connect", "asterisk", "--queue-log", str(live), "--tenant", "pbx", "--follow")
    first = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = Path(env["CCPULSE_STATE_DIR"]) / "connectors"
    wait_for(lambda: any(json.loads(p.read_text())["lines"] >= 9 for p in status.glob("*.status.json")), 60,
             "the connector through the first lines", interval=0.3)
    with live.open("a") as f:
        f.write("".join(lines[9:15]))
    time.sleep(0.3)
    first.send_signal(signal.SIGKILL)  # wherever it is: between reading, sending and storing its position
    first.wait(10)
    with live.open("a") as f:
        f.write("".join(lines[15:]))
    second = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for(lambda: stored(w) == TRUTH, 60, "the five calls stored exactly after the restart", interval=1.0)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    raw = w.query("SELECT count(), uniqExact(event_id) FROM ccpulse.raw_events FINAL WHERE tenant = 'pbx'")
    assert raw[0][0] == raw[0][1] == 25  # every event once (tests/data/asterisk/README.md)
