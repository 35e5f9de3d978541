"""Running a connector: lines from a follower, events to the raw topics, bad lines to the dead
letters, the position stored once the broker has acknowledged a batch, and a status file for
``ccpulse connect status``."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from streams.config.settings import Settings
from streams.connectors.follow import LineFollower
from streams.connectors.queue_log import Mapped, Rejected, dead_letter

log = logging.getLogger("ccpulse.connect")


@dataclass
class Status:
    connector: str
    source: str
    lines: int = 0
    events: int = 0
    skipped: int = 0
    dead_letters: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    offset: int = 0
    last_line_at: float | None = None
    updated_at: float = 0.0


def status_dir(s: Settings) -> Path:
    return s.state_dir / "connectors"


def run_lines(s: Settings, name: str, path: Path, mapper: Callable[[str], Mapped | Rejected], *, follow: bool,
              from_start: bool = False, poll_s: float = 0.5, batch: int = 5000,
              stop: Callable[[], bool] = lambda: False) -> Status:
    """Send the file's events; ``from_start`` reads it all again (a replay: the event ids are the
    same, so nothing is counted twice), else it goes on from the stored position."""
    key = f"{name}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"  # stable across restarts
    position_file = status_dir(s) / f"{key}.position.json"
    if from_start:
        position_file.unlink(missing_ok=True)
    follower = LineFollower(path, position_file)
    status_file = status_dir(s) / f"{key}.status.json"
    st = _load_status(status_file) or Status(name, str(path))  # counts add up across runs
    producer = _producer(s, name)
    try:
        while not stop():
            lines, pos = follower.read(batch)
            for offset, line in lines:
                _send(producer, s, st, mapper(line), f"{name}:{offset}",
                      lambda rej: _dead_letter(rej, name, path, offset, line))
            if lines:
                producer.flush()  # acks=all: every event of the batch is on the broker
                follower.commit(pos)
                st.offset, st.last_line_at = pos.offset, time.time()
                _write_status(status_file, st)
                continue
            _write_status(status_file, st)
            if not follow:
                break
            time.sleep(poll_s)
    finally:
        producer.flush()
        producer.close()
        follower.close()
    return st


def _producer(s: Settings, name: str) -> Any:
    """A producer whose flush returns once the broker has every message (acks=all)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=20,
                             client_id=f"ccpulse-connect-{name}")
    except KafkaError as e:
        raise ConnectionError(f"cannot reach Kafka at {s.broker} ({e}): start it (`ccpulse dev up`) "
                              "or fix CCPULSE_BROKER") from None


def _send(producer: Any, s: Settings, st: Status, out: Mapped | Rejected, key: str,
          letter: Callable[[Rejected], dict[str, Any]]) -> None:
    """One record's events to their raw topics, or its dead letter; counted in ``st``."""
    st.lines += 1
    if isinstance(out, Rejected):
        producer.send(s.topic_dead_letters, key=key.encode(), value=json.dumps(letter(out)).encode())
        st.dead_letters += 1
        st.by_reason[out.reason] = st.by_reason.get(out.reason, 0) + 1
        return
    st.skipped += out.skipped
    for e in out.events:
        agent = e["type"].startswith("agent_")
        producer.send(s.topic_agent_events if agent else s.topic_events,
                      key=(e["agent_id"] if agent else e["interaction_id"]).encode(),
                      value=json.dumps(e, separators=(",", ":")).encode())
        st.events += 1


def _dead_letter(rej: Rejected, name: str, path: Path, offset: int, line: str) -> dict[str, Any]:
    return dead_letter(rej, f"{name} {path}: {rej.error}", f"{name}:{path.name}", offset,
                       line.encode("utf-8", "surrogateescape"))


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _write_status(path: Path, st: Status) -> None:
    st.updated_at = time.time()
    _write_json(path, asdict(st))


def _load_status(path: Path) -> Status | None:
    try:
        return Status(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def read_statuses(s: Settings) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(status_dir(s).glob("*.status.json"))]


def run_ctr_dir(s: Settings, directory: Path, tenant: str, *, follow: bool, from_start: bool = False,
                poll_s: float = 2.0, stop: Callable[[], bool] = lambda: False) -> Status:
    """Every contact record file in ``directory`` (new files, and files that grew, are read; the
    ids make a file read twice a no-op), bad records to the dead letters."""
    from streams.connectors.amazon_connect import map_ctr, records_of

    key = f"amazon-connect-{hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:10]}"
    seen_file = status_dir(s) / f"{key}.files.json"
    status_file = status_dir(s) / f"{key}.status.json"
    if from_start:
        seen_file.unlink(missing_ok=True)
    try:
        seen: dict[str, int] = json.loads(seen_file.read_text())
    except (OSError, ValueError):
        seen = {}
    st = _load_status(status_file) or Status("amazon-connect", str(directory))
    producer = _producer(s, "amazon-connect")
    try:
        while not stop():
            files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
            todo = [p for p in files if seen.get(p.name) != p.stat().st_size]
            for path in todo:
                size = path.stat().st_size
                for i, rec in enumerate(records_of(path.read_text(errors="replace"))):
                    out = map_ctr(rec, tenant) if not isinstance(rec, str) else Rejected("garbled_line", "not JSON")
                    _send(producer, s, st, out, f"amazon-connect:{path.name}:{i}",
                          lambda rej: _dead_letter(rej, "amazon-connect", path, i, json.dumps(rec)[:65536]))
                producer.flush()
                seen[path.name] = size
                _write_json(seen_file, seen)
                st.offset, st.last_line_at = len(seen), time.time()
            _write_status(status_file, st)
            if not follow:
                break
            time.sleep(poll_s)
    finally:
        producer.flush()
        producer.close()
    return st
