-- Coarser intervals, all sums of the 15-minute figures (so they agree with them exactly).
-- 30 and 60 minutes are UTC-aligned, which is the tenant's own alignment in every time zone
-- with a whole-hour offset; days follow each tenant's time zone and daily reset.

-- 30-minute intervals.
CREATE VIEW IF NOT EXISTS {db}.kpi_intervals_30m AS
SELECT
    *,
    answered_in_sl / nullIf(answered + abandoned - short_abandons, 0) AS sl_abandons_count_against,
    answered_in_sl / nullIf(answered, 0) AS sl_ignore_abandons,
    (answered_in_sl + abandoned_in_sl) / nullIf(answered + abandoned, 0) AS sl_abandons_within_t_ok,
    answered_in_sl / nullIf(answered + abandoned - abandoned_in_sl, 0) AS sl_abandons_within_t_ignored,
    (abandoned - short_abandons) / nullIf(answered + abandoned - short_abandons, 0) AS abandon_rate,
    wait_answered_ms / 1000 / nullIf(answered, 0) AS asa_s,
    (wait_answered_ms + wait_abandoned_ms) / 1000 / nullIf(answered + abandoned, 0) AS avg_wait_s,
    wait_abandoned_ms / 1000 / nullIf(abandoned, 0) AS avg_abandon_s,
    (talk_ms + hold_ms + acw_ms) / 1000 / nullIf(handled, 0) AS aht_s,
    talk_ms / 1000 / nullIf(handled, 0) AS avg_talk_s,
    hold_ms / 1000 / nullIf(handled, 0) AS avg_hold_s,
    acw_ms / 1000 / nullIf(handled, 0) AS avg_acw_s,
    transferred / nullIf(answered, 0) AS transfer_rate,
    csat_good / nullIf(csat_ratings, 0) AS csat,
    first_response_ms / 1000 / nullIf(first_responses, 0) AS first_response_s
FROM
(
    SELECT
        tenant, queue, channel, toDateTime(intDiv(toUInt32(interval_start), 1800) * 1800, 'UTC') AS interval_start,
        sum(offered) AS offered,
        sum(answered) AS answered,
        sum(answered_in_sl) AS answered_in_sl,
        sum(abandoned) AS abandoned,
        sum(abandoned_in_sl) AS abandoned_in_sl,
        sum(short_abandons) AS short_abandons,
        sum(wait_answered_ms) AS wait_answered_ms,
        sum(wait_abandoned_ms) AS wait_abandoned_ms,
        sum(handled) AS handled,
        sum(talk_ms) AS talk_ms,
        sum(hold_ms) AS hold_ms,
        sum(acw_ms) AS acw_ms,
        sum(transferred) AS transferred,
        sum(csat_ratings) AS csat_ratings,
        sum(csat_good) AS csat_good,
        sum(first_responses) AS first_responses,
        sum(first_response_ms) AS first_response_ms,
        sum(billable_talk_minutes) AS billable_talk_minutes,
        max(max_wait_ms) AS max_wait_ms,
        max(sl_threshold_s) AS sl_threshold_s
    FROM {db}.kpi_intervals_15m
    GROUP BY tenant, queue, channel, interval_start
);

-- Hours.
CREATE VIEW IF NOT EXISTS {db}.kpi_intervals_1h AS
SELECT
    *,
    answered_in_sl / nullIf(answered + abandoned - short_abandons, 0) AS sl_abandons_count_against,
    answered_in_sl / nullIf(answered, 0) AS sl_ignore_abandons,
    (answered_in_sl + abandoned_in_sl) / nullIf(answered + abandoned, 0) AS sl_abandons_within_t_ok,
    answered_in_sl / nullIf(answered + abandoned - abandoned_in_sl, 0) AS sl_abandons_within_t_ignored,
    (abandoned - short_abandons) / nullIf(answered + abandoned - short_abandons, 0) AS abandon_rate,
    wait_answered_ms / 1000 / nullIf(answered, 0) AS asa_s,
    (wait_answered_ms + wait_abandoned_ms) / 1000 / nullIf(answered + abandoned, 0) AS avg_wait_s,
    wait_abandoned_ms / 1000 / nullIf(abandoned, 0) AS avg_abandon_s,
    (talk_ms + hold_ms + acw_ms) / 1000 / nullIf(handled, 0) AS aht_s,
    talk_ms / 1000 / nullIf(handled, 0) AS avg_talk_s,
    hold_ms / 1000 / nullIf(handled, 0) AS avg_hold_s,
    acw_ms / 1000 / nullIf(handled, 0) AS avg_acw_s,
    transferred / nullIf(answered, 0) AS transfer_rate,
    csat_good / nullIf(csat_ratings, 0) AS csat,
    first_response_ms / 1000 / nullIf(first_responses, 0) AS first_response_s
