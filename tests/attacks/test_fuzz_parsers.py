"""Every parser of outside input, fuzzed (issue 24): queue_log lines, contact trace records,
Twilio callback forms, intake events, the line follower and the centre file.

The property: each input is mapped, refused with a clear reason (``Rejected``,
``ConfigError``), or dead-lettered; nothing raises out of the parser, and nothing counts
twice (the same input maps to the same event ids). A fixed budget of examples keeps CI's
time bounded; what hypothesis once found is kept below as explicit examples.
"""
from __future__ import annotations

import io

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams.config.centre import ConfigError, load_centre
from streams.connectors.amazon_connect import Unreadable, iter_records, map_ctr, records_of
from streams.connectors.follow import MAX_LINE, LineFollower
from streams.connectors.queue_log import Mapped, Rejected, map_line
from streams.connectors.twilio import map_callback
from streams.domain.validate import Rejected as EventRejected
from streams.domain.validate import validate

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VERBS = ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT", "COMPLETECALLER", "ABANDON", "EXITWITHTIMEOUT", "TRANSFER",
         "BLINDTRANSFER", "ATTENDEDTRANSFER", "ADDMEMBER", "REMOVEMEMBER", "PAUSE", "UNPAUSE", "RINGNOANSWER", "X"]
texts = st.text(max_size=40)
stamps = st.one_of(st.integers(min_value=-10**21, max_value=10**21).map(str), texts,
                   st.floats(allow_nan=True).map(str))
json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | texts,
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(texts, c, max_size=4), max_leaves=20)


def _ids(out: Mapped | Rejected) -> list[str]:
    return [e["event_id"] for e in out.events] if isinstance(out, Mapped) else []


@FUZZ
@given(stamp=stamps, callid=texts, queue=texts, agent=texts, verb=st.sampled_from(VERBS) | texts,
       data=st.lists(texts, max_size=4))
@example(stamp=str(10 ** 12), callid="c", queue="q", agent="a", verb="CONNECT", data=["1"])   # ValueError
@example(stamp=str(10 ** 20), callid="c", queue="q", agent="a", verb="CONNECT", data=["1"])   # OverflowError
def test_queue_log_lines(stamp: str, callid: str, queue: str, agent: str, verb: str, data: list[str]) -> None:
    line = "|".join([stamp, callid, queue, agent, verb, *data])
    out = map_line(line, "pbx")
    assert isinstance(out, (Mapped, Rejected))
    assert _ids(map_line(line, "pbx")) == _ids(out)  # read again: the same ids, counted once


ctr_times = st.one_of(st.none(), texts, st.integers(), st.sampled_from(
    ["2026-03-02T09:00:00Z", "2026-03-02T09:00:05", "2026-03-02T09:01:00+00:00", "9999-12-31T23:59:59Z"]))
ctrs = st.fixed_dictionaries({
    "ContactId": st.one_of(texts, st.integers(), st.lists(st.integers(), max_size=2)),
    "Channel": st.one_of(texts, st.sampled_from(["VOICE", "CHAT"])),
    "InitiationMethod": st.one_of(texts, st.sampled_from(["INBOUND", "OUTBOUND", "CALLBACK"])),
    "InitiationTimestamp": ctr_times, "DisconnectTimestamp": ctr_times,
    "Queue": st.one_of(texts, st.fixed_dictionaries({"Name": texts, "EnqueueTimestamp": ctr_times,
                                                     "DequeueTimestamp": ctr_times})),
    "Agent": st.one_of(st.lists(texts, max_size=2), st.fixed_dictionaries({
        "Username": texts, "ConnectedToAgentTimestamp": ctr_times, "AfterContactWorkStartTimestamp": ctr_times,
        "AfterContactWorkEndTimestamp": ctr_times,
        "CustomerHoldDuration": st.one_of(st.floats(allow_nan=True, allow_infinity=True), texts, st.integers())})),
    "CustomerEndpoint": st.one_of(texts, st.fixed_dictionaries({"Address": json_values})),
})


@FUZZ
@given(ctr=st.one_of(ctrs, json_values))
@example(ctr={"ContactId": "c", "Queue": "support"})
@example(ctr={"ContactId": "c", "Agent": ["x"]})
@example(ctr={"ContactId": "c", "Queue": {"EnqueueTimestamp": "2026-03-02T09:00:00Z"},
              "Agent": {"ConnectedToAgentTimestamp": "2026-03-02T09:00:05", "CustomerHoldDuration": 1e309}})
