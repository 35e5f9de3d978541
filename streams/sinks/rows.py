"""Columnar batches for the ClickHouse tables of sql/migrations (names must match).

The column lists here are the sink's side of the schema; a test checks them against the
tables the migrations create.
"""
from __future__ import annotations

import base64
from typing import Any, Iterable

import pyarrow as pa

from schemas.events import Event

_TS = pa.timestamp("ms", tz="UTC")

RAW_EVENTS_TABLE = "raw_events"
RAW_EVENT_COLUMNS: dict[str, pa.DataType] = {
    "event_id": pa.string(), "type": pa.string(), "tenant": pa.string(),
    "interaction_id": pa.string(), "agent_id": pa.string(), "ts": _TS,
    "source_topic": pa.string(), "source_partition": pa.uint16(), "source_offset": pa.uint64(),
    "payload": pa.string(),
}

INTERACTIONS_TABLE = "interactions"
INTERACTION_COLUMNS: dict[str, pa.DataType] = {
    "interaction_id": pa.string(), "tenant": pa.string(), "channel": pa.string(),
    "queue": pa.string(), "first_queue": pa.string(), "queues": pa.list_(pa.string()),
    "customer_id": pa.string(), "priority": pa.uint8(), "agent_id": pa.string(),
    "first_agent_id": pa.string(), "offered_at": _TS, "answered_at": _TS, "abandoned_at": _TS,
    "ended_at": _TS, "wrapup_ended_at": _TS, "first_response_at": _TS, "last_event_at": _TS,
    "wait_ms": pa.uint64(), "talk_ms": pa.uint64(), "hold_ms": pa.uint64(), "acw_ms": pa.uint64(),
    "holds": pa.uint16(), "transfers": pa.uint16(), "outcome": pa.string(),
    "disposition": pa.string(), "resolved": pa.uint8(), "csat": pa.uint8(), "csat_at": _TS,
    "closed_by_timeout": pa.uint8(), "anomalies": pa.list_(pa.string()), "n_events": pa.uint32(),
    "version": pa.uint64(),
}
#: Record key → column, where they differ (records carry epoch-ms integers).
_RECORD_TIME_FIELDS = {
    "offered_at": "offered_at_ms", "answered_at": "answered_at_ms", "abandoned_at": "abandoned_at_ms",
    "ended_at": "ended_at_ms", "wrapup_ended_at": "wrapup_ended_at_ms",
    "first_response_at": "first_response_at_ms", "last_event_at": "last_event_at_ms", "csat_at": "csat_at_ms",
}

DEAD_LETTERS_TABLE = "dead_letters"
DEAD_LETTER_COLUMNS: dict[str, pa.DataType] = {
    "reason": pa.string(), "error": pa.string(), "source_topic": pa.string(),
    "source_partition": pa.uint16(), "source_offset": pa.uint64(), "received_at": _TS,
    "key": pa.string(), "payload": pa.binary(),
}


def _table(columns: dict[str, list[Any]], schema: dict[str, pa.DataType]) -> pa.Table:
    return pa.table({n: pa.array(columns[n], type=t) for n, t in schema.items()})


def raw_event_batch(rows: Iterable[tuple[Event, str, int, int, bytes]]) -> pa.Table:
    """(event, topic, partition, offset, original bytes) → raw_events batch."""
    cols: dict[str, list[Any]] = {n: [] for n in RAW_EVENT_COLUMNS}
    for ev, topic, partition, offset, value in rows:
        cols["event_id"].append(ev.event_id)
        cols["type"].append(ev.type)
        cols["tenant"].append(ev.tenant)
        cols["interaction_id"].append(getattr(ev, "interaction_id", ""))
        cols["agent_id"].append(getattr(ev, "agent_id", None) or "")
        cols["ts"].append(ev.ts_ms)
        cols["source_topic"].append(topic)
        cols["source_partition"].append(partition)
        cols["source_offset"].append(offset)
        cols["payload"].append(value.decode())
    return _table(cols, RAW_EVENT_COLUMNS)


def interaction_batch(records: Iterable[dict[str, Any]]) -> pa.Table:
    """Interaction records (dicts shaped as schemas.records.InteractionRecord) → batch."""
    cols: dict[str, list[Any]] = {n: [] for n in INTERACTION_COLUMNS}
    for r in records:
        for n in INTERACTION_COLUMNS:
            v = r[_RECORD_TIME_FIELDS.get(n, n)]
            if n in ("resolved", "closed_by_timeout") and v is not None:
                v = int(v)
            cols[n].append(v)
    return _table(cols, INTERACTION_COLUMNS)


def dead_letter_batch(letters: Iterable[dict[str, Any]]) -> pa.Table:
    """Dead letters (dicts shaped as schemas.records.DeadLetter) → batch."""
    cols: dict[str, list[Any]] = {n: [] for n in DEAD_LETTER_COLUMNS}
    for d in letters:
        cols["reason"].append(d["reason"])
        cols["error"].append(d["error"])
        cols["source_topic"].append(d["source_topic"])
        cols["source_partition"].append(d["source_partition"])
        cols["source_offset"].append(d["source_offset"])
        cols["received_at"].append(d["received_at_ms"])
        cols["key"].append(d["key"])
        cols["payload"].append(base64.b64decode(d["payload_b64"]))
    return _table(cols, DEAD_LETTER_COLUMNS)
