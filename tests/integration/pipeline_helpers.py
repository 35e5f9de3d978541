"""Reading the pipeline's results back and comparing them with ground truth."""
from __future__ import annotations

import os
from typing import Any, Iterable

from streams.traffic.producer import Outgoing, from_event, produce
from streams.config.settings import load_settings
from tests.services import Worker, wait_for

TIME_FIELDS = ["offered_at", "answered_at", "abandoned_at", "ended_at", "wrapup_ended_at",
               "first_response_at", "last_event_at", "csat_at"]
PLAIN_FIELDS = ["interaction_id", "tenant", "channel", "queue", "first_queue", "queues", "customer_id", "priority",
                "agent_id", "first_agent_id", "wait_ms", "talk_ms", "hold_ms", "acw_ms", "holds", "transfers",
                "outcome", "disposition", "resolved", "csat", "closed_by_timeout", "anomalies", "n_events"]


def settings_for(env: dict[str, str]) -> Any:
    saved = dict(os.environ)
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("CCPULSE_")})
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def send(env: dict[str, str], messages: Iterable[Outgoing]) -> int:
    msgs = list(messages)
    return produce(settings_for(env), msgs, total=len(msgs), progress=False)


def event_messages(events: Iterable[dict[str, Any]]) -> list[Outgoing]:
    return [from_event(e) for e in events]


def stored_records(worker: Worker, legacy: bool = False) -> dict[str, dict[str, Any]]:
    """interactions FINAL, shaped like truth records (times in epoch ms)."""
    db = "ccpulse"
    to_ms = (lambda c: f"toUInt64(toUnixTimestamp({c})) * 1000") if legacy else \
        (lambda c: f"toUnixTimestamp64Milli({c})")
    cols = PLAIN_FIELDS + [f"{to_ms(c)}" for c in TIME_FIELDS]
    rows = worker.query(f"SELECT {', '.join(cols)} FROM {db}.interactions FINAL")
    out = {}
    for r in rows:
        rec = dict(zip(PLAIN_FIELDS, r[:len(PLAIN_FIELDS)]))
        rec.update({f"{c}_ms": v for c, v in zip(TIME_FIELDS, r[len(PLAIN_FIELDS):])})
        rec["resolved"] = None if rec["resolved"] is None else bool(rec["resolved"])
        rec["closed_by_timeout"] = bool(rec["closed_by_timeout"])
        out[rec["interaction_id"]] = rec
    return out


def expected_records(truth: dict[str, dict[str, Any]], legacy: bool = False) -> dict[str, dict[str, Any]]:
    keys = PLAIN_FIELDS + [f"{c}_ms" for c in TIME_FIELDS]
    out = {}
    for iid, t in truth.items():
        rec = {k: t[k] for k in keys}
        if legacy:  # DateTime on the 2018 server keeps seconds; durations stay exact in *_ms columns
            rec.update({f"{c}_ms": None if t[f"{c}_ms"] is None else t[f"{c}_ms"] // 1000 * 1000
                        for c in TIME_FIELDS})
        out[iid] = rec
    return out


def diff(expected: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]], limit: int = 5) -> str:
    """A short account of how two record sets differ ('' when equal)."""
    lines = []
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing:
        lines.append(f"{len(missing)} missing, e.g. {missing[:limit]}")
    if extra:
        lines.append(f"{len(extra)} unexpected, e.g. {extra[:limit]}")
    wrong = [i for i in expected if i in got and expected[i] != got[i]]
    if wrong:
        lines.append(f"{len(wrong)} differ")
        for i in wrong[:limit]:
            fields = {k: (expected[i][k], got[i].get(k)) for k in expected[i] if expected[i][k] != got[i].get(k)}
            lines.append(f"  {i}: {fields}")
    return "\n".join(lines)


def wait_for_truth(worker: Worker, expected: dict[str, dict[str, Any]], timeout: float = 240,
                   legacy: bool = False) -> dict[str, dict[str, Any]]:
    """Poll until ClickHouse holds exactly the expected records; fail with the difference."""
    last: dict[str, dict[str, Any]] = {}

    def done() -> bool:
        nonlocal last
        last = stored_records(worker, legacy)
        return last == expected

    try:
        wait_for(done, timeout, "ClickHouse to hold the ground truth", interval=1.0)
    except TimeoutError:
        raise AssertionError("stored records differ from ground truth:\n" + diff(expected, last)) from None
    return last
