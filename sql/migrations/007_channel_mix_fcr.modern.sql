-- Channel mix and the first-contact-resolution proxy, from the interaction records.
-- Modern ClickHouse only (window functions); skipped on the 2018 server.

-- Share of offered contacts and of handling time per channel, per tenant and 15 minutes.
CREATE VIEW IF NOT EXISTS {db}.channel_mix_15m AS
SELECT
    tenant, interval_start, channel, offered, handle_ms,
    offered / nullIf(sum(offered) OVER (PARTITION BY tenant, interval_start), 0) AS offered_share,
    handle_ms / nullIf(sum(handle_ms) OVER (PARTITION BY tenant, interval_start), 0) AS handle_share
FROM
(
    SELECT tenant, interval_start, channel, sum(offered) AS offered,
           sum(talk_ms) + sum(hold_ms) + sum(acw_ms) AS handle_ms
    FROM {db}.kpi_intervals_15m
    GROUP BY tenant, interval_start, channel
);

-- First-contact resolution proxy, one row per answered contact with a known customer:
-- resolved at first contact unless the same customer contacts the same tenant again within
-- the queue's fcr_days, or the wrap-up said resolved = false. Provisional until fcr_days
-- have passed since the contact (newest contact of the tenant as "now").
CREATE VIEW IF NOT EXISTS {db}.fcr AS
SELECT
    c.tenant AS tenant, c.queue AS queue, c.channel AS channel, c.agent_id AS agent_id,
    c.interaction_id AS interaction_id, c.customer_id AS customer_id, c.offered_at AS offered_at,
    c.next_contact_at AS next_contact_at, s.fcr_days AS fcr_days,
    toUInt8(ifNull(c.resolved, 1) = 1 AND (c.next_contact_at IS NULL
        OR dateDiff('second', c.offered_at, assumeNotNull(c.next_contact_at)) > s.fcr_days * 86400)) AS fcr,
    toUInt8(c.next_contact_at IS NULL AND dateDiff('second', c.offered_at, c.tenant_now) <= s.fcr_days * 86400)
        AS provisional
FROM
(
    SELECT tenant, ifNull(queue, '') AS queue, channel, agent_id, interaction_id, customer_id, resolved, outcome,
           assumeNotNull(offered_at) AS offered_at,
           leadInFrame(toNullable(offered_at)) OVER (PARTITION BY tenant, customer_id ORDER BY offered_at
                  ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next_contact_at,
           max(assumeNotNull(offered_at)) OVER (PARTITION BY tenant) AS tenant_now
    FROM {db}.interactions FINAL
    WHERE customer_id IS NOT NULL AND offered_at IS NOT NULL
) AS c
INNER JOIN (SELECT tenant, queue, fcr_days FROM {db}.queue_settings FINAL) AS s
    ON s.tenant = c.tenant AND s.queue = c.queue
WHERE c.outcome = 'answered';
