"""Read-only and per-tenant ClickHouse users (streams/access.py) on a real server.

The users.d file goes next to the running server's users.xml; ClickHouse reloads user
configuration on its own, so the test waits for the new users to log in.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from streams.access import OTHER_TABLES, TENANT_TABLES, Password, client_user, users_xml
from streams.clickhouse import connect
from streams.migrate import migrate
from streams.sinks import rows
from tests.streams.test_clickhouse import RECORD
from tests.services import wait_for

pytestmark = pytest.mark.integration
_n = itertools.count()


def _client(port: int, user: str, password: str) -> Any:
    from clickhouse_driver import Client

    return Client(host="127.0.0.1", port=port, user=user, password=password, connect_timeout=5)


def test_all_tables_are_classified_and_tenant_tables_have_a_tenant(tmp_path: Path) -> None:
    ch = connect(f"chdb://{tmp_path / 'chdb'}", "acc")
    try:
        migrate(ch)
        tables = {r[0]: r[1] for r in ch.query(
            "SELECT name, engine FROM system.tables WHERE database = 'acc'").rows}
        stored = {t for t, engine in tables.items() if engine != "View"}
        assert stored == set(TENANT_TABLES) | set(OTHER_TABLES), "classify new tables in streams/access.py"
        for t in TENANT_TABLES:
            cols = [r[0] for r in ch.query(f"DESCRIBE TABLE acc.{t}").rows]
            assert "tenant" in cols, t
    finally:
        ch.close()


@pytest.fixture(scope="module")
def access_db(clickhouse_server) -> tuple[str, int, str]:
    """A database with contacts of two tenants, and the users.d file for it loaded."""
    db = f"access_{clickhouse_server.port}"
    admin = connect(clickhouse_server.url(db))
    try:
        migrate(admin)
        records = [{**RECORD, "interaction_id": f"a{i}", "tenant": "acme"} for i in range(3)] + \
                  [{**RECORD, "interaction_id": f"g{i}", "tenant": "globex"} for i in range(5)]
        admin.insert(rows.INTERACTIONS_TABLE, rows.interaction_batch(records))
        admin.insert(rows.DEAD_LETTERS_TABLE, rows.dead_letter_batch([{
            "reason": "invalid_json", "error": "x", "source_topic": "t", "source_partition": 0, "source_offset": 1,
            "received_at_ms": 1767258000000, "key": None, "payload_b64": ""}]))
        admin.command(f"CREATE DATABASE IF NOT EXISTS {db}_private")
        admin.command(f"CREATE TABLE IF NOT EXISTS {db}_private.t (a UInt8) ENGINE = Memory")
        version = admin.query("SELECT version()").rows[0][0]
    finally:
        admin.close()
    users_d = clickhouse_server.workdir / "users.d"
    users_d.mkdir(exist_ok=True)
    (users_d / "ccpulse-access.xml").write_text(users_xml(
        db, ["acme", "globex"], reader_password=Password("r-secret"),
        tenant_password={"acme": Password("a-secret"), "globex": Password("g-secret")}))
    port = clickhouse_server.port
    wait_for(lambda: _client(port, client_user("acme"), "a-secret").execute("SELECT 1"), 30,
             "the server to load the new users")
    return db, port, version


def test_the_readers_can_read_every_tenant_and_write_nothing(access_db: tuple) -> None:
    db, port, _ = access_db
    reader = _client(port, "grafana", "r-secret")
    assert reader.execute(f"SELECT tenant, count() FROM {db}.interactions FINAL GROUP BY tenant ORDER BY tenant") \
        == [("acme", 3), ("globex", 5)]
    assert reader.execute(f"SELECT count() FROM {db}.dead_letters") == [(1,)]
    with pytest.raises(Exception, match="(?i)readonly"):
        reader.execute(f"CREATE TABLE {db}.x (a UInt8) ENGINE = Memory")
    with pytest.raises(Exception, match="(?i)not allowed|ACCESS_DENIED|denied"):
        reader.execute(f"SELECT count() FROM {db}_private.t")
    acme = _client(port, client_user("acme"), "a-secret")
    with pytest.raises(Exception, match="(?i)readonly"):
        acme.execute(f"INSERT INTO {db}.interactions (interaction_id, tenant) VALUES", [("x", "acme")])
    with pytest.raises(Exception, match="(?i)wrong password|Authentication failed|password is incorrect"):
        _client(port, client_user("acme"), "g-secret").execute("SELECT 1")


def test_a_client_sees_only_its_own_tenant(access_db: tuple) -> None:
    db, port, version = access_db
    if int(version.split(".")[0]) < 19:
        pytest.skip(f"ClickHouse {version} predates row filters in users.xml (19.x); "
                    "production runs a current server (docker-compose.yml)")
    acme = _client(port, client_user("acme"), "a-secret")
    assert acme.execute(f"SELECT tenant, count() FROM {db}.interactions FINAL GROUP BY tenant") == [("acme", 3)]
    assert acme.execute(f"SELECT count() FROM {db}.interactions_current") == [(3,)]  # views are filtered too
    assert acme.execute(f"SELECT count() FROM {db}.dead_letters") == [(0,)]  # no tenant column: hidden
