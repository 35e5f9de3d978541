"""``ccpulse sql``: run a query on the configured ClickHouse.

The embedded engine's data path is locked to one process (stack.md); while a worker
owns it the query goes to that worker's read-only HTTP endpoint instead.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from streams.clickhouse import ClickHouseError, ClickHouseUnavailable, Result
from streams.clickhouse.connect import connect
from streams.config.settings import Settings


def worker_headers(s: Settings) -> dict[str, str]:
    """What the worker's endpoint asks of a caller: JSON and the token of its state folder."""
    from streams.worker.webauth import read_token, token_path

    token = read_token(s.state_dir)
    if token is None:
        raise ConnectionError(f"no worker token at {token_path(s.state_dir)}: run this from the folder the worker "
                              "runs in (or set CCPULSE_STATE_DIR to its state folder)")
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def query_worker(s: Settings, sql: str, timeout_s: float = 60.0) -> Result:
    url = f"http://{s.web_host}:{s.web_port}/sql"
    req = urllib.request.Request(url, data=json.dumps({"sql": sql}).encode(), headers=worker_headers(s),
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", str(e))
        except ValueError:
            msg = str(e)
        raise ConnectionError(f"query failed: {msg}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ConnectionError(
            f"the embedded ClickHouse is locked by another process but no worker answers at {url} ({e}); "
            "stop that process or set CCPULSE_WEB_PORT to the worker's port") from None
    return Result(body["columns"], [tuple(r) for r in body["rows"]])


def run_query(s: Settings, sql: str) -> Result:
    """Query directly when we can open the engine, else through the running worker."""
    try:
        ch = connect(s.clickhouse_url, s.clickhouse_database)
    except ClickHouseUnavailable:
        if s.clickhouse_url.startswith("chdb://"):
            return query_worker(s, sql)
        raise ConnectionError(f"ClickHouse at {s.clickhouse_url} is unreachable: is it running?") from None
    except ClickHouseError as e:
        raise ConnectionError(str(e)) from None
    try:
        return ch.query(sql)
    except ClickHouseError as e:
        raise ConnectionError(f"query failed: {e}") from None
    finally:
        ch.close()