FROM
(
    SELECT
        tenant, queue, channel, toDateTime(intDiv(toUInt32(interval_start), 3600) * 3600, 'UTC') AS interval_start,
        sum(offered) AS offered,
        sum(answered) AS answered,
        sum(answered_in_sl) AS answered_in_sl,
        sum(abandoned) AS abandoned,
        sum(abandoned_in_sl) AS abandoned_in_sl,
        sum(short_abandons) AS short_abandons,
        sum(wait_answered_ms) AS wait_answered_ms,
        sum(wait_abandoned_ms) AS wait_abandoned_ms,
        sum(handled) AS handled,
        sum(talk_ms) AS talk_ms,
        sum(hold_ms) AS hold_ms,
        sum(acw_ms) AS acw_ms,
        sum(transferred) AS transferred,
        sum(csat_ratings) AS csat_ratings,
        sum(csat_good) AS csat_good,
        sum(first_responses) AS first_responses,
        sum(first_response_ms) AS first_response_ms,
        sum(billable_talk_minutes) AS billable_talk_minutes,
        max(max_wait_ms) AS max_wait_ms,
        max(sl_threshold_s) AS sl_threshold_s
    FROM {db}.kpi_intervals_15m
    GROUP BY tenant, queue, channel, interval_start
);

-- Days in each tenant's time zone, from its daily reset.
CREATE VIEW IF NOT EXISTS {db}.kpi_daily AS
SELECT
    *,
    answered_in_sl / nullIf(answered + abandoned - short_abandons, 0) AS sl_abandons_count_against,
    answered_in_sl / nullIf(answered, 0) AS sl_ignore_abandons,
    (answered_in_sl + abandoned_in_sl) / nullIf(answered + abandoned, 0) AS sl_abandons_within_t_ok,
    answered_in_sl / nullIf(answered + abandoned - abandoned_in_sl, 0) AS sl_abandons_within_t_ignored,
    (abandoned - short_abandons) / nullIf(answered + abandoned - short_abandons, 0) AS abandon_rate,
    wait_answered_ms / 1000 / nullIf(answered, 0) AS asa_s,
    (wait_answered_ms + wait_abandoned_ms) / 1000 / nullIf(answered + abandoned, 0) AS avg_wait_s,
    wait_abandoned_ms / 1000 / nullIf(abandoned, 0) AS avg_abandon_s,
    (talk_ms + hold_ms + acw_ms) / 1000 / nullIf(handled, 0) AS aht_s,
    talk_ms / 1000 / nullIf(handled, 0) AS avg_talk_s,
    hold_ms / 1000 / nullIf(handled, 0) AS avg_hold_s,
    acw_ms / 1000 / nullIf(handled, 0) AS avg_acw_s,
    transferred / nullIf(answered, 0) AS transfer_rate,
    csat_good / nullIf(csat_ratings, 0) AS csat,
    first_response_ms / 1000 / nullIf(first_responses, 0) AS first_response_s
FROM
(
    SELECT
        tenant, queue, channel, local_day AS local_day,
        sum(offered) AS offered,
        sum(answered) AS answered,
        sum(answered_in_sl) AS answered_in_sl,
        sum(abandoned) AS abandoned,
        sum(abandoned_in_sl) AS abandoned_in_sl,
        sum(short_abandons) AS short_abandons,
        sum(wait_answered_ms) AS wait_answered_ms,
        sum(wait_abandoned_ms) AS wait_abandoned_ms,
        sum(handled) AS handled,
        sum(talk_ms) AS talk_ms,
        sum(hold_ms) AS hold_ms,
        sum(acw_ms) AS acw_ms,
        sum(transferred) AS transferred,
        sum(csat_ratings) AS csat_ratings,
        sum(csat_good) AS csat_good,
        sum(first_responses) AS first_responses,
        sum(first_response_ms) AS first_response_ms,
        sum(billable_talk_minutes) AS billable_talk_minutes,
        max(max_wait_ms) AS max_wait_ms,
        max(sl_threshold_s) AS sl_threshold_s
    FROM {db}.kpi_intervals_15m
    GROUP BY tenant, queue, channel, local_day
);

-- Today: each tenant's current business day (the newest day it has figures for).
CREATE VIEW IF NOT EXISTS {db}.kpi_today AS
SELECT *
FROM {db}.kpi_daily
WHERE (tenant, local_day) IN (SELECT tenant, max(local_day) FROM {db}.kpi_interval_parts GROUP BY tenant);
