"""Asterisk (and FreePBX) ``queue_log`` lines as ccpulse events, pure.

A line is ``epoch|callid|queue|agent|VERB|data1|data2|...`` (Asterisk's "Queue Logs"
documentation). The verbs and what they become:

| verb | data | events |
|---|---|---|
| ENTERQUEUE | url, caller id, position | ``offered`` (customer_id = caller id) |
| CONNECT | holdtime, bridged channel, ringtime | ``answered`` by the agent |
| COMPLETEAGENT, COMPLETECALLER | holdtime, calltime, position | ``ended`` and ``wrapup_ended`` (the log has no after-call work) |
| ABANDON, EXITWITHTIMEOUT, EXITEMPTY, EXITWITHKEY | position, origposition, waittime (key first for EXITWITHKEY) | ``abandoned`` |
| TRANSFER, BLINDTRANSFER, ATTENDEDTRANSFER | extension, context, holdtime, calltime | ``transferred`` to the extension (reason: the verb), ``ended``, ``wrapup_ended`` |
| ADDMEMBER | | ``agent_login`` (that queue) and ``agent_ready`` |
| REMOVEMEMBER | | ``agent_logout`` |
| PAUSE, PAUSEALL | reason | ``agent_not_ready`` (reason, else "paused") |
| UNPAUSE, UNPAUSEALL | | ``agent_ready`` |
| RINGNOANSWER, RINGCANCELED, DID, INFO, CONFIGRELOAD, QUEUESTART, SYSCOMPAT, AGENTLOGIN, AGENTLOGOFF, AGENTCALLBACKLOGIN, AGENTCALLBACKLOGOFF | | nothing (counted as skipped) |

Anything else -- an unknown verb, too few fields, a time that is not epoch seconds -- is a
``Rejected`` with the reason, for the dead letters. Event ids are derived from the line's bytes,
so reading a file again (after a restart, or the whole history) sends the same ids and the
fold counts each event once.
"""
from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from schemas.events import event_adapter

SKIPPED = frozenset({"RINGNOANSWER", "RINGCANCELED", "DID", "INFO", "CONFIGRELOAD", "QUEUESTART", "SYSCOMPAT",
                     "AGENTLOGIN", "AGENTLOGOFF", "AGENTCALLBACKLOGIN", "AGENTCALLBACKLOGOFF", "ENTERQUEUEWAIT"})
LEFT = frozenset({"ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY"})
COMPLETE = frozenset({"COMPLETEAGENT", "COMPLETECALLER"})
TRANSFERS = frozenset({"TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"})


@dataclass(frozen=True)
class Rejected:
    reason: str
    error: str


@dataclass(frozen=True)
class Mapped:
    events: list[dict[str, Any]]
    skipped: bool = False  # a known verb that carries nothing ccpulse counts


def dead_letter(rej: Rejected, error: str, source_topic: str, offset: int, raw: bytes) -> dict[str, Any]:
    """The dead-letter message (schemas/records.py DeadLetter) of a record a connector could not use:
    the reason, where it came from and its first 64 KB (the dead-letter topic's bound)."""
    return {"reason": rej.reason, "error": error, "source_topic": source_topic, "source_partition": 0,
            "source_offset": offset, "received_at_ms": int(time.time() * 1000), "key": None,
            "payload_b64": base64.b64encode(raw[:65536]).decode()}


def checked(events: list[dict[str, Any]], what: str) -> Mapped | Rejected:
    """The events, each valid by the contract's models, or why not (for the dead letters)."""
    try:
        for e in events:
            event_adapter.validate_python(e)
    except Exception as e:  # noqa: BLE001 -- pydantic's ValidationError: a field the contract refuses
        return Rejected("invalid_value", f"{what}: " + str(e).splitlines()[-1][:300])
    return Mapped(events)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()


def _agent(field: str) -> str | None:
    field = field.strip()
    return None if not field or field.upper() == "NONE" else field.replace(" ", "_")


def map_line(line: str, tenant: str) -> Mapped | Rejected:
    """The events of one ``queue_log`` line (without its newline)."""
    parts = line.split("|")
    if len(parts) < 5:
        return Rejected("garbled_line", f"{len(parts)} '|'-separated fields, a queue_log line has at least 5")
    stamp, callid, queue, agent, verb, *data = parts
    verb = verb.strip().upper()
    try:
        epoch = int(stamp.split(".")[0])
    except ValueError:
        return Rejected("garbled_line", f"time {stamp[:40]!r} is not epoch seconds")
    if verb in SKIPPED:
        return Mapped([], skipped=True)
    base_id = "ql-" + hashlib.sha1(line.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    try:
        ts = _iso(epoch)
    except (ValueError, OverflowError, OSError):
        return Rejected("garbled_line", f"time {stamp[:40]!r} is past any date")
    who = _agent(agent)
    events: list[dict[str, Any]] = []

    def contact(typ: str, suffix: str = "", **fields: Any) -> None:
        events.append({"type": typ, "event_id": base_id + suffix, "ts": ts, "tenant": tenant,
                       "interaction_id": callid, "channel": "voice", **{k: v for k, v in fields.items() if v is not None}})

    def member(typ: str, suffix: str = "", **fields: Any) -> None:
        events.append({"type": typ, "event_id": base_id + suffix, "ts": ts, "tenant": tenant, "agent_id": who,
                       **fields})

    if verb == "ENTERQUEUE":
        caller = re.sub(r"[^\w+*#.-]", "", data[1] if len(data) > 1 else "")[:64]  # a number, or nothing usable
        contact("offered", queue=queue, customer_id=caller if caller and caller.lower() != "unknown" else None)
    elif verb == "CONNECT":
        if who is None:
            return Rejected("missing_field", "CONNECT names no agent")
        contact("answered", agent_id=who, queue=queue)
    elif verb in COMPLETE:
        contact("ended", ":end", agent_id=who)
        contact("wrapup_ended", ":wrap", agent_id=who)
    elif verb in LEFT:
        contact("abandoned", queue=queue)
    elif verb in TRANSFERS:
        target = (data[0].strip() if data else "").replace(" ", "_") or "external"
        contact("transferred", to_agent=target, agent_id=who, reason=verb.lower())
        contact("ended", ":end", agent_id=who)
        contact("wrapup_ended", ":wrap", agent_id=who)
    elif verb in ("ADDMEMBER", "REMOVEMEMBER", "PAUSE", "PAUSEALL", "UNPAUSE", "UNPAUSEALL"):
        if who is None:
            return Rejected("missing_field", f"{verb} names no agent")
        if verb == "ADDMEMBER":
            member("agent_login", queues=[queue] if queue and queue.upper() != "NONE" else [])
            member("agent_ready", ":ready")
        elif verb == "REMOVEMEMBER":
            member("agent_logout")
        elif verb.startswith("PAUSE"):
            member("agent_not_ready", reason=(data[0].strip() if data and data[0].strip() else "paused"))
        else:
            member("agent_ready")
    else:
        return Rejected("unknown_verb", f"verb {verb[:40]!r} is not one Asterisk's queue_log documents")
    return checked(events, verb)
