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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

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


#: A contact record is a few kB; past this without a complete JSON value, the text is not one.
MAX_RECORD = 1 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Unreadable:
    """Text of a record file that is no JSON value: its reason and its first characters."""

    reason: str
    excerpt: str


def iter_records(read: Callable[[int], str], max_record: int = MAX_RECORD, chunk: int = _CHUNK) -> Iterator[Any]:
    """Every JSON value in a stream of text read ``chunk`` characters at a time: one object, JSON
    lines, an array, or objects back to back (as Kinesis Data Firehose writes them to S3).

    Memory stays within about ``max_record + chunk`` whatever the file's size. Text that is no
    JSON value, nests too deep or runs past ``max_record`` yields one ``Unreadable`` and the
    reading goes on at the next line (Firehose's back-to-back objects have no lines: the rest
    of such a file is that one ``Unreadable``)."""
    import json
    import re

    decoder = json.JSONDecoder()
    nonspace = re.compile(r"\S")
    buf, i, eof = "", 0, False

    def more() -> bool:
        nonlocal buf, i, eof
        if eof:
            return False
        got = read(chunk)
        eof = not got
        buf, i = buf[i:] + got, 0
        return bool(got)

    while True:
        m = nonspace.search(buf, i)
        if m is None:
            if not more():
                return
            continue
        i = m.start()
        try:
            obj, end = decoder.raw_decode(buf, i)
        except RecursionError:
            problem = Unreadable("JSON nested too deep", buf[i:i + 200])
        except json.JSONDecodeError as e:
            # Cut short by the end of what was read (near its end, or inside a string): read on.
            cut = e.pos >= len(buf) - 64 or e.msg.startswith("Unterminated string")
            if cut and len(buf) - i <= max_record and more():
                continue
            problem = Unreadable("not JSON" if not cut or eof else
                                 f"no complete JSON value in {max_record:,} characters", buf[i:i + 200])
        else:
            # A value that ends exactly where the text read so far ends may go on in the next
            # chunk (a number): read on before taking it.
            if end == len(buf) and not eof and more():
                continue
            i = end
            yield from (obj if isinstance(obj, list) else [obj])
            continue
        yield problem
        while (nl := buf.find("\n", i)) < 0:  # on at the next line, a chunk at a time
            buf, i = "", 0
            if not more():
                return
        i = nl + 1


def records_of(text: str) -> list[Any]:
    """``iter_records`` of a whole text (tests, and files already in memory)."""
    import io

    return list(iter_records(io.StringIO(text).read))
