"""Read-only and per-tenant ClickHouse users (streams/clickhouse/access.py) on real engines.

On CI's ClickHouse server (18.16) the users.d file goes next to the running server's
users.xml; ClickHouse reloads user configuration on its own, so the test waits for the new
users to log in. That server predates row filters, grants and constraints, so the same
file's client user is also attacked on the current engine (chdb 26.x): chdb always runs as
its ``default`` user, so the client's user element is loaded as ``default`` there.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from streams.clickhouse.access import OTHER_TABLES, TENANT_TABLES, Password, client_user, users_xml
from streams.clickhouse.connect import connect
from streams.clickhouse.migrate import migrate
from streams.clickhouse import ClickHouseError, rows
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
        assert stored == set(TENANT_TABLES) | set(OTHER_TABLES), "classify new tables in streams/clickhouse/access.py"
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
        tenant_password={"acme": Password("a-secret"), "globex": Password("g-secret")},
        legacy=int(version.split(".")[0]) < 20))
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


def test_the_workers_query_lane_on_a_server_is_bounded_by_the_read_only_users_grants(access_db: tuple,
                                                                                      tmp_path: Path) -> None:
    """``clickhouse_query_url``: the worker's typed queries log in as ``db access``'s reader, so
    the server, not a parse tree, refuses another database, files and writes (issue 24)."""
    db, port, _ = access_db
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-31337\n")
    ch = connect(f"clickhouse://default:@127.0.0.1:{port}/{db}", query_url=f"clickhouse://grafana:r-secret@127.0.0.1:{port}/{db}")
    try:
        assert ch.typed_user == "grafana"  # type: ignore[attr-defined]
        assert ch.untrusted_query(f"SELECT count() FROM {db}.interactions FINAL").rows == [(8,)]
        for sql in (f"SELECT count() FROM {db}_private.t", f"SELECT * FROM file('{canary}', 'TSV', 'a String')",
                    f"INSERT INTO {db}.dead_letters (reason) VALUES ('planted')", f"DROP TABLE {db}.dead_letters",
                    "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'a String')"):
            with pytest.raises(ClickHouseError) as refused:
                ch.untrusted_query(sql)
            assert "CANARY" not in str(refused.value), sql
        assert ch.query(f"SELECT count() FROM {db}.dead_letters").rows == [(1,)]  # nothing planted or dropped
    finally:
        ch.close()


def test_a_client_sees_only_its_own_tenant(access_db: tuple) -> None:
    db, port, version = access_db
    if int(version.split(".")[0]) < 19:
        pytest.skip(f"ClickHouse {version} predates row filters in users.xml (19.x); "
                    "production runs a current server (docker-compose.yml)")
    acme = _client(port, client_user("acme"), "a-secret")
    assert acme.execute(f"SELECT tenant, count() FROM {db}.interactions FINAL GROUP BY tenant") == [("acme", 3)]
    assert acme.execute(f"SELECT count() FROM {db}.interactions_current") == [(3,)]  # views are filtered too
    assert acme.execute(f"SELECT count() FROM {db}.dead_letters") == [(0,)]  # no tenant column: hidden


_SEED = """
import sys
from streams.clickhouse.connect import connect
from streams.clickhouse.migrate import migrate
from streams.clickhouse import rows
from tests.streams.test_clickhouse import RECORD
ch = connect("chdb://" + sys.argv[1], sys.argv[2])
migrate(ch)
ch.insert(rows.INTERACTIONS_TABLE, rows.interaction_batch(
    [{**RECORD, "interaction_id": f"a{i}", "tenant": "acme"} for i in range(3)]
    + [{**RECORD, "interaction_id": f"g{i}", "tenant": "globex"} for i in range(5)]))
ch.insert(rows.DEAD_LETTERS_TABLE, rows.dead_letter_batch([{
    "reason": "invalid_json", "error": "x", "source_topic": "t", "source_partition": 0, "source_offset": 1,
    "received_at_ms": 1767258000000, "key": None, "payload_b64": ""}]))
ch.close()
"""

_AS_USER = """
import json, sys
import chdb
c = chdb.connect(sys.argv[1] + "?config-file=" + sys.argv[2])
out = []
for q in json.loads(sys.argv[3]):
    try:
        out.append([True, str(c.query(q, "TSV")).strip()])
    except Exception as e:
        out.append([False, str(e).splitlines()[0][:300]])
