-- Every quality evaluation as sent (qa_evaluated events), with its sections, and the latest
-- per contact and form (what the interaction record's qa_score averages). Modern ClickHouse
-- only (JSON functions on the stored payload).

CREATE VIEW IF NOT EXISTS {db}.qa_evaluations AS
SELECT tenant, interaction_id, agent_id, ts AS evaluated_at, event_id,
    JSONExtractString(payload, 'evaluator') AS evaluator,
    JSONExtractString(payload, 'form') AS form,
    JSONExtractFloat(payload, 'score') AS score,
    toUInt8(JSONExtractBool(payload, 'critical_failure')) AS critical_failure,
    JSONExtract(payload, 'sections', 'Map(String, Float64)') AS sections
FROM {db}.raw_events FINAL
WHERE type = 'qa_evaluated';

CREATE VIEW IF NOT EXISTS {db}.qa_latest AS
SELECT *
FROM {db}.qa_evaluations
ORDER BY evaluated_at DESC, event_id DESC
LIMIT 1 BY tenant, interaction_id, form;
