"""ClickHouse behind one small interface, chosen by URL: embedded chdb or a server.

``chdb://path`` runs the engine in this process (one process per data path: stack.md), or
in a child process of its own (streams/clickhouse/engine.py: the worker's choice);
``clickhouse://user:pass@host:9000/db`` speaks the native protocol via clickhouse-driver.
Both take columnar batches as pyarrow arrays: chdb reads them from an Arrow file in
memory (``write_arrow_file``), the driver gets plain Python columns.
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Protocol
from xml.sax.saxutils import escape


import pyarrow as pa

#: Where embedded inserts stage their Arrow file: memory where the machine offers it.
_SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
_BATCH_PREFIX = "ccpulse-batch-"

Dialect = Literal["modern", "legacy"]


class ClickHouseError(Exception):
    """A ClickHouse call failed; the message says which server and what to do."""


class ClickHouseUnavailable(ClickHouseError):
    """The server cannot be reached or the data path is locked; worth retrying later."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class ClickHouse(Protocol):
    """What sinks, migrations and the CLI need from a ClickHouse engine."""

    database: str
    dialect: Dialect
    url: str

    def command(self, sql: str) -> None: ...
    def query(self, sql: str) -> Result: ...
    def insert(self, table: str, batch: pa.Table) -> None: ...
    def close(self) -> None: ...


def _dialect_of(version: str) -> Dialect:
    major = int(version.split(".")[0])
    return "legacy" if major < 20 else "modern"


