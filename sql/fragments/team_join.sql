-- {TEAM_JOIN}: joins to the rows `a` (tenant, agent_id, interval_start) the team the agent was in
-- then: `h`, its latest login up to that quarter hour that named one, else `c`, the centre file's.
-- Placed by streams/clickhouse/migrate.py; read the team as if(h.team != '', h.team, toString(c.team)).
ASOF LEFT JOIN {db}.agent_team_history AS h
    ON h.tenant = a.tenant AND h.agent_id = a.agent_id AND a.interval_start >= h.since
LEFT JOIN {db}.team_config_current AS c
    ON c.tenant = a.tenant AND c.agent_id = a.agent_id
