-- Core tables: raw events (audit and replay), interaction records, dead letters.
-- Tokens in braces are filled per server generation by streams/migrate.py:
--   {db}   database        {TS}  DateTime64(3, 'UTC') | DateTime('UTC') on pre-20 servers
--   {LC}   LowCardinality(String) | String              {LCN} the same, Nullable
-- Delivery is at-least-once; ReplacingMergeTree keys below turn it into exact figures:
-- a redelivered row has the same key (and version) and collapses on merge or FINAL.

CREATE TABLE IF NOT EXISTS {db}.raw_events
(
    event_id         String,
    type             {LC},
    tenant           {LC},
    interaction_id   String   COMMENT 'empty for agent events',
    agent_id         String   COMMENT 'empty when the event names no agent',
    ts               {TS}     COMMENT 'event time, UTC',
    source_topic     {LC},
    source_partition UInt16,
    source_offset    UInt64,
    payload          String   COMMENT 'the validated event as JSON'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, ts, event_id);

CREATE TABLE IF NOT EXISTS {db}.interactions
(
    interaction_id       String,
    tenant               {LC},
    channel              {LC},
    queue                {LCN}   COMMENT 'queue the contact left last',
    first_queue          {LCN},
    queues               Array(String) COMMENT 'every queue visited, in order',
    customer_id          Nullable(String),
    priority             UInt8,
    agent_id             Nullable(String) COMMENT 'agent who handled it last',
    first_agent_id       Nullable(String),
    offered_at           Nullable({TS}),
    answered_at          Nullable({TS}),
    abandoned_at         Nullable({TS}),
    ended_at             Nullable({TS}),
    wrapup_ended_at      Nullable({TS}),
    first_response_at    Nullable({TS}),
    last_event_at        {TS},
    wait_ms              UInt64  COMMENT 'queued time summed over queue stints',
    talk_ms              UInt64  COMMENT 'connected time less hold',
    hold_ms              UInt64,
    acw_ms               UInt64  COMMENT 'after-call work: ended to wrap-up ended',
    holds                UInt16,
    transfers            UInt16,
    outcome              {LC}    COMMENT 'answered | abandoned | unanswered',
    disposition          Nullable(String),
    resolved             Nullable(UInt8),
    csat                 Nullable(UInt8),
    csat_at              Nullable({TS}),
    closed_by_timeout    UInt8   COMMENT '1 when closed because its final event never came',
    anomalies            Array(String),
    n_events             UInt32,
    version              UInt64  COMMENT 'the highest version of an interaction is the current one'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, interaction_id);

CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    reason           {LC},
    error            String,
    source_topic     {LC},
    source_partition UInt16,
    source_offset    UInt64,
    received_at      {TS},
    key              Nullable(String),
    payload          String   COMMENT 'the original bytes'
)
ENGINE = ReplacingMergeTree
ORDER BY (source_topic, source_partition, source_offset);
