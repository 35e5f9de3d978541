"""Delivering alert notifications: signed webhooks, Slack incoming webhooks, the worker log.

Stand-alone (no faust): the rule engine decides *what* to say, this module only gets it
to an HTTP endpoint without ever stalling the stream. ``Notifier.enqueue`` is synchronous
and never waits; one background task per endpoint sends in order, retries transient
failures with exponential backoff and hands anything it cannot deliver to ``on_dead``.

Webhook receivers
-----------------
Each webhook is ``POST`` with ``Content-Type: application/json``; the body is compact JSON
with sorted keys (see ``Notification.as_json``). With a secret configured two headers
are added::

    X-Ccpulse-Timestamp: 1767225600                 (unix seconds when this attempt was sent)
    X-Ccpulse-Signature: sha256=<hex>               (HMAC-SHA256, key = the shared secret)

where the MAC covers ``<timestamp> + "." + <raw body bytes>``. To verify, a receiver:

1. reads the *raw* body bytes (before any JSON parsing or re-encoding);
2. rejects the request if the timestamp is not an integer or is more than 300 s from its
   own clock (stops replays of captured requests);
3. computes ``"sha256=" + hex(HMAC_SHA256(secret, f"{timestamp}.".encode() + body))`` and
   compares it with the header in constant time (``hmac.compare_digest``).

``verify()`` below does exactly that. Delivery is at-least-once (a timeout after the
receiver already acted is retried), so receivers should de-duplicate on
``(alert_id, status, at_ms)``; retries re-sign with a fresh timestamp but send the same body.
"""
from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from streams.redact import redact as redact_text

log = logging.getLogger("ccpulse.notify")

Severity = Literal["info", "warning", "critical"]
Status = Literal["firing", "resolved", "test"]
OnDead = Callable[["Notification", str], "Awaitable[None] | None"]

TIMESTAMP_HEADER = "X-Ccpulse-Timestamp"
SIGNATURE_HEADER = "X-Ccpulse-Signature"
SCHEMA_VERSION = 1

_SEVERITIES = ("info", "warning", "critical")
_STATUSES = ("firing", "resolved", "test")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_utc(ms: int) -> str:
    """``2026-01-01T00:00:00.000Z``: exact for integer ms (no float round trip)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite(v: float | None) -> float | None:
    # NaN/inf would make the JSON invalid for strict parsers; they carry no information anyway.
    return v if v is not None and math.isfinite(v) else None


@dataclass(frozen=True)
class Notification:
    """One alert state change, as the rule engine hands it over."""

    alert_id: str
    rule: str
    severity: Severity
    status: Status
    tenant: str
    queue: str
    channel: str
    metric: str
    value: float | None
    threshold: float
    started_at_ms: int
    at_ms: int
    summary: str

    def __post_init__(self) -> None:
        # Fail in the rule engine, where the bug is, not in a receiver's parser.
        if self.severity not in _SEVERITIES:
            raise ValueError(f"severity must be one of {_SEVERITIES}, not {self.severity!r}")
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, not {self.status!r}")

    def as_json(self) -> dict[str, Any]:
        """The webhook payload: every field, plus ISO-8601 UTC times and a schema version."""
        d = asdict(self)
        d["value"] = _finite(self.value)
        d["threshold"] = _finite(self.threshold)
        d["started_at"] = iso_utc(self.started_at_ms)
        d["at"] = iso_utc(self.at_ms)
        d["version"] = SCHEMA_VERSION
        return d


# --- payloads -----------------------------------------------------------------------------

def webhook_body(n: Notification) -> bytes:
    """Compact, key-sorted JSON: byte-stable, so signatures and de-duplication are easy."""
    return json.dumps(n.as_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


def emoji(n: Notification) -> str:
    if n.status == "resolved":
        return ":large_green_circle:"
    if n.status == "test":
        return ":test_tube:"
    return _EMOJI[n.severity]


def _fmt(v: float | None) -> str:
    v = _finite(v)
    return "n/a" if v is None else f"{v:g}"


def _esc(s: str, limit: int) -> str:
    # Slack mrkdwn needs only &, <, > escaped; limits: 3000 chars (text), 2000 (field).
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _slack_date(ms: int) -> str:
    # Rendered in each reader's own time zone; the text after | is the fallback.
    return f"<!date^{ms // 1000}^{{date_short_pretty}} {{time_secs}}|{iso_utc(ms)}>"


def slack_body(n: Notification) -> bytes:
    """A Slack incoming-webhook message: ``text`` is the notification fallback, ``blocks``
    the rendered message (section blocks with mrkdwn, fields in two columns, max 10)."""
    e = emoji(n)
    word = n.status.upper()
    text = (f"{e} {word} [{n.severity}] {n.rule}: {n.tenant}/{n.queue}/{n.channel} "
            f"{n.metric}={_fmt(n.value)} (threshold {_fmt(n.threshold)})")
    fields = [
        ("Tenant", _esc(n.tenant, 1900)),
        ("Queue", _esc(n.queue, 1900)),
        ("Channel", _esc(n.channel, 1900)),
        ("Metric", _esc(n.metric, 1900)),
        ("Value", _fmt(n.value)),
        ("Threshold", _fmt(n.threshold)),
        ("Started", _slack_date(n.started_at_ms)),
    ]
    if n.status == "resolved":
        fields.append(("Resolved", _slack_date(n.at_ms)))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _esc(
            f"{e} *{word}* · {n.severity} · *{n.rule}*\n{n.summary}", 3000)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _esc(
            f"alert {n.alert_id} · {iso_utc(n.at_ms)}", 3000)}]},
    ]
    return json.dumps({"text": _esc(text, 3000), "blocks": blocks}, ensure_ascii=False).encode()


# --- signing ------------------------------------------------------------------------------

def _key(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>``; see the module docstring."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str,
           now: float | None = None, tolerance_s: float = 300) -> bool:
    """For receivers: True only for a matching signature on a timestamp within tolerance."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    if not isinstance(signature, str):
        return False
    return hmac.compare_digest(sign(secret, str(ts), body).encode(), signature.encode())


