"""Which ClickHouse a URL names, opened: ``chdb://path`` the embedded engine (in this process,
or in a child process of its own, streams/clickhouse/engine.py), ``clickhouse://user:pass@host:port/db``
a server (streams/clickhouse/__init__.py). Its own module so that the engine process, which uses the
embedded engine, and the interface it implements import each other in one direction only."""
from __future__ import annotations

import re
from urllib.parse import unquote, urlparse

from streams.clickhouse import ChdbClickHouse, ClickHouse, ClickHouseError, ClickHouseUnavailable, NativeClickHouse

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def connect(url: str, database: str = "ccpulse", own_process: bool = False, query_url: str | None = None) -> ClickHouse:
    """Open the engine a URL names (see the module docstring for the two forms).

    ``own_process``: run an embedded engine in a child process (streams/clickhouse/engine.py), as the
    worker does; no effect on a server URL. ``query_url``: on a server, the user typed queries
    (``untrusted_query``) log in as, instead of the writer's."""
    u = urlparse(url)
    if u.scheme == "chdb":
        path = url[len("chdb://"):]
        if not path:
            raise ClickHouseError("chdb URL needs a path: chdb://.ccpulse/chdb or chdb:///abs/path")
        if not _DB_NAME.match(database):
            raise ClickHouseError(f"bad database name {database!r}")
        if own_process:
            from streams.clickhouse.engine import EngineProcess

            return EngineProcess(path, database, url)
        return ChdbClickHouse(path, database, url)
    if u.scheme == "clickhouse":
        db = (u.path or "/").strip("/") or database
        if not _DB_NAME.match(db):
            raise ClickHouseError(f"bad database name {db!r} in {url}")
        typed = None
        if query_url:
            q = urlparse(query_url)
            if q.scheme != "clickhouse":
                raise ClickHouseError("clickhouse_query_url must be clickhouse://user:pass@host:9000/db")
            typed = (q.hostname or "127.0.0.1", q.port or 9000, unquote(q.username or "default"), unquote(q.password or ""))
        try:
            return NativeClickHouse(u.hostname or "127.0.0.1", u.port or 9000, unquote(u.username or "default"),
                                    unquote(u.password or ""), db, url, typed=typed)
        except ClickHouseUnavailable:
            raise
    raise ClickHouseError(f"unknown ClickHouse URL {url!r}: use chdb://path or clickhouse://user:pass@host:9000/db")
