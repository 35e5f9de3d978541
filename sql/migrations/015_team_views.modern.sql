-- Team figures, with history: an agent's team at a 15-minute interval is the one its latest
-- login up to that interval named (agent_login.team), else the centre file's (team_config_current).
-- An agent who moves keeps its earlier intervals with its earlier team. Modern ClickHouse only
-- (ASOF JOIN, JSON functions).

CREATE VIEW IF NOT EXISTS {db}.agent_team_history AS
SELECT tenant, agent_id, toDateTime64(toStartOfFifteenMinutes(ts), 3, 'UTC') AS since, ts AS logged_in_at,
    JSONExtractString(payload, 'team') AS team,
    JSONExtractString(payload, 'department') AS department,
    JSONExtractString(payload, 'site') AS site
FROM {db}.raw_events FINAL
WHERE type = 'agent_login' AND JSONExtractString(payload, 'team') != '';

-- Every agent interval with the team the agent was in then.
CREATE VIEW IF NOT EXISTS {db}.agent_intervals_team AS
SELECT a.tenant AS tenant, a.agent_id AS agent_id, a.interval_start AS interval_start,
    a.logged_in_ms AS logged_in_ms, a.ready_ms AS ready_ms, a.busy_ms AS busy_ms, a.acw_ms AS acw_ms,
    a.not_ready_ms AS not_ready_ms, a.held_ms AS held_ms, a.max_held AS max_held, a.occupancy AS occupancy,
    if(h.team != '', h.team, toString(c.team)) AS team,
    if(h.team != '', h.department, toString(c.department)) AS department,
    if(h.team != '', h.site, toString(c.site)) AS site
FROM {db}.agent_intervals_15m AS a
{TEAM_JOIN};

-- Every handled-contact row (agent_handled_15m) with the handling agent's team then.
CREATE VIEW IF NOT EXISTS {db}.agent_handled_team AS
SELECT a.tenant AS tenant, a.agent_id AS agent_id, a.interval_start AS interval_start, a.handled AS handled,
    a.talk_ms AS talk_ms, a.hold_ms AS hold_ms, a.acw_ms AS acw_ms, a.transferred AS transferred,
    a.csat_ratings AS csat_ratings, a.csat_good AS csat_good, a.aht_s AS aht_s,
    if(h.team != '', h.team, toString(c.team)) AS team,
    if(h.team != '', h.department, toString(c.department)) AS department
FROM {db}.agent_handled_15m AS a
{TEAM_JOIN};

-- Per team and 15 minutes: agents on the floor, time per state, occupancy and the available
-- share of logged-in time (ready, busy or in after-call work: the part of adherence a schedule
-- is not needed for).
CREATE VIEW IF NOT EXISTS {db}.team_intervals_15m AS
SELECT tenant, team, department, interval_start, agents, n_logged_in AS logged_in_ms, n_ready AS ready_ms,
    n_busy AS busy_ms, n_acw AS acw_ms, n_not_ready AS not_ready_ms,
    (n_busy + n_acw) / nullIf(n_busy + n_acw + n_ready, 0) AS occupancy,
    (n_ready + n_busy + n_acw) / nullIf(n_logged_in, 0) AS available_share
FROM
(
    SELECT tenant, team, any(department) AS department, interval_start,
        uniqExactIf(agent_id, logged_in_ms > 0) AS agents,
        sum(logged_in_ms) AS n_logged_in, sum(ready_ms) AS n_ready, sum(busy_ms) AS n_busy,
        sum(acw_ms) AS n_acw, sum(not_ready_ms) AS n_not_ready
    FROM {db}.agent_intervals_team
    WHERE team != ''
    GROUP BY tenant, team, interval_start
);

-- Per team and 15 minutes: contacts handled (wrap-up ended), AHT and CSAT.
CREATE VIEW IF NOT EXISTS {db}.team_handled_15m AS
SELECT tenant, team, interval_start, n_handled AS handled, n_talk AS talk_ms, n_hold AS hold_ms, n_acw AS acw_ms,
    n_rated AS csat_ratings, n_good AS csat_good,
    (n_talk + n_hold + n_acw) / 1000 / nullIf(n_handled, 0) AS aht_s,
    n_good / nullIf(n_rated, 0) AS csat_score
FROM
(
    SELECT tenant, team, interval_start, sum(handled) AS n_handled, sum(talk_ms) AS n_talk,
        sum(hold_ms) AS n_hold, sum(acw_ms) AS n_acw, sum(csat_ratings) AS n_rated,
        sum(csat_good) AS n_good
    FROM {db}.agent_handled_team
    WHERE team != ''
    GROUP BY tenant, team, interval_start
);

-- Per team and UTC day: quality and satisfaction of the contacts its agents handled that day
-- (an agent's team as of the end of the day).
CREATE VIEW IF NOT EXISTS {db}.team_quality_daily AS
SELECT tenant, team, day, n_handled AS handled, n_evaluated AS evaluated, n_critical AS critical_failures,
    n_evaluated / nullIf(n_handled, 0) AS qa_coverage,
    n_score / nullIf(n_evaluated, 0) AS qa_score,
    n_good / nullIf(n_rated, 0) AS csat_score
FROM
(
    SELECT a.tenant AS tenant, if(h.team != '', h.team, toString(c.team)) AS team, a.day AS day,
        sum(a.handled) AS n_handled, sum(a.evaluated) AS n_evaluated, sum(a.critical_failures) AS n_critical,
        sum(ifNull(a.qa_score, 0) * a.evaluated) AS n_score, sum(a.csat_good) AS n_good,
        sum(a.csat_ratings) AS n_rated
    FROM (SELECT *, toDateTime64(toDateTime(day, 'UTC'), 3, 'UTC') + toIntervalSecond(86399) AS interval_start
          FROM {db}.agent_quality_daily) AS a
    {TEAM_JOIN}
    GROUP BY tenant, team, day
)
WHERE team != '';
