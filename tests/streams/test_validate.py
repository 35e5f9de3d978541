"""Every kind of bad message gets its own reason; good ones come back as events."""
from __future__ import annotations

import json

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.validate import MAX_FUTURE_MS, MAX_MESSAGE_BYTES, MIN_TS_MS, Rejected, validate

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
    (j({**OK, "ts": "1970-01-01T00:00:00Z"}), b"i", "timestamp_too_old"),
    (j({**OK, "ts": "2999-01-01T00:00:00Z"}), b"i", "timestamp_in_future"),
    (j({**OK, "ts": "1e99"}), b"i", "invalid_value"),
    (j({**OK, "tenant": "a b"}), b"i", "invalid_identifier"),
    (j({**OK, "tenant": "o'brien"}), b"i", "invalid_identifier"),  # would end a SQL or dashboard literal
    (j({**OK, "tenant": "a\\b"}), b"i", "invalid_identifier"),
    (j({**OK, "tenant": "acme\u202e"}), b"i", "invalid_identifier"),  # bidi override: looks like another
    (j({**OK, "event_id": "e\u200b1"}), b"i", "invalid_identifier"),  # zero-width: looks like e1
    (j({**OK, "event_id": "x" * 129}), b"i", "invalid_value"),
    (j({**OK, "score": "five"}), b"i", "invalid_value"),
])
def test_rejection_reasons(value: bytes | None, key: bytes | None, reason: str) -> None:
    out = validate(value, key, "events")
    assert isinstance(out, Rejected) and out.reason == reason, out


def test_good_event_passes_and_its_time_reads_as_utc_ms() -> None:
    out = validate(j({**OK, "ts": "2026-01-01T02:00:00.123999+02:00"}), b"i", "events")
    assert not isinstance(out, Rejected)
    assert out.ts_ms == 1767225600123
    west = validate(j({**OK, "ts": "2025-12-31T19:30:00.123001-04:30"}), b"i", "events")
    assert not isinstance(west, Rejected) and west.ts_ms == 1767225600123


def test_a_time_at_the_calendars_first_day_is_rejected_not_an_overflow() -> None:
    # Converting year 1 at +01:00 to UTC overflows datetime; a validator that did so raised
    # OverflowError out of validate(), which the worker treats as fatal: a crash loop.
    out = validate(j({**OK, "ts": "0001-01-01T00:00:00+01:00"}), b"i", "events")
    assert isinstance(out, Rejected) and out.reason == "timestamp_too_old", out


def test_agent_events_keyed_by_agent() -> None:
    d = {"type": "agent_not_ready", "event_id": "e", "ts": "2026-01-01T00:00:00Z", "tenant": "t",
         "agent_id": "a7", "reason": "lunch"}
    assert not isinstance(validate(j(d), b"a7", "agent_events"), Rejected)
    assert validate(j(OK), b"i", "agent_events").reason == "wrong_topic"  # type: ignore[union-attr]


def test_timestamp_bounds_are_inclusive_and_old_logs_still_replay() -> None:
    now = 1_800_000_000_000
    for ts, ok in [("1990-01-01T00:00:00Z", True), ("1989-12-31T23:59:59.999Z", False),
                   ("1999-01-03T09:15:00+02:00", True)]:
        assert (not isinstance(validate(j({**OK, "ts": ts}), b"i", "events", now), Rejected)) == ok, ts
    assert MIN_TS_MS == 631_152_000_000

    def iso(ms: int) -> str:
        from datetime import datetime, timezone
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")

    assert not isinstance(validate(j({**OK, "ts": iso(now + MAX_FUTURE_MS)}), b"i", "events", now), Rejected)
    late = validate(j({**OK, "ts": iso(now + MAX_FUTURE_MS + 1)}), b"i", "events", now)
    assert isinstance(late, Rejected) and late.reason == "timestamp_in_future"


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
                     max_leaves=20)
_fields = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["offered", "answered", "abandoned", "ended", "wrapup_ended", "csat", "hold_started",
                             "agent_ready", "teleported"]) | st.text(max_size=8),
    "event_id": st.text(max_size=10), "ts": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01", "x"]) | _json,
    "tenant": st.text(max_size=6) | _json, "interaction_id": st.just("i") | _json,
    "channel": st.sampled_from(["voice", "chat", "sms"]) | _json, "queue": st.text(max_size=5) | _json,
    "agent_id": st.text(max_size=5) | _json, "score": st.integers(-3, 9) | _json, "extra": _json,
})


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), _fields.map(j), _json.map(lambda v: json.dumps(v).encode())),
       st.one_of(st.none(), st.just(b"i"), st.binary(max_size=8)), st.sampled_from(["events", "agent_events"]))
def test_any_bytes_give_an_event_or_a_reason_never_an_exception(value: bytes, key: bytes | None, kind: str) -> None:
    out = validate(value, key, kind)  # type: ignore[arg-type]
    if isinstance(out, Rejected):
        assert out.reason and out.reason.isidentifier() and out.error
    else:
        assert key == (out.interaction_id if kind == "events" else out.agent_id).encode()  # type: ignore[union-attr]