def test_contact_trace_records(ctr: Any) -> None:
    out = map_ctr(ctr, "aws")
    assert isinstance(out, (Mapped, Rejected))
    assert _ids(map_ctr(ctr, "aws")) == _ids(out)


@FUZZ
@given(text=st.text(max_size=200))
@example(text="[" * 100_000)
def test_contact_record_files(text: str) -> None:
    records = records_of(text)  # nothing raises: what is no JSON value is an Unreadable stretch
    assert all(isinstance(r, (Unreadable, str, dict, list, int, float, bool)) or r is None for r in records)
    # Read a few characters at a time, the same records and refusals (the excerpt of a refused
    # stretch is what had been read of it: it may be longer).
    def seen(rs: list) -> list:
        return [r.reason if isinstance(r, Unreadable) else r for r in rs]

    for chunk in (1, 7):
        assert seen(list(iter_records(io.StringIO(text).read, chunk=chunk))) == seen(records), chunk


forms = st.dictionaries(st.sampled_from(["EventType", "Sid", "Timestamp", "TaskSid", "TaskQueueName", "WorkerName",
                                         "WorkerActivityName", "TaskAttributes", "TaskChannelUniqueName"]),
                        st.one_of(texts, stamps, st.sampled_from(["task.created", "reservation.accepted", "[1]",
                                                                  "worker.activity.update", "{}"])))


@FUZZ
@given(form=forms)
@example(form={"EventType": "task.created", "Sid": "EV1", "Timestamp": str(10 ** 20), "TaskSid": "T",
               "TaskQueueName": "q"})
@example(form={"EventType": "task.created", "Sid": "EV1", "Timestamp": "1767261600", "TaskSid": "T",
               "TaskQueueName": "q", "TaskAttributes": "[1]"})
@example(form={"EventType": "task.created", "Sid": "EV1", "Timestamp": "1767261600", "TaskSid": "T",
               "TaskQueueName": "q", "TaskAttributes": "[" * 10_000 + "]" * 10_000})
def test_twilio_callback_forms(form: dict[str, str]) -> None:
    out = map_callback(form, "flex")
    assert isinstance(out, (Mapped, Rejected))
    assert _ids(map_callback(form, "flex")) == _ids(out)


@FUZZ
@given(value=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())),
       key=st.one_of(st.none(), st.binary(max_size=20)), kind=st.sampled_from(["events", "agent_events"]))
@example(value=b"[" * 100_000, key=b"k", kind="events")
def test_intake_and_worker_events(value: bytes, key: bytes | None, kind: str) -> None:
    out = validate(value, key, kind, int(time.time() * 1000))  # type: ignore[arg-type]
    assert isinstance(out, EventRejected) or getattr(out, "tenant", None) is not None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.binary(max_size=300), max_size=8))
def test_the_line_follower_never_sticks_on_a_line(tmp_path: Path, chunks: list[bytes]) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos.json"
    state.unlink(missing_ok=True)
    data = b"".join(chunks)
    log.write_bytes(data)
    f = LineFollower(log, state)
    got: list[Any] = []
    for _ in range(len(data) + 2):
        lines, pos = f.read(3)
        if not lines:
            break
        got += [x for _, x in lines]
        f.commit(pos)
    f.close()
    assert len(got) == data.count(b"\n")  # every whole line once, the unfinished tail waits


def test_an_over_long_line_is_skipped_once_in_bounded_reads(tmp_path: Path) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos.json"
    log.write_bytes(b"a\n" + b"x" * (3 * MAX_LINE))
    f = LineFollower(log, state)
    lines, pos = f.read()
    assert [x for _, x in lines] == ["a"]
    f.commit(pos)
    assert f.read()[0] == []  # no newline yet: nothing, and the 3 MB are not read whole again
    with open(log, "ab") as fh:
        fh.write(b"tail\nb\n")
    lines, pos = f.read()
    assert [x for _, x in lines] == [None, "b"]


@FUZZ
@given(doc=st.one_of(texts, json_values.map(json.dumps), st.dictionaries(
    st.sampled_from(["queues", "windows", "tenants", "teams", "connectors", "alerts", "outbound"]), json_values,
    max_size=3).map(json.dumps)))
def test_the_centre_file(tmp_path_factory: pytest.TempPathFactory, doc: str) -> None:
    p = tmp_path_factory.mktemp("centre") / "centre.yaml"
    p.write_text(doc)
    try:
        load_centre(p)
    except ConfigError as e:
        assert str(e)
