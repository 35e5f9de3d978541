"""The embedded engine in a child process of its own, driven over a pipe.

chdb puts a whole ClickHouse into the process that imports it: about 300 MB of private
memory and 240 MB of mapped library that the worker's Python never uses, and a native
crash in the engine would take the worker's state with it. The worker therefore runs
``python -m streams.clickhouse.engine`` and sends it statements; batches still travel as Arrow files
in memory (``/dev/shm``), as with the in-process engine, so only a file name crosses the
pipe. When the child dies, the call in flight raises ``ClickHouseUnavailable`` -- the
sink retries it as an outage -- and the next call starts a new one.

Requests and replies travel as pickles over a ``multiprocessing.connection`` socket pair
(the standard library's framing: a length header, then the pickle; larger than 4 GB too),
read only by this module's own child and parent. Typed queries (``untrusted_query``) travel
on a second pair, served by a thread of their own on the engine's read-only connection: a
slow one never holds up the writes on the first.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa

from streams.clickhouse import (ChdbClickHouse, ClickHouseError, ClickHouseUnavailable, Dialect, Result,
                                write_arrow_file)


class _Lane:
    """The typed-query connection of one child."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self.lock = conn, threading.Lock()

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


class EngineProcess:
    """``chdb://`` through a child process: the same interface as ``ChdbClickHouse``."""

    dialect: Dialect = "modern"

    def __init__(self, path: str, database: str, url: str) -> None:
        self.url, self.database, self.path = url, database, path
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None  # requests and replies of the child's main loop
        self._lane: _Lane | None = None
        self.starts = 0  # engines started: more than one means one died and was replaced
        self._start()

    @property
    def pid(self) -> int | None:
        child = self._child  # one read: the sink's thread may replace it meanwhile
        return child.pid if child is not None and child.returncode is None else None

    def _start(self) -> None:
        main, main_end = multiprocessing.Pipe()  # writes and reads
        typed, typed_end = multiprocessing.Pipe()  # typed queries
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "streams.clickhouse.engine", self.path, self.database, self.url,
                 str(main_end.fileno()), str(typed_end.fileno())],
                stdin=subprocess.DEVNULL, close_fds=True, pass_fds=(main_end.fileno(), typed_end.fileno()))
        finally:
            main_end.close()
            typed_end.close()
        lane = _Lane(typed)
        try:
            reply = main.recv()
        except Exception as e:  # EOF: it died; anything else: it cannot be talked to either
            code = _end(child)
            main.close()
            lane.close()
            raise ClickHouseUnavailable(f"the embedded engine process for {self.path} failed at start "
                                        f"(code {code}, {e!r}); its error is in the worker's log") from None
        if not reply["ok"]:
            _end(child)
            main.close()
            lane.close()
            raise _error(reply)
        self._close_conns()
        self._child, self._conn, self._lane = child, main, lane
        self.starts += 1

    def _close_conns(self) -> None:
        for c in (self._conn, self._lane):
            if c is not None:
                try:
                    c.close()
                except OSError:
                    pass
        self._conn = self._lane = None

    def _call(self, *request: Any) -> Any:
        with self._lock:
            if self._child is None or self._child.poll() is not None:
                self._child = None
                self._start()
            child, conn = self._child, self._conn
            assert child is not None and conn is not None
            try:
                conn.send(request)
                reply = conn.recv()
            except Exception as e:  # EOF or a broken pipe: it died; a garbled frame: out of step
                self._child = None
                code = _end(child)
                raise ClickHouseUnavailable(
                    f"the embedded engine process ended (code {code}, {e!r}) during {request[0]}; "
                    "a new one starts with the next call", retry_after=0.5) from None
        if not reply["ok"]:
            raise _error(reply)
        return reply.get("value")

    def command(self, sql: str) -> None:
        self._call("command", sql)

    def query(self, sql: str) -> Result:
        result: Result = self._call("query", sql)
        return result

    def untrusted_query(self, sql: str) -> Result:
        with self._lock:  # only to start a child if there is none: a moment
            if self._child is None or self._child.poll() is not None:
                self._child = None
                self._start()
            lane = self._lane
        assert lane is not None
        with lane.lock:
            try:
                lane.conn.send(("untrusted_query", sql))
                reply = lane.conn.recv()
            except Exception as e:  # the child died meanwhile: the next call starts another
                raise ClickHouseUnavailable(f"the embedded engine process ended during a query ({e!r})",
                                            retry_after=0.5) from None
        if not reply["ok"]:
            raise _error(reply)
        result: Result = reply.get("value")
        return result

    def insert(self, table: str, batch: pa.Table) -> None:
        with write_arrow_file(batch) as name:
            self._call("insert_file", table, list(batch.column_names), name)

    def close(self) -> None:
        with self._lock:
            child, self._child = self._child, None
            if child is None or child.poll() is not None:
                return
            try:
                assert self._conn is not None
                self._conn.send(("close",))
                self._conn.recv()
            except (EOFError, OSError):
                pass
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            self._close_conns()


