"""Raw message → event, or a rejection with a short machine reason and a human error.

Pure: the faust agent routes rejections to the dead-letter topic and keeps going.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from schemas.events import (
    AGENT_EVENT_TYPES, INTERACTION_EVENT_TYPES, Event, event_adapter,
)

#: Largest message accepted; anything bigger is a producer bug, not a contact.
MAX_MESSAGE_BYTES = 64 * 1024

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


def validate(value: bytes | None, key: bytes | None, kind: TopicKind) -> Event | Rejected:
    """Parse and check one message read from a raw-events topic of the given kind."""
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