def data_path_locked(path: str) -> bool:
    """True when another process holds the engine's lock on ``path/status``.

    Checked first because chdb, when it finds the lock taken, prints to stderr and
    raises a vague BAD_ARGUMENTS error.
    """
    import fcntl

    status = Path(path) / "status"
    if not status.exists():
        return False
    with open(status, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


@contextmanager
def write_arrow_file(batch: pa.Table) -> Iterator[str]:
    """The batch as an Arrow file in memory (/dev/shm where there is one), removed after.

    The worker's engine runs in a process of its own (streams/clickhouse/engine.py), so only a
    file name crosses the pipe; the engine maps the file and inserts it through chdb's
    ``Python()`` table function, not ``file()``: that would need the ``READ ON FILE`` grant,
    which would let a typed query read any file (``embedded_users_xml``). pyarrow writes
    the file without the GIL. A full /dev/shm is an outage to retry (and to report), not a
    crash."""
    from pyarrow import feather

    try:
        fd, name = tempfile.mkstemp(prefix=f"{_BATCH_PREFIX}{os.getpid()}-", suffix=".arrow", dir=_SCRATCH)
        os.close(fd)
    except OSError as e:
        raise ClickHouseUnavailable(f"cannot stage a batch in {_SCRATCH or tempfile.gettempdir()}: {e}") from None
    try:
        try:
            feather.write_feather(batch, name, compression="uncompressed")
        except OSError as e:
            raise ClickHouseUnavailable(f"cannot stage a batch in {name}: {e} (is /dev/shm full?)") from None
        yield name
    finally:
        os.unlink(name)


def remove_stale_batch_files() -> int:
    """Remove batch files of processes that are gone (killed mid-insert): left behind, they
    would fill a small /dev/shm (64 MB in a container) over a few crashes. How many."""
    removed = 0
    scratch = Path(_SCRATCH or tempfile.gettempdir())
    for f in scratch.glob(f"{_BATCH_PREFIX}*.arrow"):
        try:
            pid = int(f.name[len(_BATCH_PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)
        except ValueError:
            continue  # not named by this version
        except ProcessLookupError:
            f.unlink(missing_ok=True)
            removed += 1
        except PermissionError:
            continue  # alive, someone else's
    return removed


#: Limits of a query someone typed (``ccpulse sql`` through the worker), set on a connection
#: of its own: ``readonly=1`` refuses writes, DDL, table functions that reach files or the
#: network, and any change of these settings (a ``SETTINGS`` clause included).
UNTRUSTED_SETTINGS = {
    "readonly": 1, "max_execution_time": 10, "timeout_overflow_mode": "throw", "max_memory_usage": 1_000_000_000,
    "max_rows_to_read": 1_000_000_000, "max_result_rows": 1_000_000, "result_overflow_mode": "throw", "max_threads": 2,
}
#: Statements a typed query may be, by the root of the engine's own parse tree.
_UNTRUSTED_ROOTS = ("SelectWithUnionQuery (children 1)", "ShowTables", "DescribeQuery", "ExistsTableQuery")
#: What the embedded engine's grants (``embedded_users_xml``) cannot close: the scalar
#: ``file()`` function (clickhouse-local reads any path with it, granted or not), and system
#: tables that show the engine's own queries (its one user's: the writer's too).
_UNTRUSTED_FUNCTIONS = ("file",)
_SYSTEM_TABLES_OK = {"tables", "columns", "databases", "functions", "parts", "settings", "table_functions",
                     "data_type_families", "time_zones", "numbers", "one", "contributors"}


class QueryRefused(ClickHouseError):
    """A typed query the worker will not run; the message says what is allowed."""


def check_untrusted_ast(ast: list[str]) -> str | None:
    """Why the engine's parse tree (``EXPLAIN AST``) of a typed query is refused, or None.

    The engine is the boundary: its user's grants (the ccpulse database only) and readonly=1
    on the query's own connection (tests/attacks/test_engine_grants.py attacks it without
    this check). This names only what no grant covers in the embedded engine: ``INTO
    OUTFILE`` and ``FORMAT`` (client-side; a second child of the root), scalar ``file()``,
    and system tables beyond the schema's."""
    first = ast[0].strip() if ast else ""
    if not any(first == r or first.startswith(r + " ") for r in _UNTRUSTED_ROOTS):
        return "one SELECT, SHOW TABLES, DESCRIBE or EXISTS statement, without INTO OUTFILE or FORMAT"
    for line in ast:
        words = line.strip().split()
        if len(words) >= 2 and words[0] == "Function" and words[1] in _UNTRUSTED_FUNCTIONS:
            return f"the function {words[1]}() is not allowed"
        if len(words) >= 2 and words[0] == "TableIdentifier" and words[1].startswith("system."):
            if words[1][len("system."):] not in _SYSTEM_TABLES_OK:
                return f"{words[1]} is not readable here"
    return None


#: The embedded engine's configuration and users files, written into its data path at every start.
CONFIG_FILE, USERS_FILE = "ccpulse-config.xml", "ccpulse-users.xml"


def embedded_users_xml(database: str) -> str:
    """The one user of the embedded engine, with grants on ``database`` and nothing else.

    The worker's writes and the typed queries of ``ccpulse sql`` share one engine and so one
    user; the engine, not a parse tree, is the boundary: no other database, no table
    function that reaches files, URLs or other servers (``file``, ``url``, ``remote``,
    ``mysql``... need grants of their own), no ``SYSTEM``, no user or grant listing.
    Batches are therefore inserted through the engine's ``Python()`` table function, which
    reads the caller's own Arrow table and needs no grant (``ChdbClickHouse.insert_file``)."""
    return f"""<clickhouse>
  <profiles><default/></profiles>
  <quotas><default/></quotas>
  <users>
    <default>
      <password></password>
      <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <grants>
        <query>GRANT ALL ON {database}.*</query>
      </grants>
    </default>
  </users>
</clickhouse>
"""


class ChdbClickHouse:
    """Embedded engine; every call is serialised because a session is not thread-safe."""

    def __init__(self, path: str, database: str, url: str) -> None:
        from chdb import session  # imported here: 0.35 s and 0.4 GB that the server path never needs

        Path(path).mkdir(parents=True, exist_ok=True)
        self.url, self.database, self.path = url, database, path
        self._lock = threading.Lock()
        # Typed queries run on a connection and a lock of their own: a slow one never holds
        # up the writes (the engine runs both at once).
        self._ro_lock = threading.Lock()
        self._readonly: Any = None  # the connection typed queries run on (untrusted_query)
        remove_stale_batch_files()
        if data_path_locked(path):
            raise ClickHouseUnavailable(
                f"embedded ClickHouse at {path} is in use by another process (a running `ccpulse worker`?): "
                "stop it, or query through it with `ccpulse sql`")
        from streams.config.private import write_private

        users, config = Path(path).resolve() / USERS_FILE, Path(path).resolve() / CONFIG_FILE
        write_private(users, embedded_users_xml(database))
        write_private(config, f"<clickhouse><user_directories><users_xml><path>{escape(str(users))}</path>"
                              "</users_xml></user_directories></clickhouse>\n")
        try:
            self._session = session.Session(f"{path}?config-file={config}")
        except Exception as e:  # chdb raises a bare RuntimeError/ChdbError
            raise ClickHouseError(f"cannot open embedded ClickHouse at {path}: {e}") from None
        self.dialect: Dialect = "modern"
        self.command(f"CREATE DATABASE IF NOT EXISTS {database}")

    def command(self, sql: str) -> None:
        with self._lock:
            try:
                self._session.query(sql)
            except Exception as e:
                raise ClickHouseError(f"{e}") from None

    def query(self, sql: str) -> Result:
        with self._lock:
            try:
                t = self._session.query(sql, "ArrowTable")
            except Exception as e:
                raise ClickHouseError(f"{e}") from None
        cols = t.to_pydict()
        names = list(t.column_names)
        return Result(names, list(zip(*(cols[n] for n in names))) if names else [])

    def insert(self, table: str, batch: pa.Table) -> None:
        with write_arrow_file(batch) as name:
            self.insert_file(table, list(batch.column_names), name)

    def insert_file(self, table: str, columns: list[str], name: str) -> None:
        """Insert an Arrow file's rows (``write_arrow_file``): also what the engine's own
        process (streams/clickhouse/engine.py) is asked to do."""
        from pyarrow import feather

        cols = ", ".join(columns)
        batch = feather.read_table(name, memory_map=True)  # noqa: F841 -- read by the engine's Python()
        with self._lock:
            try:
                self._session.query(
                    f"INSERT INTO {self.database}.{table} ({cols}) SELECT {cols} FROM Python(batch)")
            except Exception as e:
                raise ClickHouseError(f"insert into {table}: {e}") from None

    def untrusted_query(self, sql: str) -> Result:
        """A query someone typed: made one statement by the engine's parser, checked on its
        parse tree, and run on a connection of its own that ``UNTRUSTED_SETTINGS`` bound."""
        with self._ro_lock:
            ro = self._untrusted()
            escaped = sql.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
            try:
                canon = str(ro.query("SELECT formatQuerySingleLine({q:String})", "TSVRaw",
                                     params={"q": escaped})).rstrip("\n")
                ast = str(ro.query(f"EXPLAIN AST {canon}", "TSVRaw")).splitlines()
            except Exception as e:
                raise QueryRefused(f"{e}") from None
            why = check_untrusted_ast(ast)
            if why:
                raise QueryRefused(f"refused by the read-only endpoint: {why}")
            try:
                t = ro.query(canon, "ArrowTable")
            except Exception as e:
                raise ClickHouseError(f"{e}") from None
        cols = t.to_pydict()
        names = list(t.column_names)
        return Result(names, list(zip(*(cols[n] for n in names))) if names else [])

    def _untrusted(self) -> Any:
        if self._readonly is None:
            import chdb

            opts = "&".join(f"{k}={v}" for k, v in UNTRUSTED_SETTINGS.items())
            self._readonly = chdb.connect(f"{self.path}?{opts}")
        return self._readonly

    def close(self) -> None:
        with self._lock, self._ro_lock:
            if self._readonly is not None:
                self._readonly.close()
            self._session.close()


class NativeClickHouse:
    """A ClickHouse server over the native protocol (clickhouse-driver)."""

    def __init__(self, host: str, port: int, user: str, password: str, database: str, url: str,
                 typed: tuple[str, int, str, str] | None = None) -> None:
        from clickhouse_driver import Client

        # The driver logs each failed connect with a traceback; ClickHouseUnavailable below says
        # it once, in words, and the writer retries (a 30 s outage printed 36 tracebacks).
        logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)
        self.url, self.database = url, database
        self._where = f"{host}:{port}"
        self._client = Client(host=host, port=port, user=user, password=password,
                              connect_timeout=5, send_receive_timeout=60,
                              settings={"use_numpy": False})
        self._lock = threading.Lock()
        # Typed queries get a connection of their own: a slow one never holds up the writes. As a
        # read-only user of their own when one is given (the server's grants bound them).
        th, tp, tu, tpw = typed or (host, port, user, password)
        self.typed_user = tu
        self._typed = Client(host=th, port=tp, user=tu, password=tpw,
                             connect_timeout=5, send_receive_timeout=60, settings={"use_numpy": False})
        self._typed_lock = threading.Lock()
        version = self._call(lambda c: c.execute("SELECT version()"))[0][0]
        self.dialect = _dialect_of(version)
        # Only when missing: a read-only user (streams/clickhouse/access.py) may not run DDL at all.
        if not self._call(lambda c: c.execute("SELECT count() FROM system.databases WHERE name = %(d)s",
                                              {"d": database}))[0][0]:
            self.command(f"CREATE DATABASE IF NOT EXISTS {database}")

    def _call(self, fn: Any, typed: bool = False) -> Any:
        from clickhouse_driver import errors

        client, lock = (self._typed, self._typed_lock) if typed else (self._client, self._lock)
        with lock:
            try:
                return fn(client)
            except (errors.NetworkError, errors.SocketTimeoutError, EOFError, OSError) as e:
                client.disconnect()
                raise ClickHouseUnavailable(
                    f"ClickHouse server {self._where} unreachable ({e.__class__.__name__}: {e}); "
                    "is it running? check clickhouse_url") from None
            except errors.Error as e:
                # Old servers append a C++ stack trace: keep the part a person can act on.
                msg = str(e).split("Stack trace")[0].strip().rstrip(".")
                raise ClickHouseError(f"ClickHouse server {self._where}: {msg}") from None

    def command(self, sql: str) -> None:
        self._call(lambda c: c.execute(sql))

    def query(self, sql: str) -> Result:
        rows, types = self._call(lambda c: c.execute(sql, with_column_types=True))
        return Result([n for n, _ in types], [tuple(r) for r in rows])

    def untrusted_query(self, sql: str) -> Result:
        """A query someone typed, with ``UNTRUSTED_SETTINGS``: the server refuses writes, DDL,
        table functions and any change of those settings. One statement per call is all the
        native protocol takes, and the driver writes no ``INTO OUTFILE`` file."""
        settings = dict(UNTRUSTED_SETTINGS)
        readonly = settings.pop("readonly")
        settings["readonly"] = readonly  # last: the limits are set before it locks them
        try:
            rows, types = self._call(lambda c: c.execute(sql, with_column_types=True, settings=settings), typed=True)
        except ClickHouseUnavailable:
            raise
        except ClickHouseError as e:
            raise QueryRefused(f"{e}") from None
        return Result([n for n, _ in types], [tuple(r) for r in rows])

    def insert(self, table: str, batch: pa.Table) -> None:
        cols = batch.column_names
        data = [batch.column(n).to_pylist() for n in cols]
        self._call(lambda c: c.execute(
            f"INSERT INTO {self.database}.{table} ({', '.join(cols)}) VALUES", data, columnar=True))

    def close(self) -> None:
        with self._lock, self._typed_lock:
            self._client.disconnect()
            self._typed.disconnect()
