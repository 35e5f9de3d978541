"""Recorded traffic read back as events: JSONL byte for byte, and the Anonymous Bank call log.

JSONL (``iter_jsonl``): one event per line, sent unchanged; blank lines are skipped.

Anonymous Bank (``iter_anonymous_bank``, see ``shared/data/anonymous-bank/README.md``),
one CSV row per call, mapped to the event contract of ``schemas/events.py``:

- tenant ``anonymous-bank``, channel ``voice``; queue = the ``type`` column; customer_id =
  ``customer_id`` (None when ``0``, an unidentified caller); priority = ``priority``.
- interaction_id = ``{date}/{vru+line}/{call_id}``: ``call_id`` alone repeats within a day
  (469 times in August) but never on the same IVR line; event_id = ``{interaction_id}:{n}``.
- Times are local in Israel (``Asia/Jerusalem``, +03:00 in August) on the row's ``date``.
  A time of day more than 12 h before ``vru_entry`` is on the next day (the call crossed
  midnight); a smaller step back is clock skew between systems (19 calls leave the IVR up
  to 6 minutes before entering it) and stays on the day.
- A call queued when ``q_start`` is not ``0:00:00`` or ``q_time`` > 0.
- ``AGENT``, not queued: an agent was free; offered at ``vru_exit`` and answered at once.
  ``AGENT``, queued: offered at ``q_start``, answered ``q_time`` s later (``q_time`` is the
  authoritative wait; ``ser_start`` is skewed). Either way answered carries agent_id =
  ``server`` (``NO_SERVER`` on 391 answered calls, kept as logged), ended follows
  ``ser_time`` s after the answer, and wrapup_ended at the same instant: the log records
  no after-call work.
- ``HANG``, queued: offered at ``q_start``, abandoned ``q_time`` s later (0 s for 49 calls).
  ``HANG``, not queued: the caller hung up in the IVR, before any queue: an IVR session
  only (outcome ``ivr``), never an abandoned contact.
- The IVR side of every call: ``ivr_entered`` at ``vru_entry`` and ``ivr_left`` at
  ``vru_exit``, result ``to_queue`` (or ``hung_up`` as above); IVR ``vru`` (the log names no
  flow, and no step). Their event ids end ``:ivr1`` / ``:ivr2``, so the queue events keep the
  ids earlier releases gave them and a file replayed again by this release folds the same.
  For the 18 calls whose IVR exit is logged before their entry (clock skew; ``vru_time``
  negative) the time in the IVR is 0.
- ``PHANTOM``: a ghost call, not a contact; no events.

So each call folds (``streams.domain.state``) to outcome answered or abandoned with wait_ms =
``q_time`` * 1000 and talk_ms = ``ser_time`` * 1000. A row that cannot be read raises
``ReplayError`` naming the file and line; nothing is guessed.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas.events import event_adapter
from streams.traffic.producer import Outgoing

TENANT = "anonymous-bank"
TZ = ZoneInfo("Asia/Jerusalem")
COLUMNS = ("vru+line", "call_id", "customer_id", "priority", "type", "date", "vru_entry", "vru_exit",
           "vru_time", "q_start", "q_exit", "q_time", "outcome", "ser_start", "ser_exit", "ser_time", "server")
_NOT_QUEUED = "0:00:00"
_HALF_DAY = 12 * 3600
_CLOCK = re.compile(r"(\d{1,2}):([0-5]\d):([0-5]\d)")


class ReplayError(Exception):
    """Input the replay cannot use: ``path:line: what is wrong; what to do``."""


# --- JSONL ----------------------------------------------------------------------------

def iter_jsonl(path: Path) -> Iterator[Outgoing]:
    """Each line as one message, its bytes unchanged so a replay is faithful to the record."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield _jsonl_message(line, f"{path}:{lineno}")


def _jsonl_message(line: bytes, where: str) -> Outgoing:
    try:
        event = json.loads(line)
    except ValueError as e:  # invalid JSON or invalid UTF-8
        raise ReplayError(f"{where}: not valid JSON ({e}); fix or remove the line") from None
    if not isinstance(event, dict):
        raise ReplayError(f"{where}: not a JSON object; fix or remove the line")
    typ = event.get("type")
    if not isinstance(typ, str):
        raise ReplayError(f"{where}: no string 'type'; fix or remove the line")
    agent = typ.startswith("agent_")
    key_field = "agent_id" if agent else "interaction_id"
    key = event.get(key_field)
    if not isinstance(key, str) or not key:
        raise ReplayError(f"{where}: a {typ!r} event needs a string {key_field!r} (the message key); "
                          "fix or remove the line")
    return Outgoing("agent_events" if agent else "events", key.encode(), line)


# --- Anonymous Bank -------------------------------------------------------------------

@dataclass
class AnonymousBankStats:
    """What became of the rows: the call log is not all contacts."""

    rows: int = 0
    answered: int = 0
    abandoned: int = 0
    ivr_hangups: int = 0
    phantoms: int = 0
    crossing_midnight: int = 0

    @property
    def contacts(self) -> int:
        return self.answered + self.abandoned

    def summary(self) -> str:
        return (f"{self.rows:,} rows: {self.answered:,} answered, {self.abandoned:,} abandoned in queue, "
                f"{self.ivr_hangups:,} hung up in the IVR (IVR sessions only), {self.phantoms:,} phantom calls skipped, "
                f"{self.crossing_midnight:,} crossing midnight")


