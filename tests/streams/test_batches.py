"""The rule every batch follows (streams/kafka/batches.py), with recording fakes for the
send buffer and the writer: sent, then stored (or stored, then sent), and acknowledged only
after its own store and every earlier batch's, in offset order; any failure on the way ends
the process (``fatal``) before an acknowledgement."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.kafka.batches import send_and_store, store_then_ack


class Stop(Exception):
    """What the worker's fatal() does (os._exit) is stopping here."""


def fatal(e: BaseException) -> Any:
    raise Stop(repr(e))


class Log:
    def __init__(self, fail_on: str | None = None) -> None:
        self.events: list[str] = []
        self.fail_on = fail_on

    async def send(self) -> None:
        await asyncio.sleep(0)
        self._note("send")

    async def write(self, table: str, rows: Any) -> None:
        await asyncio.sleep(0)
        self._note(f"write {table}")

    def _note(self, what: str) -> None:
        if what == self.fail_on:
            raise ConnectionError(what)
        self.events.append(what)


def test_a_batch_is_sent_then_stored_or_stored_then_sent() -> None:
    log = Log()
    asyncio.run(send_and_store(log, log, [("raw_events", 1), ("kpi", 2)], fatal))
    assert log.events == ["send", "write raw_events", "write kpi"]
    log = Log()
    asyncio.run(send_and_store(log, log, [("alerts", 1)], fatal, rows_first=True))
    assert log.events == ["write alerts", "send"]


def test_a_failed_store_ends_the_process_before_anything_after_it() -> None:
    log = Log(fail_on="write raw_events")
    with pytest.raises(Stop, match="ConnectionError"):
        asyncio.run(send_and_store(log, log, [("raw_events", 1), ("kpi", 2)], fatal))
    assert log.events == ["send"]


def test_acks_wait_for_their_store_and_every_earlier_batch_and_go_in_order() -> None:
    async def scenario() -> list[str]:
        acks: list[str] = []
        first_stored, second_stored = asyncio.Event(), asyncio.Event()

        async def store(ev: asyncio.Event) -> None:
            await ev.wait()

        one = asyncio.ensure_future(store_then_ack(store(first_stored), None, None, lambda: acks.append("1"), fatal))
        two = asyncio.ensure_future(store_then_ack(store(second_stored), one, None, lambda: acks.append("2"), fatal))
        second_stored.set()  # the later batch is stored first...
        await asyncio.sleep(0.01)
        assert acks == []  # ...but waits for the earlier one
        first_stored.set()
        await asyncio.gather(one, two)
        return acks

    assert asyncio.run(scenario()) == ["1", "2"]


def test_a_failed_store_or_release_is_never_acked() -> None:
    acks: list[str] = []

    async def broken() -> None:
        raise OSError("ClickHouse write lost")

    with pytest.raises(Stop, match="ClickHouse write lost"):
        asyncio.run(store_then_ack(broken(), None, None, lambda: acks.append("x"), fatal))

    async def release_fails() -> None:
        raise TimeoutError("gap not read back")

    with pytest.raises(Stop, match="gap not read back"):
        asyncio.run(store_then_ack(None, None, release_fails, lambda: acks.append("y"), fatal))
    assert acks == []
