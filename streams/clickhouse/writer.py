"""Stores batches in ClickHouse off the event loop, retrying outages with backoff.

The agents await ``write`` before they return a batch to faust, and faust acks (so
commits) a batch's offsets only after that: a row is stored before its offset is
committed. An outage therefore pauses consumption (backpressure) instead of dropping
or buffering without bound; ``degraded`` tells the health endpoint why.
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import pyarrow as pa

from streams.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable, Result

log = logging.getLogger("ccpulse.sink")
T = TypeVar("T")


class BatchWriter:
    """One ClickHouse connection, one thread: chdb sessions are not thread-safe."""

    def __init__(self, open_clickhouse: Callable[[], ClickHouse], max_backoff_s: float = 10.0) -> None:
        self._open = open_clickhouse
        self._ch: ClickHouse | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._typed_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clickhouse-typed")
        self._max_backoff = max_backoff_s
        self._failing: dict[str, str] = {}  # what (a table's write, a read) -> its last error
        self.rows_written: dict[str, int] = {}
        self.last_write_at: float | None = None
        self._closed = False

    def _clickhouse(self) -> ClickHouse:
        if self._ch is None:
            self._ch = self._open()
        return self._ch

    async def _run(self, fn: Callable[[ClickHouse], T]) -> T:
        if self._closed:
            # The worker is stopping: a timer that wakes after the last write ends quietly
            # (its figures are written again by the next worker), not as a crash.
            raise asyncio.CancelledError("the ClickHouse writer is closed: the worker is stopping")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._clickhouse()))

    async def write(self, table: str, batch: pa.Table) -> None:
        """Store the batch; on failure wait and retry until it is stored."""
        if batch.num_rows == 0:
            return
        await self._retrying(f"write to {table}", lambda ch: ch.insert(table, batch))
        self.rows_written[table] = self.rows_written.get(table, 0) + batch.num_rows
        self.last_write_at = time.time()

    async def read(self, sql: Callable[[str], str]) -> Result:
        """A query of the pipeline's own tables (``sql`` gets the database name), retried
        like a write: the caller cannot go on without its answer."""
        return await self._retrying("read", lambda ch: ch.query(sql(ch.database)))

    async def dialect(self) -> str:
        """``modern`` or ``legacy`` (the 2018 server): what SQL the reads may use."""
        return await self._retrying("read", lambda ch: ch.dialect)

    @property
    def engine(self) -> dict[str, int | None] | None:
        """The embedded engine's own process (streams/clickhouse/engine.py): its pid and how many were
        started; None for an in-process engine or a server."""
        from streams.clickhouse.engine import EngineProcess

        ch = self._ch
        return {"pid": ch.pid, "starts": ch.starts} if isinstance(ch, EngineProcess) else None

    @property
    def degraded(self) -> str | None:
        """Why the sink is degraded, or None: every write or read that is failing now. Per
        table, so one table's success does not hide another's outage."""
        return "; ".join(f"{w}: {e}" for w, e in sorted(self._failing.items())) or None

    async def _retrying(self, what: str, fn: Callable[[ClickHouse], T]) -> T:
        backoff = 0.2
        while True:
            try:
                out = await self._run(fn)
            except (ClickHouseUnavailable, ClickHouseError) as e:
                retry = getattr(e, "retry_after", backoff)
                self._failing[what] = str(e)
                log.warning("ClickHouse %s failed (%s); retrying in %.1f s, consumption paused",
                            what, e, max(retry, backoff))
                await asyncio.sleep(max(retry, backoff))
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if self._failing.pop(what, None) is not None:
                log.warning("ClickHouse %s recovered", what)
            return out

    async def typed_query(self, sql: str) -> Result:
        """A query someone typed (``ccpulse sql``), on threads of its own and the engine's
        read-only lane: however slow, it never holds up a write."""
        if self._closed:
            raise asyncio.CancelledError("the ClickHouse writer is closed: the worker is stopping")
        ch = self._ch if self._ch is not None else await self._run(lambda c: c)  # opened on the writer's thread
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._typed_pool, lambda: ch.untrusted_query(sql))

    async def run_sync(self, fn: Callable[[ClickHouse], T]) -> T:
        """Any work on the engine, on its one thread (a verify or recompute request)."""
        return await self._run(fn)

    async def query(self, sql: str) -> Result:
        return await self._run(lambda ch: ch.query(sql))

    def close(self) -> None:
        self._closed = True
        if self._ch is not None:
            self._pool.submit(self._ch.close).result(timeout=30)
        self._pool.shutdown(wait=True)
        self._typed_pool.shutdown(wait=False, cancel_futures=True)