def _end(child: subprocess.Popen[bytes]) -> int:
    """Make sure a child we stop talking to is gone (it holds the data path's lock); its code."""
    if child.poll() is None:
        child.kill()
    return child.wait()


def _error(reply: dict[str, Any]) -> ClickHouseError:
    if reply.get("unavailable"):
        return ClickHouseUnavailable(reply["error"], reply.get("retry_after", 1.0))
    return ClickHouseError(reply["error"])


def _exit_with_parent(parent: int) -> None:
    """Stop when the worker is gone (killed included): the data path's lock must be free
    for the worker that replaces it."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def _reply(conn: Connection, obj: Any) -> None:
    """Send a reply, or the reason it cannot be sent (a result that does not pickle)."""
    try:
        conn.send(obj)
    except (EOFError, BrokenPipeError):
        raise
    except Exception as e:  # noqa: BLE001 -- the caller gets the reason, the engine stays up
        conn.send({"ok": False, "error": f"{e}" if isinstance(e, ClickHouseError) else repr(e)})


def _serve_typed(ch: ChdbClickHouse, conn: Connection) -> None:
    """The typed-query lane: one query at a time, beside the writes."""
    out = conn
    while True:
        try:
            op, sql = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if op != "untrusted_query":
                raise ClickHouseError(f"only typed queries on this lane, not {op!r}")
            value = ch.untrusted_query(sql)
        except ClickHouseError as e:
            _reply(out, {"ok": False, "error": str(e), "unavailable": isinstance(e, ClickHouseUnavailable)})
        except Exception as e:  # noqa: BLE001 -- that query fails, not the engine
            _reply(out, {"ok": False, "error": f"query failed in the engine process: {e!r}"})
        else:
            _reply(out, {"ok": True, "value": value})


def serve(path: str, database: str, url: str, main_fd: int, typed_fd: int) -> None:
    # The worker decides when the engine stops (stdin closed, or the worker gone): a Ctrl-C
    # or a SIGTERM to the worker's process group must not end it before the worker's last write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Anything chdb prints goes to the worker's log (stderr).
    os.dup2(2, 1)
    out = inp = Connection(main_fd)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        ch = ChdbClickHouse(path, database, url)
    except ClickHouseError as e:
        out.send({"ok": False, "error": str(e), "unavailable": isinstance(e, ClickHouseUnavailable),
                  "retry_after": getattr(e, "retry_after", 1.0)})
        return
    out.send({"ok": True})
    threading.Thread(target=_serve_typed, args=(ch, Connection(typed_fd)), daemon=True, name="typed-queries").start()
    while True:
        try:
            op, *args = inp.recv()
        except (EOFError, OSError):
            break
        try:
            if op == "close":
                ch.close()
                out.send({"ok": True})
                return
            if op == "command":
                value: Any = ch.command(args[0])
            elif op == "query":
                value = ch.query(args[0])
            elif op == "untrusted_query":
                value = ch.untrusted_query(args[0])
            elif op == "insert_file":
                value = ch.insert_file(*args)
            else:
                raise ClickHouseError(f"unknown engine request {op!r}")
        except ClickHouseError as e:
            _reply(out, {"ok": False, "error": str(e), "unavailable": isinstance(e, ClickHouseUnavailable)})
        except Exception as e:  # noqa: BLE001 -- e.g. converting a result: that request fails, not the engine
            _reply(out, {"ok": False, "error": f"{op} failed in the engine process: {e!r}"})
        else:
            _reply(out, {"ok": True, "value": value})
    ch.close()


if __name__ == "__main__":
    serve(*sys.argv[1:4], int(sys.argv[4]), int(sys.argv[5]))
    # Closed and answered: end now. The interpreter's own teardown of the embedded engine
    # takes a while after the data path's lock is free, and nothing is left to flush.
    os._exit(0)