print(json.dumps(out))
"""


def _as_user_on_current_engine(tmp_path: Path, xml: str, user: str, queries: list[str]) -> list[tuple[bool, str]]:
    """Run ``queries`` on chdb as ``user`` of the generated users file: its element becomes
    chdb's ``default`` (which logs in without a password from this machine), all else as written."""
    import json
    import re
    import subprocess
    import sys

    start, end = xml.index(f"    <{user}>"), xml.index(f"    </{user}>") + len(f"    </{user}>")
    element = xml[start:end]
    element = re.sub(r"<password[^>]*/>|<password_sha256_hex>[^<]*</password_sha256_hex>",
                     "<password></password>", element)
    element = re.sub(r"<networks>.*?</networks>", "<networks><ip>::/0</ip></networks>", element)
    element = element.replace(f"<{user}>", "<default>").replace(f"</{user}>", "</default>")
    # What a server's own users.xml has besides: the default profile (chdb's context) and quota.
    head = xml[:xml.index("  <users>\n")].replace("  <profiles>\n", "  <profiles>\n    <default/>\n")
    users = head + "  <quotas><default/></quotas>\n  <users>\n" + element + "\n  </users>\n</yandex>\n"
    conf = tmp_path / f"as-{user}"  # not the working directory: chdb reads a config.xml found there
    conf.mkdir(exist_ok=True)
    (conf / "users.xml").write_text(users)
    (conf / "config.xml").write_text(f"<clickhouse><users_config>{conf / 'users.xml'}</users_config></clickhouse>\n")
    p = subprocess.run([sys.executable, "-c", _AS_USER, str(tmp_path / "chdb"), str(conf / "config.xml"),
                        json.dumps(queries)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    return [(ok, text) for ok, text in json.loads(p.stdout.strip().splitlines()[-1])]


def test_a_client_user_on_the_current_engine_reads_its_own_rows_and_cannot_lift_its_limits(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.services import REPO

    db = "acc"
    subprocess.run([sys.executable, "-c", _SEED, str(tmp_path / "chdb"), db], cwd=REPO, check=True, timeout=120)
    xml = users_xml(db, ["acme", "globex"])
    allowed = {
        f"SELECT tenant, count() FROM {db}.interactions FINAL GROUP BY tenant": "acme\t3",
        f"SELECT count() FROM {db}.interactions_current": "3",  # views over the tables are filtered too
        f"SELECT count() FROM {db}.interactions FINAL WHERE tenant = 'globex'": "0",
        # A dashboard variable that escapes its quote: the injected OR still sees acme's rows only.
        f"SELECT count() FROM {db}.interactions FINAL WHERE tenant = 'nobody\\\\' OR 1 = 1 -- '": "3",
        f"SELECT count() FROM {db}.dead_letters": "0",  # no tenant column: hidden
        "SELECT 1 SETTINGS max_execution_time = 30": "1",  # what Grafana's driver sets
    }
    refused = {
        "SELECT * FROM file('/etc/passwd', 'LineAsString')": "ACCESS_DENIED|Not enough privileges",
        "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')": "ACCESS_DENIED|Not enough privileges",
        f"SELECT * FROM remote('127.0.0.1', {db}.interactions)": "ACCESS_DENIED|Not enough privileges",
        f"INSERT INTO {db}.interactions (interaction_id, tenant) VALUES ('x', 'acme')": "readonly|ACCESS_DENIED",
        f"CREATE TABLE {db}.x (a UInt8) ENGINE = Memory": "readonly|ACCESS_DENIED|Not enough privileges",
        "SELECT 1 SETTINGS max_execution_time = 0": "SETTING_CONSTRAINT_VIOLATION|shouldn't be less",
        "SELECT 1 SETTINGS max_execution_time = 3600": "SETTING_CONSTRAINT_VIOLATION|shouldn't be greater",
        "SELECT 1 SETTINGS max_memory_usage = 0": "SETTING_CONSTRAINT_VIOLATION|shouldn't be less",
        "SELECT 1 SETTINGS readonly = 0": "SETTING_CONSTRAINT_VIOLATION|readonly|should not be changed",
    }
    # (Not here: KILL QUERY of another user's query, and system.* behind grants, need a second
    # user and the server's access_control_improvements, which the embedded engine has not.)
    got = _as_user_on_current_engine(tmp_path, xml, client_user("acme"), [*allowed, *refused])
    for (q, want), (ok, text) in zip(allowed.items(), got[:len(allowed)]):
        assert ok and text == want, (q, text)
    import re

    for (q, why), (ok, text) in zip(refused.items(), got[len(allowed):]):
        assert not ok and re.search(why, text, re.I), (q, ok, text)
    reader = _as_user_on_current_engine(tmp_path, xml, "grafana", [
        f"SELECT tenant, count() FROM {db}.interactions FINAL GROUP BY tenant ORDER BY tenant",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')"])
    assert reader[0] == (True, "acme\t3\nglobex\t5") and not reader[1][0], reader
