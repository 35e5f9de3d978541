-- Outbound calls, the IVR in front of the queues, transfer reasons, recordings and quality
-- scores on every interaction record (docs/events.md). Rows stored before this migration read
-- the defaults: inbound, no IVR, nothing dialled, no evaluation.

ALTER TABLE {db}.interactions
    ADD COLUMN direction {LC} DEFAULT 'inbound' COMMENT 'inbound | outbound (dialled out) | callback (queued callback)',
    ADD COLUMN campaign {LCN} COMMENT 'outbound: the campaign',
    ADD COLUMN list_id Nullable(String) COMMENT 'outbound: the calling list',
    ADD COLUMN record_id Nullable(String) COMMENT 'outbound: the list record (person) called',
    ADD COLUMN dialed_at Nullable({TS}) COMMENT 'outbound: the attempt began',
    ADD COLUMN dial_result {LCN} COMMENT 'connected | no_answer | busy | answering_machine | invalid_number | dialer_abandoned',
    ADD COLUMN right_party Nullable(UInt8) COMMENT 'outbound: the wanted person was reached (as the agent recorded it)',
    ADD COLUMN converted Nullable(UInt8) COMMENT 'outbound: the campaign goal was met',
    ADD COLUMN ivr {LCN} COMMENT 'the IVR flow or bot the contact went through',
    ADD COLUMN ivr_entered_at Nullable({TS}) COMMENT 'reached the IVR',
    ADD COLUMN ivr_ms UInt64 DEFAULT 0 COMMENT 'time in the IVR, never negative',
    ADD COLUMN ivr_result {LCN} COMMENT 'to_queue | self_served | hung_up | transferred_out',
    ADD COLUMN ivr_path Array(String) COMMENT 'IVR menu nodes and intents, in order',
    ADD COLUMN transfer_reasons Array(String) COMMENT 'the reason of each transfer that gave one',
    ADD COLUMN recording Nullable(String) COMMENT 'id or URL of the recording',
    ADD COLUMN qa_evaluations UInt16 DEFAULT 0 COMMENT 'forms the contact was scored on',
    ADD COLUMN qa_score Nullable(Float64) COMMENT 'mean of the latest score per form, percent',
    ADD COLUMN qa_critical Nullable(UInt8) COMMENT '1 when a form''s latest evaluation had a critical failure';

-- Per campaign and 15 minutes (of the dial time). Connects: a person answered (an agent took
-- the call, or the dialer dropped it for want of one). Rates are NULL where their base is 0.
CREATE VIEW IF NOT EXISTS {db}.campaign_intervals_15m AS
SELECT tenant, campaign, interval_start, attempts, connects, handled, right_party_contacts, conversions,
    dialer_abandoned, no_answer, busy, answering_machine, invalid_number, records_dialled, talk_ms, acw_ms,
    if(attempts = 0, NULL, connects / attempts) AS contact_rate,
    if(connects = 0, NULL, dialer_abandoned / connects) AS dialer_abandon_rate,
    if(right_party_contacts = 0, NULL, conversions / right_party_contacts) AS conversion_rate,
    if(records_dialled = 0, NULL, attempts_with_record / records_dialled) AS attempts_per_record,
    if(handled = 0, NULL, (talk_ms + acw_ms) / handled / 1000) AS aht_s
FROM
(
    SELECT tenant, ifNull(campaign, '') AS campaign,
        toStartOfFifteenMinutes(assumeNotNull(dialed_at)) AS interval_start,
        count() AS attempts,
        countIf(answered_at IS NOT NULL OR dial_result IN ('connected', 'dialer_abandoned')) AS connects,
        countIf(answered_at IS NOT NULL) AS handled,
        countIf(answered_at IS NOT NULL AND ifNull(right_party, 1) = 1) AS right_party_contacts,
        countIf(converted = 1) AS conversions,
        countIf(dial_result = 'dialer_abandoned') AS dialer_abandoned,
        countIf(dial_result = 'no_answer') AS no_answer,
        countIf(dial_result = 'busy') AS busy,
        countIf(dial_result = 'answering_machine') AS answering_machine,
        countIf(dial_result = 'invalid_number') AS invalid_number,
        uniqExactIf(assumeNotNull(record_id), record_id IS NOT NULL) AS records_dialled,
        countIf(record_id IS NOT NULL) AS attempts_with_record,
        sum(talk_ms) AS talk_ms,
        sum(acw_ms) AS acw_ms
    FROM {db}.interactions FINAL
    WHERE direction = 'outbound' AND dialed_at IS NOT NULL
    GROUP BY tenant, campaign, interval_start
);

