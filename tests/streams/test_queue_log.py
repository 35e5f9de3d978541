"""Asterisk's queue_log verbs as events (streams/connectors/queue_log.py) and the file follower
(streams/connectors/follow.py): each documented verb, the stable ids, bad lines, and a file that
grows, rotates and is cut short."""
from __future__ import annotations

import os
from pathlib import Path

from streams.connectors.follow import LineFollower
from streams.connectors.queue_log import Mapped, Rejected, map_line
from streams.domain.state import build_record, fact_of, merge, new_state
from schemas.events import parse_event
import json

LOG = Path(__file__).resolve().parents[1] / "data" / "asterisk" / "queue_log"


def fold_file() -> tuple[dict[str, dict], list[Rejected], int]:
    calls: dict[str, list[dict]] = {}
    bad, skipped = [], 0
    for line in LOG.read_text().splitlines():
        out = map_line(line, "pbx")
        if isinstance(out, Rejected):
            bad.append(out)
            continue
        skipped += out.skipped
        for e in out.events:
            if "interaction_id" in e:
                calls.setdefault(e["interaction_id"], []).append(e)
    records = {}
    for iid, events in calls.items():
        s = new_state()
        merge(s, [fact_of(parse_event(json.dumps(e))) for e in events])
        records[iid] = build_record(iid, s)
    return records, bad, skipped


def test_the_documented_calls_fold_to_their_waits_and_talk() -> None:
    records, bad, skipped = fold_file()
    got = {iid: (r["outcome"], r["wait_ms"], r["talk_ms"], r["agent_id"], r["transfers"], r["transfer_reasons"])
           for iid, r in records.items()}
    assert got == {
        "1767261605.1": ("answered", 12_000, 120_000, "SIP/1001", 0, []),
        "1767261610.3": ("abandoned", 30_000, 0, None, 0, []),
        "1767261620.4": ("answered", 10_000, 60_000, "2001", 1, ["transfer"]),
        "1767261760.6": ("abandoned", 60_000, 0, None, 0, []),
        "1767262100.7": ("answered", 5_000, 60_000, "SIP/1001", 0, []),
    }
    assert all(not r["closed_by_timeout"] and r["anomalies"] == [] for r in records.values())
    assert records["1767261605.1"]["customer_id"] == "5551234"
    assert sorted(b.reason for b in bad) == ["garbled_line", "unknown_verb"] and skipped == 2


def test_agent_verbs_and_stable_ids() -> None:
    add = map_line("1767261600|NONE|support|SIP/1002|ADDMEMBER|", "pbx")
    assert isinstance(add, Mapped) and [e["type"] for e in add.events] == ["agent_login", "agent_ready"]
    assert add.events[0]["queues"] == ["support"]
    pause = map_line("1767261700|NONE|support|SIP/1002|PAUSE|lunch", "pbx")
    assert isinstance(pause, Mapped) and pause.events[0]["reason"] == "lunch"
    again = map_line("1767261700|NONE|support|SIP/1002|PAUSE|lunch", "pbx")
    assert isinstance(again, Mapped) and again.events[0]["event_id"] == pause.events[0]["event_id"]
    assert isinstance(map_line("1767261700|x|q|NONE|CONNECT|1|2|3", "pbx"), Rejected)      # no agent
    assert map_line("soon|x|q|a|CONNECT|1", "pbx") == Rejected("garbled_line", "time 'soon' is not epoch seconds")


def test_the_follower_survives_partial_lines_rotation_truncation_and_restarts(tmp_path: Path) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos.json"
    log.write_bytes(b"a\nb\nhalf")
    f = LineFollower(log, state)
    lines, pos = f.read()
    assert [x for _, x in lines] == ["a", "b"] and pos.offset == 4  # the half line waits
    f.commit(pos)
    with open(log, "ab") as fh:
        fh.write(b" done\nc\n")
    lines, pos = f.read()
    assert [x for _, x in lines] == ["half done", "c"]
    f.commit(pos)
    f.close()
    # A restart resumes after the last committed line.
    with open(log, "ab") as fh:
        fh.write(b"d\n")
    g = LineFollower(log, state)
    assert [x for _, x in g.read()[0]] == ["d"]
    # logrotate: the file is renamed, a new one takes its name; the old one's tail comes first.
    with open(log, "ab") as fh:
        fh.write(b"e\n")
    os.rename(log, tmp_path / "queue_log.1")
    log.write_bytes(b"f\n")
    lines, pos = g.read()
    assert [x for _, x in lines] == ["e"]
    g.commit(pos)
    lines, pos = g.read()
    assert [x for _, x in lines] == ["f"]
    g.commit(pos)
    # copytruncate: cut short in place, read again from the start.
    log.write_bytes(b"")
    g.read()
    with open(log, "ab") as fh:
        fh.write(b"g\n")
    assert [x for _, x in g.read()[0]] == ["g"]
    g.close()


def test_a_restart_after_a_rotation_finishes_the_rotated_file_first(tmp_path: Path) -> None:
    log, state = tmp_path / "queue_log", tmp_path / "pos.json"
    log.write_bytes(b"a\n")
    f = LineFollower(log, state)
    lines, pos = f.read()
    f.commit(pos)
    f.close()
    with open(log, "ab") as fh:
        fh.write(b"b\n")  # written, then rotated while the connector was stopped
    os.rename(log, tmp_path / "queue_log.1")
    log.write_bytes(b"c\n")
    g = LineFollower(log, state)
    first, pos = g.read()
    g.commit(pos)
    second, pos = g.read()
    assert [x for _, x in first] == ["b"] and [x for _, x in second] == ["c"]