def iter_anonymous_bank(path: Path, stats: AnonymousBankStats | None = None) -> Iterator[dict[str, Any]]:
    """The events of every contact in the call log, call by call in file order."""
    stats = stats if stats is not None else AnonymousBankStats()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        try:
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ReplayError(f"{path}:1: the header lacks {', '.join(missing)}; "
                                  "is this the Anonymous Bank call log (calls-august.csv)?")
            for row in reader:
                try:
                    events = _call_events(row, stats)
                except (ValueError, ValidationError) as e:
                    what = _validation_text(e) if isinstance(e, ValidationError) else str(e)
                    raise ReplayError(f"{path}:{reader.line_num}: {what}; fix or remove the line") from None
                yield from events
        except UnicodeDecodeError as e:
            raise ReplayError(f"{path}: not UTF-8 text after line {reader.line_num} ({e}); "
                              "is this the Anonymous Bank call log?") from None
        except csv.Error as e:
            raise ReplayError(f"{path}:{reader.line_num}: not CSV ({e}); fix or remove the line") from None


def _call_events(row: dict[str, Any], stats: AnonymousBankStats) -> list[dict[str, Any]]:
    if None in row or None in row.values():
        raise ValueError(f"expected {len(COLUMNS)} comma-separated fields")
    stats.rows += 1
    outcome = row["outcome"]
    if outcome not in ("AGENT", "HANG", "PHANTOM"):
        raise ValueError(f"outcome {outcome!r} is not AGENT, HANG or PHANTOM")
    try:
        day = date.fromisoformat(row["date"])
    except ValueError:
        raise ValueError(f"date {row['date']!r} is not YYYY-MM-DD") from None
    entry, vru_exit, q_start = _clock(row, "vru_entry"), _clock(row, "vru_exit"), _clock(row, "q_start")
    q_time, ser_time, priority = _count(row, "q_time"), _count(row, "ser_time"), _count(row, "priority")
    queued = row["q_start"] != _NOT_QUEUED or q_time > 0
    if outcome == "PHANTOM":
        stats.phantoms += 1
        return []
    if not row["vru+line"] or not row["call_id"]:
        raise ValueError("vru+line and call_id identify the call and cannot be empty")
    iid = f"{row['date']}/{row['vru+line']}/{row['call_id']}"
    out: list[dict[str, Any]] = []
    ivr: list[dict[str, Any]] = []

    def add(typ: str, at: datetime, into: list[dict[str, Any]] | None = None, **fields: Any) -> None:
        into = out if into is None else into
        n = f"ivr{len(into) + 1}" if into is ivr else str(len(into) + 1)
        into.append({"type": typ, "event_id": f"{iid}:{n}",
                     "ts": at.astimezone(TZ).isoformat(timespec="milliseconds"),
                     "tenant": TENANT, "interaction_id": iid, "channel": "voice", **fields})

    add("ivr_entered", _at(day, entry, entry), ivr, ivr="vru")
    add("ivr_left", _at(day, vru_exit, entry), ivr, result="to_queue" if queued or outcome == "AGENT" else "hung_up")
    if outcome == "HANG" and not queued:
        stats.ivr_hangups += 1
        for e in ivr:
            event_adapter.validate_python(e)
        return ivr
    start = _at(day, q_start if queued else vru_exit, entry)

    customer = row["customer_id"]
    add("offered", start, queue=row["type"], customer_id=None if customer == "0" else customer, priority=priority)
    left_queue = start + timedelta(seconds=q_time)
    if outcome == "AGENT":
        agent = row["server"]
        ended = left_queue + timedelta(seconds=ser_time)
        add("answered", left_queue, agent_id=agent)
        add("ended", ended, agent_id=agent)
        add("wrapup_ended", ended, agent_id=agent)
        stats.answered += 1
    else:
        ended = left_queue
        add("abandoned", left_queue)
        stats.abandoned += 1
    out = ivr + out
    for e in out:  # a bad field (an empty queue, a priority of 300) fails here, with its line
        event_adapter.validate_python(e)
    if ended.astimezone(TZ).date() > day:
        stats.crossing_midnight += 1
    return out


def _clock(row: dict[str, Any], column: str) -> int:
    """Seconds since midnight of an ``H:MM:SS`` time of day."""
    m = _CLOCK.fullmatch(row[column])
    if not m or int(m[1]) > 23:
        raise ValueError(f"{column} {row[column]!r} is not a time of day H:MM:SS")
    return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])


def _count(row: dict[str, Any], column: str) -> int:
    value = row[column]
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{column} {value!r} is not a whole number >= 0")
    return int(value)


def _at(day: date, seconds: int, entry: int) -> datetime:
    """The instant (UTC) of a local time of day of a call that entered the IVR at ``entry``."""
    next_day = entry - seconds > _HALF_DAY  # crossed midnight, not a skewed clock
    local = datetime.combine(day + timedelta(days=next_day), time()) + timedelta(seconds=seconds)
    return local.replace(tzinfo=TZ).astimezone(timezone.utc)


def _validation_text(e: ValidationError) -> str:
    err = e.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'][1:]) or 'event'}: {err['msg']}"