-- Per campaign record (person): how often and when it was tried, and what came of it.
CREATE VIEW IF NOT EXISTS {db}.campaign_records AS
SELECT tenant, ifNull(campaign, '') AS campaign, assumeNotNull(record_id) AS record_id,
    count() AS attempts, min(dialed_at) AS first_dialed_at, max(dialed_at) AS last_dialed_at,
    countIf(answered_at IS NOT NULL) AS handled,
    max(toUInt8(answered_at IS NOT NULL AND ifNull(right_party, 1) = 1)) AS reached,
    max(toUInt8(ifNull(converted, 0))) AS converted
FROM {db}.interactions FINAL
WHERE direction = 'outbound' AND record_id IS NOT NULL
GROUP BY tenant, campaign, record_id;

-- Per IVR and 15 minutes (of entering it). Containment: the share of sessions the IVR served
-- itself. Hang-ups in the IVR are counted apart: they are neither contained nor abandoned.
CREATE VIEW IF NOT EXISTS {db}.ivr_intervals_15m AS
SELECT tenant, ivr, interval_start, sessions, to_queue, self_served, hung_up, transferred_out, ivr_ms,
    if(sessions = 0, NULL, self_served / sessions) AS containment,
    if(sessions = 0, NULL, hung_up / sessions) AS ivr_hangup_rate,
    if(sessions = 0, NULL, ivr_ms / sessions / 1000) AS avg_ivr_s
FROM
(
    SELECT tenant, ifNull(ivr, '') AS ivr,
        toStartOfFifteenMinutes(assumeNotNull(ivr_entered_at)) AS interval_start,
        count() AS sessions,
        countIf(ivr_result = 'to_queue' OR (ivr_result IS NULL AND offered_at IS NOT NULL)) AS to_queue,
        countIf(ivr_result = 'self_served') AS self_served,
        countIf(ivr_result = 'hung_up') AS hung_up,
        countIf(ivr_result = 'transferred_out') AS transferred_out,
        sum(ivr_ms) AS ivr_ms
    FROM {db}.interactions FINAL
    WHERE ivr_entered_at IS NOT NULL
    GROUP BY tenant, ivr, interval_start
);

-- Which IVR paths lead where: per path, how the sessions left and to which queue.
CREATE VIEW IF NOT EXISTS {db}.ivr_paths AS
SELECT tenant, ifNull(ivr, '') AS ivr, arrayStringConcat(ivr_path, ' > ') AS path,
    ifNull(ivr_result, '') AS result, ifNull(first_queue, '') AS queue,
    count() AS sessions, sum(ivr_ms) AS ivr_ms, countIf(answered_at IS NOT NULL) AS answered,
    min(ivr_entered_at) AS first_at, max(ivr_entered_at) AS last_at
FROM {db}.interactions FINAL
WHERE ivr_entered_at IS NOT NULL
GROUP BY tenant, ivr, path, result, queue;

-- Transfers by reason, per queue the contact left last and 15 minutes of its answer.
CREATE VIEW IF NOT EXISTS {db}.transfer_reasons_15m AS
SELECT tenant, ifNull(queue, '') AS queue, toStartOfFifteenMinutes(assumeNotNull(answered_at)) AS interval_start,
    reason, count() AS transfers
FROM {db}.interactions FINAL
ARRAY JOIN transfer_reasons AS reason
WHERE answered_at IS NOT NULL
GROUP BY tenant, queue, interval_start, reason;

-- Quality and satisfaction per agent and UTC day of handling: evaluated contacts, their mean
-- score, critical failures, coverage (evaluated share of handled contacts), CSAT beside them.
CREATE VIEW IF NOT EXISTS {db}.agent_quality_daily AS
SELECT tenant, agent_id, day, handled, evaluated, critical_failures, csat_ratings, csat_good,
    if(handled = 0, NULL, evaluated / handled) AS qa_coverage,
    if(evaluated = 0, NULL, qa_score_sum / evaluated) AS qa_score,
    if(evaluated = 0, NULL, critical_failures / evaluated) AS critical_rate,
    if(csat_ratings = 0, NULL, csat_sum / csat_ratings) AS csat_avg,
    if(csat_ratings = 0, NULL, csat_good / csat_ratings) AS csat_score
FROM
(
    SELECT tenant, assumeNotNull(agent_id) AS agent_id,
        toDate(assumeNotNull(ifNull(wrapup_ended_at, ended_at))) AS day,
        count() AS handled,
        countIf(qa_evaluations > 0) AS evaluated,
        sumIf(ifNull(qa_score, 0), qa_evaluations > 0) AS qa_score_sum,
        countIf(qa_critical = 1) AS critical_failures,
        countIf(csat IS NOT NULL) AS csat_ratings,
        sumIf(ifNull(csat, 0), csat IS NOT NULL) AS csat_sum,
        countIf(ifNull(csat, 0) >= 4) AS csat_good
    FROM {db}.interactions FINAL
    WHERE answered_at IS NOT NULL AND agent_id IS NOT NULL AND (wrapup_ended_at IS NOT NULL OR ended_at IS NOT NULL)
    GROUP BY tenant, agent_id, day
);
