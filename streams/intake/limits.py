"""Limits the intake enforces before it does any work (issue 24): who can reach it is
anyone on its network, and Twilio's route faces the internet.

- **Headers**: a connection that has not sent a whole request head within
  ``HEADER_TIMEOUT_S`` is closed, heads larger than ``MAX_HEAD`` are refused by h11, and at
  most ``MAX_CONNECTIONS`` connections are open at once (more are closed on accept, and the
  process's file limit is raised to hold them). uvicorn
  has no header-read timeout of its own (a request head sent a byte at a time held a
  connection for ever), so ``GuardedH11Protocol`` adds one to its h11 protocol.
- **Bodies**: ``read_body`` reads at most ``limit`` bytes, chunked or not, within
  ``BODY_TIMEOUT_S``; past either it stops reading and the route answers 413 or 408, and the
  connection is closed (the rest is never read).
- **The broker**: sends that the broker does not acknowledge within ``SEND_TIMEOUT_S`` answer
  503 with Retry-After, and for ``BROKER_PAUSE_S`` after such a failure every request is
  answered 503 at once instead of waiting again (``BrokerGate``).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 15.0
MAX_HEAD = 16 * 1024
MAX_CONNECTIONS = 1000  # idle ones cost ~10 kB each; heads time out after HEADER_TIMEOUT_S
SEND_TIMEOUT_S = 5.0
BROKER_PAUSE_S = 2.0


class TooLarge(Exception):
    pass


class TooSlow(Exception):
    pass


async def read_body(receive: Any, limit: int, timeout_s: float = BODY_TIMEOUT_S) -> bytes:
    """The request body from the ASGI ``receive``, or ``TooLarge`` as soon as it passes
    ``limit`` bytes, or ``TooSlow`` when it has not all come within ``timeout_s``."""
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TooSlow()
        try:
            message = await asyncio.wait_for(receive(), left)
        except asyncio.TimeoutError:
            raise TooSlow() from None
        if message["type"] == "http.disconnect":
            raise TooSlow()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BrokerGate:
    """Answers 'is the broker away?' without waiting, after a send has just failed."""

    def __init__(self, pause_s: float = BROKER_PAUSE_S) -> None:
        self.pause_s = pause_s
        self.away_until = 0.0

    def away(self) -> bool:
        return time.monotonic() < self.away_until

    def failed(self) -> None:
        self.away_until = time.monotonic() + self.pause_s


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head timeout and a cap on open connections."""

    _head_timer: asyncio.TimerHandle | None = None
    _waiting_since: Any = None  # the cycle before the head being waited for (None: the first)

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            transport.close()
            return
        self._wait_for_head()

    def _wait_for_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._waiting_since = self.cycle
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.cycle is self._waiting_since and self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # no whole request head in time

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.cycle is not self._waiting_since:
            self._head_timer.cancel()  # the head came: the body has its own timeout (read_body)
            self._head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._wait_for_head()  # keep-alive: the next head has the same time to come

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


def serve(app: Any, host: str, port: int) -> None:
    """Run ``app`` under uvicorn with the limits above."""
    import resource

    import uvicorn

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = MAX_CONNECTIONS + 64
    if soft < want and (hard == resource.RLIM_INFINITY or hard >= want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    uvicorn.run(app, host=host, port=port, log_level="warning", http=GuardedH11Protocol,
                limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5, h11_max_incomplete_event_size=MAX_HEAD)
