-- Stable views for the data team and for client-facing reports (docs/sql-guide.md).
-- Their names and columns are a contract: columns are only ever added, never renamed or
-- dropped. Each column says what it means; times are UTC unless the column says local.
-- Modern ClickHouse only (column comments on views); the 2018 CI server skips this file.

CREATE VIEW IF NOT EXISTS {db}.contacts
(
    interaction_id        String             COMMENT 'the contact, as the telephony or chat platform names it',
    tenant                String             COMMENT 'client of the centre the contact belongs to',
    channel               String             COMMENT 'voice | chat | email | callback ...',
    queue                 Nullable(String)   COMMENT 'queue the contact left last (after transfers)',
    first_queue           Nullable(String)   COMMENT 'queue the contact was first offered to',
    customer_id           Nullable(String)   COMMENT 'caller or chat user, when the platform knows them',
    agent_id              Nullable(String)   COMMENT 'agent who handled it last',
    offered_at            Nullable(DateTime64(3, 'UTC')) COMMENT 'first offered to a queue',
    answered_at           Nullable(DateTime64(3, 'UTC')) COMMENT 'connected to an agent',
    abandoned_at          Nullable(DateTime64(3, 'UTC')) COMMENT 'caller hung up while queued',
    ended_at              Nullable(DateTime64(3, 'UTC')) COMMENT 'conversation ended',
    wrapup_ended_at       Nullable(DateTime64(3, 'UTC')) COMMENT 'after-call work finished',
    outcome               String             COMMENT 'answered | abandoned | unanswered | ivr (left in the IVR) | not_connected (outbound)',
    disposition           Nullable(String)   COMMENT 'wrap-up code the agent chose',
    resolved              Nullable(UInt8)    COMMENT '1 or 0 as the agent recorded it, NULL if not asked',
    csat                  Nullable(UInt8)    COMMENT 'customer rating 1..5 (4 and 5 count as satisfied)',
    transfers             UInt16             COMMENT 'times the contact was transferred',
    holds                 UInt16             COMMENT 'times the contact was put on hold',
    wait_s                Float64            COMMENT 'seconds queued, summed over every queue stint',
    talk_s                Float64            COMMENT 'seconds connected, less hold',
    hold_s                Float64            COMMENT 'seconds on hold',
    acw_s                 Float64            COMMENT 'seconds of after-call work',
    handle_s              Float64            COMMENT 'talk + hold + after-call work (what AHT averages)',
    billable_talk_minutes UInt64             COMMENT 'talk minutes rounded up per contact (billing by started minute)',
    closed_by_timeout     UInt8              COMMENT '1 when its final event never came and the pipeline closed it',
    direction             String             COMMENT 'inbound | outbound (dialled out) | callback (queued callback)',
    campaign              Nullable(String)   COMMENT 'outbound: the campaign',
    dial_result           Nullable(String)   COMMENT 'outbound: connected | no_answer | busy | answering_machine | invalid_number | dialer_abandoned',
    ivr_s                 Float64            COMMENT 'seconds in the IVR before the queue (0 without one)',
    ivr_result            Nullable(String)   COMMENT 'to_queue | self_served | hung_up | transferred_out',
    journey_s             Float64            COMMENT 'the whole journey: IVR + queue wait + talk + hold',
    transfer_reasons      Array(String)      COMMENT 'the reason of each transfer that gave one',
    recording             Nullable(String)   COMMENT 'id or URL of the recording',
    qa_score              Nullable(Float64)  COMMENT 'quality score, mean of the latest per form (percent)'
)
AS SELECT
    interaction_id,
    toString(tenant) AS tenant,
    toString(channel) AS channel,
    if(queue IS NULL, NULL, toString(assumeNotNull(queue))) AS queue,
    if(first_queue IS NULL, NULL, toString(assumeNotNull(first_queue))) AS first_queue,
    customer_id,
    agent_id,
    offered_at,
    answered_at,
    abandoned_at,
    ended_at,
    wrapup_ended_at,
    toString(outcome) AS outcome,
    disposition,
    resolved,
    csat,
    transfers,
    holds,
    wait_ms / 1000 AS wait_s,
    talk_ms / 1000 AS talk_s,
    hold_ms / 1000 AS hold_s,
    acw_ms / 1000 AS acw_s,
    (talk_ms + hold_ms + acw_ms) / 1000 AS handle_s,
    toUInt64(intDiv(talk_ms + 59999, 60000)) AS billable_talk_minutes,
    closed_by_timeout,
    toString(direction) AS direction,
    if(campaign IS NULL, NULL, toString(assumeNotNull(campaign))) AS campaign,
    if(dial_result IS NULL, NULL, toString(assumeNotNull(dial_result))) AS dial_result,
    ivr_ms / 1000 AS ivr_s,
    if(ivr_result IS NULL, NULL, toString(assumeNotNull(ivr_result))) AS ivr_result,
    (ivr_ms + wait_ms + talk_ms + hold_ms) / 1000 AS journey_s,
    transfer_reasons,
    recording,
    qa_score