# --- delivery -----------------------------------------------------------------------------

def redact(url: str) -> str:
    """scheme://host[:port]/…, a notifier's name: Slack webhook paths (and many others) are
    the credential. Free text goes through ``streams.redact.redact`` (``redact_text``)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc.rpartition('@')[2]}/…" if p.netloc else "<invalid url>"


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (or an HTTP date, which some proxies send); None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class _Base:
    """Counters and the dead-letter hook shared by every channel."""

    def __init__(self, on_dead: OnDead | None) -> None:
        self.on_dead = on_dead
        self.sent = 0
        self.retried = 0
        self.dead = 0
        self.last_error: str | None = None  # most recent failure; kept after recovery for health pages
        self._hooks: set[asyncio.Task[Any]] = set()

    def _dead_nowait(self, n: Notification, reason: str) -> None:
        """Call on_dead from synchronous code: an async hook is scheduled, never awaited."""
        self.dead += 1
        self.last_error = redact_text(reason)
        if self.on_dead is None:
            return
        try:
            res = self.on_dead(n, reason)
            if inspect.isawaitable(res):
                t = asyncio.ensure_future(res)
                self._hooks.add(t)
                t.add_done_callback(self._hook_done)
        except Exception:
            log.exception("on_dead hook failed for alert %s (%s)", n.alert_id, reason)

    def _hook_done(self, t: asyncio.Task[Any]) -> None:
        self._hooks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("on_dead hook failed", exc_info=t.exception())

    async def _dead(self, n: Notification, reason: str) -> None:
        reason = redact_text(reason)  # a receiver's answer or an error may carry the URL's credentials
        self.dead += 1
        self.last_error = redact_text(reason)
        if self.on_dead is None:
            return
        try:
            res = self.on_dead(n, reason)
            if inspect.isawaitable(res):
                await res
        except Exception:
            log.exception("on_dead hook failed for alert %s (%s)", n.alert_id, reason)

    async def _settle_hooks(self, timeout: float) -> None:
        if self._hooks:
            await asyncio.wait(set(self._hooks), timeout=timeout)


class Notifier(_Base):
    """One HTTP endpoint (``kind`` "webhook" or "slack"), fed through a bounded in-memory queue.

    In order, one request at a time: alerts for one endpoint must not arrive resolved-
    before-firing. Retries connection errors, timeouts, 408, 429 and 5xx; any other non-2xx
    is a configuration problem (wrong URL, secret or payload) and is dead-lettered at once.
    """

    def __init__(self, url: str, kind: Literal["webhook", "slack"] = "webhook", secret: str | None = None, *,
                 max_attempts: int = 5, first_backoff_s: float = 0.5, max_backoff_s: float = 30,
                 timeout_s: float = 5, queue_size: int = 10_000, on_dead: OnDead | None = None) -> None:
        if kind not in ("webhook", "slack"):
            raise ValueError(f"kind must be 'webhook' or 'slack', not {kind!r}")
        if max_attempts < 1 or queue_size < 1:
            raise ValueError("max_attempts and queue_size must be >= 1")
        super().__init__(on_dead)
        self.url, self.kind, self.secret = url, kind, secret
        self.max_attempts, self.first_backoff_s, self.max_backoff_s = max_attempts, first_backoff_s, max_backoff_s
        self.timeout_s = timeout_s
        self.name = redact(url)
        self._body = slack_body if kind == "slack" else webhook_body
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(maxsize=queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._current: Notification | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Notifier({self.kind} {self.name})"

    @property
    def pending(self) -> int:
        """Queued plus in flight."""
        return self._queue.qsize() + (self._current is not None)

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closed = False
        self._session = aiohttp.ClientSession(headers={"User-Agent": "ccpulse-notify/1"})
        self._task = asyncio.create_task(self._run(), name=f"notify {self.name}")

    def enqueue(self, n: Notification) -> bool:
        """Queue for delivery; never blocks. False (and on_dead) when full or stopped."""
        if self._closed:
            reason = "notifier stopped"
        else:
            try:
                self._queue.put_nowait(n)
                return True
            except asyncio.QueueFull:
                reason = "queue full"
        log.warning("notify %s: dropping alert %s (%s, %d pending): the endpoint is down or slower "
                    "than alerts arrive; check it, or raise queue_size", self.name, n.alert_id, reason,
                    self.pending)
        self._dead_nowait(n, reason)
        return False

    async def stop(self, drain_timeout_s: float = 5) -> None:
        """Stop taking new alerts, give queued ones ``drain_timeout_s`` to go out, then
        dead-letter whatever is left (reason "shutdown") so nothing vanishes silently."""
        self._closed = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._queue.join(), drain_timeout_s)
            except asyncio.TimeoutError:
                pass
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        left = ([self._current] if self._current is not None else [])
        self._current = None
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
            self._queue.task_done()
        if left:
            log.warning("notify %s: %d alert(s) not delivered before shutdown; dead-lettered",
                        self.name, len(left))
        for n in left:
            await self._dead(n, "shutdown")
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._settle_hooks(drain_timeout_s)

    async def _run(self) -> None:
        while True:
            n = await self._queue.get()
            self._current = n
            try:
                await self._deliver(n)
            except asyncio.CancelledError:
                raise  # stop() dead-letters self._current
            except Exception:  # a bug must not kill the sender for every later alert
                log.exception("notify %s: unexpected error delivering alert %s", self.name, n.alert_id)
                await self._dead(n, "internal error")
            self._current = None
            self._queue.task_done()

    def _headers(self, body: bytes) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.secret is not None:
            ts = str(int(time.time()))  # per attempt: a retry after a long outage is not stale
            h[TIMESTAMP_HEADER] = ts
            h[SIGNATURE_HEADER] = sign(self.secret.encode(), ts, body)
        return h

    async def _deliver(self, n: Notification) -> None:
        assert self._session is not None
        body = self._body(n)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            try:
                # Never followed: a redirect would re-send the signed body to whatever host it names.
                async with self._session.post(self.url, data=body, headers=self._headers(body),
                                              timeout=timeout, allow_redirects=False) as resp:
                    if 200 <= resp.status < 300:
                        self.sent += 1
                        return
                    excerpt = " ".join((await resp.text(errors="replace"))[:200].split())
                    reason = f"HTTP {resp.status}"
                    if 300 <= resp.status < 400:
                        excerpt = (f"redirected to {redact(resp.headers.get('Location') or '?')}; ccpulse does not "
                                   "follow redirects (the signed alert would go to another host): configure the "
                                   "final URL")
                    if resp.status not in (408, 429) and resp.status < 500:
                        reason = f"HTTP {resp.status}: {excerpt}" if excerpt else reason
                        log.warning("notify %s: alert %s rejected with %s; not retrying: fix this "
                                    "endpoint's URL, secret or expected payload", self.name, n.alert_id, reason)
                        await self._dead(n, reason)
                        return
                    wait = _retry_after(resp.headers.get("Retry-After"))
            except aiohttp.InvalidURL as e:
                reason = f"invalid URL: {e}"
                log.warning("notify %s: %s; not retrying: fix the configured URL", self.name, reason)
                await self._dead(n, reason)
                return
            except asyncio.TimeoutError:
                reason = f"timeout after {self.timeout_s:g}s"
            except aiohttp.ClientError as e:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            self.last_error = redact_text(reason)
            if attempt == self.max_attempts:
                break
            if wait is None:
                wait = self.first_backoff_s * 2 ** (attempt - 1)
            wait = min(wait, self.max_backoff_s)
            self.retried += 1
            log.warning("notify %s: alert %s attempt %d/%d failed (%s); retrying in %.2fs. "
                        "If this persists, check the endpoint is up and reachable from the worker",
                        self.name, n.alert_id, attempt, self.max_attempts, reason, wait)
            await asyncio.sleep(wait)
        reason = f"{reason} after {self.max_attempts} attempts"
        log.warning("notify %s: giving up on alert %s: %s; dead-lettered. Check the endpoint; "
                    "raise max_attempts/max_backoff_s to ride out longer outages", self.name, n.alert_id, reason)
        await self._dead(n, reason)


class LogNotifier(_Base):
    """The "worker log" channel: one warning line per alert, same interface as Notifier,
    so alerts are visible even with no endpoint configured."""

    def __init__(self, logger: logging.Logger | None = None, on_dead: OnDead | None = None) -> None:
        super().__init__(on_dead)
        self.logger = logger or log
        self.name = "log"

    async def start(self) -> None:
        return None

    async def stop(self, drain_timeout_s: float = 5) -> None:
        await self._settle_hooks(drain_timeout_s)

    def enqueue(self, n: Notification) -> bool:
        self.logger.warning(
            "ALERT %s %s %s tenant=%s queue=%s channel=%s %s=%s threshold=%s since=%s id=%s: %s",
            n.status.upper(), n.severity, n.rule, n.tenant, n.queue, n.channel, n.metric,
            _fmt(n.value), _fmt(n.threshold), iso_utc(n.started_at_ms), n.alert_id, n.summary)
        self.sent += 1
        return True
