"""The faust app, assembled: topics, tables and the flows that read them.

Data flows one way (docs/architecture.md): raw events → the interaction fold
(flows/interactions.py) → records, states and agents' handling on their topics, KPI
aggregates (flows/kpis.py) → interval and live rows; agent events → agent figures
(flows/agents.py); live parts → alert rules → notifications (flows/alerting.py); records and
dead letters → ClickHouse (flows/storage.py). Every flow's batches are sent, stored and only
then acknowledged by one component, the batch runner (runner.py).
"""
from __future__ import annotations

import logging
from typing import Any

import faust

from streams.clickhouse.connect import connect
from streams.clickhouse.writer import BatchWriter
from streams.config.centre import ConfigError, load_centre
from streams.config.settings import Settings
from streams.kafka import internals
from streams.kafka.gaps import GapFiller
from streams.kafka.inbox import install as use_inboxes
from streams.kafka.sends import PartitionBatches
from streams.worker.context import Changelogs, Worker
from streams.worker.flows.agents import AgentFlow
from streams.worker.flows.alerting import AlertFlow
from streams.worker.flows.health import HealthFlow
from streams.worker.flows.interactions import InteractionFlow
from streams.worker.flows.kpis import KpiFlow
from streams.worker.flows.planning import PlanningFlow
from streams.worker.flows.storage import StorageFlow
from streams.worker.runner import BatchRunner
from streams.worker.topics import AGENT_TABLE, ALERT_TABLE, INTERACTION_TABLE
from streams.worker.web import register_pages
from streams.worker.webauth import ensure_token

log = logging.getLogger("ccpulse.worker")


#: faust's knobs this worker turns, each for a reason.
FAUST_TUNING: dict[str, Any] = {
    "producer_max_batch_size": 512 * 1024,  # a fold's records and states leave in a few requests, not hundreds
    "producer_linger": 0.005,               # the sends of one batch travel together; 5 ms is below any live refresh
    "broker_max_poll_records": 5000,        # one poll can fill a batch (sink_batch_size) instead of a dozen
    "stream_buffer_maxsize": 16384,         # as deep as the inboxes, so faust pauses a partition only when they are
    "topic_disable_leader": True,           # no flow needs a leader election topic
    "table_standby_replicas": 0,            # a restarted worker rebuilds from the changelog; standbys would double its reads
}


def _faust_app(s: Settings) -> faust.App:
    datadir = s.state_dir / "faust" / f"worker-{s.web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    return faust.App(
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


def _table(app: faust.App, name: str, s: Settings, help: str) -> Any:
    # key_type too, not only the schema: faust derives the changelog topic's key codec from
    # key_type (json when unset), and a restarted worker must read raw ids back.
    return app.Table(name, partitions=s.partitions, key_type=bytes,
                     schema=faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json"), help=help)


def create_app(s: Settings) -> faust.App:
    """Build the app for these settings: no module globals, every flow gets the one ``Worker``."""
    app = _faust_app(s)
    centre = load_centre(s.centre_config)
    if centre.windows.lateness_s > s.state_retention_s:
        raise ConfigError(f"windows.lateness_s ({centre.windows.lateness_s}) exceeds state_retention_s "
                          f"({s.state_retention_s:.0f}): intervals could not be rebuilt after a restart")
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
    table = _table(app, INTERACTION_TABLE, s, "Open and recently closed interactions: their event facts.")
    agent_table = _table(app, AGENT_TABLE, s, "Agents: their recent own events and the contacts they handle.")
    alert_table = _table(app, ALERT_TABLE, s, "Per queue: the latest live figures of every partition and each rule's state.")

    # Every events offset committed leaves a record on the same partition of the interactions
    # changelog: recovery refuses to start from an empty one behind a commit (kafka/recovery.py).
    app.changelog_sources = {table.changelog_topic.get_topic_name(): s.topic_events}  # type: ignore[attr-defined]
    if s.clickhouse_url.startswith("clickhouse://") and not s.clickhouse_query_url:
        log.warning("typed queries on /sql log in as the writer's ClickHouse user (with readonly=1): set "
                    "CCPULSE_CLICKHOUSE_QUERY_URL to the read-only user of `ccpulse db access` so the server's "
                    "grants bound them")
    writer = BatchWriter(lambda: connect(s.clickhouse_url, s.clickhouse_database, own_process=s.engine_process,
                                         query_url=s.clickhouse_query_url))
    w = Worker(settings=s, app=app, centre=centre, writer=writer, sends=PartitionBatches(app),
               interactions=table, agents=agent_table, alert_groups=alert_table, flavour=flavour,
               changelogs=Changelogs(table.changelog_topic.get_topic_name(),
                                     agent_table.changelog_topic.get_topic_name(),
                                     alert_table.changelog_topic.get_topic_name()))
    gaps = GapFiller(s.bootstrap_servers, lambda topic, p: internals.expected_offset(app.consumer, topic, p))
    runner = BatchRunner(w, gaps)

    kpis = KpiFlow(w)
    w.sends.on_sent = kpis.on_sent  # type: ignore[attr-defined]
    interactions = InteractionFlow(w, kpis)
    agents = AgentFlow(w, kpis)
    alerting = AlertFlow(w)
    health = HealthFlow(w, kpis, alerting, gaps)
    interactions.register(app, runner, events_topic)
    agents.register(app, runner, agent_events_topic)
    StorageFlow(kpis).register(runner, interactions_topic, dead_letters_topic)
    alerting.register(app, runner, live_parts_topic, alerts_topic)
    kpis.register(app)
    health.register(app)
    PlanningFlow(w).register(app)

    @app.on_partitions_revoked.connect  # type: ignore[misc]
    async def _on_revoked(app_: faust.App, revoked: Any, **kwargs: Any) -> None:
        gaps.forget()
        kpis.revoked()

    @app.on_rebalance_complete.connect  # type: ignore[misc]
    async def _on_rebalanced(app_: faust.App, **kwargs: Any) -> None:
        kpis.rebalanced()
        agents.rebalanced()  # agent figures: redo the lateness horizon

    register_pages(app, token=token, writer=writer, centre=centre, health=health.health, debug=s.web_debug)

    @app.on_before_shutdown.connect  # type: ignore[misc]
    async def _close(app_: faust.App, **kwargs: Any) -> None:
        await alerting.stop()
        writer.close()

    return app
