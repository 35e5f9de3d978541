"""Both ClickHouse engines (the embedded one in this process and in its own): migrations apply twice, the sink's columns match the tables,
rows round-trip exactly, and redelivered rows collapse to one."""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Iterator

import pytest

from streams.clickhouse import ClickHouse, ClickHouseUnavailable, data_path_locked
from streams.clickhouse.connect import connect
from streams.clickhouse.migrate import load_migrations, migrate
from streams.clickhouse import rows

RECORD = {
    "interaction_id": "i1", "tenant": "acme", "channel": "chat", "queue": "billing", "first_queue": "sales",
    "queues": ["sales", "billing"], "customer_id": None, "priority": 3, "agent_id": "bob", "first_agent_id": "ann",
    "offered_at_ms": 1767258000123, "answered_at_ms": 1767258010000, "abandoned_at_ms": None,
    "ended_at_ms": 1767258100000, "wrapup_ended_at_ms": 1767258130000, "first_response_at_ms": None,
    "last_event_at_ms": 1767258130000, "wait_ms": 9877, "talk_ms": 80000, "hold_ms": 10000, "acw_ms": 30000,
    "holds": 1, "transfers": 1, "outcome": "answered", "disposition": "sale", "resolved": True, "csat": None,
    "csat_at_ms": None, "closed_by_timeout": False, "anomalies": [], "n_events": 7, "version": 14,
}


@pytest.fixture(params=["chdb", "chdb-process", "server"])
def ch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClickHouse]:
    if request.param.startswith("chdb"):
        c = connect(f"chdb://{tmp_path / 'chdb'}", "cctest", own_process=request.param == "chdb-process")
    else:
        srv = request.getfixturevalue("clickhouse_server")
        c = connect(srv.url(f"cctest_{abs(hash(str(tmp_path))) % 10**8}"))
    yield c
    c.close()


def test_migrations_apply_once_and_are_recorded(ch: ClickHouse) -> None:
    names = [m.name for m in load_migrations()]
    assert migrate(ch) == names
    assert migrate(ch) == []
    got = ch.query(f"SELECT version, name FROM {ch.database}.schema_migrations FINAL ORDER BY version").rows
    assert [r[1] for r in got] == names


def test_views_follow_their_edited_definitions_and_tables_keep_their_rows(ch: ClickHouse, tmp_path: Path) -> None:
    """Views are repeatable (streams/clickhouse/migrate.py): an upgrade that adds a column re-creates the
    view edited to read it, and a run with nothing changed re-creates nothing."""
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "001_t.sql").write_text("CREATE TABLE {db}.t (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
                                 "CREATE VIEW IF NOT EXISTS {db}.v AS SELECT a FROM {db}.t;\n"
                                 "CREATE VIEW IF NOT EXISTS {db}.w AS SELECT sum(a) AS s FROM {db}.v;\n")
    assert migrate(ch, d) == ["001_t"]
    ch.command(f"INSERT INTO {ch.database}.t SELECT toUInt8(number + 1) FROM system.numbers LIMIT 2")
    (d / "001_t.sql").write_text((d / "001_t.sql").read_text().replace("SELECT a FROM", "SELECT a, b FROM")
                                 .replace("sum(a) AS s", "sum(a) AS s, sum(b) AS sb"))
    (d / "002_b.sql").write_text("ALTER TABLE {db}.t ADD COLUMN b UInt8 DEFAULT 5 AFTER a;")
    assert migrate(ch, d) == ["002_b"]
    assert ch.query(f"SELECT a, b FROM {ch.database}.v ORDER BY a").rows == [(1, 5), (2, 5)]
    assert ch.query(f"SELECT s, sb FROM {ch.database}.w").rows == [(3, 10)]
    assert migrate(ch, d) == []
    assert ch.query(f"SELECT count() FROM {ch.database}.schema_views").rows == [(2,)]


def test_sink_columns_match_tables(ch: ClickHouse) -> None:
    migrate(ch)
    for table, cols in [(rows.RAW_EVENTS_TABLE, rows.RAW_EVENT_COLUMNS),
                        (rows.INTERACTIONS_TABLE, rows.INTERACTION_COLUMNS),
                        (rows.DEAD_LETTERS_TABLE, rows.DEAD_LETTER_COLUMNS),
                        (rows.KPI_INTERVALS_TABLE, rows.KPI_INTERVAL_COLUMNS),
                        (rows.KPI_LIVE_TABLE, rows.KPI_LIVE_COLUMNS),
                        (rows.QUEUE_SETTINGS_TABLE, rows.QUEUE_SETTINGS_COLUMNS)]:
        got = ch.query(f"DESCRIBE TABLE {ch.database}.{table}").rows
        assert [r[0] for r in got] == list(cols), table


def test_interaction_round_trip_and_replacing_by_version(ch: ClickHouse) -> None:
    migrate(ch)
    older = {**RECORD, "version": 12, "csat": None}
    newer = {**RECORD, "csat": 5, "csat_at_ms": 1767300000000, "version": 16}
    ch.insert(rows.INTERACTIONS_TABLE, rows.interaction_batch([RECORD, older]))
    ch.insert(rows.INTERACTIONS_TABLE, rows.interaction_batch([newer, RECORD]))  # redelivery
    got = ch.query(
        f"SELECT interaction_id, queues, customer_id, priority, wait_ms, talk_ms, resolved, csat, version, "
        f"toUnixTimestamp(offered_at), answered_at IS NULL, abandoned_at IS NULL "
        f"FROM {ch.database}.interactions FINAL").rows
    assert got == [("i1", ["sales", "billing"], None, 3, 9877, 80000, 1, 5, 16, 1767258000, 0, 1)]
    assert ch.query(f"SELECT count() FROM {ch.database}.interactions_current").rows == [(1,)]


