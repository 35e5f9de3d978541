-- Teams of agents from the centre file (tenants.<t>.teams), written by the worker when it starts;
-- teams named by the agents' own logins are read from raw_events (015_team_views). Every write
-- carries one version: the current configuration is the latest write.

CREATE TABLE IF NOT EXISTS {db}.team_config
(
    tenant      {LC},
    agent_id    String,
    team        {LC},
    department  {LC},
    site        {LC},
    version     UInt64   COMMENT 'the write (ms): the latest write is the configuration in force'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, agent_id);

CREATE VIEW IF NOT EXISTS {db}.team_config_current AS
SELECT tenant, agent_id, team, department, site
FROM {db}.team_config FINAL
WHERE version = (SELECT max(version) FROM {db}.team_config);
