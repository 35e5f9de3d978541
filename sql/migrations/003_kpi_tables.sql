-- KPI tables written by the stream (streams/windows.py, streams/kpi.py).
-- Rows are partial: one per source partition of the events topic. The views sum them, and
-- a partition's row is replaced by its next version (ReplacingMergeTree), so re-emitted or
-- corrected figures never add up twice.

CREATE TABLE IF NOT EXISTS {db}.queue_settings
(
    tenant           {LC},
    queue            {LC},
    sl_threshold_s   UInt32  COMMENT 'T of answered within T seconds',
    sl_goal          Float64 COMMENT 'target share, 0.8 for 80/20',
    sl_variant       {LC}    COMMENT 'service-level formula the live figures use',
    short_abandon_s  UInt32  COMMENT 'abandons within this are misdials',
    fcr_days         UInt16,
    updated_at       {TS}
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant, queue);

CREATE TABLE IF NOT EXISTS {db}.kpi_interval_parts
(
    tenant             {LC},
    queue              {LC},
    channel            {LC},
    interval_start     {TS}    COMMENT '15-minute interval, UTC-aligned',
    local_day          Date    COMMENT 'the tenant business day (its time zone and daily reset)',
    source_partition   UInt16  COMMENT 'partial figures of one events-topic partition',
    offered            UInt64  COMMENT 'contacts first offered in the interval',
    answered           UInt64  COMMENT 'contacts answered (counted when they left the queue)',
    answered_in_sl     UInt64  COMMENT 'answered within sl_threshold_s',
    abandoned          UInt64  COMMENT 'contacts that abandoned in queue',
    abandoned_in_sl    UInt64  COMMENT 'abandoned within sl_threshold_s',
    short_abandons     UInt64  COMMENT 'abandoned within short_abandon_s (misdials)',
    wait_answered_ms   UInt64  COMMENT 'queue time of answered contacts, summed (ASA numerator)',
    wait_abandoned_ms  UInt64  COMMENT 'queue time of abandoned contacts, summed',
    handled            UInt64  COMMENT 'contacts whose wrap-up ended in the interval (AHT is booked here)',
    talk_ms            UInt64  COMMENT 'talk of handled contacts, summed',
    hold_ms            UInt64  COMMENT 'hold of handled contacts, summed',
    acw_ms             UInt64  COMMENT 'after-call work of handled contacts, summed',
    transferred        UInt64  COMMENT 'answered contacts that were transferred',
    csat_ratings       UInt64  COMMENT 'rated contacts (counted at the contact time, not the rating time)',
    csat_good          UInt64  COMMENT 'ratings of 4 or 5',
    first_responses    UInt64  COMMENT 'chats with a first agent response',
    first_response_ms  UInt64  COMMENT 'answered -> first agent response, summed',
    max_wait_ms        UInt64  COMMENT 'longest queue time of contacts that left the queue',
    sl_threshold_s     UInt32,
    short_abandon_s    UInt32,
    version            UInt64  COMMENT 'the highest version of a part is the current one'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(interval_start)
ORDER BY (tenant, queue, channel, interval_start, source_partition);

CREATE TABLE IF NOT EXISTS {db}.kpi_live_parts
(
    tenant               {LC},
    queue                {LC},
    channel              {LC},
    window_minutes       UInt16  COMMENT 'rolling window: the current minute and the ones before it',
    source_partition     UInt16,
    snapshot_at          {TS}    COMMENT 'event-time now of the snapshot',
    offered            UInt64  COMMENT 'contacts first offered in the interval',
    answered           UInt64  COMMENT 'contacts answered (counted when they left the queue)',
    answered_in_sl     UInt64  COMMENT 'answered within sl_threshold_s',
    abandoned          UInt64  COMMENT 'contacts that abandoned in queue',
    abandoned_in_sl    UInt64  COMMENT 'abandoned within sl_threshold_s',
    short_abandons     UInt64  COMMENT 'abandoned within short_abandon_s (misdials)',
    wait_answered_ms   UInt64  COMMENT 'queue time of answered contacts, summed (ASA numerator)',
    wait_abandoned_ms  UInt64  COMMENT 'queue time of abandoned contacts, summed',
    handled            UInt64  COMMENT 'contacts whose wrap-up ended in the interval (AHT is booked here)',
    talk_ms            UInt64  COMMENT 'talk of handled contacts, summed',
    hold_ms            UInt64  COMMENT 'hold of handled contacts, summed',
    acw_ms             UInt64  COMMENT 'after-call work of handled contacts, summed',
    transferred        UInt64  COMMENT 'answered contacts that were transferred',
    csat_ratings       UInt64  COMMENT 'rated contacts (counted at the contact time, not the rating time)',
    csat_good          UInt64  COMMENT 'ratings of 4 or 5',
    first_responses    UInt64  COMMENT 'chats with a first agent response',
    first_response_ms  UInt64  COMMENT 'answered -> first agent response, summed',
    max_wait_ms          UInt64,
    waiting              UInt32  COMMENT 'contacts in queue now',
    oldest_waiting_since Nullable({TS}),
    version              UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, queue, channel, window_minutes, source_partition);

CREATE VIEW IF NOT EXISTS {db}.kpi_intervals_15m AS
SELECT
    *,
    {KPI_RATIOS}
FROM
(
    SELECT
        tenant, queue, channel, interval_start, any(local_day) AS local_day,
        {KPI_SUMS},
        max(max_wait_ms) AS max_wait_ms,
        max(sl_threshold_s) AS sl_threshold_s,
        max(short_abandon_s) AS short_abandon_s
    FROM {db}.kpi_interval_parts FINAL
    GROUP BY tenant, queue, channel, interval_start
);

CREATE VIEW IF NOT EXISTS {db}.kpi_live AS
SELECT
    *,
    {KPI_RATIOS},
    if(waiting > 0, toUInt32(snapshot_at) - toUInt32(assumeNotNull(oldest_waiting_since)), 0) AS oldest_waiting_s
FROM
(
    SELECT
        tenant, queue, channel, window_minutes,
        max(snapshot_at) AS snapshot_at,
        {KPI_SUMS},
        max(max_wait_ms) AS max_wait_ms,
        sum(waiting) AS waiting,
        min(oldest_waiting_since) AS oldest_waiting_since
    FROM {db}.kpi_live_parts FINAL
    GROUP BY tenant, queue, channel, window_minutes
);