FROM {db}.interactions FINAL
COMMENT 'One row per contact, its latest version: the base for ad-hoc analysis';

CREATE VIEW IF NOT EXISTS {db}.interval_kpis
(
    tenant                       String   COMMENT 'client of the centre',
    queue                        String   COMMENT 'queue ('''' for contacts never queued)',
    channel                      String   COMMENT 'voice | chat | ...',
    interval_start               DateTime64(3, 'UTC') COMMENT 'start of the 15-minute interval',
    local_day                    Date     COMMENT 'the tenant''s business day (its time zone and daily reset)',
    offered                      UInt64   COMMENT 'contacts first offered in the interval',
    answered                     UInt64   COMMENT 'contacts answered (counted when they left the queue)',
    answered_in_sl               UInt64   COMMENT 'answered within the queue''s threshold T',
    abandoned                    UInt64   COMMENT 'abandoned while queued',
    abandoned_in_sl              UInt64   COMMENT 'abandoned within T',
    short_abandons               UInt64   COMMENT 'abandoned within short_abandon_s (misdials, excluded from rates)',
    handled                      UInt64   COMMENT 'contacts whose wrap-up ended in the interval (AHT is booked here)',
    sl_threshold_s               UInt32   COMMENT 'T, seconds',
    sl_abandons_count_against    Nullable(Float64) COMMENT 'SL = answered in T / (answered + abandoned - short abandons)',
    sl_ignore_abandons           Nullable(Float64) COMMENT 'SL = answered in T / answered',
    sl_abandons_within_t_ok      Nullable(Float64) COMMENT 'SL = (answered in T + abandoned in T) / (answered + abandoned)',
    sl_abandons_within_t_ignored Nullable(Float64) COMMENT 'SL = answered in T / (answered + abandoned - abandoned in T)',
    sl_variant                   String   COMMENT 'the variant the queue reports (centre file)',
    service_level                Nullable(Float64) COMMENT 'SL by the queue''s own variant',
    sl_goal                      Float64  COMMENT 'target share, 0.8 for 80/20',
    sl_met                       Nullable(UInt8) COMMENT '1 when service_level >= sl_goal, NULL without contacts',
    abandon_rate                 Nullable(Float64) COMMENT '(abandoned - short) / (answered + abandoned - short)',
    asa_s                        Nullable(Float64) COMMENT 'average speed of answer, seconds',
    aht_s                        Nullable(Float64) COMMENT 'average handle time (talk + hold + ACW), seconds',
    avg_talk_s                   Nullable(Float64) COMMENT 'average talk, seconds',
    avg_acw_s                    Nullable(Float64) COMMENT 'average after-call work, seconds',
    max_wait_s                   Float64  COMMENT 'longest queue time of contacts that left the queue',
    transfer_rate                Nullable(Float64) COMMENT 'answered contacts transferred / answered',
    csat                         Nullable(Float64) COMMENT 'ratings of 4 or 5 / ratings',
    talk_ms                      UInt64   COMMENT 'talk of handled contacts, summed',
    hold_ms                      UInt64   COMMENT 'hold of handled contacts, summed',
    acw_ms                       UInt64   COMMENT 'after-call work of handled contacts, summed',
    billable_talk_minutes        UInt64   COMMENT 'talk of handled contacts rounded up to the minute per contact, summed'
)
AS SELECT
    k.tenant AS tenant,
    k.queue AS queue,
    k.channel AS channel,
    k.interval_start AS interval_start,
    k.local_day AS local_day,
    k.offered AS offered,
    k.answered AS answered,
    k.answered_in_sl AS answered_in_sl,
    k.abandoned AS abandoned,
    k.abandoned_in_sl AS abandoned_in_sl,
    k.short_abandons AS short_abandons,
    k.handled AS handled,
    k.sl_threshold_s AS sl_threshold_s,
    k.sl_abandons_count_against AS sl_abandons_count_against,
    k.sl_ignore_abandons AS sl_ignore_abandons,
    k.sl_abandons_within_t_ok AS sl_abandons_within_t_ok,
    k.sl_abandons_within_t_ignored AS sl_abandons_within_t_ignored,
    s.variant AS sl_variant,
    multiIf(s.variant = 'ignore_abandons', k.sl_ignore_abandons,
            s.variant = 'abandons_within_t_ok', k.sl_abandons_within_t_ok,
            s.variant = 'abandons_within_t_ignored', k.sl_abandons_within_t_ignored,
            k.sl_abandons_count_against) AS service_level,
    s.goal AS sl_goal,
    if(service_level IS NULL, NULL, toUInt8(service_level >= s.goal)) AS sl_met,
    k.abandon_rate AS abandon_rate,
    k.asa_s AS asa_s,
    k.aht_s AS aht_s,
    k.avg_talk_s AS avg_talk_s,
    k.avg_acw_s AS avg_acw_s,
    k.max_wait_ms / 1000 AS max_wait_s,
    k.transfer_rate AS transfer_rate,
    k.csat AS csat,
    k.talk_ms AS talk_ms,
    k.hold_ms AS hold_ms,
    k.acw_ms AS acw_ms,
    k.billable_talk_minutes AS billable_talk_minutes
FROM {db}.kpi_intervals_15m AS k
LEFT JOIN
(
    SELECT tenant, queue, toString(sl_variant) AS variant, sl_goal AS goal FROM {db}.queue_settings FINAL
) AS s ON s.tenant = k.tenant AND s.queue = k.queue
COMMENT '15-minute KPIs per tenant, queue and channel: every SL variant side by side, and the queue''s own';

CREATE VIEW IF NOT EXISTS {db}.daily_kpis
(
    tenant                       String   COMMENT 'client of the centre',
    queue                        String   COMMENT 'queue',
    channel                      String   COMMENT 'voice | chat | ...',
    local_day                    Date     COMMENT 'the tenant''s business day (its time zone and daily reset)',
    offered                      UInt64   COMMENT 'contacts first offered that day',
    answered                     UInt64   COMMENT 'contacts answered',
    answered_in_sl               UInt64   COMMENT 'answered within T',
    abandoned                    UInt64   COMMENT 'abandoned while queued',
    short_abandons               UInt64   COMMENT 'misdials (abandoned within short_abandon_s)',
    handled                      UInt64   COMMENT 'contacts whose wrap-up ended that day',
    sl_variant                   String   COMMENT 'the variant the queue reports',
    service_level                Nullable(Float64) COMMENT 'SL by the queue''s own variant, over the whole day',
    sl_goal                      Float64  COMMENT 'target share',
    sl_abandons_count_against    Nullable(Float64) COMMENT 'see interval_kpis',
    sl_ignore_abandons           Nullable(Float64) COMMENT 'see interval_kpis',
    sl_abandons_within_t_ok      Nullable(Float64) COMMENT 'see interval_kpis',
    sl_abandons_within_t_ignored Nullable(Float64) COMMENT 'see interval_kpis',
    abandon_rate                 Nullable(Float64) COMMENT '(abandoned - short) / (answered + abandoned - short)',
    asa_s                        Nullable(Float64) COMMENT 'average speed of answer, seconds',
    aht_s                        Nullable(Float64) COMMENT 'average handle time, seconds',
    csat                         Nullable(Float64) COMMENT 'ratings of 4 or 5 / ratings',
    billable_talk_minutes        UInt64   COMMENT 'talk of contacts handled that day, rounded up to the minute per contact'
)
AS SELECT
    k.tenant AS tenant,
    k.queue AS queue,
    k.channel AS channel,
    k.local_day AS local_day,
    k.offered AS offered,
    k.answered AS answered,
    k.answered_in_sl AS answered_in_sl,
    k.abandoned AS abandoned,
    k.short_abandons AS short_abandons,
    k.handled AS handled,
    s.variant AS sl_variant,
    multiIf(s.variant = 'ignore_abandons', k.sl_ignore_abandons,
            s.variant = 'abandons_within_t_ok', k.sl_abandons_within_t_ok,
            s.variant = 'abandons_within_t_ignored', k.sl_abandons_within_t_ignored,
            k.sl_abandons_count_against) AS service_level,
    s.goal AS sl_goal,
    k.sl_abandons_count_against AS sl_abandons_count_against,
    k.sl_ignore_abandons AS sl_ignore_abandons,
    k.sl_abandons_within_t_ok AS sl_abandons_within_t_ok,
    k.sl_abandons_within_t_ignored AS sl_abandons_within_t_ignored,
    k.abandon_rate AS abandon_rate,
    k.asa_s AS asa_s,
    k.aht_s AS aht_s,
    k.csat AS csat,
    k.billable_talk_minutes AS billable_talk_minutes
FROM {db}.kpi_daily AS k
LEFT JOIN
(
    SELECT tenant, queue, toString(sl_variant) AS variant, sl_goal AS goal FROM {db}.queue_settings FINAL
) AS s ON s.tenant = k.tenant AND s.queue = k.queue
COMMENT 'Daily KPIs per tenant, queue and channel on the tenant''s business day';

CREATE VIEW IF NOT EXISTS {db}.agent_daily
(
    tenant         String   COMMENT 'client of the centre the agent works for',
    agent_id       String   COMMENT 'agent',
    day            Date     COMMENT 'UTC day',
    logged_in_s    Float64  COMMENT 'seconds logged in (any state but logged out)',
    ready_s        Float64  COMMENT 'seconds idle, waiting for a contact',
    busy_s         Float64  COMMENT 'seconds connected to at least one contact',
    acw_s          Float64  COMMENT 'seconds of after-call work',
    not_ready_s    Float64  COMMENT 'seconds on break, lunch, training...',
    occupancy      Nullable(Float64) COMMENT '(busy + acw) / (busy + acw + ready)',
    handled        UInt64   COMMENT 'contacts whose wrap-up ended that day, handled last by this agent',
    aht_s          Nullable(Float64) COMMENT 'average handle time of those, seconds',
    csat           Nullable(Float64) COMMENT 'ratings of 4 or 5 / ratings, of those contacts'
)
AS SELECT
    t.tenant AS tenant,
    t.agent_id AS agent_id,
    t.day AS day,
    t.logged_in_ms / 1000 AS logged_in_s,
    t.ready_ms / 1000 AS ready_s,
    t.busy_ms / 1000 AS busy_s,
    t.acw_ms / 1000 AS acw_s,
    t.not_ready_ms / 1000 AS not_ready_s,
    (t.busy_ms + t.acw_ms) / nullIf(t.busy_ms + t.acw_ms + t.ready_ms, 0) AS occupancy,
    ifNull(h.contacts, 0) AS handled,
    h.aht_s AS aht_s,
    h.csat AS csat
FROM
(
    SELECT toString(tenant) AS tenant, agent_id, toDate(interval_start) AS day,
           sum(logged_in_ms) AS logged_in_ms, sum(ready_ms) AS ready_ms, sum(busy_ms) AS busy_ms,
           sum(acw_ms) AS acw_ms, sum(not_ready_ms) AS not_ready_ms
    FROM {db}.agent_intervals FINAL
    GROUP BY tenant, agent_id, day
) AS t
LEFT JOIN
(
    SELECT toString(tenant) AS tenant, agent_id, toDate(interval_start) AS day, sum(handled) AS contacts,
           (sum(talk_ms) + sum(hold_ms) + sum(acw_ms)) / 1000 / nullIf(contacts, 0) AS aht_s,
           sum(csat_good) / nullIf(sum(csat_ratings), 0) AS csat
    FROM {db}.agent_handled_15m
    GROUP BY tenant, agent_id, day
) AS h ON h.tenant = t.tenant AND h.agent_id = t.agent_id AND h.day = t.day
COMMENT 'Per agent and UTC day: time per state, occupancy, handled contacts, AHT and CSAT';

CREATE VIEW IF NOT EXISTS {db}.channel_mix_daily
(
    tenant          String   COMMENT 'client of the centre',
    local_day       Date     COMMENT 'the tenant''s business day',
    channel         String   COMMENT 'voice | chat | ...',
    offered         UInt64   COMMENT 'contacts offered on this channel',
    handled         UInt64   COMMENT 'contacts handled on this channel',
    handle_s        Float64  COMMENT 'talk + hold + ACW of handled contacts, seconds',
    offered_share   Nullable(Float64) COMMENT 'share of the tenant''s offered contacts that day',
    handle_share    Nullable(Float64) COMMENT 'share of the tenant''s handling time that day'
)
AS SELECT
    tenant,
    local_day,
    channel,
    offered,
    handled,
    handle_ms / 1000 AS handle_s,
    offered / nullIf(sum(offered) OVER (PARTITION BY tenant, local_day), 0) AS offered_share,
    handle_ms / nullIf(sum(handle_ms) OVER (PARTITION BY tenant, local_day), 0) AS handle_share
FROM
(
    SELECT toString(tenant) AS tenant, local_day, toString(channel) AS channel, sum(offered) AS offered,
           sum(handled) AS handled, sum(talk_ms) + sum(hold_ms) + sum(acw_ms) AS handle_ms
    FROM {db}.kpi_daily
    GROUP BY tenant, local_day, channel
)
COMMENT 'Per tenant and business day: each channel''s share of contacts and of handling time';

CREATE VIEW IF NOT EXISTS {db}.client_billing_daily
(
    tenant           String   COMMENT 'client of the centre',
    local_day        Date     COMMENT 'the tenant''s business day',
    offered          UInt64   COMMENT 'contacts offered',
    answered         UInt64   COMMENT 'contacts answered',
    abandoned        UInt64   COMMENT 'contacts abandoned (misdials included)',
    handled          UInt64   COMMENT 'contacts handled to the end of wrap-up: the unit for billing by contact',
    talk_minutes     Float64  COMMENT 'talk of handled contacts, minutes to the second: billing by talk minute',
    handle_minutes   Float64  COMMENT 'talk + hold + ACW of handled contacts, minutes',
    service_level    Nullable(Float64) COMMENT 'answered in T / (answered + abandoned - short abandons), all queues',
    asa_s            Nullable(Float64) COMMENT 'average speed of answer, seconds',
    billable_talk_minutes UInt64 COMMENT 'talk of handled contacts rounded up to the minute per contact: billing per started minute'
)
AS SELECT
    tenant, local_day, offered, answered, abandoned, handled,
    talk_ms / 60000 AS talk_minutes,
    (talk_ms + hold_ms + acw_ms) / 60000 AS handle_minutes,
    answered_in_sl / nullIf(answered + abandoned - short_abandons, 0) AS service_level,
    wait_answered_ms / 1000 / nullIf(answered, 0) AS asa_s,
    billable_talk_minutes
FROM
(
    SELECT toString(tenant) AS tenant, local_day,
           sum(offered) AS offered, sum(answered) AS answered, sum(abandoned) AS abandoned,
           sum(handled) AS handled, sum(talk_ms) AS talk_ms, sum(hold_ms) AS hold_ms, sum(acw_ms) AS acw_ms,
           sum(answered_in_sl) AS answered_in_sl, sum(short_abandons) AS short_abandons,
           sum(wait_answered_ms) AS wait_answered_ms, sum(billable_talk_minutes) AS billable_talk_minutes
    FROM {db}.kpi_daily
    GROUP BY tenant, local_day
)
COMMENT 'Per client and business day: volumes, service level and the units clients are billed by';
