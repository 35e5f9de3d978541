-- The interval KPIs recomputed in SQL from the interaction records, by the same rules
-- as the stream (streams/kpi.py): the data team can regroup them any way they like, and a
-- test holds this view and kpi_intervals_15m to equal figures. Modern ClickHouse only
-- (millisecond timestamps); skipped on the 2018 server CI uses for the native protocol.

CREATE VIEW IF NOT EXISTS {db}.kpi_intervals_15m_sql AS
SELECT
    *,
    {KPI_RATIOS}
FROM
(
    SELECT
        tenant, queue, channel, interval_start,
        {KPI_SUMS},
        max(max_wait_ms) AS max_wait_ms
    FROM
    (
    SELECT i.tenant AS tenant, ifNull(i.queue, '') AS queue, i.channel AS channel,
        toStartOfFifteenMinutes(assumeNotNull(i.offered_at)) AS interval_start,
        toUInt64(1) AS offered,
        toUInt64(0) AS answered,
        toUInt64(0) AS answered_in_sl,
        toUInt64(0) AS abandoned,
        toUInt64(0) AS abandoned_in_sl,
        toUInt64(0) AS short_abandons,
        toUInt64(0) AS wait_answered_ms,
        toUInt64(0) AS wait_abandoned_ms,
        toUInt64(0) AS handled,
        toUInt64(0) AS talk_ms,
        toUInt64(0) AS hold_ms,
        toUInt64(0) AS acw_ms,
        toUInt64(0) AS transferred,
        toUInt64(0) AS csat_ratings,
        toUInt64(0) AS csat_good,
        toUInt64(0) AS first_responses,
        toUInt64(0) AS first_response_ms,
        toUInt64(0) AS billable_talk_minutes,
        toUInt64(0) AS max_wait_ms
    FROM {db}.interactions AS i FINAL
    WHERE i.offered_at IS NOT NULL AND i.direction != 'outbound'
    UNION ALL
    SELECT i.tenant AS tenant, ifNull(i.queue, '') AS queue, i.channel AS channel,
        toStartOfFifteenMinutes(assumeNotNull(ifNull(i.answered_at, i.abandoned_at))) AS interval_start,
        toUInt64(0) AS offered,
        toUInt64(toUInt64(i.answered_at IS NOT NULL)) AS answered,
        toUInt64(toUInt64(i.answered_at IS NOT NULL AND i.wait_ms <= s.sl_threshold_s * 1000)) AS answered_in_sl,
        toUInt64(toUInt64(i.answered_at IS NULL)) AS abandoned,
        toUInt64(toUInt64(i.answered_at IS NULL AND i.wait_ms <= s.sl_threshold_s * 1000)) AS abandoned_in_sl,
        toUInt64(toUInt64(i.answered_at IS NULL AND i.wait_ms <= s.short_abandon_s * 1000)) AS short_abandons,
        toUInt64(if(i.answered_at IS NOT NULL, i.wait_ms, 0)) AS wait_answered_ms,
        toUInt64(if(i.answered_at IS NULL, i.wait_ms, 0)) AS wait_abandoned_ms,
        toUInt64(0) AS handled,
        toUInt64(0) AS talk_ms,
        toUInt64(0) AS hold_ms,
        toUInt64(0) AS acw_ms,
        toUInt64(toUInt64(i.answered_at IS NOT NULL AND i.transfers > 0)) AS transferred,
        toUInt64(toUInt64(i.csat IS NOT NULL)) AS csat_ratings,
        toUInt64(toUInt64(ifNull(i.csat, 0) >= 4)) AS csat_good,
        toUInt64(toUInt64(i.answered_at IS NOT NULL AND i.first_response_at IS NOT NULL)) AS first_responses,
        toUInt64(if(i.answered_at IS NOT NULL AND i.first_response_at IS NOT NULL, toUInt64(greatest(0, toUnixTimestamp64Milli(assumeNotNull(i.first_response_at)) - toUnixTimestamp64Milli(assumeNotNull(i.answered_at)))), 0)) AS first_response_ms,
        toUInt64(0) AS billable_talk_minutes,
        toUInt64(i.wait_ms) AS max_wait_ms
    FROM {db}.interactions AS i FINAL
    INNER JOIN (SELECT tenant, queue, sl_threshold_s, short_abandon_s FROM {db}.queue_settings FINAL) AS s
        ON s.tenant = i.tenant AND s.queue = ifNull(i.queue, '')
    WHERE (i.answered_at IS NOT NULL OR i.abandoned_at IS NOT NULL) AND i.direction != 'outbound'
    UNION ALL
    SELECT i.tenant AS tenant, ifNull(i.queue, '') AS queue, i.channel AS channel,
        toStartOfFifteenMinutes(assumeNotNull(ifNull(i.wrapup_ended_at, i.ended_at))) AS interval_start,
        toUInt64(0) AS offered,
        toUInt64(0) AS answered,
        toUInt64(0) AS answered_in_sl,
        toUInt64(0) AS abandoned,
        toUInt64(0) AS abandoned_in_sl,
        toUInt64(0) AS short_abandons,
        toUInt64(0) AS wait_answered_ms,
        toUInt64(0) AS wait_abandoned_ms,
        toUInt64(1) AS handled,
        toUInt64(i.talk_ms) AS talk_ms,
        toUInt64(i.hold_ms) AS hold_ms,
        toUInt64(i.acw_ms) AS acw_ms,
        toUInt64(0) AS transferred,
        toUInt64(0) AS csat_ratings,
        toUInt64(0) AS csat_good,
        toUInt64(0) AS first_responses,
        toUInt64(0) AS first_response_ms,
        toUInt64(intDiv(i.talk_ms + 59999, 60000)) AS billable_talk_minutes,
        toUInt64(0) AS max_wait_ms
    FROM {db}.interactions AS i FINAL
    WHERE i.answered_at IS NOT NULL AND (i.wrapup_ended_at IS NOT NULL OR i.ended_at IS NOT NULL)
      AND i.direction != 'outbound'
    )
    GROUP BY tenant, queue, channel, interval_start
);
