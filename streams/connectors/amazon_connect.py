"""Amazon Connect contact trace records (CTRs) as ccpulse events, pure.

The CTR data model (Amazon Connect Administrator Guide, "Contact records data model"): one
JSON object per contact with ``ContactId``, ``Channel`` (VOICE, CHAT, TASK, EMAIL),
``InitiationMethod`` (INBOUND, OUTBOUND, TRANSFER, CALLBACK, API, QUEUE_TRANSFER...),
``InitiationTimestamp``, ``DisconnectTimestamp``, ``Queue`` (``Name``, ``EnqueueTimestamp``,
``DequeueTimestamp``), ``Agent`` (``Username``, ``ConnectedToAgentTimestamp``,
``AfterContactWorkStartTimestamp``, ``AfterContactWorkEndTimestamp``, ``CustomerHoldDuration``,
``NumberOfHolds``), ``TransferCompletedTimestamp``, ``TransferredToEndpoint``,
``Recording`` (``Location``), ``CustomerEndpoint`` (``Address``).

| the CTR says | events |
|---|---|
| Queue.EnqueueTimestamp | ``offered`` to Queue.Name (``callback: true`` for a CALLBACK) |
| Agent.ConnectedToAgentTimestamp | ``answered`` by Agent.Username |
| queued, never connected, Queue.DequeueTimestamp (or DisconnectTimestamp) | ``abandoned`` |
| Agent.AfterContactWorkStartTimestamp (else DisconnectTimestamp) | ``ended`` (Recording.Location as ``recording``) |
| Agent.AfterContactWorkEndTimestamp (else the end) | ``wrapup_ended`` |
| Agent.CustomerHoldDuration > 0 | one ``hold_started``/``hold_ended`` pair of that length, just before the end |
| TransferCompletedTimestamp | ``transferred`` to TransferredToEndpoint.Address (reason ``transfer``) |
| InitiationMethod OUTBOUND | ``dialed`` at InitiationTimestamp (campaign: the queue, else ``outbound``) and ``dial_result`` connected when an agent was connected |

What is lost: the hold times themselves (the CTR gives their total: one hold of that length,
so hold and talk are exact but ``holds`` is at most 1), queue-to-queue transfers inside one
contact (a new CTR each: they stay separate contacts). A CTR without ``ContactId`` or with an
unreadable time is a ``Rejected`` for the dead letters. Event ids are the contact id and the
event kind: a CTR read again, or an updated CTR for the same contact, does not count twice.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from streams.connectors.queue_log import Mapped, Rejected, checked

CHANNELS = {"VOICE": "voice", "CHAT": "chat", "TASK": "social", "EMAIL": "email"}


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _ident(value: Any) -> str | None:
    text = re.sub(r"[^\w+*#.@/:-]", "_", str(value or ""))[:128]
    return text or None


def map_ctr(ctr: Any, tenant: str) -> Mapped | Rejected:
    if not isinstance(ctr, dict) or not ctr.get("ContactId"):
        return Rejected("missing_field", "a contact record needs a ContactId")
    cid = _ident(ctr["ContactId"])
    objects = {k: ctr.get(k) or {} for k in ("Queue", "Agent", "CustomerEndpoint", "TransferredToEndpoint", "Recording")}
    if bad := [k for k, v in objects.items() if not isinstance(v, dict)]:
        return Rejected("invalid_value", f"contact {cid}: {', '.join(bad)} not an object")
    try:
        return _map(ctr, cid, objects, tenant)
    except (TypeError, ValueError, OverflowError) as e:  # e.g. naive and aware times mixed, a hold of 1e309 s
        return Rejected("invalid_value", f"contact {cid}: {str(e)[:200]}")


def _map(ctr: dict[str, Any], cid: str | None, objects: dict[str, dict[str, Any]], tenant: str) -> Mapped | Rejected:
    try:
        queue = objects["Queue"]
        agent = objects["Agent"]
        enq, deq = _ts(queue.get("EnqueueTimestamp")), _ts(queue.get("DequeueTimestamp"))
        start, end = _ts(ctr.get("InitiationTimestamp")), _ts(ctr.get("DisconnectTimestamp"))
        connected = _ts(agent.get("ConnectedToAgentTimestamp"))
        acw_start, acw_end = _ts(agent.get("AfterContactWorkStartTimestamp")), _ts(agent.get("AfterContactWorkEndTimestamp"))
        transferred = _ts(ctr.get("TransferCompletedTimestamp"))
        hold_s = float(agent.get("CustomerHoldDuration") or 0)
    except (TypeError, ValueError) as e:
        return Rejected("invalid_value", f"contact {cid}: {e}")
    if not 0 <= hold_s < 86_400 * 366:
        return Rejected("invalid_value", f"contact {cid}: CustomerHoldDuration {hold_s!r} is not a duration")
    channel = CHANNELS.get(str(ctr.get("Channel", "VOICE")).upper(), "voice")
    method = str(ctr.get("InitiationMethod", "INBOUND")).upper()
    who = _ident(agent.get("Username") or agent.get("ARN"))
    events: list[dict[str, Any]] = []

    def ev(typ: str, at: datetime | None, **fields: Any) -> None:
        if at is not None:
            events.append({"type": typ, "event_id": f"ctr-{cid}-{typ}", "ts": at.isoformat(), "tenant": tenant,
                           "interaction_id": cid, "channel": channel, **{k: v for k, v in fields.items() if v is not None}})

    if method == "OUTBOUND":
        ev("dialed", start, campaign=_ident(queue.get("Name")) or "outbound")
        if connected:
            ev("dial_result", connected, result="connected")
    elif enq is not None:
        caller = _ident(objects["CustomerEndpoint"].get("Address"))
        ev("offered", enq, queue=_ident(queue.get("Name")) or "default", customer_id=caller,
           callback=True if method == "CALLBACK" else None)
    if connected is not None:
        ev("answered", connected, agent_id=who)
        finish = acw_start or end
        if hold_s > 0 and finish is not None:
            ev("hold_started", max(connected, finish - timedelta(seconds=hold_s)))
            ev("hold_ended", finish)
        if transferred is not None:
            ev("transferred", transferred, agent_id=who, reason="transfer",
               to_agent=_ident(objects["TransferredToEndpoint"].get("Address")) or "external")
        ev("ended", finish, agent_id=who, recording=_ident(objects["Recording"].get("Location")))
        ev("wrapup_ended", acw_end or finish, agent_id=who)
    elif enq is not None:
        ev("abandoned", deq or end)
    if not events:
        return Mapped([], skipped=True)  # never queued nor connected (an IVR-only or API contact)
    return checked(events, f"contact {cid}")


def records_of(text: str) -> list[Any]:
    """Every JSON object in a file: one, JSON lines, or objects back to back (as Kinesis Data
    Firehose writes them to S3). An unreadable rest of the file is returned as a string."""
    import json

    decoder = json.JSONDecoder()
    out: list[Any] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        try:
            obj, i = decoder.raw_decode(text, i)
        except ValueError:
            out.append(text[i:i + 200])
            break
        out.extend(obj if isinstance(obj, list) else [obj])
    return out
