"""``POST /v1/events``: one event or a list (at most 1,000, 1 MB), each validated by the same
models and checks as the worker's (streams/domain/validate.py), each of the token's own tenant,
produced to its raw topic keyed as the contract says, and answered only once the broker has
them (202). A batch is taken whole or not at all: 400 names every bad event and why, 403 an event
of another tenant, 401 a missing or unknown token, 413 a body too large, 503 (Retry-After) when
the broker is behind -- so a client can simply retry the same batch (event ids make a retry
count once). ``GET /health``: up or not, nothing more; ``GET /v1/stats`` (a token): what it
accepted and refused of the token's own tenant.

Every route works within the limits of streams/intake/limits.py: heads and bodies are read
within a time and a size, nothing is parsed before the caller is known (a token, or for
Twilio a tenant with an auth token stored), and a broker that does not answer gets a 503
with Retry-After within seconds.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from streams.config.settings import Settings
from schemas.events import AGENT_EVENT_TYPES
from streams.domain.validate import Rejected, validate
from streams.intake import tokens
from streams.intake.limits import SEND_TIMEOUT_S, BrokerGate, TooLarge, TooSlow, read_body

MAX_BODY = 1024 * 1024
MAX_FORM = 64 * 1024  # a TaskRouter callback is a few kB
MAX_EVENTS = 1000
IN_FLIGHT = 64  # requests being produced at once; more wait briefly, then get 503
#: A signed callback older (or newer) than this is refused: a captured one cannot be replayed
#: later. Twilio retries within minutes; 6 h leaves room for an intake outage.
MAX_CALLBACK_AGE_S = 6 * 3600


def create(s: Settings, public_url: str | None = None) -> Starlette:
    """``public_url``: the scheme and host Twilio calls (behind a proxy the request's own URL
    differs, and the callbacks' signature covers the URL)."""
    counters: dict[str, dict[str, Any]] = {}  # per tenant ("" for callers not known)
    state: dict[str, Any] = {}
    slots = asyncio.Semaphore(IN_FLIGHT)
    gate = BrokerGate()

    def count(tenant: str | None) -> dict[str, Any]:
        return counters.setdefault(tenant or "", {"accepted": 0, "refused": 0, "requests": 0, "by_reason": {}})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=",".join(s.bootstrap_servers), acks="all", linger_ms=5,
                                    client_id="ccpulse-intake", request_timeout_ms=int(SEND_TIMEOUT_S * 1000))
        await producer.start()
        state["producer"] = producer
        try:
            yield
        finally:
            await producer.stop()

    def refuse(status: int, reason: str, message: str, tenant: str | None = None, **extra: Any) -> JSONResponse:
        c = count(tenant)
        c["refused"] += 1
        c["by_reason"][reason] = c["by_reason"].get(reason, 0) + 1
        headers = {"Retry-After": "2"} if status == 503 else {}
        if status in (408, 413):
            headers["Connection"] = "close"  # the rest of the body is never read
        return JSONResponse({"error": message, "reason": reason, **extra}, status_code=status, headers=headers)

    async def body_of(request: Request, limit: int, tenant: str | None) -> bytes | JSONResponse:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return refuse(413, "too_large", f"{length[:20]} bytes: send at most {limit:,} a request", tenant)
        try:
            return await read_body(request.receive, limit)
        except TooLarge:
            return refuse(413, "too_large", f"more than {limit:,} bytes: send at most {limit:,} a request", tenant)
        except TooSlow:
            return refuse(408, "too_slow", "the body did not arrive in time", tenant)

    async def produce(tenant: str | None, out: list[tuple[str, bytes, bytes]]) -> JSONResponse | None:
        """Send ``out`` and wait for the broker; a 503 when it is away (at once while it was just now)."""
        if gate.away():
            return refuse(503, "broker_unavailable", "the broker is not answering: retry in a few seconds", tenant)
        try:
            await asyncio.wait_for(slots.acquire(), timeout=2.0)
        except asyncio.TimeoutError:
            return refuse(503, "busy", "the broker is behind: retry the same batch in a second", tenant)
        try:
            producer = state["producer"]

            async def send_all() -> None:
                sent = [await producer.send(topic, value=value, key=key) for topic, key, value in out]
                await asyncio.gather(*sent)  # the broker has every one (acks=all)

            await asyncio.wait_for(send_all(), SEND_TIMEOUT_S + 1)
        except Exception as e:  # noqa: BLE001 -- the client retries; nothing was answered as accepted
            gate.failed()
            return refuse(503, "broker_unavailable", f"the broker did not take the events ({type(e).__name__}): "
                                                     "retry in a few seconds", tenant)
        finally:
            slots.release()
        return None

    async def events(request: Request) -> JSONResponse:
        tenant = tokens.tenant_of(tokens.load(s.state_dir), request.headers.get("authorization"))
        count(tenant)["requests"] += 1
        if tenant is None:
            return refuse(401, "unauthorized", "send Authorization: Bearer <an intake token of your tenant> "
                                               "(ccpulse intake token --tenant T issues one)")
        if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
            return refuse(415, "content_type", "send Content-Type: application/json", tenant)
        body = await body_of(request, MAX_BODY, tenant)
        if isinstance(body, JSONResponse):
            return body
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as e:
            return refuse(400, "invalid_json", f"not JSON: {str(e)[:200]}", tenant)
        items = data if isinstance(data, list) else [data]
        if not items or len(items) > MAX_EVENTS:
            return refuse(400, "batch_size", f"send 1 to {MAX_EVENTS:,} events a request, not {len(items):,}", tenant)
        now_ms, ahead_ms = int(time.time() * 1000), int(s.max_future_s * 1000)
        out, errors, foreign = [], [], []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                errors.append({"index": i, "reason": "not_an_object", "error": "each event is a JSON object"})
                continue
            agent = str(item.get("type", "")) in AGENT_EVENT_TYPES
            key = item.get("agent_id" if agent else "interaction_id")
            raw = json.dumps(item, separators=(",", ":")).encode()
            ev = validate(raw, str(key).encode() if isinstance(key, str) else None,
                          "agent_events" if agent else "events", now_ms, ahead_ms)
            if isinstance(ev, Rejected):
                errors.append({"index": i, "reason": ev.reason, "error": ev.error})
            elif ev.tenant != tenant:
                foreign.append(i)
            else:
                out.append((s.topic_agent_events if agent else s.topic_events, key.encode(), raw))
        if foreign:
            return refuse(403, "wrong_tenant", f"your token writes tenant {tenant!r} only", tenant, indexes=foreign[:50])
        if errors:
            return refuse(400, "invalid_events", f"{len(errors)} of {len(items)} events refused; none taken", tenant,
                          errors=errors[:100])
        if (failed := await produce(tenant, out)) is not None:
            return failed
        count(tenant)["accepted"] += len(out)
        return JSONResponse({"accepted": len(out)}, status_code=202)

    async def twilio(request: Request) -> JSONResponse:
        """TaskRouter's event callbacks for one tenant, signed with that tenant's Twilio auth token."""
        from urllib.parse import parse_qsl

        from streams.connectors.queue_log import Rejected as LineRejected
        from streams.connectors.queue_log import dead_letter
        from streams.connectors.twilio import map_callback, signed

        tenant = request.path_params["tenant"]
        auth = tokens.twilio_token(s.state_dir, tenant)
        count(tenant if auth else None)["requests"] += 1
        sent_signature = request.headers.get("x-twilio-signature") or ""
        if auth is None or not sent_signature.isascii():  # unknown tenant: nothing is read
            return refuse(403, "bad_signature", "not signed by this tenant's Twilio auth token "
                                                "(ccpulse intake twilio --tenant T stores it)", tenant if auth else None)
        body = await body_of(request, MAX_FORM, tenant)
        if isinstance(body, JSONResponse):
            return body
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=200))
        url = str(request.url)
        if public_url:
            url = public_url.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not signed(auth, url, form, sent_signature):
            return refuse(403, "bad_signature", "not signed by this tenant's Twilio auth token "
                                                "(ccpulse intake twilio --tenant T stores it)", tenant)
        stamp = form.get("Timestamp") or ""
        if stamp.isdigit() and len(stamp) <= 12 and abs(time.time() - int(stamp)) > MAX_CALLBACK_AGE_S:
            return refuse(403, "stale_callback", f"the callback was signed for {stamp}, more than "
                                                 f"{MAX_CALLBACK_AGE_S // 3600} hours from now: not taken", tenant)
        try:
            out = map_callback(form, tenant)
        except Exception as e:  # noqa: BLE001 -- any input the mapper did not foresee is a dead letter
            out = LineRejected("unmappable", f"{type(e).__name__}: {str(e)[:200]}")
        if isinstance(out, LineRejected):
            offset = int(hashlib.sha1(json.dumps(form, sort_keys=True).encode()).hexdigest()[:15], 16)
            letter = dead_letter(out, f"twilio: {out.error}", f"twilio:{tenant}", offset, json.dumps(form).encode())
            if (failed := await produce(tenant, [(s.topic_dead_letters, None, json.dumps(letter).encode())])) is not None:
                return failed
            c = count(tenant)
            c["by_reason"][out.reason] = c["by_reason"].get(out.reason, 0) + 1
            return JSONResponse({"dead_letter": out.reason}, status_code=200)  # a retry would not help
        agent = [e["type"].startswith("agent_") for e in out.events]
        msgs = [(s.topic_agent_events if a else s.topic_events, (e["agent_id"] if a else e["interaction_id"]).encode(),
                 json.dumps(e, separators=(",", ":")).encode()) for e, a in zip(out.events, agent)]
        if msgs and (failed := await produce(tenant, msgs)) is not None:
            return failed
        count(tenant)["accepted"] += len(out.events)
        return JSONResponse({"accepted": len(out.events), "skipped": out.skipped})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})  # anyone can reach it: it says nothing of any tenant

    async def stats(request: Request) -> JSONResponse:
        tenant = tokens.tenant_of(tokens.load(s.state_dir), request.headers.get("authorization"))
        if tenant is None:
            return refuse(401, "unauthorized", "send Authorization: Bearer <an intake token of your tenant>")
        return JSONResponse({"tenant": tenant, **count(tenant)})

    return Starlette(routes=[Route("/v1/events", events, methods=["POST"]),
                             Route("/v1/twilio/{tenant}", twilio, methods=["POST"]), Route("/health", health),
                             Route("/v1/stats", stats)],
                     lifespan=lifespan)
