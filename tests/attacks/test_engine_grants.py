"""The embedded engine's own user is the boundary of the worker's query lane (issue 24).

The worker's writes and the typed queries of ``ccpulse sql`` share one embedded engine, and
so one ClickHouse user: ``embedded_users_xml`` grants it the ccpulse database and nothing
else. These attacks go straight to the engine, on the writer's own connection (no
``readonly``) and on the typed-query connection, with no parse-tree check in front: the
engine refuses each. What grants cannot close in the embedded engine -- the scalar ``file()``
function (clickhouse-local reads any path with it, granted or not), ``INTO OUTFILE`` (a
client-side feature) and ``system.processes`` (the engine's own queries) -- the lane's
parse-tree check refuses (``CHECKED``; tests/integration/test_worker_endpoint.py sends the
whole corpus through the worker).
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from streams.clickhouse import ClickHouseError
from streams.clickhouse.connect import connect

ATTACKS = [
    "SELECT * FROM file('{canary}', 'LineAsString')",
    "SELECT * FROM file('/proc/self/environ', 'LineAsString')",
    "INSERT INTO FUNCTION file('{out}', 'CSV', 'a String') VALUES ('x')",
    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')",
    "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    "SELECT * FROM mysql('127.0.0.1:3306', 'd', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:5432', 'd', 't', 'u', 'p')",
    "SELECT * FROM merge('system', '^processes$')",
    "SELECT * FROM merge('secret', '.*')",
    "SELECT * FROM secret.card_numbers",
    "SELECT name FROM system.users",
    "SELECT * FROM system.grants",
    "CREATE DATABASE planted",
    "DROP DATABASE secret",
    "SYSTEM SHUTDOWN",
    "SYSTEM DROP DNS CACHE",
    "CREATE USER intruder",
    "GRANT ALL ON *.* TO default",
]
#: Refused by the lane's check of the engine's parse tree: no grant covers them in chdb.
CHECKED = [
    "SELECT file('{canary}')",
    "SELECT 1 INTO OUTFILE '{out}'",
    "SELECT query FROM system.processes",
]


@pytest.fixture()
def engine(tmp_path: Path):
    path = tmp_path / "chdb"
    # Another database on the same data path, made while the engine was opened for it.
    other = connect(f"chdb://{path}", "secret")
    other.command("CREATE TABLE secret.card_numbers (n String) ENGINE = MergeTree ORDER BY n")
    other.insert("card_numbers", pa.table({"n": ["4111-1111-1111-1111"]}))
    other.close()
    ch = connect(f"chdb://{path}", "ccpulse")
    yield ch
    ch.close()


def test_the_embedded_engine_refuses_everything_outside_the_ccpulse_database(engine, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-31337\n")
    out = tmp_path / "written.csv"
    lane = engine._untrusted()  # the typed-query connection, without the parse-tree check
    for sql in (a.format(canary=canary, out=out) for a in ATTACKS):
        for name, run in (("writer", lambda q: engine.query(q)), ("lane", lambda q: lane.query(q, "TSV"))):
            try:
                got = run(sql)
            except Exception as e:  # noqa: BLE001 -- the engine's refusal, whatever its class
                assert "CANARY" not in str(e) and "4111" not in str(e), (name, sql)
                continue
            pytest.fail(f"{name} connection ran {sql!r}: {str(got)[:200]}")
    assert not out.exists()
    # What is granted still works, on both: the worker's writes and a typed query.
    engine.command("CREATE TABLE ccpulse.t (x Int32) ENGINE = MergeTree ORDER BY x")
    engine.insert("t", pa.table({"x": pa.array([1, 2, 3], pa.int32())}))
    assert engine.query("SELECT sum(x) FROM ccpulse.t").rows == [(6,)]
    assert engine.untrusted_query("SELECT count() FROM ccpulse.t").rows == [(3,)]
    assert engine.query("SELECT count() FROM system.tables WHERE database = 'secret'").rows == [(0,)]  # not even seen
    for sql in (a.format(canary=canary, out=out) for a in CHECKED):
        with pytest.raises(ClickHouseError) as refused:
            engine.untrusted_query(sql)
        assert "CANARY" not in str(refused.value)
    assert not out.exists()
