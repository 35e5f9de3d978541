-- Agent figures written by the stream (streams/agents.py): time per state per 15-minute
-- interval, and every agent's state now. Keyed by agent, so one worker writes each row;
-- a recomputed interval replaces the older row (ReplacingMergeTree by version).

CREATE TABLE IF NOT EXISTS {db}.agent_intervals
(
    tenant          {LC},
    agent_id        String,
    interval_start  {TS}     COMMENT '15-minute interval, UTC-aligned',
    logged_in_ms    UInt64   COMMENT 'time in any state but logged_out',
    ready_ms        UInt64   COMMENT 'idle, waiting for a contact',
    busy_ms         UInt64   COMMENT 'connected to at least one contact (talk or hold)',
    acw_ms          UInt64   COMMENT 'after-call work, not connected',
    not_ready_ms    UInt64   COMMENT 'break, lunch, training... (reasons in agent_not_ready_intervals)',
    held_ms         UInt64   COMMENT 'contacts held x time: / (busy_ms + acw_ms) = average concurrency',
    max_held        UInt16   COMMENT 'most contacts held at once (chat concurrency)',
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(interval_start)
ORDER BY (tenant, agent_id, interval_start);

CREATE TABLE IF NOT EXISTS {db}.agent_not_ready_intervals
(
    tenant          {LC},
    agent_id        String,
    interval_start  {TS},
    reason          {LC},
    ms              UInt64,
    version         UInt64   COMMENT 'equal to the agent_intervals row it belongs to'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(interval_start)
ORDER BY (tenant, agent_id, interval_start, reason);

CREATE TABLE IF NOT EXISTS {db}.agent_live
(
    tenant          {LC},
    agent_id        String,
    state           {LC}     COMMENT 'busy | acw | ready | not_ready | logged_out',
    reason          {LC}     COMMENT 'not-ready reason',
    since           {TS}     COMMENT 'in this state since (event time)',
    held            UInt16   COMMENT 'contacts in hand now',
    queues          Array(String) COMMENT 'queues of the last login',
    snapshot_at     {TS},
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, agent_id);

CREATE VIEW IF NOT EXISTS {db}.agent_intervals_15m AS
SELECT
    *,
    (busy_ms + acw_ms) / nullIf(busy_ms + acw_ms + ready_ms, 0) AS occupancy,
    held_ms / nullIf(busy_ms + acw_ms, 0) AS avg_concurrency
FROM {db}.agent_intervals FINAL;

CREATE VIEW IF NOT EXISTS {db}.agent_not_ready_15m AS
SELECT tenant, agent_id, interval_start, reason, ms
FROM {db}.agent_not_ready_intervals FINAL
WHERE (tenant, agent_id, interval_start, version) IN
      (SELECT tenant, agent_id, interval_start, version FROM {db}.agent_intervals FINAL);

CREATE VIEW IF NOT EXISTS {db}.agents_now AS
SELECT tenant, agent_id, state, reason, since, held, queues, snapshot_at,
       toUInt32(snapshot_at) - toUInt32(since) AS in_state_s
FROM {db}.agent_live FINAL;

CREATE VIEW IF NOT EXISTS {db}.agents_by_state AS
SELECT tenant, queue, state, reason, count() AS agents
FROM
(
    SELECT tenant, arrayJoin(if(empty(queues), [''], queues)) AS queue, state, reason
    FROM {db}.agent_live FINAL
    WHERE state != 'logged_out'
)
GROUP BY tenant, queue, state, reason;

CREATE VIEW IF NOT EXISTS {db}.agent_handled_15m AS
SELECT *, (talk_ms + hold_ms + acw_ms) / 1000 / handled AS aht_s
FROM
(
    SELECT
        tenant, agent_id, interval_start,
        count() AS handled,
        sum(talk) AS talk_ms, sum(hold) AS hold_ms, sum(acw) AS acw_ms,
        countIf(transfers > 0) AS transferred,
        countIf(csat IS NOT NULL) AS csat_ratings,
        countIf(ifNull(csat, 0) >= 4) AS csat_good
    FROM
    (
        SELECT tenant, assumeNotNull(agent_id) AS agent_id,
               toStartOfFifteenMinutes(assumeNotNull(ifNull(wrapup_ended_at, ended_at))) AS interval_start,
               talk_ms AS talk, hold_ms AS hold, acw_ms AS acw, transfers, csat
        FROM {db}.interactions FINAL
        WHERE answered_at IS NOT NULL AND agent_id IS NOT NULL
          AND (wrapup_ended_at IS NOT NULL OR ended_at IS NOT NULL)
    )
    GROUP BY tenant, agent_id, interval_start
);
