"""Amazon Connect contact trace records (tests/data/amazon-connect, field names as documented) as
events, folded: each contact's record as its README works it out by hand."""
from __future__ import annotations

import io
import json
from pathlib import Path

from schemas.events import parse_event
from streams.connectors.amazon_connect import Unreadable, iter_records, map_ctr, records_of
from streams.connectors.queue_log import Mapped, Rejected
from streams.domain.state import build_record, fact_of, merge, new_state

DATA = Path(__file__).resolve().parents[1] / "data" / "amazon-connect"
EXPECTED = {  # (direction, outcome, wait, talk, hold, acw, transfers)
    "a1e0-inbound": ("inbound", "answered", 25_000, 260_000, 40_000, 35_000, 0),
    "b2f1-abandoned": ("inbound", "abandoned", 45_000, 0, 0, 0, 0),
    "c3a2-outbound": ("outbound", "answered", 0, 120_000, 0, 30_000, 0),
    "d4b3-callback": ("callback", "answered", 10_000, 300_000, 0, 20_000, 0),
    "e5c4-transferred": ("inbound", "answered", 5_000, 120_000, 0, 0, 1),
}


def folded() -> tuple[dict[str, dict], list[Rejected], int]:
    records, bad, skipped = {}, [], 0
    for f in sorted(DATA.glob("*.json*")):
        for rec in records_of(f.read_text()):
            out = map_ctr(rec, "aws")
            if isinstance(out, Rejected):
                bad.append(out)
                continue
            skipped += out.skipped
            if out.events:
                s = new_state()
                merge(s, [fact_of(parse_event(json.dumps(e))) for e in out.events])
                iid = out.events[0]["interaction_id"]
                records[iid] = build_record(iid, s)
    return records, bad, skipped


def test_each_documented_contact_folds_to_its_figures() -> None:
    records, bad, skipped = folded()
    got = {iid: (r["direction"], r["outcome"], r["wait_ms"], r["talk_ms"], r["hold_ms"], r["acw_ms"], r["transfers"])
           for iid, r in records.items()}
    assert got == EXPECTED
    assert all(r["anomalies"] == [] and not r["closed_by_timeout"] for r in records.values())
    assert records["a1e0-inbound"]["recording"] == "connect-bucket/CallRecordings/2026/03/02/a1e0-inbound.wav"
    assert records["a1e0-inbound"]["customer_id"] == "+4420795001" and records["c3a2-outbound"]["campaign"] == "Renewals"
    assert [b.reason for b in bad] == ["missing_field"] and skipped == 1


def test_records_back_to_back_one_per_line_or_a_list_all_read() -> None:
    assert len(records_of('{"a": 1}{"b": 2}\n{"c": 3}')) == 3
    assert records_of('[{"a": 1}, {"b": 2}]') == [{"a": 1}, {"b": 2}]
    assert records_of('{"a": 1} {broken') == [{"a": 1}, Unreadable("not JSON", "{broken")]
    # Read a chunk at a time: any file size in bounded memory, the same records at every cut.
    lines = "".join(json.dumps({"ContactId": f"c{i}", "n": i * 1.5, "s": "é" * (i % 7)}) + "\n" * (i % 2)
                    for i in range(60))
    for chunk in (1, 2, 3, 17, 64, 4096):
        assert list(iter_records(io.StringIO(lines).read, chunk=chunk)) == records_of(lines), chunk
    # A garbled line, a record past the size limit and one nested too deep: each one dead
    # letter, and the records after them are still read.
    text = '{"a": 1}\nnot json at all\n{"big": "' + "x" * 5000 + '"}\n' + "[" * 100_000 + '\n{"b": 2}\n'
    got = list(iter_records(io.StringIO(text).read, max_record=1000, chunk=256))
    assert [r.reason if isinstance(r, Unreadable) else r for r in got] == [
        {"a": 1}, "not JSON", "no complete JSON value in 1,000 characters", "JSON nested too deep", {"b": 2}]
    again = map_ctr(records_of((DATA / "export-2026-03-02.jsonl").read_text())[0], "aws")
    assert isinstance(again, Mapped) and again.events[0]["event_id"] == "ctr-d4b3-callback-offered"  # stable ids
