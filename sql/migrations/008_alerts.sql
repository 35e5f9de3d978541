-- Alert history: one row per notification (firing, re-notified, resolved), for Grafana
-- annotations and SQL. A recomputed notification after a restart has the same key and
-- collapses (ReplacingMergeTree).

CREATE TABLE IF NOT EXISTS {db}.alerts
(
    alert_id       String   COMMENT 'rule/tenant/queue/channel/episode start: one per episode',
    status         {LC}     COMMENT 'firing | resolved',
    renotify       UInt8    COMMENT '1 for a repeated firing notification',
    rule           {LC},
    severity       {LC},
    tenant         {LC},
    queue          {LC},
    channel        {LC},
    metric         {LC},
    value          Nullable(Float64),
    threshold      Float64,
    started_at     {TS}     COMMENT 'when the condition began (event time)',
    at             {TS}     COMMENT 'when this notification was decided (event time)'
)
ENGINE = ReplacingMergeTree
ORDER BY (alert_id, status, at);

CREATE VIEW IF NOT EXISTS {db}.alerts_current AS
SELECT alert_id, rule, severity, tenant, queue, channel, metric, started_at,
       argMax(status, at) AS status, argMax(value, at) AS value, max(at) AS last_at, any(threshold) AS threshold
FROM {db}.alerts FINAL
GROUP BY alert_id, rule, severity, tenant, queue, channel, metric, started_at;
