"""Twilio TaskRouter event callbacks as ccpulse events, pure; and the callbacks' signature.

TaskRouter POSTs each event of a workspace to its Event Callback URL as a form ("TaskRouter Event
Callbacks" documentation): ``EventType``, ``Sid`` (the event's, the same on Twilio's retries),
``Timestamp`` (epoch seconds), ``TaskSid``, ``TaskQueueName``, ``TaskChannelUniqueName``,
``TaskAttributes`` (JSON), ``WorkerName``, ``WorkerActivityName``...

| EventType | events |
|---|---|
| task.created (with a queue), task-queue.entered | ``offered`` to TaskQueueName (caller: TaskAttributes.from) |
| reservation.accepted | ``answered`` by WorkerName |
| task.wrapup | ``ended`` |
| task.completed | ``wrapup_ended`` (and ``ended``, which a wrap-up's earlier ``ended`` of the same id overrides) |
| task.canceled | ``abandoned`` (reason: TaskCanceledReason) |
| worker.activity.update | ``agent_logout`` (Offline), ``agent_ready`` (Available, Idle), ``agent_not_ready`` (any other activity, by name) |
| anything else (reservation.created/rejected/timeout, workflow.*, task.updated...) | nothing (counted as skipped) |
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime, timezone
from typing import Any, Mapping

from streams.connectors.queue_log import Mapped, Rejected, checked

CHANNELS = {"voice": "voice", "chat": "chat", "sms": "social", "email": "email", "default": "voice"}
READY = {"available", "idle"}


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 (the auth token) of the URL followed by every POST
    parameter's name and value, sorted by name, base64-encoded ("Webhooks security")."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def signed(auth_token: str, url: str, params: Mapping[str, str], sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(signature(auth_token, url, params), sent or "")


def _ident(value: Any) -> str | None:
    text = re.sub(r"[^\w+*#.@/:-]", "_", str(value or ""))[:128]
    return text or None


def map_callback(form: Mapping[str, str], tenant: str) -> Mapped | Rejected:
    kind = (form.get("EventType") or "").strip()
    sid = _ident(form.get("Sid"))
    if not kind or not sid:
        return Rejected("missing_field", "a TaskRouter callback needs EventType and Sid")
    try:
        at = datetime.fromtimestamp(int(form.get("Timestamp") or ""), tz=timezone.utc).isoformat()
    except (ValueError, OverflowError, OSError):  # not a number, or past datetime's years
        return Rejected("invalid_value", f"Timestamp {str(form.get('Timestamp'))[:40]!r} is not epoch seconds")
    events: list[dict[str, Any]] = []
    task, worker = _ident(form.get("TaskSid")), _ident(form.get("WorkerName"))
    channel = CHANNELS.get((form.get("TaskChannelUniqueName") or "voice").lower(), "voice")

    def contact(typ: str, event_id: str | None = None, **fields: Any) -> None:
        events.append({"type": typ, "event_id": event_id or f"tw-{sid}", "ts": at, "tenant": tenant,
                       "interaction_id": task, "channel": channel,
                       **{k: v for k, v in fields.items() if v is not None}})

    if kind in ("task.created", "task-queue.entered") and form.get("TaskQueueName"):
        try:
            attributes = json.loads(form.get("TaskAttributes") or "{}")
        except (ValueError, RecursionError):
            attributes = None
        caller = _ident(attributes.get("from")) if isinstance(attributes, dict) else None
        contact("offered", queue=_ident(form.get("TaskQueueName")), customer_id=caller)
    elif kind == "reservation.accepted":
        contact("answered", agent_id=worker)
    elif kind == "task.wrapup":
        contact("ended", f"tw-{task}-ended", agent_id=worker)
    elif kind == "task.completed":
        # A task completed without a wrap-up ends there too. Both ``ended`` carry the task's one id:
        # with a wrap-up, the fold keeps the earlier of the two (the same whichever comes first).
        contact("ended", f"tw-{task}-ended", agent_id=worker)
        contact("wrapup_ended", agent_id=worker)
    elif kind == "task.canceled":
        contact("abandoned", queue=_ident(form.get("TaskQueueName")))
    elif kind == "worker.activity.update":
        activity = (form.get("WorkerActivityName") or "").strip()
        base = {"event_id": f"tw-{sid}", "ts": at, "tenant": tenant, "agent_id": worker}
        if activity.lower() == "offline":
            events.append({**base, "type": "agent_logout"})
        elif activity.lower() in READY:
            events.append({**base, "type": "agent_ready"})
        else:
            events.append({**base, "type": "agent_not_ready", "reason": activity or "unavailable"})
    else:
        return Mapped([], skipped=True)
    if any(e.get("interaction_id", "x") is None or e.get("agent_id", "x") is None for e in events):
        return Rejected("missing_field", f"{kind} without {'TaskSid' if task is None else 'WorkerName'}")
    return checked(events, kind)
