"""``POST /v1/events``: one event or a list (at most 1,000, 1 MB), each validated by the same
models and checks as the worker's (streams/domain/validate.py), each of the token's own tenant,
produced to its raw topic keyed as the contract says, and answered only once the broker has
them (202). A batch is taken whole or not at all: 400 names every bad event and why, 403 an event
of another tenant, 401 a missing or unknown token, 413 a body too large, 503 (Retry-After) when
the broker is behind -- so a client can simply retry the same batch (event ids make a retry
count once). ``GET /health``: what it has accepted and refused.
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

MAX_BODY = 1024 * 1024
MAX_EVENTS = 1000
IN_FLIGHT = 64  # requests being produced at once; more wait briefly, then get 503


def create(s: Settings, public_url: str | None = None) -> Starlette:
    """``public_url``: the scheme and host Twilio calls (behind a proxy the request's own URL
    differs, and the callbacks' signature covers the URL)."""
    counters: dict[str, Any] = {"accepted": 0, "refused": 0, "requests": 0, "by_reason": {}}
    state: dict[str, Any] = {}
    slots = asyncio.Semaphore(IN_FLIGHT)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=",".join(s.bootstrap_servers), acks="all", linger_ms=5,
                                    client_id="ccpulse-intake")
        await producer.start()
        state["producer"] = producer
        try:
            yield
        finally:
            await producer.stop()

    def refuse(status: int, reason: str, message: str, **extra: Any) -> JSONResponse:
        counters["refused"] += 1
        counters["by_reason"][reason] = counters["by_reason"].get(reason, 0) + 1
        return JSONResponse({"error": message, "reason": reason, **extra}, status_code=status,
                            headers={"Retry-After": "1"} if status == 503 else None)

    async def events(request: Request) -> JSONResponse:
        counters["requests"] += 1
        tenant = tokens.tenant_of(tokens.load(s.state_dir), request.headers.get("authorization"))
        if tenant is None:
            return refuse(401, "unauthorized", "send Authorization: Bearer <an intake token of your tenant> "
                                               "(ccpulse intake token --tenant T issues one)")
        if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
            return refuse(415, "content_type", "send Content-Type: application/json")
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return refuse(413, "too_large", f"{length:,} bytes: send at most {MAX_BODY:,} a request")
        body = await request.body()
        if len(body) > MAX_BODY:
            return refuse(413, "too_large", f"{len(body):,} bytes: send at most {MAX_BODY:,} a request")
        try:
            data = json.loads(body)
        except ValueError as e:
            return refuse(400, "invalid_json", f"not JSON: {e}")
        items = data if isinstance(data, list) else [data]
        if not items or len(items) > MAX_EVENTS:
            return refuse(400, "batch_size", f"send 1 to {MAX_EVENTS:,} events a request, not {len(items):,}")
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
            return refuse(403, "wrong_tenant", f"your token writes tenant {tenant!r} only", indexes=foreign[:50])
        if errors:
            return refuse(400, "invalid_events", f"{len(errors)} of {len(items)} events refused; none taken",
                          errors=errors[:100])
        try:
            await asyncio.wait_for(slots.acquire(), timeout=2.0)
        except asyncio.TimeoutError:
            return refuse(503, "busy", "the broker is behind: retry the same batch in a second")
        try:
            producer = state["producer"]
            sent = [await producer.send(topic, value=value, key=key) for topic, key, value in out]
            await asyncio.gather(*sent)  # the broker has every one (acks=all)
        except Exception as e:  # noqa: BLE001 -- the client retries; nothing was answered as accepted
            return refuse(503, "broker_unavailable", f"the broker did not take the events ({type(e).__name__}): retry")
        finally:
            slots.release()
        counters["accepted"] += len(out)
        return JSONResponse({"accepted": len(out)}, status_code=202)

    async def twilio(request: Request) -> JSONResponse:
        """TaskRouter's event callbacks for one tenant, signed with that tenant's Twilio auth token."""
        from streams.connectors.queue_log import Rejected as LineRejected
        from streams.connectors.queue_log import dead_letter
        from streams.connectors.twilio import map_callback, signed

        counters["requests"] += 1
        tenant = request.path_params["tenant"]
        auth = tokens.twilio_token(s.state_dir, tenant)
        from urllib.parse import parse_qsl

        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        url = (public_url.rstrip("/") + request.url.path) if public_url else str(request.url)
        if auth is None or not signed(auth, url, form, request.headers.get("x-twilio-signature")):
            return refuse(403, "bad_signature", "not signed by this tenant's Twilio auth token "
                                                "(ccpulse intake twilio --tenant T stores it)")
        out = map_callback(form, tenant)
        producer = state["producer"]
        if isinstance(out, LineRejected):
            offset = int(hashlib.sha1(json.dumps(form, sort_keys=True).encode()).hexdigest()[:15], 16)
            letter = dead_letter(out, f"twilio: {out.error}", f"twilio:{tenant}", offset, json.dumps(form).encode())
            await (await producer.send(s.topic_dead_letters, value=json.dumps(letter).encode()))
            counters["by_reason"][out.reason] = counters["by_reason"].get(out.reason, 0) + 1
            return JSONResponse({"dead_letter": out.reason}, status_code=200)  # a retry would not help
        sent = [await producer.send(s.topic_agent_events if e["type"].startswith("agent_") else s.topic_events,
                                    key=(e.get("agent_id") if e["type"].startswith("agent_") else e["interaction_id"]).encode(),
                                    value=json.dumps(e, separators=(",", ":")).encode()) for e in out.events]
        await asyncio.gather(*sent)
        counters["accepted"] += len(out.events)
        return JSONResponse({"accepted": len(out.events), "skipped": out.skipped})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", **counters})

    return Starlette(routes=[Route("/v1/events", events, methods=["POST"]),
                             Route("/v1/twilio/{tenant}", twilio, methods=["POST"]), Route("/health", health)],
                     lifespan=lifespan)
