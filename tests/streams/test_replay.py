"""Replaying files: JSONL byte for byte, the Anonymous Bank log as contract events that fold
to the waits and talk times the log recorded, and clear errors that name the line."""
from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from schemas.events import parse_event
from streams.traffic.producer import Outgoing
from streams.traffic.replay import AnonymousBankStats, ReplayError, iter_anonymous_bank, iter_jsonl
from streams.domain.state import build_record, due_record, fact_of, merge, new_state
from tests.services import SHARED, free_port, run_cli

CALLS = SHARED / "data/anonymous-bank/calls-august.csv"
HEADER = ("vru+line,call_id,customer_id,priority,type,date,vru_entry,vru_exit,vru_time,q_start,q_exit,q_time,"
          "outcome,ser_start,ser_exit,ser_time,server")


def fold_all(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records by interaction id, folded by the stream's own state machine; all must be complete."""
    states: dict[str, Any] = defaultdict(new_state)
    for e in events:
        merge(states[e["interaction_id"]], [fact_of(parse_event(json.dumps(e)))])
    out = {}
    for iid, s in states.items():
        out[iid] = build_record(iid, s)
        assert due_record(iid, s, now_ms=out[iid]["last_event_at_ms"], timeout_ms=10**12) is not None, iid
    return out


# --- JSONL ----------------------------------------------------------------------------

def test_jsonl_lines_are_sent_byte_for_byte(tmp_path: Path) -> None:
    offered = b'{"type":"offered","event_id":"i1:1","interaction_id":"i1","queue":"q"}'
    login = b'{ "type": "agent_login", "agent_id": "ann",  "event_id": "a:1" }'
    ended = b'{"type":"ended","interaction_id":"i1","note":"caf\xc3\xa9"}'
    path = tmp_path / "events.jsonl"
    path.write_bytes(offered + b"\n\n" + login + b"\r\n   \n" + ended)
    assert list(iter_jsonl(path)) == [
        Outgoing("events", b"i1", offered),
        Outgoing("agent_events", b"ann", login),
        Outgoing("events", b"i1", ended),
    ]


@pytest.mark.parametrize("line, what", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"interaction_id": "i1"}', "no string 'type'"),
    (b'{"type": 5, "interaction_id": "i1"}', "no string 'type'"),
    (b'{"type": "offered", "agent_id": "ann"}', "'interaction_id'"),
    (b'{"type": "offered", "interaction_id": ""}', "'interaction_id'"),
    (b'{"type": "agent_login", "interaction_id": "i1"}', "'agent_id'"),
])
def test_bad_jsonl_line_names_file_and_line(tmp_path: Path, line: bytes, what: str) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type":"offered","interaction_id":"i1"}\n\n' + line + b"\n")
    with pytest.raises(ReplayError) as e:
        list(iter_jsonl(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}:3: ") and what in msg and msg.endswith("; fix or remove the line")


# --- Anonymous Bank: every quirk on a small file --------------------------------------

QUIRKS = [  # real rows from the log, except the queue entered after midnight (row 9)
    "AA0104,31129,0,0,PS,2010-08-01,10:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT,10:00:30,10:02:09,99,NAAMA",
    "AA0102,38887,23500168,2,NE,2010-08-01,11:00:00,11:00:06,6,11:00:06,11:01:46,100,AGENT,11:01:45,11:03:45,120,DORIT",
    "AA0207,38887,0,0,NW,2010-08-01,12:00:00,12:00:10,10,12:00:10,12:01:40,90,HANG,0:00:00,0:00:00,0,NO_SERVER",
    "AA0204,43678,0,0,PS,2010-08-01,0:10:10,0:10:27,17,0:00:00,0:00:00,0,HANG,0:00:00,0:00:00,0,NO_SERVER",
    "AA0203,44973,38324794,1,PS,2010-08-01,10:36:34,10:36:39,5,10:36:39,10:38:58,139,PHANTOM,10:38:58,10:39:01,3,"
    "NO_SERVER",
    "AA0205,46081,33964578,1,PS,2010-08-01,13:27:13,13:27:19,6,13:27:19,13:27:19,0,HANG,0:00:00,0:00:00,0,NO_SERVER",
    "AA0208,7582,25534546,1,PS,2010-08-02,23:59:23,23:59:23,0,23:59:29,0:00:57,88,AGENT,0:00:56,0:01:15,19,GELBER",
    "AA0207,7039,17702523,1,PS,2010-08-01,12:04:42,12:03:15,-87,12:03:15,12:04:56,101,AGENT,12:04:55,12:05:56,61,VICKY",
    "AA0101,50001,0,0,IN,2010-08-31,23:59:50,0:00:04,14,0:00:04,0:00:34,30,HANG,0:00:00,0:00:00,0,NO_SERVER",
    "AA0106,44764,0,0,PS,2010-08-04,23:59:19,23:59:40,21,0:00:00,0:00:00,0,AGENT,23:59:39,0:00:13,34,BENSION",
]


def write_csv(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "calls.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_every_quirk_maps_to_the_exact_events(tmp_path: Path) -> None:
    stats = AnonymousBankStats()
    every = list(iter_anonymous_bank(write_csv(tmp_path, QUIRKS), stats))
    events = [e for e in every if not e["type"].startswith("ivr_")]  # the queue side (IVR side below)
    base = {"tenant": "anonymous-bank", "channel": "voice"}
    direct = "2010-08-01/AA0104/31129"
    assert events[:4] == [  # straight from the IVR to a free agent: offered and answered at vru_exit
        {"type": "offered", "event_id": f"{direct}:1", "ts": "2010-08-01T10:00:31.000+03:00", **base,
         "interaction_id": direct, "queue": "PS", "customer_id": None, "priority": 0},
        {"type": "answered", "event_id": f"{direct}:2", "ts": "2010-08-01T10:00:31.000+03:00", **base,
         "interaction_id": direct, "agent_id": "NAAMA"},
        {"type": "ended", "event_id": f"{direct}:3", "ts": "2010-08-01T10:02:10.000+03:00", **base,
         "interaction_id": direct, "agent_id": "NAAMA"},
        {"type": "wrapup_ended", "event_id": f"{direct}:4", "ts": "2010-08-01T10:02:10.000+03:00", **base,
         "interaction_id": direct, "agent_id": "NAAMA"},
    ]
    hang = "2010-08-01/AA0207/38887"
    assert [e for e in events if e["interaction_id"] == hang] == [
        {"type": "offered", "event_id": f"{hang}:1", "ts": "2010-08-01T12:00:10.000+03:00", **base,
         "interaction_id": hang, "queue": "NW", "customer_id": None, "priority": 0},
        {"type": "abandoned", "event_id": f"{hang}:2", "ts": "2010-08-01T12:01:40.000+03:00", **base,
         "interaction_id": hang},
    ]
    timeline = defaultdict(list)
    for e in events:
        timeline[e["interaction_id"]].append((e["type"], e["ts"][5:19]))
    assert dict(timeline) == {
        direct: [("offered", "08-01T10:00:31"), ("answered", "08-01T10:00:31"),
                 ("ended", "08-01T10:02:10"), ("wrapup_ended", "08-01T10:02:10")],
        "2010-08-01/AA0102/38887": [("offered", "08-01T11:00:06"), ("answered", "08-01T11:01:46"),
                                    ("ended", "08-01T11:03:46"), ("wrapup_ended", "08-01T11:03:46")],
        hang: [("offered", "08-01T12:00:10"), ("abandoned", "08-01T12:01:40")],
        "2010-08-01/AA0205/46081": [("offered", "08-01T13:27:19"), ("abandoned", "08-01T13:27:19")],
        "2010-08-02/AA0208/7582": [("offered", "08-02T23:59:29"), ("answered", "08-03T00:00:57"),
                                   ("ended", "08-03T00:01:16"), ("wrapup_ended", "08-03T00:01:16")],
        # left the IVR 87 s "before" entering it: clock skew, not the next day
        "2010-08-01/AA0207/7039": [("offered", "08-01T12:03:15"), ("answered", "08-01T12:04:56"),
                                   ("ended", "08-01T12:05:57"), ("wrapup_ended", "08-01T12:05:57")],
        "2010-08-31/AA0101/50001": [("offered", "09-01T00:00:04"), ("abandoned", "09-01T00:00:34")],
        "2010-08-04/AA0106/44764": [("offered", "08-04T23:59:40"), ("answered", "08-04T23:59:40"),
                                    ("ended", "08-05T00:00:14"), ("wrapup_ended", "08-05T00:00:14")],
    }
    assert all(e["ts"].endswith(".000+03:00") for e in events)
    assert stats == AnonymousBankStats(rows=10, answered=5, abandoned=3, ivr_hangups=1, phantoms=1,
                                       crossing_midnight=3)
    assert stats.summary() == ("10 rows: 5 answered, 3 abandoned in queue, 1 hung up in the IVR (IVR sessions only), "
                               "1 phantom calls skipped, 3 crossing midnight")
    # The IVR side: every call but the phantom enters and leaves it; the hang-up before any
    # queue is an IVR session of its own; ids apart from the queue events' (":ivrN").
    ivr = [e for e in every if e["type"].startswith("ivr_")]
    assert len(ivr) == 2 * 9 and all(e["event_id"].endswith((":ivr1", ":ivr2")) for e in ivr)
    assert [(e["type"], e["ts"][5:19], e.get("result")) for e in ivr if e["interaction_id"] == direct] == [
        ("ivr_entered", "08-01T10:00:21", None), ("ivr_left", "08-01T10:00:31", "to_queue")]
    only = {e["interaction_id"] for e in ivr} - {e["interaction_id"] for e in events}
    assert len(only) == 1 and [e.get("result") for e in ivr if e["interaction_id"] in only] == [None, "hung_up"]


def test_quirk_calls_fold_to_the_logged_wait_and_talk(tmp_path: Path) -> None:
    records = fold_all(list(iter_anonymous_bank(write_csv(tmp_path, QUIRKS))))
    got = {iid: (r["queue"], r["outcome"], r["wait_ms"], r["talk_ms"], r["agent_id"], r["customer_id"],
                 r["priority"]) for iid, r in records.items()}
    assert got == {
        "2010-08-01/AA0104/31129": ("PS", "answered", 0, 99_000, "NAAMA", None, 0),
        "2010-08-01/AA0102/38887": ("NE", "answered", 100_000, 120_000, "DORIT", "23500168", 2),
        "2010-08-01/AA0207/38887": ("NW", "abandoned", 90_000, 0, None, None, 0),
        "2010-08-01/AA0205/46081": ("PS", "abandoned", 0, 0, None, "33964578", 1),
        "2010-08-02/AA0208/7582": ("PS", "answered", 88_000, 19_000, "GELBER", "25534546", 1),
        "2010-08-01/AA0207/7039": ("PS", "answered", 101_000, 61_000, "VICKY", "17702523", 1),
        "2010-08-31/AA0101/50001": ("IN", "abandoned", 30_000, 0, None, None, 0),
        "2010-08-04/AA0106/44764": ("PS", "answered", 0, 34_000, "BENSION", None, 0),
        "2010-08-01/AA0204/43678": (None, "ivr", 0, 0, None, None, 0),  # hung up in the IVR
    }
    for r in records.values():
        assert (r["anomalies"], r["acw_ms"], r["hold_ms"], r["transfers"]) == ([], 0, 0, 0)
    ivr = {iid: (r["ivr_result"], r["ivr_ms"]) for iid, r in records.items()}
    assert ivr["2010-08-01/AA0204/43678"] == ("hung_up", 17_000)
    assert ivr["2010-08-01/AA0104/31129"] == ("to_queue", 10_000)
    assert ivr["2010-08-01/AA0207/7039"] == ("to_queue", 0)  # its IVR exit logged 87 s before its entry


@pytest.mark.parametrize("row, what", [
    ("AA0104,1,0,0,PS,2010-08-01,10:00:21,10:00:31,10,0:00:00,0:00:00,0,BUSY,0:00:00,0:00:00,0,X", "outcome 'BUSY'"),
    ("AA0104,1,0,0,PS,2010-08-01,10:00:21,10:00:31,10,0:00:00,0:00:00,x,AGENT,0:00:00,0:00:00,0,X", "q_time 'x'"),
    ("AA0104,1,0,0,PS,2010-08-01,25:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT,0:00:00,0:00:00,0,X", "vru_entry"),
    ("AA0104,1,0,0,PS,2010-08-32,10:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT,0:00:00,0:00:00,0,X", "date"),
    ("AA0104,1,0,0,PS,2010-08-01,10:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT", "expected 17"),
    ("AA0104,1,0,300,PS,2010-08-01,10:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT,0:00:00,0:00:00,0,X", "priority"),
    (",1,0,0,PS,2010-08-01,10:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT,0:00:00,0:00:00,0,X", "vru+line"),
    ("AA0104,1,0,0,,2010-08-01,10:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT,0:00:00,0:00:00,0,X", "queue"),
    ("AA0104,1,0,0,PS,2010-08-01,10:00:21,10:00:31,10,0:00:00,0:00:00,0,AGENT,0:00:00,0:00:00,0,", "agent_id"),
])
def test_bad_row_names_file_and_line(tmp_path: Path, row: str, what: str) -> None:
    path = write_csv(tmp_path, [QUIRKS[0], row, QUIRKS[1]])
    with pytest.raises(ReplayError) as e:
        list(iter_anonymous_bank(path))
    msg = str(e.value)
    assert msg.startswith(f"{path}:3: ") and what in msg and msg.endswith("; fix or remove the line"), msg


def test_wrong_file_is_named_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ReplayError, match=r"other\.csv:1: the header lacks vru\+line"):
        list(iter_anonymous_bank(path))


@pytest.mark.parametrize("fmt, name, content", [
    ("jsonl", "bad.jsonl", '{"type":"offered","interaction_id":"i1"}\n{"type":"offered"\n'),
    ("anonymous-bank", "bad.csv", f"{HEADER}\n{QUIRKS[0]}\n{QUIRKS[0].replace('AGENT', 'BUSY')}\n"),
])
def test_cli_reports_a_bad_line_in_one_line_and_sends_nothing(tmp_path: Path, fmt: str, name: str,
                                                              content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    env.update({"CCPULSE_STATE_DIR": str(tmp_path / "state"), "CCPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}",
                "CCPULSE_BROKER": f"kafka://127.0.0.1:{free_port()}"})  # nothing listens: nothing may be sent
    p = run_cli(env, "replay", str(path), "--format", fmt, check=False)
    line = 2 if fmt == "jsonl" else 3
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"ccpulse: {path}:{line}: ") and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


# --- Anonymous Bank: the real month ---------------------------------------------------

def recount(path: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """Per queue (offered, answered, abandoned, wait s of answered, talk s) straight from the CSV."""
    n: dict[str, Counter] = defaultdict(Counter)
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            c = n[r["type"]]
            if r["outcome"] == "AGENT":
                c["answered"] += 1
                c["wait"] += int(r["q_time"])
                c["talk"] += int(r["ser_time"])
            elif r["outcome"] == "HANG" and (int(r["q_time"]) > 0 or r["q_start"] != "0:00:00"):
                c["abandoned"] += 1
    return {q: (c["answered"] + c["abandoned"], c["answered"], c["abandoned"], c["wait"], c["talk"])
            for q, c in n.items() if c["answered"] + c["abandoned"]}


@pytest.fixture(scope="module")
def month() -> tuple[list[dict[str, Any]], AnonymousBankStats]:
    if not CALLS.exists():
        pytest.skip(f"{CALLS} is not here")
    stats = AnonymousBankStats()
    return list(iter_anonymous_bank(CALLS, stats)), stats


def test_month_ids_are_unique_where_call_ids_are_not() -> None:
    if not CALLS.exists():
        pytest.skip(f"{CALLS} is not here")
    with CALLS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len({(r["date"], r["call_id"]) for r in rows}) == len(rows) - 469
    assert len({(r["date"], r["vru+line"], r["call_id"]) for r in rows}) == len(rows) == 42_078


def test_month_events_validate_and_count(month: tuple[list[dict[str, Any]], AnonymousBankStats]) -> None:
    events, stats = month
    assert stats == AnonymousBankStats(rows=42_078, answered=31_402, abandoned=7_309, ivr_hangups=3_057,
                                       phantoms=310, crossing_midnight=40)
    assert len(events) == 4 * 31_402 + 2 * 7_309 + 2 * (42_078 - 310)  # + the IVR side of every real call
    assert len({e["event_id"] for e in events}) == len(events)
    offered = [e["interaction_id"] for e in events if e["type"] == "offered"]
    assert len(offered) == len(set(offered)) == stats.contacts
    for e in events:
        assert parse_event(json.dumps(e)).ts.utcoffset() is not None


def test_month_folds_to_the_csv_recount(month: tuple[list[dict[str, Any]], AnonymousBankStats]) -> None:
    records = fold_all(month[0])
    n: dict[str, Counter] = defaultdict(Counter)
    for r in records.values():
        if r["outcome"] == "ivr":
            continue  # hung up in the IVR (test_month_ivr_figures_match_the_csv)
        c = n[r["queue"]]
        c[r["outcome"]] += 1
        c["wait"] += r["wait_ms"] if r["outcome"] == "answered" else 0
        c["talk"] += r["talk_ms"]
        assert r["anomalies"] == [] and r["acw_ms"] == 0, r
    got = {q: (c["answered"] + c["abandoned"], c["answered"], c["abandoned"], c["wait"] / 1000, c["talk"] / 1000)
           for q, c in n.items()}
    expected = recount(CALLS)
    assert got == expected
    assert expected == {  # pinned as well: the file is read-only, a change in it is news
        "IN": (3_145, 2_188, 957, 261_352, 830_460),
        "NE": (3_228, 2_983, 245, 205_282, 708_474),
        "NW": (6_270, 3_888, 2_382, 388_192, 457_848),
        "PE": (148, 105, 43, 13_517, 31_424),
        "PS": (25_219, 21_598, 3_621, 1_440_481, 3_685_363),
        "TT": (701, 640, 61, 8_879, 76_883),
    }


def ivr_recount(path: Path) -> tuple[int, int, int, int]:
    """From the CSV's own columns: IVR sessions (every call but the phantoms), those that went
    on to a queue or an agent, those hung up in the IVR, and the seconds spent in it (a
    negative ``vru_time``, the clock-skewed rows, counts 0)."""
    sessions = to_queue = hung_up = seconds = 0
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if r["outcome"] == "PHANTOM":
                continue
            sessions += 1
            queued = int(r["q_time"]) > 0 or r["q_start"] != "0:00:00"
            if r["outcome"] == "HANG" and not queued:
                hung_up += 1
            else:
                to_queue += 1
            seconds += max(0, int(r["vru_time"].lstrip("-")) * (-1 if r["vru_time"].startswith("-") else 1))
    return sessions, to_queue, hung_up, seconds


def test_month_ivr_figures_match_the_csv(month: tuple[list[dict[str, Any]], AnonymousBankStats]) -> None:
    records = fold_all(month[0]).values()
    got = (sum(r["ivr_entered_at_ms"] is not None for r in records),
           sum(r["ivr_result"] == "to_queue" for r in records),
           sum(r["ivr_result"] == "hung_up" and r["outcome"] == "ivr" for r in records),
           sum(r["ivr_ms"] for r in records) // 1000)
    assert got == ivr_recount(CALLS) == (41_768, 38_711, 3_057, got[3])
    assert all(r["ivr_ms"] % 1000 == 0 for r in records)
