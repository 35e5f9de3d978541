"""Raw message → event, or a rejection with a short machine reason and a human error.

Pure: the faust agent routes rejections to the dead-letter topic and keeps going.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from schemas.events import (
    AGENT_EVENT_TYPES, INTERACTION_EVENT_TYPES, Event, event_adapter,
)

#: Largest message accepted; anything bigger is a producer bug, not a contact.
MAX_MESSAGE_BYTES = 64 * 1024
#: Event times outside [1990, now + 1 day] are a producer's clock or encoding bug (0 = 1970,
#: seconds read as ms...). One such event would move its partition's event clock and make
#: every other contact late or timed out, so it is rejected. Old logs (1999) still replay.
MIN_TS_MS = 631_152_000_000  # 1990-01-01T00:00:00Z
MAX_FUTURE_MS = 300_000  #: the default of Settings.max_future_s

TopicKind = Literal["events", "agent_events"]


@dataclass(frozen=True)
class Rejected:
    reason: str
    error: str


_PYDANTIC_REASONS = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "model_type": "not_an_object",
    "model_attributes_type": "not_an_object",
    "dict_type": "not_an_object",
    "union_tag_invalid": "unknown_type",
    "union_tag_not_found": "missing_type",
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "timezone_aware": "timestamp_without_timezone",
    "string_pattern_mismatch": "invalid_identifier",  # only identifiers have a pattern (schemas/events.py)
}


def _reason(e: ValidationError) -> Rejected:
    first = e.errors(include_url=False)[0]
    loc = [str(x) for x in first["loc"]]
    # Drop the union tag from the location: "offered.queue" reads as "queue".
    field = ".".join(loc[1:] if len(loc) > 1 else loc)
    kind = first["type"]
    if "schema_version" in loc:
        reason = "unsupported_schema_version"
    else:
        reason = _PYDANTIC_REASONS.get(kind, "invalid_value")
    more = f" (+{e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return Rejected(reason, f"{field or 'message'}: {first['msg']}{more}")


def validate(value: bytes | None, key: bytes | None, kind: TopicKind, now_ms: int | None = None,
             max_future_ms: int = MAX_FUTURE_MS) -> Event | Rejected:
    """Parse and check one message read from a raw-events topic of the given kind
    (``now_ms``: wall-clock time, for the future-timestamp check: a producer whose clock
    runs ahead must not move the event clock that closes everyone else's contacts)."""
    if value is None:
        return Rejected("empty_message", "message has no value (tombstone?)")
    if len(value) > MAX_MESSAGE_BYTES:
        return Rejected("too_large", f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        event = event_adapter.validate_json(value)
    except ValidationError as e:
        if e.errors()[0]["type"] in ("json_invalid", "json_type") and not _is_utf8(value):
            return Rejected("invalid_utf8", "message is not UTF-8")
        return _reason(e)
    if event.ts_ms < MIN_TS_MS:
        return Rejected("timestamp_too_old", f"ts {event.ts.isoformat()} is before 1990: a producer clock or encoding bug")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if event.ts_ms > now + max_future_ms:
        return Rejected("timestamp_in_future", f"ts {event.ts.isoformat()} is more than {max_future_ms / 1000:g} s ahead "
                        "of this worker's clock: fix the producer's clock (or raise CCPULSE_MAX_FUTURE_S), then "
                        "replay the message from the dead letters")
    if kind == "events":
        if event.type not in INTERACTION_EVENT_TYPES:
            return Rejected("wrong_topic", f"{event.type} belongs on the agent-events topic")
        want = event.interaction_id  # type: ignore[union-attr]
    else:
        if event.type not in AGENT_EVENT_TYPES:
            return Rejected("wrong_topic", f"{event.type} belongs on the events topic")
        want = event.agent_id  # type: ignore[union-attr]
    # State is partitioned by key: an event keyed otherwise would be folded on the wrong
    # partition, away from its interaction.
    if key is None or key != want.encode():
        got = "no key" if key is None else f"key {key[:64]!r}"
        return Rejected("key_mismatch", f"{got}; must be {'interaction_id' if kind == 'events' else 'agent_id'} {want!r}")
    return event


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
