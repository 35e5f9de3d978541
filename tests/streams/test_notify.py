"""Alert delivery against a real local HTTP server: signatures, retries and backoff,
dead letters, outages, a never-blocking enqueue, and the Slack payload."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from streams.worker.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    LogNotifier,
    Notification,
    Notifier,
    sign,
    slack_body,
    verify,
    webhook_body,
)

N = Notification(
    alert_id="acme/billing/voice/sla", rule="service_level_below", severity="critical", status="firing",
    tenant="acme", queue="billing", channel="voice", metric="service_level", value=0.712, threshold=0.8,
    started_at_ms=1_767_225_600_000, at_ms=1_767_225_660_123,
    summary="Service level 71.2% < 80% for 60 s on billing (voice)",
)
FAST: dict[str, Any] = {"first_backoff_s": 0.05, "max_backoff_s": 0.2, "timeout_s": 2}


def nth(i: int, **kw: Any) -> Notification:
    return replace(N, alert_id=f"a{i}", **kw)


@dataclass
class Seen:
    at: float
    headers: dict[str, str]
    body: bytes


Handler = Callable[[web.Request, int], Awaitable[web.Response]]


@dataclass
class Server:
    """A real aiohttp server on 127.0.0.1 recording every request; ``handler(request, i)``
    decides the answer for the i-th (0-based) request. The socket is bound before the
    server starts, so until ``start()`` connections to ``url`` are refused."""

    handler: Handler | None = None
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        i = len(self.seen)
        self.seen.append(Seen(time.monotonic(), dict(request.headers), await request.read()))
        return await self.handler(request, i) if self.handler else web.Response(text="ok")

    async def start(self) -> Server:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.sock.close()

    @property
    def alert_ids(self) -> list[str]:
        return [json.loads(s.body)["alert_id"] for s in self.seen]


async def until(pred: Callable[[], Any], timeout: float = 5, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class DeadLetters(list):
    def __call__(self, n: Notification, reason: str) -> None:
        self.append((n, reason))


# --- 1. webhook delivery and signatures ----------------------------------------------------

def test_webhook_body_is_signed_and_verifiable() -> None:
    async def main() -> None:
        srv = await Server().start()
        nt = Notifier(srv.url, "webhook", secret="s3cret", **FAST)
        await nt.start()
        try:
            assert nt.enqueue(N) is True
            await until(lambda: nt.sent == 1, what="delivery")
        finally:
            await nt.stop()
            await srv.close()
        [req] = srv.seen
        assert req.body == webhook_body(N)
        assert req.headers["Content-Type"] == "application/json"
        ts, sig = req.headers[TIMESTAMP_HEADER], req.headers[SIGNATURE_HEADER]
        assert abs(int(ts) - time.time()) < 60
        # what the module docstring tells receivers to compute
        assert sig == "sha256=" + hmac.new(b"s3cret", ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
        assert sig == sign(b"s3cret", ts, req.body)
        assert verify(b"s3cret", ts, req.body, sig)
        assert not verify(b"wrong", ts, req.body, sig)
        assert not verify(b"s3cret", ts, req.body.replace(b"0.712", b"0.912"), sig)
        assert not verify(b"s3cret", ts, req.body, sig, now=int(ts) + 301)
        assert not verify(b"s3cret", str(int(ts) - 1), req.body, sig)  # the timestamp is signed too
        assert not verify(b"s3cret", "yesterday", req.body, sig)
        assert (nt.retried, nt.dead, nt.last_error) == (0, 0, None)

    asyncio.run(main())


def test_as_json_has_stable_keys_and_iso_times() -> None:
    d = json.loads(webhook_body(N))
    assert d["started_at"] == "2026-01-01T00:00:00.000Z" and d["at"] == "2026-01-01T00:01:00.123Z"
    assert d["started_at_ms"] == N.started_at_ms and d["value"] == 0.712 and d["status"] == "firing"
    assert list(d) == sorted(d)
    assert json.loads(webhook_body(replace(N, value=float("nan"))))["value"] is None
    with pytest.raises(ValueError):
        replace(N, severity="urgent")


# --- 2. retries, Retry-After ---------------------------------------------------------------

def test_503_twice_then_200_is_delivered_once_after_two_retries_honouring_retry_after() -> None:
    async def answer(_: web.Request, i: int) -> web.Response:
        if i == 0:
            return web.Response(status=503, text="warming up")
        if i == 1:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    async def main() -> None:
        srv = await Server(answer).start()
        nt = Notifier(srv.url, secret="k", first_backoff_s=0.05, max_backoff_s=5, timeout_s=2)
        await nt.start()
        try:
            nt.enqueue(N)
            await until(lambda: nt.sent == 1, what="delivery")
        finally:
            await nt.stop()
            await srv.close()
        assert len(srv.seen) == 3
        assert {s.body for s in srv.seen} == {webhook_body(N)}
        assert (nt.retried, nt.sent, nt.dead) == (2, 1, 0)
        assert srv.seen[2].at - srv.seen[1].at >= 0.9  # Retry-After: 1 honoured
        assert nt.last_error == "HTTP 503"

    asyncio.run(main())


def test_retry_after_is_capped_at_max_backoff() -> None:
    async def answer(_: web.Request, i: int) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "3600"}) if i == 0 else web.Response()

    async def main() -> None:
        srv = await Server(answer).start()
        nt = Notifier(srv.url, **FAST)
        await nt.start()
        try:
            nt.enqueue(N)
            await until(lambda: nt.sent == 1, timeout=5, what="delivery despite Retry-After: 3600")
        finally:
            await nt.stop()
            await srv.close()
        assert (len(srv.seen), nt.retried) == (2, 1)

    asyncio.run(main())


# --- 3. a server that always fails, then recovers -------------------------------------------

def test_always_500_dead_letters_once_and_later_alerts_flow_in_order() -> None:
    healthy = False

    async def answer(_: web.Request, i: int) -> web.Response:
        return web.Response() if healthy else web.Response(status=500, text="boom")

    async def main() -> None:
        nonlocal healthy
        srv = await Server(answer).start()
        dead = DeadLetters()
        nt = Notifier(srv.url, max_attempts=3, on_dead=dead, **FAST)
        await nt.start()
        try:
            nt.enqueue(nth(1))
            await until(lambda: dead, what="dead letter")
            healthy = True
            for i in (2, 3, 4):
                nt.enqueue(nth(i))
            await until(lambda: nt.sent == 3, what="deliveries after recovery")
        finally:
            await nt.stop()
            await srv.close()
        assert len(dead) == 1 and dead[0][0] == nth(1)
        assert dead[0][1] == "HTTP 500 after 3 attempts"
        assert (nt.dead, nt.retried, nt.sent) == (1, 2, 3)
        assert srv.alert_ids == ["a1", "a1", "a1", "a2", "a3", "a4"]

    asyncio.run(main())


# --- 4. a 400 is a configuration problem ---------------------------------------------------

def test_400_is_not_retried_and_dead_letters_at_once() -> None:
    async def answer(_: web.Request, i: int) -> web.Response:
        return web.Response(status=400, text="invalid_payload: unknown field 'blocks'")

    async def main() -> None:
        srv = await Server(answer).start()
        dead = DeadLetters()
        nt = Notifier(srv.url, "slack", on_dead=dead, **FAST)
        await nt.start()
        try:
            nt.enqueue(N)
            await until(lambda: dead, what="dead letter")
            await asyncio.sleep(0.2)  # room for a (wrong) retry to show up
        finally:
            await nt.stop()
            await srv.close()
        assert len(srv.seen) == 1 and srv.seen[0].body == slack_body(N)
        assert SIGNATURE_HEADER not in srv.seen[0].headers  # no secret, no signature
        [(n, reason)] = dead
        assert n == N and "HTTP 400" in reason and "unknown field" in reason
        assert (nt.dead, nt.retried, nt.sent) == (1, 0, 0)

    asyncio.run(main())


# --- 5. an outage: connection refused, then the server comes up ------------------------------

def test_connection_refused_then_server_starts_delivers() -> None:
    async def main() -> None:
        srv = Server()  # bound, not listening: connections are refused
        dead = DeadLetters()
        nt = Notifier(srv.url, max_attempts=100, on_dead=dead, **FAST)
        await nt.start()
        try:
            nt.enqueue(N)
            await until(lambda: nt.retried >= 2, what="failed attempts")
            assert nt.sent == 0 and "Connect" in (nt.last_error or "")
            await srv.start()
            await until(lambda: nt.sent == 1, what="delivery after the outage")
        finally:
            await nt.stop()
            await srv.close()
        assert len(srv.seen) == 1 and srv.seen[0].body == webhook_body(N)
        assert dead == [] and nt.dead == 0

    asyncio.run(main())


# --- 6. enqueue never blocks ---------------------------------------------------------------

def test_enqueue_never_blocks_and_a_full_queue_dead_letters() -> None:
    assert not inspect.iscoroutinefunction(Notifier.enqueue)

    async def main() -> None:
        gate = asyncio.Event()

        async def hang(_: web.Request, i: int) -> web.Response:
            await gate.wait()
            return web.Response()

        srv = await Server(hang).start()
        dead: list[tuple[str, str]] = []

        async def on_dead(n: Notification, reason: str) -> None:  # async hooks work from enqueue too
            await asyncio.sleep(0)
            dead.append((n.alert_id, reason))

        nt = Notifier(srv.url, queue_size=2, on_dead=on_dead, first_backoff_s=0.05, timeout_s=10)
        await nt.start()
        try:
            assert nt.enqueue(nth(1)) is True
            await until(lambda: len(srv.seen) == 1, what="a1 in flight")  # the server hangs on it
            t0 = time.monotonic()
            assert [nt.enqueue(nth(2)), nt.enqueue(nth(3))] == [True, True]  # queue now full (2)
            assert nt.enqueue(nth(4)) is False
            assert time.monotonic() - t0 < 1  # generous; waiting on the hung request would take 10 s
            assert nt.pending == 3 and len(srv.seen) == 1
            await until(lambda: dead, what="async on_dead")
            assert dead == [("a4", "queue full")] and nt.dead == 1 and nt.last_error == "queue full"
            gate.set()
            await until(lambda: nt.sent == 3, what="deliveries after the server answers")
        finally:
            gate.set()
            await nt.stop()
            await srv.close()
        assert srv.alert_ids == ["a1", "a2", "a3"]

    asyncio.run(main())


def test_stop_dead_letters_what_it_could_not_send() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def hang(_: web.Request, i: int) -> web.Response:
            await gate.wait()
            return web.Response()

        srv = await Server(hang).start()
        dead = DeadLetters()
        nt = Notifier(srv.url, on_dead=dead, **FAST)
        await nt.start()
        nt.enqueue(nth(1))
        nt.enqueue(nth(2))
        await until(lambda: srv.seen, what="first request")
        await nt.stop(drain_timeout_s=0.1)
        gate.set()
        await srv.close()
        assert [(n.alert_id, r) for n, r in dead] == [("a1", "shutdown"), ("a2", "shutdown")]
        assert nt.enqueue(nth(3)) is False and dead[-1][1] == "notifier stopped"

    asyncio.run(main())


# --- 7. Slack payload, log channel ----------------------------------------------------------

def test_slack_body_has_text_blocks_and_the_numbers() -> None:
    d = json.loads(slack_body(N))
    assert set(d) == {"text", "blocks"}
    assert d["text"].startswith(":red_circle:") and "billing" in d["text"]
    assert "service_level=0.712" in d["text"] and "threshold 0.8" in d["text"]
    assert all(b["type"] in ("section", "context") for b in d["blocks"])
    fields = [f["text"] for b in d["blocks"] for f in b.get("fields", [])]
    assert all(f_["type"] == "mrkdwn" for b in d["blocks"] for f_ in b.get("fields", []))
    assert "*Queue*\nbilling" in fields and "*Value*\n0.712" in fields and "*Threshold*\n0.8" in fields
    assert len(fields) <= 10
    resolved = json.loads(slack_body(replace(N, status="resolved", value=0.85)))
    assert resolved["text"].startswith(":large_green_circle:")
    assert ":large_green_circle:" in resolved["blocks"][0]["text"]["text"]
    assert any("*Resolved*" in f["text"] for b in resolved["blocks"] for f in b.get("fields", []))
    nasty = json.loads(slack_body(replace(N, queue="<!channel> & co")))
    assert "<!channel>" not in json.dumps(nasty["blocks"]) and "&lt;!channel&gt; &amp; co" in nasty["text"]
    assert json.loads(slack_body(replace(N, value=None)))["text"].count("n/a") == 1


def test_log_notifier_logs_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> LogNotifier:
        ln = LogNotifier()
        await ln.start()
        assert ln.enqueue(N) is True
        await ln.stop()
        return ln

    with caplog.at_level(logging.WARNING, logger="ccpulse.notify"):
        ln = asyncio.run(main())
    [rec] = caplog.records
    msg = rec.getMessage()
    assert rec.levelno == logging.WARNING and "\n" not in msg
    assert "FIRING critical" in msg and "queue=billing" in msg and N.alert_id in msg
    assert (ln.sent, ln.retried, ln.dead, ln.last_error) == (1, 0, 0, None)


def test_a_redirect_is_never_followed_with_the_signed_body() -> None:
    """A receiver (or whoever took its DNS name) answering 302 to another host must not get
    the signed alert re-sent there: dead-lettered at once, the other host never asked."""
    async def main() -> None:
        elsewhere = await Server().start()

        async def redirect(request: web.Request, i: int) -> web.Response:
            raise web.HTTPFound(elsewhere.url + "?token=tok-999")

        srv = await Server(redirect).start()
        dead = DeadLetters()
        nt = Notifier(srv.url, "webhook", secret="s3cret", on_dead=dead, **FAST)
        await nt.start()
        try:
            nt.enqueue(N)
            await until(lambda: nt.dead == 1, what="the redirect dead-lettered")
        finally:
            await nt.stop()
            await srv.close()
            await elsewhere.close()
        assert len(srv.seen) == 1 and elsewhere.seen == []
        assert "does not follow redirects" in dead[0][1] and "tok-999" not in dead[0][1]
        assert "tok-999" not in (nt.last_error or "")

    asyncio.run(main())


def test_the_readme_receiver_accepts_a_signed_alert_and_nothing_else() -> None:
    """The verification snippet docs/alerts.md gives receivers, run against what the notifier signs."""
    import re
    import time
    from pathlib import Path

    from streams.worker.notify import sign

    readme = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    code = re.search(r"```python\n(import hashlib, hmac, time\n.*?)```", readme, re.S).group(1)
    ns: dict = {}
    exec(code, ns)  # noqa: S102 -- the documentation's own snippet
    body, ts = b'{"alert_id":"x"}', str(int(time.time()))
    headers = {"X-Ccpulse-Timestamp": ts, "X-Ccpulse-Signature": sign(b"k", ts, body)}
    assert ns["genuine"](b"k", headers, body)
    assert not ns["genuine"](b"other", headers, body)
    assert not ns["genuine"](b"k", headers, body + b" ")
    old = str(int(time.time()) - 301)
    assert not ns["genuine"](b"k", {"X-Ccpulse-Timestamp": old, "X-Ccpulse-Signature": sign(b"k", old, body)}, body)