def test_dead_letters_keep_original_bytes(ch: ClickHouse) -> None:
    migrate(ch)
    payload = b"\xff\x00not json"
    letter = {"reason": "invalid_utf8", "error": "message is not UTF-8", "source_topic": "t", "source_partition": 2,
              "source_offset": 41, "received_at_ms": 1767258000000, "key": None,
              "payload_b64": base64.b64encode(payload).decode()}
    ch.insert(rows.DEAD_LETTERS_TABLE, rows.dead_letter_batch([letter, letter]))
    got = ch.query(f"SELECT reason, source_offset, hex(payload) FROM {ch.database}.dead_letters FINAL").rows
    assert got == [("invalid_utf8", 41, payload.hex().upper())]
    assert ch.query(f"SELECT reason, messages FROM {ch.database}.dead_letters_by_reason").rows == [("invalid_utf8", 1)]


def test_second_process_sees_locked_embedded_path(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "locked"
    holder = subprocess.Popen([sys.executable, "-c", f"from streams.clickhouse.connect import connect; import time; "
                               f"c = connect('chdb://{path}'); print('ok', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        assert data_path_locked(str(path))
        with pytest.raises(ClickHouseUnavailable, match="in use by another process"):
            connect(f"chdb://{path}")
    finally:
        holder.kill()
        holder.wait()
    assert not data_path_locked(str(path))


def test_unreachable_server_is_named_failure() -> None:
    from tests.services import free_port

    with pytest.raises(ClickHouseUnavailable, match="unreachable"):
        connect(f"clickhouse://default:@127.0.0.1:{free_port()}/x")


def test_engine_process_restarts_after_a_crash_with_its_data(tmp_path: Path) -> None:
    """The worker's engine runs in a child (streams/clickhouse/engine.py): a crash of it is an outage
    of one call at most, and the next call finds the rows stored before it."""
    import os
    import signal

    import pyarrow as pa

    from streams.clickhouse import ClickHouseError
    from streams.clickhouse.engine import EngineProcess

    c = connect(f"chdb://{tmp_path / 'e'}", "cctest", own_process=True)
    assert isinstance(c, EngineProcess)
    try:
        c.command("CREATE TABLE cctest.t (a Int64, s String) ENGINE = MergeTree ORDER BY a")
        c.insert("t", pa.table({"a": list(range(1, 1001)), "s": ["é"] * 1000}))
        first = c.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        sql = "SELECT count(), sum(a), any(s) FROM cctest.t"
        try:
            got = c.query(sql).rows
        except ClickHouseUnavailable:  # the call that met the dying engine: the sink retries it
            got = c.query(sql).rows
        assert got == [(1000, 500500, "é")]
        assert c.pid not in (None, first)
        with pytest.raises(ClickHouseError, match="nope"):  # a statement's error is the statement's, not an outage
            c.query("SELECT nope FROM cctest.t")
        assert c.query("SELECT 1").rows == [(1,)]
    finally:
        c.close()
    assert not data_path_locked(str(tmp_path / "e"))


def test_engine_process_ends_with_its_parent_and_frees_the_data_path(tmp_path: Path) -> None:
    """A SIGKILLed worker cannot close its engine: the engine notices and exits, so the
    worker that replaces it can open the data path."""
    import subprocess
    import sys
    import time

    path = tmp_path / "orphan"
    parent = subprocess.Popen([sys.executable, "-c", f"from streams.clickhouse.connect import connect; import time; "
                               f"c = connect('chdb://{path}', own_process=True); print(c.pid, flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        engine_pid = int(parent.stdout.readline())
        assert data_path_locked(str(path))
        with pytest.raises(ClickHouseUnavailable, match="in use by another process"):
            connect(f"chdb://{path}", own_process=True)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while data_path_locked(str(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not data_path_locked(str(path))
    assert not Path(f"/proc/{engine_pid}").exists() or "Z" in Path(f"/proc/{engine_pid}/stat").read_text().split()[2]


def test_an_engine_busy_in_a_long_query_still_ends_with_its_parent(tmp_path: Path) -> None:
    """The engine's watch of its parent, not only the closed pipe: a worker SIGKILLed while
    its engine runs a long statement must not leave the data path locked until it ends."""
    import subprocess
    import sys
    import time

    path = tmp_path / "busy"
    parent = subprocess.Popen([sys.executable, "-c", f"from streams.clickhouse.connect import connect; "
                               f"c = connect('chdb://{path}', own_process=True); print(c.pid, flush=True); "
                               "c.query('SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 0')"],
                              stdout=subprocess.PIPE, text=True)
    try:
        int(parent.stdout.readline())
        time.sleep(1.0)  # the statement is under way (it runs for minutes)
        assert parent.poll() is None
    finally:
        parent.kill()
        parent.wait()
    killed_at = time.monotonic()
    while data_path_locked(str(path)) and time.monotonic() - killed_at < 10:
        time.sleep(0.05)
    assert not data_path_locked(str(path)), "the engine kept running its statement after its parent died"
    assert time.monotonic() - killed_at < 3


def test_batch_files_of_dead_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from streams.clickhouse import _BATCH_PREFIX, _SCRATCH, remove_stale_batch_files

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    scratch = Path(_SCRATCH or __import__("tempfile").gettempdir())
    dead = scratch / f"{_BATCH_PREFIX}{gone.pid}-test.arrow"
    live = scratch / f"{_BATCH_PREFIX}{os.getpid()}-test.arrow"
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    try:
        assert remove_stale_batch_files() >= 1
        assert not dead.exists()
        assert live.exists()
    finally:
        dead.unlink(missing_ok=True)
        live.unlink(missing_ok=True)
