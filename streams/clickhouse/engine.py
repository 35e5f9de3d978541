"""The embedded engine in a child process of its own, driven over a pipe.

chdb puts a whole ClickHouse into the process that imports it: about 300 MB of private
memory and 240 MB of mapped library that the worker's Python never uses, and a native
crash in the engine would take the worker's state with it. The worker therefore runs
``python -m streams.clickhouse.engine`` and sends it statements; batches still travel as Arrow files
in memory (``/dev/shm``), as with the in-process engine, so only a file name crosses the
pipe. When the child dies, the call in flight raises ``ClickHouseUnavailable`` -- the
sink retries it as an outage -- and the next call starts a new one.

Frames both ways: a 4-byte big-endian length, then a pickle. Only this module's own child
and parent read them. Typed queries (``untrusted_query``) travel on a second pair of pipes,
served by a thread of their own on the engine's read-only connection: a slow one never
holds up the writes on the first.
"""
from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

import pyarrow as pa

from streams.clickhouse import (ChdbClickHouse, ClickHouseError, ClickHouseUnavailable, Dialect, Result,
                                write_arrow_file)

_HEADER = struct.Struct(">I")


def _send(out: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _recv(inp: IO[bytes]) -> Any:
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("pipe closed")
    size = _HEADER.unpack(head)[0]
    data = inp.read(size)
    if len(data) < size:
        raise EOFError("pipe closed mid-frame")
    return pickle.loads(data)


class _Lane:
    """The typed-query pipes of one child."""

    def __init__(self, out: IO[bytes], inp: IO[bytes]) -> None:
        self.out, self.inp, self.lock = out, inp, threading.Lock()

    def close(self) -> None:
        for f in (self.out, self.inp):
            try:
                f.close()
            except OSError:
                pass


class EngineProcess:
    """``chdb://`` through a child process: the same interface as ``ChdbClickHouse``."""

    dialect: Dialect = "modern"

    def __init__(self, path: str, database: str, url: str) -> None:
        self.url, self.database, self.path = url, database, path
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._lane: _Lane | None = None
        self.starts = 0  # engines started: more than one means one died and was replaced
        self._start()

    @property
    def pid(self) -> int | None:
        child = self._child  # one read: the sink's thread may replace it meanwhile
        return child.pid if child is not None and child.returncode is None else None

    def _start(self) -> None:
        req_r, req_w = os.pipe()  # typed queries: parent -> child
        rep_r, rep_w = os.pipe()  # their answers: child -> parent
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "streams.clickhouse.engine", self.path, self.database, self.url, str(req_r), str(rep_w)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, pass_fds=(req_r, rep_w))
        finally:
            os.close(req_r)
            os.close(rep_w)
        lane = _Lane(os.fdopen(req_w, "wb"), os.fdopen(rep_r, "rb"))
        try:
            reply = _recv(child.stdout)  # type: ignore[arg-type]
        except Exception as e:  # EOF: it died; anything else: it cannot be talked to either
            code = _end(child)
            lane.close()
            raise ClickHouseUnavailable(f"the embedded engine process for {self.path} failed at start "
                                        f"(code {code}, {e!r}); its error is in the worker's log") from None
        if not reply["ok"]:
            _end(child)
            lane.close()
            raise _error(reply)
        if self._lane is not None:
            self._lane.close()
        self._child, self._lane = child, lane
        self.starts += 1

    def _call(self, *request: Any) -> Any:
        with self._lock:
            if self._child is None or self._child.poll() is not None:
                self._child = None
                self._start()
            child = self._child
            assert child is not None and child.stdin is not None and child.stdout is not None
            try:
                _send(child.stdin, request)
                reply = _recv(child.stdout)
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
                _send(lane.out, ("untrusted_query", sql))
                reply = _recv(lane.inp)
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
                _send(child.stdin, ("close",))  # type: ignore[arg-type]
                _recv(child.stdout)  # type: ignore[arg-type]
            except (EOFError, OSError):
                pass
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            if self._lane is not None:
                self._lane.close()


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


def _reply(out: IO[bytes], obj: Any) -> None:
    """Send a reply, or the reason it cannot be sent (a result too big for one frame)."""
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) >= 1 << 32:
            raise ClickHouseError(f"result of {len(data):,} bytes is too big to return: add a LIMIT")
    except Exception as e:  # noqa: BLE001 -- the caller gets the reason, the engine stays up
        data = pickle.dumps({"ok": False, "error": f"{e}" if isinstance(e, ClickHouseError) else repr(e)})
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _serve_typed(ch: ChdbClickHouse, inp: IO[bytes], out: IO[bytes]) -> None:
    """The typed-query lane: one query at a time, beside the writes."""
    while True:
        try:
            op, sql = _recv(inp)
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


def serve(path: str, database: str, url: str, typed_in: int | None = None, typed_out: int | None = None) -> None:
    # The worker decides when the engine stops (stdin closed, or the worker gone): a Ctrl-C
    # or a SIGTERM to the worker's process group must not end it before the worker's last write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The frames own stdout: anything chdb prints goes to the worker's log (stderr) instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    try:
        ch = ChdbClickHouse(path, database, url)
    except ClickHouseError as e:
        _send(out, {"ok": False, "error": str(e), "unavailable": isinstance(e, ClickHouseUnavailable),
                    "retry_after": getattr(e, "retry_after", 1.0)})
        return
    _send(out, {"ok": True})
    if typed_in is not None and typed_out is not None:
        threading.Thread(target=_serve_typed, args=(ch, os.fdopen(typed_in, "rb"), os.fdopen(typed_out, "wb")),
                         daemon=True, name="typed-queries").start()
    while True:
        try:
            op, *args = _recv(inp)
        except EOFError:
            break
        try:
            if op == "close":
                ch.close()
                _send(out, {"ok": True})
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
    serve(*sys.argv[1:4], *(int(fd) for fd in sys.argv[4:6]))
    # Closed and answered: end now. The interpreter's own teardown of the embedded engine
    # takes a while after the data path's lock is free, and nothing is left to flush.
    os._exit(0)
