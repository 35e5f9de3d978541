"""The faust app: topics, the interaction state table, agents, timers and the web endpoint.

Data flows one way: raw events → validation → state table (pure fold in streams.domain.state)
→ interaction records topic → ClickHouse; each state change → KPI aggregates of its
partition (streams.domain.windows, derived from the states) → interval and live KPI tables;
rejected messages → dead-letter topic → ClickHouse. Every ClickHouse write is awaited inside the agent before faust acks the
batch, so offsets are committed only after their rows are stored (at-least-once), and
the ReplacingMergeTree keys of sql/ make redelivered rows collapse (exact figures).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, MutableMapping, NoReturn, Sequence

import faust
import orjson
from faust.types import TP

from schemas.events import Event
from streams.domain import agents as ag
from streams.domain import alerts as al
from streams.domain import kpi
from streams.worker import verify
from streams.domain import state as sm
from streams.config.centre import ConfigError, load_centre
from streams.clickhouse.connect import connect
from streams.domain.clock import Clock, clock_key
from streams.domain.keys import ident_of, partition_of, split_key, state_key
from streams.worker.webauth import ensure_token
from streams.worker.web import register_pages, task_dump
from streams.worker.figures import FigureChecker
from streams.kafka import batches, internals
from streams.kafka.gaps import GapFiller
from streams.kafka.watchdog import ConsumerWatchdog
from streams.kafka.inbox import Inbox, Record
from streams.kafka.inbox import ack as ack_batch
from streams.kafka.inbox import track as track_batch
from streams.kafka.inbox import install as use_inboxes
from streams.domain.windows import INTERVAL_MS, PartitionKpis, entry_of
from streams.kafka.sends import PartitionBatches
from streams.config.settings import Settings
from streams.clickhouse import rows
from streams.clickhouse.writer import BatchWriter
from streams.worker.topics import AGENT_TABLE, ALERT_TABLE, INTERACTION_TABLE
from streams.domain.validate import MAX_MESSAGE_BYTES, Rejected, TopicKind, validate

log = logging.getLogger("ccpulse.worker")



@dataclass
class Counters:
    events: int = 0
    dead_letters: int = 0
    records_emitted: int = 0
    timed_out: int = 0
    expired: int = 0
    late_updates: int = 0
    alerts: int = 0
    first_event_at: float | None = None


@dataclass
class Limits:
    """What the input caps (Settings.max_*) see: open contacts now, and when each was last logged."""

    open_contacts: int = 0
    contacts_held: int = 0
    warned: dict[str, float] = field(default_factory=dict)


def _dead_letter(rej: Rejected, m: Record) -> dict[str, Any]:
    value = m.value if isinstance(m.value, bytes) else (m.value or b"")
    error = rej.error[:2000]
    if len(value) > MAX_MESSAGE_BYTES:
        # The dead letter must fit the broker's message limit (1 MB by default), or its send
        # fails and the worker stops on the same batch for ever: keep the head and a hash.
        error += (f" [payload truncated to its first {MAX_MESSAGE_BYTES:,} of {len(value):,} bytes; "
                  f"sha256 of the whole {hashlib.sha256(value).hexdigest()}]")
        value = value[:MAX_MESSAGE_BYTES]
    return {
        "reason": rej.reason, "error": error, "source_topic": m.topic,
        "source_partition": m.partition, "source_offset": m.offset,
        "received_at_ms": int(time.time() * 1000),
        "key": m.key.decode("utf-8", "replace") if isinstance(m.key, bytes) else None,
        "payload_b64": base64.b64encode(value).decode(),
    }


def _notifiers(s: Settings, on_dead: Any = None) -> list[Any]:
    """Where alerts go besides the alerts topic and table: the log, a webhook, Slack."""
    from streams.worker.notify import LogNotifier, Notifier

    def dead(n: Any, reason: str) -> None:
        log.error("alert %s (%s) not delivered: %s", n.alert_id, n.status, reason)
        if on_dead is not None:
            on_dead(n, reason)

    out: list[Any] = [LogNotifier(on_dead=dead)]
    if s.alert_webhook_url:
        secret = s.alert_webhook_secret.get_secret_value() if s.alert_webhook_secret else None
        out.append(Notifier(s.alert_webhook_url, "webhook", secret, on_dead=dead))
    if s.alert_slack_url:
        out.append(Notifier(s.alert_slack_url, "slack", on_dead=dead))
    return out


def _notification(n: dict[str, Any]) -> Any:
    from streams.worker.notify import Notification

    return Notification(**{k: v for k, v in n.items() if k != "renotify"})


def states(table: Any) -> MutableMapping[bytes, Any]:
    """A table's own dict with the memory store: ``get`` through faust's store wrapper
    raises and catches a KeyError for every new key, on the hot path. Other stores: as is."""
    d = table.data
    inner = getattr(d, "data", None)
    return inner if isinstance(inner, dict) else d


#: faust's knobs this worker turns, each for a reason.
FAUST_TUNING: dict[str, Any] = {
    "producer_max_batch_size": 512 * 1024,  # a fold's records and states leave in a few requests, not hundreds
    "producer_linger": 0.005,               # the sends of one batch travel together; 5 ms is below any live refresh
    "broker_max_poll_records": 5000,        # one poll can fill a batch (sink_batch_size) instead of a dozen
    "stream_buffer_maxsize": 16384,         # as deep as the inboxes, so faust pauses a partition only when they are
    "topic_disable_leader": True,           # no flow needs a leader election topic
    "table_standby_replicas": 0,            # a restarted worker rebuilds from the changelog; standbys would double its reads
}


def create_app(s: Settings) -> faust.App:
    """Build the app for these settings (agents close over them; no module globals)."""
    datadir = s.state_dir / "faust" / f"worker-{s.web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        s.app_id,
        broker=s.broker,
        store=s.store,
        datadir=str(datadir),
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        broker_session_timeout=s.session_timeout_s,
        broker_heartbeat_interval=max(s.session_timeout_s / 5, 0.5),
        broker_request_timeout=max(30.0, s.session_timeout_s * 2),
        broker_commit_interval=s.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=True,
        web_bind=s.web_host,
        web_host=s.web_host,
        web_port=s.web_port,
        web_in_thread=False,
        **FAUST_TUNING,
        # faust's own pages show table contents and routing: off (the endpoint is ours).
        web_router_enabled=False, web_tables_enabled=False, web_graph_enabled=False, web_stats_enabled=False,
    )
    token = ensure_token(s.state_dir)
    use_inboxes(app)
    internals.set_fetch_max_wait(s.fetch_max_wait_s)
    from streams.kafka.broker_quirks import detect_flavour, patch_end_offsets_for_tansu

    flavour = s.broker_flavour if s.broker_flavour != "auto" else detect_flavour(s.bootstrap_servers)
    if flavour == "tansu":
        log.info("broker is the local Tansu broker: end offsets are confirmed by fetch")
        patch_end_offsets_for_tansu()

    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": s.partitions}
    events_topic = app.topic(s.topic_events, **raw)
    # One channel over both agent-keyed topics: an agent's own events and the contacts the
    # interaction fold says it handles arrive on the same partition, in one agent.
    agent_events_topic = app.topic(s.topic_agent_events, s.topic_agent_activity, **raw)
    interactions_topic = app.topic(s.topic_interactions, **raw)
    live_parts_topic = app.topic(s.topic_live_parts, **raw)
    alerts_topic = app.topic(s.topic_alerts, **raw)
    dead_letters_topic = app.topic(s.topic_dead_letters, **raw)
    # key_type too, not only the schema: faust derives the changelog topic's key codec from
    # key_type (json when unset), and a restarted worker must read raw interaction ids back.
    table = app.Table(INTERACTION_TABLE, partitions=s.partitions, key_type=bytes,
                      schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json"),
                      help="Open and recently closed interactions: their event facts.")

    agent_table = app.Table(AGENT_TABLE, partitions=s.partitions, key_type=bytes,
                            schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json"),
                            help="Agents: their recent own events and the contacts they handle.")

    alert_table = app.Table(ALERT_TABLE, partitions=s.partitions, key_type=bytes,
                            schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json"),
                            help="Per queue: the latest live figures of every partition and each rule's state.")

    writer = BatchWriter(lambda: connect(s.clickhouse_url, s.clickhouse_database, own_process=s.engine_process))
    clock = Clock()  # all events: agents' "now" and /health
    # One event clock per events partition: a month replayed fast reads partitions unevenly,
    # and one partition's newest event must not make another's events late or timed out.
    clocks: dict[int, Clock] = defaultdict(Clock)
    counters = Counters()
    limits = Limits()
    timeout_ms = int(s.interaction_timeout_s * 1000)
    max_future_ms = int(s.max_future_s * 1000)
    retention_ms = int(s.state_retention_s * 1000)
    centre = load_centre(s.centre_config)
    if centre.windows.lateness_s > s.state_retention_s:
        raise ConfigError(f"windows.lateness_s ({centre.windows.lateness_s}) exceeds state_retention_s "
                          f"({s.state_retention_s:.0f}): intervals could not be rebuilt after a restart")
    kpis: dict[int, PartitionKpis] = {}
    # Aggregates are rebuilt from the states after each rebalance has finished restoring
    # them ("settled": the consumer generation whose recovery completed).
    kpi_gen = {"want": 1, "built": 0, "settled": -1}
    to_reconcile: set[int] = set()  # rebuilt partitions whose stored rows are still to be checked
    settings_written: set[tuple[str, str]] = set()
    live_version = {"last": 0}
    clock_written: dict[int, int] = {}  # partition -> the clock last stored on its changelog
    settled_before: dict[int, int] = {}  # partition -> first event of its oldest open contact
    restart_ranges: dict[int, list[tuple[int, int]]] = {}  # partition -> what its last rebuild recounts
    late = verify.LateSpans()  # periods past the lateness horizon to recount, per partition
    figure_checks: dict[str, Any] = {"passes": 0, "repaired": 0, "differences_open": 0, "last_at": None,
                                     "examples": []}
    app.ccpulse = {"writer": writer, "clock": clock, "counters": counters, "table": table,  # type: ignore[attr-defined]
                   "kpis": kpis, "centre": centre}

    def committed(topic: str, partition: int) -> int | None:
        return internals.committed_offset(app.consumer, topic, partition)

    gaps = GapFiller(s.bootstrap_servers, committed)

    @app.on_partitions_revoked.connect  # type: ignore[misc]
    async def _on_revoked(app_: faust.App, revoked: Any, **kwargs: Any) -> None:
        gaps.forget()
        kpi_gen["want"] += 1
        kpi_gen["settled"] = -1

    @app.on_rebalance_complete.connect  # type: ignore[misc]
    async def _on_rebalanced(app_: faust.App, **kwargs: Any) -> None:
        # The states are restored now (faust sends this once the changelogs are read): the
        # aggregates are rebuilt from them, not from a table still being filled.
        kpi_gen["want"] += 1
        kpi_gen["settled"] = app.consumer_generation_id
        agent_written["until"] = 0  # agent figures: redo the lateness horizon (agent_figures)

    changelog = table.changelog_topic.get_topic_name()
    agent_changelog = agent_table.changelog_topic.get_topic_name()
    alert_changelog = alert_table.changelog_topic.get_topic_name()
    rule_windows = sorted({r.window_minutes for r in centre.alerts.rules if r.metric not in al.QUEUE_METRICS})
    queue_rules = any(r.metric in al.QUEUE_METRICS for r in centre.alerts.rules)
    undelivered: list[tuple[Any, str]] = []
    notifiers = _notifiers(s, lambda n, reason: undelivered.append((n, reason)))
    agent_dirty: dict[bytes, int] = {}  # agent -> earliest event time whose intervals must be rewritten
    agent_written: dict[str, int] = {"until": 0}
    sends = PartitionBatches(app)
    # Records sent to, and stored from, each records partition (last offset): the figure check
    # compares only once every record sent before it began is stored.
    records_sent: dict[int, int] = {}
    records_stored: dict[int, int] = {}

    def on_sent(topic: str, partition: int, last: int) -> None:
        if topic == s.topic_interactions and last > records_sent.get(partition, -1):
            records_sent[partition] = last

    sends.on_sent = on_sent
    # Per batch agent: batches done, since when it is inside one (None: waiting for input).
    agent_progress: dict[str, dict[str, Any]] = {}
    alert_sends = PartitionBatches(app)  # the alerts agent's own: sent only after its rows are stored

    def emit(key: bytes, record: dict[str, Any], partition: int) -> None:
        # Same partition as the key's events: the records topic is co-partitioned (and
        # keyed by the bare id, as the events are).
        sends.add(s.topic_interactions, partition, record["interaction_id"].encode(), orjson.dumps(record))
        counters.records_emitted += 1
        if record["closed_by_timeout"]:
            counters.timed_out += 1

    def store_agent(key: bytes, st: Any, partition: int) -> None:
        st["p"] = partition
        agent_table.data[key] = st
        sends.add(agent_changelog, partition, key, orjson.dumps(st))

    def store_state(key: bytes, st: sm.State) -> None:
        states(table)[key] = st
        sends.add(changelog, st["p"], key, orjson.dumps(st))

    def adopt_legacy(known: MutableMapping[bytes, Any], key: bytes, partition: int) -> sm.State | None:
        """A state stored under the bare id by a release before tenant-qualified keys:
        taken over (and its old key deleted) only by an event of its own tenant."""
        tenant, ident = split_key(key)
        old_key = ident.encode()
        st = known.get(old_key)
        if not st or not st.get("f") or sm.fold(st).tenant != tenant:
            return None
        del known[old_key]
        sends.add(changelog, st.get("p", partition), old_key, None)
        st.setdefault("p", partition)
        store_state(key, st)  # under its new key at once: a redelivered batch changes nothing else
        if (kp := kpis.get(st["p"])) is not None and (w := kp.waiting.pop(old_key.decode(), None)) is not None:
            kp.waiting[key.decode()] = w  # it waits under its new key from now on
        return st

    def adopt_legacy_agent(known: MutableMapping[bytes, Any], key: bytes) -> Any:
        """An agent state stored under the bare id by an earlier release, for its own tenant."""
        tenant, ident = split_key(key)
        old_key = ident.encode()
        st = known.get(old_key)
        if not st or (st.get("t") or tenant) != tenant:
            return None
        del known[old_key]
        sends.add(agent_changelog, st.get("p", agent_partition(ident)), old_key, None)
        return st

    def store_clocks(partitions: set[int], changed: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        """Each partition's event clock beside its states, so a restart never sets it back,
        with the late periods it has still to recount."""
        for p in partitions:
            w = clocks[p].watermark_ms
            if w > clock_written.get(p, 0) or p in changed:
                clock_written[p] = max(w, clock_written.get(p, 0))
                rec = {"w": clock_written[p], "late": late.as_stored(p)}
                states(table)[clock_key(p)] = rec
                sends.add(changelog, p, clock_key(p), orjson.dumps(rec))

    def take_late(partitions: Any) -> set[int]:
        """Move what the aggregates found late into the spans to recount; the partitions changed."""
        changed = set()
        for p in partitions:
            kp = kpis.get(p)
            if kp is not None and kp.late_keys:
                late.add(p, [k[3] for k in kp.late_keys], time.monotonic())
                kp.late_keys.clear()
                changed.add(p)
        return changed

    def owned_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == s.topic_events}

    def kpis_settled() -> bool:
        return not app.in_recovery and kpi_gen["settled"] == app.consumer_generation_id

    def ensure_kpis() -> bool:
        """Rebuild the partitions' aggregates from the states after a (re)assignment.

        False while a rebalance is restoring the states; the callers then keep each
        state's own entry up to date, and the rebuild that follows sums them.
        """
        if kpi_gen["built"] == kpi_gen["want"] and set(kpis) == owned_partitions():
            return True
        if not kpis_settled():
            return False
        owned = owned_partitions()
        by_p: dict[int, list[tuple[str, Any]]] = {p: [] for p in owned}
        # Never backwards: the clock each partition had stored, then its states' newest event.
        late.drop(owned)  # a partition that left: its next owner reads its spans from the changelog
        for p in owned:
            if (stored := table.data.get(clock_key(p))) and stored.get("w"):
                clocks[p].observe(stored["w"])
                clock.observe(stored["w"])
                clock_written[p] = max(clock_written.get(p, 0), stored["w"])
                late.restore(p, stored.get("late") or [], time.monotonic())
        for key, st in table.data.items():
            if st and st.get("p") in by_p:
                clocks[st["p"]].observe(st.get("l", 0))
                clock.observe(st.get("l", 0))
                if st.get("k"):
                    by_p[st["p"]].append((key.decode(), st["k"]))
        # The agents' "now" too: after a restart into a quiet floor the agent figures (what
        # changed before the stop was only in the old process's memory) are written from
        # the recovered states, not once the next event arrives.
        for st in agent_table.data.values():
            if st:
                clock.observe(ag.last_event_at(st) or 0)
        kpis.clear()
        for p, items in by_p.items():
            kp = kpis[p] = PartitionKpis(p, centre.windows.lateness_s * 1000, centre.windows.rolling_minutes)
            kp.rebuild(items, clocks[p].now_ms())
            restart_ranges[p] = verify.spans(k[3] for k in kp.rebuilt_keys)
        kpi_gen["built"] = kpi_gen["want"]
        to_reconcile.update(by_p)
        log.info("KPI aggregates rebuilt for partitions %s from %d interactions", sorted(owned),
                 sum(len(v) for v in by_p.values()))
        return True

    def update_kpis(iid: str, st: sm.State, record: dict[str, Any] | None, f: Any, now: int,
                    live: bool) -> None:
        """Replace the interaction's contribution to its partition's figures.

        The state's entry is always brought up to date, so a rebuild sums the truth; the
        aggregates themselves only when they are ``live`` (not awaiting a rebuild).
        """
        rec = record or sm.build_record(iid, st, f)
        q = centre.queue(rec["tenant"], rec["queue"])
        entry = entry_of(rec, kpi.contribution(rec, q), sm.waiting_since(f, st))
        old = st.get("k")
        kp = kpis.get(st["p"]) if live else None
        if entry != old:
            if kp is not None:
                kp.apply(iid, old, entry, now)
            st["k"] = entry
        if record is not None and kp is not None:
            kp.mark_settled(entry, now)

    async def reconcile_stored() -> None:
        """After a rebuild: zero the stored interval rows it has no interaction for
        (``PartitionKpis.zero_stored``)."""
        if not to_reconcile:
            return
        parts = sorted(to_reconcile)
        to_reconcile.clear()
        since = min(clocks[p].now_ms() for p in parts) - centre.windows.lateness_s * 1000 - INTERVAL_MS
        res = await writer.read(lambda db: (
            "SELECT DISTINCT source_partition, tenant, queue, channel, toUnixTimestamp(interval_start) "
            f"FROM {db}.kpi_interval_parts WHERE source_partition IN ({', '.join(map(str, parts))}) "
            f"AND interval_start >= toDateTime({max(since, 0) // 1000})"))
        stored: dict[int, list[Any]] = defaultdict(list)
        for p, t, q, c, start in res.rows:
            stored[int(p)].append((t, q, c, int(start) * 1000))
        for p, keys in stored.items():
            kp = kpis.get(p)
            if kp is not None:  # else: revoked meanwhile, and the next rebuild checks again
                kp.zero_stored(keys, clocks[p].now_ms())

    def kpi_rows() -> tuple[Any, Any]:
        """Changed intervals of every partition, and queue settings not yet written."""
        parts = []
        for p, kp in kpis.items():
            if kp.rescan:
                kp.rescan_max(st["k"] for st in table.data.values() if st and st.get("p") == p and st.get("k"))
            for key, vec in kp.take_dirty():
                parts.append((p, key, vec))
            counters.late_updates = sum(k.late_updates for k in kpis.values())
        groups = {(k[0], k[1]) for _, k, _ in parts} - settings_written
        version = next_version()
        interval_rows = rows.kpi_interval_batch(
            [(p, key, vec, centre.queue(key[0], key[1]), centre.tenant(key[0]).business_day(key[3]))
             for p, key, vec in parts], version)
        settings_rows = rows.queue_settings_batch([(t, q, centre.queue(t, q)) for t, q in sorted(groups)])
        settings_written.update(groups)
        return interval_rows, settings_rows

    def next_version() -> int:
        """Wall-clock milliseconds, strictly increasing: a later write always wins, across restarts too."""
        v = max(int(time.time() * 1000), live_version["last"] + 1)
        live_version["last"] = v
        return v

    agent_partitions: dict[str, int] = {}

    def group_partition(key: bytes) -> int:
        return partition_of(key, s.partitions)

    def agent_partition(agent: str) -> int:
        """The partition Kafka's default partitioner gives an agent id (murmur2, as producers do)."""
        p = agent_partitions.get(agent)
        if p is None:
            p = agent_partitions[agent] = partition_of(agent.encode(), s.partitions)
        return p

    def tell_agents(iid: str, st: sm.State, f: Any, changed: bool) -> None:
        """Send each agent its handling of this contact when it changed (or on a replay,
        when the first delivery may have stopped before these sends went out)."""
        for agent, segs in sm.agent_updates(st, f, changed):
            sends.add(s.topic_agent_activity, agent_partition(agent), agent.encode(),
                      orjson.dumps({"i": iid, "g": segs, "t": f.tenant}))

    def validated(events: Sequence[Record], kind: TopicKind) -> list[tuple[Record, Event]]:
        """Valid events of a batch; the rest go to the dead-letter topic."""
        good: list[tuple[Record, Event]] = []
        now_ms = int(time.time() * 1000)  # the future-timestamp bound, once a batch
        for m in events:
            if isinstance(out_ := validate(m.value, m.key, kind, now_ms, max_future_ms), Rejected):
                sends.add(s.topic_dead_letters, m.partition, m.key, json.dumps(_dead_letter(out_, m)).encode())
                counters.dead_letters += 1
            else:
                good.append((m, out_))
        counters.events += len(events)
        if counters.first_event_at is None:
            counters.first_event_at = time.time()
        return good

    async def finish_batch(*writes: tuple[str, Any], via: PartitionBatches | None = None,
                           rows_first: bool = False) -> None:
        """Send and store what a batch produced before it is acked, or never ack it
        (streams/kafka/batches.py)."""
        await batches.send_and_store(via or sends, writer, writes, lambda e: fatal("storing a batch", e),
                                     rows_first=rows_first)

    def batch_agent(topic: Any, name: str, size: int = s.sink_batch_size,
                    within: float = s.sink_batch_seconds) -> Callable[[Any], Any]:
        """Run ``handle(messages)`` over batches of ``topic``, taken from the inbox the
        consumer fills (streams/kafka/inbox.py). Offsets the consumer skipped are filled in
        (streams/kafka/gaps.py); a batch is acked only after its results are stored, and one whose
        handling raised is never acked (``fatal``).

        A ``handle`` that returns an awaitable (its sends and writes, ``finish_batch``) is
        pipelined: the next batch is handled while that one's broker and ClickHouse round
        trips are under way, and the batch after waits for the first to be stored (at most
        two batches in flight). Their sends go out in order (one buffer, one lock); their
        inserts may interleave, which the tables absorb (versioned or idempotent rows).
        Batches are still acked in order, each only after its own store and every earlier
        one's."""
        inbox = Inbox(name, maxsize=max(16384, 2 * size), generation=lambda: app.consumer_generation_id)
        for t in topic.topics:
            app.inboxes[t] = inbox

        def register(handle: Callable[[list[Any]], Awaitable[Awaitable[None] | None]]) -> Any:
            async def subscribe(stream: faust.StreamT) -> None:
                # Subscribes the topic and takes part in faust's assignment; the messages
                # themselves go to the inbox, never through this stream.
                async for _ in stream:
                    pass

            subscribe.__name__ = subscribe.__qualname__ = handle.__name__
            app.agent(topic, name=name)(subscribe)
            progress: dict[str, Any] = {"batches": 0, "in_batch_since": None, "last_batch_at": None}
            started: list[float] = []  # when each batch not yet acked began, oldest first

            async def store_and_ack(store: Awaitable[None] | None, earlier: asyncio.Future[None] | None,
                                    consumer: Any, batch: list[Any], stand_in: Any,
                                    filled: list[Any]) -> None:
                await batches.store_then_ack(
                    store, earlier, (lambda: gaps.release(consumer, filled)) if filled else None,
                    lambda: ack_batch(consumer, batch, stand_in), lambda e: fatal(name, e))
                progress["batches"] += 1
                started.pop(0)
                progress["in_batch_since"] = started[0] if started else None
                progress["last_batch_at"] = time.time()

            async def run() -> None:
                agent_progress[name] = progress
                storing: asyncio.Future[None] | None = None
                while True:
                    batch = await inbox.take(size, within)  # of the current generation only
                    if not batch or not app.flow_control.is_active():
                        continue  # a rebalance is under way: faust reads these again after it
                    consumer = app.consumer
                    stand_in = track_batch(consumer, batch)
                    started.append(time.time())
                    progress["in_batch_since"] = started[0]
                    try:
                        messages, filled = await gaps.complete(batch)
                        store = await handle(messages)
                    except BaseException as e:  # noqa: BLE001 -- CancelledError included, on purpose
                        fatal(name, e)
                    task = asyncio.ensure_future(store_and_ack(store, storing, consumer, batch, stand_in, filled))
                    if store is None:
                        await task
                        storing = None
                        continue
                    await asyncio.sleep(0)  # its sends take what this batch added, before the next adds more
                    if storing is not None:
                        await storing  # the batch before this one is stored before the next is taken
                    storing = task

            run.__name__ = run.__qualname__ = f"{handle.__name__}_batches"
            app.task(run)
            return handle
        return register

    async def send_or_exit(buffer: PartitionBatches) -> None:
        """A timer's send: its failure may have taken an agent's messages with it (see
        ``PartitionBatches.send``), so it ends the process like a failed batch."""
        try:
            await buffer.send()
        except BaseException as e:  # noqa: BLE001 -- CancelledError included, on purpose
            fatal("a timer's send", e)

    def fatal(what: str, e: BaseException) -> NoReturn:
        """A batch that was not fully processed must not be acked: exit, and process it
        again on restart."""
        log.critical("%s failed (%r): exiting without committing; the batch will be processed again",
                     what, e, exc_info=e)
        logging.shutdown()
        os._exit(70)

    def raw_batch(good: list[tuple[Record, Event]]) -> Any:
        return rows.raw_event_batch((e, m.topic, m.partition, m.offset, m.value) for m, e in good)

    @batch_agent(events_topic, "fold-interactions")
    async def fold_interactions(events: list[Any]) -> Awaitable[None]:
        # The clocks are set up from the recovered states (and the clocks they stored)
        # before this batch is judged by them: a restart's first batch is no exception.
        with_kpis = ensure_kpis()
        await reconcile_stored()
        # From here on no await until the records are emitted: /health never counts an
        # event whose record is not yet on its way (``ccpulse demo`` waits on both).
        good = validated(events, "events")
        by_key: dict[bytes, tuple[int, list[tuple[str, sm.Fact]]]] = {}
        # Each key is judged (lateness, timeouts) by its partition's event clock as it
        # stood at the key's last event in the batch, as if events came one by one: a
        # replayed batch can span days of one partition.
        key_now: dict[bytes, int] = {}
        msgs_of: dict[bytes, list[Record]] = {}
        for m, e in good:
            clock.observe(e.ts_ms)
            pclock = clocks[m.partition]
            pclock.observe(e.ts_ms)
            key = state_key(e.tenant, m.key)  # tenant and id: another tenant's id is another contact
            key_now[key] = pclock.watermark_ms
            by_key.setdefault(key, (m.partition, []))[1].append(sm.fact_of(e))
            msgs_of.setdefault(key, []).append(m)
        # No await between reading and writing states: the timer cannot interleave.
        known = states(table)
        for key, (partition, facts) in by_key.items():
            now = key_now[key]
            st = known.get(key) or adopt_legacy(known, key, partition)
            if st is None:
                if limits.open_contacts >= s.max_open_contacts:
                    refuse(msgs_of[key], range(len(facts)), "too_many_open_contacts",
                           f"this worker holds {limits.open_contacts:,} open contacts "
                           f"(CCPULSE_MAX_OPEN_CONTACTS={s.max_open_contacts:,}); replay it once they close")
                    continue
                st = sm.new_state()
                limits.open_contacts += 1
            iid = ident_of(key)
            out = sm.take_facts(st, facts, partition, now, timeout_ms, s.max_events_per_interaction, iid)
            if out.refused:
                refuse(msgs_of[key], out.refused, "too_many_events",
                       f"contact {iid} has its {s.max_events_per_interaction:,} events "
                       f"(CCPULSE_MAX_EVENTS_PER_INTERACTION={s.max_events_per_interaction:,})")
            if out.changed:
                update_kpis(key.decode(), st, out.record, out.fold, now, with_kpis)
                tell_agents(iid, st, out.fold, True)
                store_state(key, st)
                if out.record:
                    emit(key, out.record, partition)
            elif out.fold is not None:  # a redelivery: send again what the lost sends carried
                if out.record:
                    emit(key, out.record, partition)
                if st.get("a"):
                    tell_agents(iid, st, out.fold, False)
        touched = {p for p, _ in by_key.values()}
        store_clocks(touched, take_late(touched))  # with this batch's states: durable together
        intervals, queue_settings = kpi_rows()
        return finish_batch((rows.RAW_EVENTS_TABLE, raw_batch(good)),
                           (rows.KPI_INTERVALS_TABLE, intervals), (rows.QUEUE_SETTINGS_TABLE, queue_settings))

    def refuse(msgs: list[Record], which: Any, reason: str, error: str) -> None:
        """Valid events a limit keeps out: to the dead letters with the reason (replayable)."""
        for i in which:
            m = msgs[i]
            sends.add(s.topic_dead_letters, m.partition, m.key, json.dumps(_dead_letter(Rejected(reason, error), m)).encode())
            counters.dead_letters += 1
        if limits.warned.get(reason, 0) + 60 < time.monotonic():
            limits.warned[reason] = time.monotonic()
            log.warning("%s: %s (dead-lettered)", reason, error)

    @batch_agent(agent_events_topic, "agent-events")
    async def agent_events(events: list[Any]) -> Awaitable[None]:
        own = [m for m in events if m.topic == s.topic_agent_events]
        good = validated(own, "agent_events")
        changed: dict[bytes, tuple[Any, int]] = {}  # written once per agent and batch
        known = states(agent_table)
        for m, e in good:
            clock.observe(e.ts_ms)
            key = state_key(e.tenant, m.key)  # another tenant's agent of the same id is another agent
            st = known.get(key) or adopt_legacy_agent(known, key) or ag.new_agent_state()
            if ag.merge_event(st, e.event_id, e.ts_ms, e.type, e.tenant, getattr(e, "reason", None),
                              getattr(e, "queues", None)):
                agent_dirty[key] = min(agent_dirty.get(key, e.ts_ms), e.ts_ms)
                agent_table.data[key] = st
                changed[key] = (st, m.partition)
        for m in events:
            if m.topic != s.topic_agent_activity:
                continue
            a = orjson.loads(m.value)
            key = state_key(a["t"], m.key)
            st = known.get(key) or adopt_legacy_agent(known, key) or ag.new_agent_state()
            old = st["c"].get(a["i"], [])
            if ag.set_contact(st, a["i"], a["g"], a["t"]):
                times = [t for seg in old + a["g"] for t in seg if t]
                if times:
                    agent_dirty[key] = min(agent_dirty.get(key, min(times)), min(times))
                agent_table.data[key] = st
                changed[key] = (st, m.partition)
        for key, (st, partition) in changed.items():
            store_agent(key, st, partition)
        return finish_batch((rows.RAW_EVENTS_TABLE, raw_batch(good)))

    @batch_agent(interactions_topic, "store-interactions")
    async def store_interactions(events: list[Any]) -> Awaitable[None]:
        stored = finish_batch((rows.INTERACTIONS_TABLE,
                               rows.interaction_batch([orjson.loads(m.value) for m in events],
                                                      [m.partition for m in events])))

        async def then_mark() -> None:
            await stored
            for m in events:
                if m.offset > records_stored.get(m.partition, -1):
                    records_stored[m.partition] = m.offset
        return then_mark()

    @batch_agent(dead_letters_topic, "store-dead-letters")
    async def store_dead_letters(events: list[Any]) -> Awaitable[None]:
        return finish_batch((rows.DEAD_LETTERS_TABLE,
                            rows.dead_letter_batch(json.loads(m.value) for m in events)))

    @batch_agent(live_parts_topic, "alerts")
    async def evaluate(events: list[Any]) -> None:
        touched: dict[bytes, int] = {}
        for m in events:
            st = alert_table.data.get(m.key) or al.new_group_state()
            al.take_live_part(st, orjson.loads(m.value))
            alert_table.data[m.key] = st
            touched[m.key] = m.partition
        fired: list[dict[str, Any]] = []
        for key, partition in touched.items():
            st = alert_table.data[key]
            notes = al.evaluate_group(centre, tuple(orjson.loads(key)), st)
            for n in notes:
                alert_sends.add(s.topic_alerts, group_partition(n["alert_id"].encode()), n["alert_id"].encode(),
                                orjson.dumps(n))
            fired += notes
            alert_sends.add(alert_changelog, partition, key, orjson.dumps(st))
        # The history row before the notification and the new state: once the state says
        # "firing", a replayed batch would not write the row again.
        await finish_batch((rows.ALERTS_TABLE, rows.alert_batch(fired)), via=alert_sends, rows_first=True)
        counters.alerts += len(fired)

    @batch_agent(alerts_topic, "deliver-alerts", size=100, within=0.05)
    async def deliver(events: list[Any]) -> None:
        """Notify from the alerts topic, and ack only once every channel has delivered or
        dead-lettered: a crash cannot lose a notification (a redelivery may repeat one;
        receivers de-duplicate on alert_id, status and at_ms). Its own agent, so a slow
        receiver holds up notifications, never the figures."""
        source = {}
        for m in events:
            n = _notification(orjson.loads(m.value))
            source[(n.alert_id, n.status, n.at_ms)] = m
            for notifier in notifiers:
                notifier.enqueue(n)
        while any(getattr(x, "pending", 0) for x in notifiers):
            await asyncio.sleep(0.02)
        # Given up on: to the dead-letter topic (and table), with the reason.
        for n, reason in undelivered:
            src = source.get((n.alert_id, n.status, n.at_ms))
            if src is not None:
                dl = _dead_letter(Rejected("alert_undelivered", reason), src)
                sends.add(s.topic_dead_letters, src.partition, src.key,
                          json.dumps(dl).encode())
                counters.dead_letters += 1
        undelivered.clear()
        await finish_batch()

    @app.task
    async def _start_notifiers() -> None:
        for n in notifiers:
            await n.start()

    @app.timer(interval=max(1.0, min(30.0, s.interaction_timeout_s / 10)), name="close-timed-out")
    async def close_timed_out() -> None:
        """Close interactions whose final event never came; forget long-closed ones."""
        if not ensure_kpis():
            return  # not while recovering: a closed interaction must also leave the live figures
        owned = owned_partitions()
        found = sm.sweep(table.data, owned, lambda p: clocks[p].now_ms(), timeout_ms, retention_ms, ident_of)
        for key in found.expired:
            st = table.data[key]
            del table.data[key]
            sends.add(changelog, st["p"], key, None)
            counters.expired += 1
        for key, record, f in found.closed:
            st = table.data[key]
            now = clocks[st["p"]].now_ms()
            update_kpis(key.decode(), st, record, f, now, True)
            tell_agents(ident_of(key), st, f, True)
            store_state(key, st)
            emit(key, record, st["p"])
        still_open, held, oldest_open = found.still_open, found.held, found.oldest_open
        settled_before.clear()
        settled_before.update(oldest_open)
        limits.open_contacts, limits.contacts_held = still_open, held
        if still_open >= 0.8 * s.max_open_contacts and limits.warned.get("open", 0) + 60 < time.monotonic():
            limits.warned["open"] = time.monotonic()
            log.warning("%d open contacts, %.0f%% of CCPULSE_MAX_OPEN_CONTACTS (%d): new contacts beyond it go to "
                        "the dead letters; add workers (partitions) or find the producer that never closes "
                        "its contacts", still_open, 100 * still_open / s.max_open_contacts, s.max_open_contacts)
        store_clocks(owned, take_late(owned))  # late parts its closings found, with the records
        await send_or_exit(sends)

    async def records_caught_up(owned: set[int]) -> bool:
        tps = [TP(s.topic_interactions, p) for p in owned]
        try:
            ends = await app.consumer.highwaters(*tps)
        except Exception as e:  # noqa: BLE001 -- not now: the next pass asks again
            log.debug("records' end offsets unavailable (%r)", e)
            return False
        for tp in tps:
            want = max(records_sent.get(tp.partition, -1), (ends.get(tp) or 0) - 1)
            done = max(records_stored.get(tp.partition, -1), (committed(tp.topic, tp.partition) or 0) - 1)
            if done < want:  # (offsets are committed only after their rows are stored)
                return False
        return True

    checker = FigureChecker(
        centre=centre, settings=s, writer=writer, kpis=kpis, clocks=clocks, late=late,
        settled_before=settled_before, restart_ranges=restart_ranges,
        ready=lambda: kpis_settled() and kpi_gen["built"] == kpi_gen["want"],
        still_owned=lambda owned: ensure_kpis() and set(kpis) == owned,
        store_clocks=store_clocks, take_late=take_late, records_caught_up=records_caught_up,
        send=lambda: send_or_exit(sends), next_version=next_version, figures=figure_checks)

    @app.timer(interval=5.0, name="check-figures")
    async def check_figures() -> None:
        """Hold every stored interval row to the recount from the records (streams/worker/figures.py)."""
        await checker.run()

    @app.timer(interval=centre.windows.refresh_s, name="live-kpis")
    async def live_kpis() -> None:
        """Rolling windows, contacts waiting now, and intervals changed by timeouts."""
        if not ensure_kpis():
            return
        await reconcile_stored()
        version = next_version()
        live = []
        for p, kp in kpis.items():
            now = clocks[p].now_ms()
            if not now:
                continue  # nothing seen on this partition yet
            kp.expire(now)
            for group, window, vec, waiting, oldest in kp.live(now):
                live.append((p, group, window, vec, waiting, oldest, now))
        intervals, queue_settings = kpi_rows()
        for group, part in al.live_parts(live, rule_windows, bool(queue_rules), centre.windows.rolling_minutes[0]):
            key = orjson.dumps(group)  # the alert agent sums the partitions of each queue
            sends.add(s.topic_live_parts, group_partition(key), key, orjson.dumps(part))
        await send_or_exit(sends)
        await writer.write(rows.KPI_INTERVALS_TABLE, intervals)
        await writer.write(rows.QUEUE_SETTINGS_TABLE, queue_settings)
        await writer.write(rows.KPI_LIVE_TABLE, rows.kpi_live_batch(live, version))

    watchdog = ConsumerWatchdog(
        app, s.stall_timeout_s,
        quiet=lambda: bool(app.in_recovery or getattr(app, "rebalancing", False) or not kpis_settled()),
        busy=lambda: any(p["in_batch_since"] for p in agent_progress.values()) or bool(writer.degraded),
        events_seen=lambda: counters.events, task_dump=lambda: task_dump(app))

    @app.timer(interval=5.0, name="fetch-watchdog")
    async def fetch_watchdog() -> None:
        """Partitions assigned but not fetched are resumed; a stalled consumer restarts (streams/kafka/watchdog.py)."""
        await watchdog.check()

    @app.timer(interval=centre.windows.refresh_s, name="agent-figures")
    async def agent_figures() -> None:
        """Each agent's time per state in the intervals that changed, and its state now."""
        now = clock.now_ms()
        if not now or not kpis_settled():
            return
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == s.topic_agent_events}
        horizon = now - centre.windows.lateness_s * 1000
        # After a start or a rebalance, everything still within the lateness horizon: what
        # changed since the previous owner's last run was only in its memory.
        since_last = agent_written["until"] or horizon
        version = next_version()
        figures, live = [], []
        for n, (key, st) in enumerate(list(agent_table.data.items())):
            if n % 50 == 49:
                await asyncio.sleep(0)  # let the agents and the consumer run between agents
            if not st or st.get("p") not in owned:
                continue
            agent = ident_of(key)
            live.append((st["t"], agent, ag.current(st, now)))
            if (agent_written["until"] and key not in agent_dirty
                    and (idle := ag.idle_since(st)) is not None and idle <= since_last):
                # Logged out, nothing new: its rows up to since_last are written and later
                # ones would hold only logged-out time (no column). A month's replay spent
                # most of this timer on such rows.
                continue
            start = max(min(agent_dirty.pop(key, since_last), since_last), horizon)
            if not agent_written["until"]:  # not before the agent's first event
                start = max(start, ag.first_seen(st) or now)
            start -= start % INTERVAL_MS
            pieces = ag.timeline(st, start, now)
            figures.append((st["t"], agent, ag.per_interval(pieces, INTERVAL_MS)))
            if len(st["f"]) > 64 or len(st["c"]) > 256:
                before = (len(st["f"]), len(st["c"]))
                ag.trim(st, horizon)
                if (len(st["f"]), len(st["c"])) != before:
                    store_agent(key, st, st["p"])
        agent_written["until"] = now
        if queue_rules:  # ready agents per queue, for rules on staffing while contacts wait
            ready: dict[tuple[int, str, str], int] = {}
            for tenant, agent, (state, _r, _since, _held, queues) in live:
                p = agent_partition(agent)
                for queue in queues:
                    k = (p, tenant, queue)
                    ready[k] = ready.get(k, 0) + (state == "ready")
            for (p, tenant, queue), n in ready.items():
                key = orjson.dumps([tenant, queue, "*"])
                sends.add(s.topic_live_parts, group_partition(key), key,
                          orjson.dumps({"ap": p, "r": n, "t": now}))
        intervals, reasons = rows.agent_batches(figures, version)
        await send_or_exit(sends)
        await writer.write(rows.AGENT_INTERVALS_TABLE, intervals)
        await writer.write(rows.AGENT_NOT_READY_TABLE, reasons)
        await writer.write(rows.AGENT_LIVE_TABLE, rows.agent_live_batch(live, now, version))

    def health() -> dict[str, Any]:
        """What /health shows: liveness, progress, limits, figure checks, why the sink is degraded."""
        c = counters
        return {
            "status": "degraded" if writer.degraded else "ok",
            "degraded": writer.degraded, "engine": writer.engine,
            "events": c.events, "dead_letters": c.dead_letters, "records_emitted": c.records_emitted,
            "timed_out": c.timed_out, "expired": c.expired, "late_updates": c.late_updates,
            "offsets_refetched": gaps.filled, "alerts": c.alerts, "broker_flavour": flavour,
            "limits": {"open_contacts": limits.open_contacts, "max_open_contacts": s.max_open_contacts,
                       "near_limit": limits.open_contacts >= 0.8 * s.max_open_contacts,
                       "contacts_held": limits.contacts_held,
                       "max_events_per_interaction": s.max_events_per_interaction},
            "figures": {**figure_checks, "pending_late": late.pending()
                        + sum(len(kp.late_keys) for kp in kpis.values())},
            "notifiers": [{"kind": type(n).__name__, "sent": n.sent, "retried": getattr(n, "retried", 0),
                           "dead": n.dead, "last_error": n.last_error} for n in notifiers],
            "late_examples": {p: k.late_examples for p, k in kpis.items() if k.late_examples}, "rows_written": writer.rows_written,
            "first_event_at": c.first_event_at, "last_write_at": writer.last_write_at,
            "event_time_ms": clock.now_ms(), "states": len(table.data) - sum(clock_key(p) in table.data for p in range(s.partitions)), "agents": agent_progress,
            "paused": sorted(f"{tp.topic}:{tp.partition}" for tp in internals.paused_for_buffer(app.consumer)),
            "not_fetched": sorted(f"{tp.topic}:{tp.partition}" for tp in watchdog.not_fetched()),
            "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives()),
        }

    register_pages(app, token=token, writer=writer, centre=centre, health=health, debug=s.web_debug)

    @app.on_before_shutdown.connect  # type: ignore[misc]
    async def _close_writer(app_: faust.App, **kwargs: Any) -> None:
        for n in notifiers:
            await n.stop()
        writer.close()

    return app
