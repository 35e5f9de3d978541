"""The one rule every batch follows: its messages are sent and its rows stored, and only then
is it acknowledged (so its offsets can be committed) -- in offset order, each batch after
every earlier one. Anything that fails on the way ends the process instead (``fatal``): an
unacknowledged batch is processed again on restart, and the idempotent tables absorb
whatever part of it had landed. Pure asyncio, so the rule is tested without Kafka
(tests/streams/test_batches.py); the worker's batch runner (worker/runner.py) calls it.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, NoReturn, Protocol


class Sends(Protocol):
    async def send(self) -> None: ...


class Writer(Protocol):
    async def write(self, table: str, batch: Any) -> None: ...


Fatal = Callable[[BaseException], NoReturn]


async def send_and_store(sends: Sends, writer: Writer, writes: Iterable[tuple[str, Any]], fatal: Fatal,
                         rows_first: bool = False) -> None:
    """Send what a batch queued (records, states, dead letters), then store its rows; with
    ``rows_first`` the rows first, for a batch whose replay would not write its rows again
    once its state change was sent (the alerts history)."""
    try:
        if not rows_first:
            await sends.send()
        for table, rows in writes:
            await writer.write(table, rows)
        if rows_first:
            await sends.send()
    except BaseException as e:  # noqa: BLE001 -- CancelledError included, on purpose
        fatal(e)


async def store_then_ack(store: Awaitable[None] | None, earlier: Awaitable[None] | None,
                         release: Callable[[], Awaitable[None]] | None, ack: Callable[[], None],
                         fatal: Fatal) -> None:
    """Acknowledge a batch once its own store is done, every earlier batch's too (acks go
    in offset order), and the offsets read back for it are released."""
    try:
        if store is not None:
            await store
        if earlier is not None:
            await earlier
        if release is not None:
            await release()
    except BaseException as e:  # noqa: BLE001 -- CancelledError included, on purpose
        fatal(e)
    ack()
