-- Views for people and dashboards: one current row per interaction, durations in seconds.

CREATE VIEW IF NOT EXISTS {db}.interactions_current AS
SELECT
    *,
    wait_ms / 1000 AS wait_s,
    talk_ms / 1000 AS talk_s,
    hold_ms / 1000 AS hold_s,
    acw_ms / 1000 AS acw_s,
    (talk_ms + hold_ms + acw_ms) / 1000 AS handle_s
FROM {db}.interactions FINAL;

CREATE VIEW IF NOT EXISTS {db}.dead_letters_by_reason AS
SELECT reason, source_topic, count() AS messages, min(received_at) AS first_seen, max(received_at) AS last_seen
FROM {db}.dead_letters FINAL
GROUP BY reason, source_topic;
