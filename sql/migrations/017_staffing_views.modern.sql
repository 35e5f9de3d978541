-- The staffing plan's views (modern ClickHouse: half-hour buckets with toStartOfInterval).

-- Agents available (ready, busy or after-call work) per queue and half hour, counting the agents
-- whose latest login names the queue (an agent of several queues counts for each).
CREATE VIEW IF NOT EXISTS {db}.staffed_30m AS
SELECT a.tenant AS tenant, l.queue AS queue, toStartOfInterval(a.interval_start, INTERVAL 30 MINUTE) AS interval_start,
    sum(a.ready_ms + a.busy_ms + a.acw_ms) / 1800000 AS staffed
FROM {db}.agent_intervals_15m AS a
INNER JOIN (SELECT tenant, agent_id, arrayJoin(queues) AS queue FROM {db}.agent_live FINAL) AS l
    ON l.tenant = a.tenant AND l.agent_id = a.agent_id
GROUP BY tenant, queue, interval_start;

-- The staffing plan beside what happened: contacts forecast and offered, agents required and
-- staffed, per queue and half hour.
CREATE VIEW IF NOT EXISTS {db}.required_agents AS
SELECT f.tenant AS tenant, f.queue AS queue, f.interval_start AS interval_start, f.day AS day,
    f.offered AS forecast_offered, f.offered_low AS forecast_low, f.offered_high AS forecast_high,
    a.actual AS actual_offered, f.aht_s AS forecast_aht_s, f.required_agents AS required,
    s.staffed AS staffed, toFloat64(f.required_agents) - s.staffed AS shortfall, f.note AS note
FROM (SELECT * FROM {db}.forecasts FINAL) AS f
LEFT JOIN (SELECT tenant, queue, toStartOfInterval(interval_start, INTERVAL 30 MINUTE) AS t, sum(offered) AS actual
           FROM {db}.kpi_intervals_15m GROUP BY tenant, queue, t) AS a
    ON a.tenant = f.tenant AND a.queue = f.queue AND a.t = f.interval_start
LEFT JOIN {db}.staffed_30m AS s
    ON s.tenant = f.tenant AND s.queue = f.queue AND s.interval_start = f.interval_start;
