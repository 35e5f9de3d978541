"""Topic names and their creation with explicit partition counts (``ccpulse setup``).

Topics are created up front because a broker's auto-created topics get its default
partition count, and the state table's changelog must match the events topic's.
"""
from __future__ import annotations

from dataclasses import dataclass

from streams.config.settings import Settings

#: Faust names a table's changelog ``{app_id}-{table}-changelog``.
INTERACTION_TABLE = "interactions"
AGENT_TABLE = "agents"
ALERT_TABLE = "alert-states"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    purpose: str


def topic_specs(s: Settings) -> list[TopicSpec]:
    p = s.partitions
    return [
        TopicSpec(s.topic_events, p, "raw interaction events, keyed by interaction_id"),
        TopicSpec(s.topic_agent_events, p, "raw agent events, keyed by agent_id"),
        TopicSpec(s.topic_interactions, p, "interaction records, keyed by interaction_id"),
        TopicSpec(s.topic_dead_letters, p, "rejected messages with the reason"),
        TopicSpec(s.topic_agent_activity, p, "contacts each agent handles, keyed by agent_id (internal)"),
        TopicSpec(f"{s.app_id}-{INTERACTION_TABLE}-changelog", p, "state of open interactions (faust changelog)"),
        TopicSpec(f"{s.app_id}-{AGENT_TABLE}-changelog", p, "agents' recent events and contacts (faust changelog)"),
        TopicSpec(s.topic_live_parts, p, "each partition's live figures, keyed by tenant|queue|channel (internal)"),
        TopicSpec(s.topic_alerts, p, "alert notifications, keyed by alert id"),
        TopicSpec(f"{s.app_id}-{ALERT_TABLE}-changelog", p, "alert rule states per queue (faust changelog)"),
    ]


def create_topics(s: Settings) -> list[tuple[TopicSpec, str]]:
    """Create missing topics; returns each spec with 'created', 'exists' or a warning."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=s.bootstrap_servers, client_id="ccpulse-setup",
                                 request_timeout_ms=10000,
                                 bootstrap_timeout_ms=5000)
    except KafkaError:
        raise ConnectionError(
            f"no Kafka broker at {s.broker}: start one (`ccpulse dev up` locally) or fix CCPULSE_BROKER") from None
    try:
        existing = admin.describe_topics()  # all topics
        have = {t.get("name", t.get("topic")): len(t["partitions"]) for t in existing}
        out: list[tuple[TopicSpec, str]] = []
        todo = [t for t in topic_specs(s) if t.name not in have]
        if todo:
            admin.create_topics([NewTopic(t.name, t.partitions, s.replication_factor) for t in todo])
        for t in topic_specs(s):
            if t.name not in have:
                out.append((t, "created"))
            elif have[t.name] != t.partitions:
                out.append((t, f"exists with {have[t.name]} partitions (settings say {t.partitions})"))
            else:
                out.append((t, "exists"))
        return out
    except KafkaError as e:
        raise ConnectionError(f"creating topics on {s.broker} failed: {e}") from None
    finally:
        admin.close()
