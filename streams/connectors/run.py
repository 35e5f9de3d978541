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
from typing import Any, Callable, Iterator

from streams.config.settings import Settings
from streams.connectors.follow import MAX_LINE, LineFollower
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
                out = safe_map(mapper, line) if line is not None else \
                    Rejected("line_too_long", f"a line longer than {MAX_LINE:,} bytes (skipped to its end)")
                _send(producer, s, st, out, f"{name}:{offset}",
                      lambda rej: _dead_letter(rej, name, path, offset, line or ""))
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


def safe_map(mapper: Callable[[Any], Mapped | Rejected], record: Any) -> Mapped | Rejected:
    """What a mapper makes of one record, or a dead letter when it fails on an input it did not
    foresee: one bad record never stops a connector, nor does it stop at the same place on every
    restart (its position moves past it with its batch)."""
    try:
        return mapper(record)
    except Exception as e:  # noqa: BLE001 -- any input a mapper did not foresee
        return Rejected("unmappable", f"{type(e).__name__}: {str(e)[:300]}")


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


def _ctr_records(path: Path, directory: Path, tenant: str, map_ctr: Callable[..., Any],
                 iter_records: Callable[[Callable[[int], str]], Iterator[Any]]
                 ) -> Iterator[tuple[int, Mapped | Rejected, str]]:
    """(index, what it maps to, its text) of each record of a contact-record file, read a chunk
    at a time (any size; amazon_connect.iter_records); a link that leaves the folder is one
    dead letter, and so is each stretch of text that is no record."""
    from streams.connectors.amazon_connect import Unreadable

    if not path.resolve().is_relative_to(directory.resolve()):
        yield 0, Rejected("outside_folder", "a link to a file outside the connector's folder: not read"), ""
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, rec in enumerate(iter_records(f.read)):
            if isinstance(rec, Unreadable):
                yield i, Rejected("garbled_line", rec.reason), rec.excerpt
                continue
            mapped = safe_map(lambda r: map_ctr(r, tenant), rec)
            try:
                raw = json.dumps(rec)[:65536]
            except (ValueError, RecursionError):
                raw = str(rec)[:65536]
            yield i, mapped, raw


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


def _failure_file(s: Settings, source: str) -> Path:
    return status_dir(s) / f"failing-{hashlib.sha1(source.encode()).hexdigest()[:10]}.status.json"


def clear_failure(s: Settings, source: str) -> None:
    """The source works again: its last failure is no longer news."""
    _failure_file(s, source).unlink(missing_ok=True)


def note_failure(s: Settings, source: str, error: str, failures: int, retry_in_s: float) -> None:
    """A source of ``connect run`` that failed and will be retried, for ``connect status``."""
    _write_json(_failure_file(s, source),
                {"connector": source.split(" ", 1)[0], "source": source, "error": f"{error[:300]} "
                 f"(failure {failures}, next try in {retry_in_s:.0f} s)", "updated_at": time.time()})


def run_ctr_dir(s: Settings, directory: Path, tenant: str, *, follow: bool, from_start: bool = False,
                poll_s: float = 2.0, stop: Callable[[], bool] = lambda: False) -> Status:
    """Every contact record file in ``directory`` (new files, and files that grew, are read; the
    ids make a file read twice a no-op), bad records to the dead letters."""
    from streams.connectors.amazon_connect import iter_records, map_ctr

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
            files = sorted(p for p in directory.iterdir() if not p.name.startswith(".") and p.is_file())
            todo = [p for p in files if seen.get(p.name) != p.stat().st_size]
            for path in todo:
                size = path.stat().st_size
                for i, out, raw in _ctr_records(path, directory, tenant, map_ctr, iter_records):
                    _send(producer, s, st, out, f"amazon-connect:{path.name}:{i}",
                          lambda rej: _dead_letter(rej, "amazon-connect", path, i, raw))
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
