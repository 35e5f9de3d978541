"""Every kind of bad message gets its own reason; good ones come back as events."""
from __future__ import annotations

import json

import pytest

from streams.validate import MAX_MESSAGE_BYTES, Rejected, validate

OK = {"type": "csat", "event_id": "e", "ts": "2026-01-01T00:00:00Z", "tenant": "t", "interaction_id": "i",
      "channel": "voice", "score": 3}


def j(d: dict) -> bytes:
    return json.dumps(d).encode()


@pytest.mark.parametrize("value,key,reason", [
    (b"{", b"i", "invalid_json"),
    (b"\xff\xfe{}", b"i", "invalid_utf8"),
    (b"[]", b"i", "not_an_object"),
    (j({**OK, "type": "teleported"}), b"i", "unknown_type"),
    (j({k: v for k, v in OK.items() if k != "type"}), b"i", "missing_type"),
    (j({k: v for k, v in OK.items() if k != "tenant"}), b"i", "missing_field"),
    (j({**OK, "extra": 1}), b"i", "unknown_field"),
    (j({**OK, "ts": "2026-01-01T00:00:00"}), b"i", "timestamp_without_timezone"),
    (j({**OK, "score": 0}), b"i", "invalid_value"),
    (j({**OK, "schema_version": 2}), b"i", "unsupported_schema_version"),
    (j(OK), b"other", "key_mismatch"),
    (j(OK), None, "key_mismatch"),
    (j({"type": "agent_ready", "event_id": "e", "ts": "2026-01-01T00:00:00Z", "tenant": "t", "agent_id": "a"}),
     b"a", "wrong_topic"),
    (None, b"i", "empty_message"),
    (b"{" + b" " * MAX_MESSAGE_BYTES + b"}", b"i", "too_large"),
])
def test_rejection_reasons(value: bytes | None, key: bytes | None, reason: str) -> None:
    out = validate(value, key, "events")
    assert isinstance(out, Rejected) and out.reason == reason, out


def test_good_event_passes_and_is_normalised_to_utc_ms() -> None:
    out = validate(j({**OK, "ts": "2026-01-01T02:00:00.123999+02:00"}), b"i", "events")
    assert not isinstance(out, Rejected)
    assert out.ts_ms == 1767225600123


def test_agent_events_keyed_by_agent() -> None:
    d = {"type": "agent_not_ready", "event_id": "e", "ts": "2026-01-01T00:00:00Z", "tenant": "t",
         "agent_id": "a7", "reason": "lunch"}
    assert not isinstance(validate(j(d), b"a7", "agent_events"), Rejected)
    assert validate(j(OK), b"i", "agent_events").reason == "wrong_topic"  # type: ignore[union-attr]
