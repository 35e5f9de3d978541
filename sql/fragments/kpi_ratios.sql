-- {KPI_RATIOS}: every ratio KPI of the summed counts, by the rules of docs/kpis.md (the
-- same as streams/kpi.py). Placed in a view's SELECT list by streams/migrate.py.
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
