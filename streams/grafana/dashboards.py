"""The ccpulse dashboards, generated from code into grafana/dashboards/*.json.

Eight boards, one audience each: the live wallboard, interval history, channel mix,
agents for supervisors, an agent's own figures, the client report, alerts, and campaigns,
the IVR and quality. Every query
reads the views of sql/migrations (ccpulse database, named explicitly) through the
ClickHouse plugin, with its macros ($__timeFilter, $__conditionalAll ...) and chained
variables tenant -> queue -> channel / agent. Live panels read the latest snapshot the
stream stored (event time), never ClickHouse's wall-clock now(), so a replayed day shows
on the wallboard exactly as a live one does.

Regenerate the committed JSON after a change: ``ccpulse grafana build`` (or
``python -c "from pathlib import Path; from streams.grafana.dashboards import write_all;
write_all(Path('grafana/dashboards'))"``); tests/test_dashboards.py fails on drift.
"""
from __future__ import annotations

import json
from pathlib import Path

from streams.grafana.panels import (
    DATASOURCE,
    Json,
    annotation,
    bargauge,
    custom_variable,
    dashboard,
    field_config,
    layout,
    override_color,
    query_variable,
    rows_to_fields,
    stat,
    state_timeline,
    table,
    target,
    thresholds,
    timeseries,
    value_colors,
)

__all__ = ["DATASOURCE", "build_all", "write_all"]

DB = "ccpulse"

# --- filters: single-valued variables compare with '=', multi-valued ones with has() and
# $__conditionalAll, which the plugin turns into 1=1 when "All" is selected.
#
# A variable's value never reaches the SQL as a quoted string: anyone can put any value in a
# dashboard URL, and Grafana's quoting formats do not escape the backslash, which ends a
# ClickHouse string literal (``nobody\' OR 1=1 --``). Values travel percent-encoded
# (``percentencode``, ``queryparam``: letters, digits and ``-_.~%&=`` only) and the engine
# decodes them. The ClickHouse user is still the boundary (clients query through their own).


def one(var: str) -> str:
    """A single-valued variable as a SQL string expression."""
    return f"decodeURLComponent('${{{var}:percentencode}}')"


def many(var: str) -> str:
    """A multi-valued variable as a SQL array of strings (``var-x=a&var-x=b``, each encoded)."""
    return (f"arrayMap(v -> decodeURLComponent(substring(v, position(v, '=') + 1)), "
            f"splitByChar('&', '${{{var}:queryparam}}'))")


TENANT = f"tenant = {one('tenant')}"
QUEUES = f"$__conditionalAll(has({many('queue')}, queue), $queue)"
CHANNELS = f"$__conditionalAll(has({many('channel')}, channel), $channel)"
AGENTS = f"$__conditionalAll(has({many('agent')}, agent_id), $agent)"
QUEUES_OF_AGENT = f"$__conditionalAll(hasAny(queues, {many('queue')}), $queue)"
#: Agents of the selected queues (their last login's queues), also when agent is "All".
AGENTS_OF_QUEUES = f"agent_id IN (SELECT agent_id FROM {DB}.agent_live FINAL WHERE {TENANT} AND {QUEUES_OF_AGENT})"


def sl_by_variant(variant: str) -> str:
    """Service level of summed counts by the queue's own formula (kpi-definitions.md);
    ``variant`` is an expression of the queue's sl_variant. No contacts: NULL."""
    return (f"multiIf({variant} = 'ignore_abandons', sum(answered_in_sl) / nullIf(sum(answered), 0), "
            f"{variant} = 'abandons_within_t_ok', (sum(answered_in_sl) + sum(abandoned_in_sl)) "
            "/ nullIf(sum(answered) + sum(abandoned), 0), "
            f"{variant} = 'abandons_within_t_ignored', sum(answered_in_sl) "
            "/ nullIf(sum(answered) + sum(abandoned) - sum(abandoned_in_sl), 0), "
            "sum(answered_in_sl) / nullIf(sum(answered) + sum(abandoned) - sum(short_abandons), 0))")


def sl_base_by_variant(variant: str) -> str:
    """How many contacts the service level of ``sl_by_variant`` is based on (its denominator)."""
    return (f"multiIf({variant} = 'ignore_abandons', sum(answered), "
            f"{variant} = 'abandons_within_t_ok', sum(answered) + sum(abandoned), "
            f"{variant} = 'abandons_within_t_ignored', sum(answered) + sum(abandoned) - sum(abandoned_in_sl), "
            "sum(answered) + sum(abandoned) - sum(short_abandons))")


ABANDON_RATE = "(sum(abandoned) - sum(short_abandons)) / nullIf(sum(answered) + sum(abandoned) - sum(short_abandons), 0)"
AHT = "(sum(talk_ms) + sum(hold_ms) + sum(acw_ms)) / 1000 / nullIf(sum(handled), 0)"
#: interval_kpis carries ASA per row; weighting by answered gives the ASA of the sum.
ASA = "sum(ifNull(asa_s, 0) * answered) / nullIf(sum(answered), 0)"
STEP = "toStartOfInterval(interval_start, toIntervalMinute(greatest(1, toUInt32OrZero('${step:percentencode}'))))"

STATE_COLORS = {"ready": "green", "busy": "blue", "acw": "purple", "not_ready": "orange", "logged_out": "text"}
SEVERITY_COLORS = {"critical": "red", "warning": "orange", "info": "blue"}
STATUS_COLORS = {"firing": "red", "resolved": "green"}
PERCENT = {"unit": "percentunit", "decimals": 1}


# --- variables ----------------------------------------------------------------------------

def tenant_var(*, multi: bool = False) -> Json:
    return query_variable("tenant", "Tenant", f"SELECT DISTINCT tenant FROM {DB}.queue_settings FINAL ORDER BY tenant",
                          multi=multi, include_all=multi)


def queue_var() -> Json:
    return query_variable("queue", "Queue", f"SELECT DISTINCT queue FROM {DB}.queue_settings FINAL "
                          f"WHERE {TENANT} AND queue != '' ORDER BY queue", multi=True, include_all=True)


def channel_var() -> Json:
    return query_variable("channel", "Channel", f"SELECT DISTINCT channel FROM {DB}.kpi_interval_parts "
                          f"WHERE {TENANT} AND {QUEUES} ORDER BY channel", multi=True, include_all=True)


def agent_var(*, multi: bool) -> Json:
    """Supervisors pick any agents of the chosen queues; an agent's own board takes one."""
    where = f"{TENANT} AND {QUEUES_OF_AGENT}" if multi else TENANT
    return query_variable("agent", "Agent", f"SELECT DISTINCT agent_id FROM {DB}.agent_live FINAL "
                          f"WHERE {where} ORDER BY agent_id", multi=multi, include_all=multi)


def step_var(default: str = "15", hour: bool = False) -> Json:
    choices = [("15 minutes", "15"), ("30 minutes", "30")] + ([("1 hour", "60")] if hour else [])
    return custom_variable("step", "Interval", choices, default)


# --- 1. live wallboard ------------------------------------------------------------------

def _live(select: str, group: str = "queue") -> str:
    """Live figures of the chosen window, per queue; the latest snapshot is all kpi_live holds."""
    return (f"SELECT {select} FROM {DB}.kpi_live AS k "
            f"LEFT JOIN (SELECT queue, toString(sl_variant) AS variant, sl_goal AS goal, sl_threshold_s AS t "
            f"FROM {DB}.queue_settings FINAL WHERE {TENANT}) AS s ON s.queue = k.queue "
            f"WHERE k.tenant = {one('tenant')} AND k.window_minutes = toUInt32OrZero('${{window:percentencode}}') AND k.queue != '' "
            f"AND $__conditionalAll(has({many('queue')}, k.queue), $queue) "
            f"AND $__conditionalAll(has({many('channel')}, k.channel), $channel) "
            f"GROUP BY {group} ORDER BY {group}")


def wallboard() -> Json:
    sl_now = stat(
        "Service level now vs goal",
        "Service level of the rolling window, per queue, by the queue's own SL formula; red below the "
        "queue's goal, green at or above it (goal and formula from the centre file). Each tile names the "
        "contacts it is based on: 100 % of 3 is not 100 % of 300.",
        [target(_live(f"concat(k.queue, ' · ', toString({sl_base_by_variant('any(s.variant)')}), ' contacts') "
                      f"AS queue, {sl_by_variant('any(s.variant)')} AS service_level, "
                      "0 AS below_goal, any(s.goal) AS goal", group="k.queue"))],
        fieldconfig=field_config(**PERCENT, min_=0, max_=1, steps=thresholds("red"), color_mode="thresholds"),
        transformations=[rows_to_fields("queue", "service_level", ("below_goal", "red"), ("goal", "green"))],
        text_size=60)
    waiting = stat(
        "Waiting now", "Contacts in queue at the latest snapshot, per queue.",
        [target(_live("k.queue AS queue, sum(k.waiting) AS waiting"))],
        fieldconfig=field_config(unit="none", decimals=0, steps=thresholds("blue"), color_mode="thresholds"),
        transformations=[rows_to_fields("queue", "waiting")], color_mode="value")
    oldest = stat(
        "Oldest wait", "How long the longest-waiting contact has queued, per queue; red once it is past "
        "the queue's SL threshold T (it will count against service level).",
        [target(_live("k.queue AS queue, max(k.oldest_waiting_s) AS oldest_wait_s, 0 AS within_t, "
                      "any(s.t) AS past_t"))],
        fieldconfig=field_config(unit="s", decimals=0, steps=thresholds("green"), color_mode="thresholds"),
        transformations=[rows_to_fields("queue", "oldest_wait_s", ("within_t", "green"), ("past_t", "red"))])
    abandon = stat(
        "Abandon rate", "(Abandoned - short abandons) / (answered + abandoned - short abandons) in the "
        "rolling window, per queue; misdials excluded.",
        [target(_live(f"k.queue AS queue, {ABANDON_RATE} AS abandon_rate"))],
        fieldconfig=field_config(**PERCENT, steps=thresholds("green", (0.05, "orange"), (0.1, "red")),
                                 color_mode="thresholds"),
        transformations=[rows_to_fields("queue", "abandon_rate")])
    agents = stat(
        "Agents by state", "Agents logged in to the selected queues, by state now.",
        [target(f"SELECT state, count() AS agents FROM {DB}.agents_now WHERE {TENANT} AND state != 'logged_out' "
                f"AND {QUEUES_OF_AGENT} GROUP BY state ORDER BY state")],
        fieldconfig=field_config(unit="none", decimals=0, color_mode="fixed",
                                 overrides=[override_color(s, c) for s, c in STATE_COLORS.items()]),
        transformations=[rows_to_fields("state", "agents")])
    today_sql = (f"SELECT {sl_by_variant('any(sl_variant)')} AS service_level, sum(offered) AS offered, "
                 f"{ABANDON_RATE} AS abandon_rate FROM (SELECT * FROM {DB}.interval_kpis "
                 f"WHERE {TENANT} AND queue != '' AND {QUEUES} AND {CHANNELS} AND local_day = (SELECT max(local_day) "
                 f"FROM {DB}.interval_kpis WHERE {TENANT}))")
    today = stat(
        "Today", "The tenant's business day so far (its time zone and daily reset), the selected queues "
        "together: service level (by the formula of the queues; mixed formulas use the default), contacts "
        "offered and abandon rate, beside the rolling figures above.",
        [target(today_sql)],
        fieldconfig=field_config(decimals=0, overrides=[
            {"matcher": {"id": "byRegexp", "options": "service_level|abandon_rate"},
             "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]}]),
        color_mode="none")
    window = custom_variable("window", "Window", [("last 5 minutes", "5"), ("last 15 minutes", "15"),
                                                  ("last 60 minutes", "60")], "15")
    return dashboard(
        uid="ccpulse-wallboard", title="Live wallboard", tags=["live"], refresh="5s", time_from="now-1h",
        description="Right now, per queue: service level against goal, contacts waiting, the oldest wait, "
                    "abandon rate and agents by state. Figures are the stream's latest snapshot (event time).",
        variables=[tenant_var(), queue_var(), channel_var(), window],
        panels=layout([[(sl_now, 18, 8), (today, 6, 8)], [(waiting, 12, 5), (oldest, 12, 5)],
                       [(abandon, 12, 5), (agents, 12, 5)]]))


# --- 2. service level and intervals ---------------------------------------------------------

INTERVAL_FILTER = f"{TENANT} AND {QUEUES} AND {CHANNELS} AND $__timeFilter(interval_start)"

ALERT_ANNOTATION = f"""
SELECT at AS time,
       concat(toString(status), ': ', toString(rule), ' on ', toString(queue),
              if(channel = '*', '', concat(' / ', toString(channel))), ' (', toString(metric), ' ',
              ifNull(toString(round(value, 3)), 'n/a'), ', threshold ', toString(threshold), ')') AS text,
       arrayStringConcat([toString(status), toString(severity), toString(rule)], ',') AS tags
FROM {DB}.alerts FINAL
WHERE {TENANT} AND {QUEUES} AND $__timeFilter(at)
ORDER BY time"""


def intervals() -> Json:
    volumes = timeseries(
        "Offered, answered, abandoned", "Contacts per interval (15 or 30 minutes, variable Interval): "
        "offered when they entered the queue, answered and abandoned when they left it.",
        [target(f"SELECT {STEP} AS time, sum(offered) AS offered, sum(answered) AS answered, "
                f"sum(abandoned) AS abandoned FROM {DB}.interval_kpis WHERE {INTERVAL_FILTER} "
                "GROUP BY time ORDER BY time", fmt="timeseries")],
        fieldconfig=field_config(unit="none", decimals=0, overrides=[
            override_color("offered", "blue"), override_color("answered", "green"),
            override_color("abandoned", "red")]), bars=True)
    sl = timeseries(
        "Service level vs goal", "Per queue and interval, by the queue's own SL formula; the dashed "
        "line is the queue's goal. Alert firings and resolutions are marked above.",
        [target(f"SELECT {STEP} AS time, queue, {sl_by_variant('any(sl_variant)')} AS SL, any(sl_goal) AS goal "
                f"FROM {DB}.interval_kpis WHERE {INTERVAL_FILTER} AND queue != '' "
                "GROUP BY time, queue ORDER BY time, queue", fmt="timeseries")],
        fieldconfig=field_config(**PERCENT, min_=0, max_=1, display_name="${__field.labels.queue} ${__field.name}",
                                 overrides=[{"matcher": {"id": "byRegexp", "options": ".* goal$"},
                                             "properties": [{"id": "custom.lineStyle",
                                                             "value": {"fill": "dash", "dash": [10, 10]}},
                                                            {"id": "custom.lineWidth", "value": 1}]}]))
    asa = timeseries(
        "Average speed of answer", "Mean queue time of answered contacts, per interval (earlier queue "
        "stints of transferred contacts included).",
        [target(f"SELECT {STEP} AS time, {ASA} AS ASA FROM {DB}.interval_kpis WHERE {INTERVAL_FILTER} "
                "GROUP BY time ORDER BY time", fmt="timeseries")],
        fieldconfig=field_config(unit="s", decimals=0))
    aht = timeseries(
        "Average handle time", "Talk + hold + after-call work of contacts whose wrap-up ended in the interval.",
        [target(f"SELECT {STEP} AS time, {AHT} AS AHT FROM {DB}.interval_kpis WHERE {INTERVAL_FILTER} "
                "GROUP BY time ORDER BY time", fmt="timeseries")],
        fieldconfig=field_config(unit="s", decimals=0))
    history = table(
        "Intervals", "Every interval per queue, newest first. Inspect > Data > Download CSV exports it.",
        [target(f"SELECT time, queue, n_offered AS offered, n_answered AS answered, n_abandoned AS abandoned, "
                "service_level, goal, asa_s, aht_s, abandon_rate "
                f"FROM (SELECT {STEP} AS time, queue, sum(offered) AS n_offered, sum(answered) AS n_answered, "
                f"sum(abandoned) AS n_abandoned, {sl_by_variant('any(sl_variant)')} AS service_level, "
                f"any(sl_goal) AS goal, {ASA} AS asa_s, {AHT} AS aht_s, {ABANDON_RATE} AS abandon_rate "
                f"FROM {DB}.interval_kpis WHERE {INTERVAL_FILTER} GROUP BY time, queue) ORDER BY time DESC, queue")],
        fieldconfig=field_config(overrides=[
            {"matcher": {"id": "byRegexp", "options": "service_level|goal|abandon_rate"},
             "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]},
            {"matcher": {"id": "byRegexp", "options": "asa_s|aht_s"},
             "properties": [{"id": "unit", "value": "s"}, {"id": "decimals", "value": 0}]}]))
    return dashboard(
        uid="ccpulse-intervals", title="Service level and intervals", tags=["history"], refresh="1m",
        time_from="now-24h",
        description="15- or 30-minute history: volumes, service level against goal, ASA and AHT, with "
                    "alert firings and resolutions as annotations.",
        variables=[tenant_var(), queue_var(), channel_var(), step_var()],
        annotations=[annotation("Alerts", ALERT_ANNOTATION)],
        panels=layout([[(volumes, 24, 8)], [(sl, 24, 8)], [(asa, 12, 7), (aht, 12, 7)], [(history, 24, 9)]]))


# --- 3. channel mix -------------------------------------------------------------------------

def _share(measure: str, alias: str) -> str:
    return (f"SELECT time, channel, {measure} / nullIf(sum({measure}) OVER (PARTITION BY time), 0) AS {alias} "
            f"FROM (SELECT {STEP} AS time, channel, sum(offered) AS offered, sum(handle_ms) AS handle_ms "
            f"FROM {DB}.channel_mix_15m WHERE {TENANT} AND $__timeFilter(interval_start) GROUP BY time, channel) "
            "ORDER BY time, channel")


def channel_mix() -> Json:
    share_fc = field_config(**PERCENT, min_=0, max_=1, display_name="${__field.labels.channel}")
    contacts = timeseries("Share of contacts", "Each channel's share of the contacts offered in the interval.",
                          [target(_share("offered", "contacts"), fmt="timeseries")], fieldconfig=share_fc, stacked=True)
    handling = timeseries("Share of handling time", "Each channel's share of agent handling time (talk + hold + "
                          "after-call work) of the contacts handled in the interval.",
                          [target(_share("handle_ms", "handling"), fmt="timeseries")], fieldconfig=share_fc,
                          stacked=True)
    daily = table(
        "Per business day", "Per day in the tenant's time zone: contacts and handling hours per channel and "
        "their shares. Inspect > Data > Download CSV exports it.",
        [target(f"SELECT local_day, channel, offered, offered_share, handled, handle_s / 3600 AS handle_hours, "
                f"handle_share FROM {DB}.channel_mix_daily WHERE {TENANT} AND $__dateFilter(local_day) "
                "ORDER BY local_day DESC, channel")],
        fieldconfig=field_config(overrides=[
            {"matcher": {"id": "byRegexp", "options": ".*_share"},
             "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]},
            {"matcher": {"id": "byName", "options": "handle_hours"},
             "properties": [{"id": "decimals", "value": 1}]}]))
    return dashboard(
        uid="ccpulse-channel-mix", title="Channel mix", tags=["history"], refresh="1m", time_from="now-7d",
        description="Per tenant: how contacts and agents' handling time split across voice, chat, email "
                    "and callbacks over time.",
        variables=[tenant_var(), step_var(default="60", hour=True)],
        panels=layout([[(contacts, 12, 9), (handling, 12, 9)], [(daily, 24, 9)]]))


# --- 4. agents, for supervisors ---------------------------------------------------------------

#: Agents who were in the chosen teams at some point of the range (team history: 015_team_views).
AGENTS_OF_TEAMS = (f"$__conditionalAll(agent_id IN (SELECT agent_id FROM {DB}.agent_intervals_team WHERE {TENANT} "
                   f"AND has({many('team')}, team) AND $__timeFilter(interval_start)), $team)")
AGENT_FILTER = f"{TENANT} AND {AGENTS} AND {AGENTS_OF_QUEUES} AND {AGENTS_OF_TEAMS} AND $__timeFilter(interval_start)"
TEAM_FILTER = f"{TENANT} AND $__conditionalAll(has({many('team')}, team), $team)"


def team_var() -> Json:
    """Teams named by the agents' logins or by the centre file."""
    return query_variable("team", "Team", f"SELECT DISTINCT team FROM (SELECT team FROM {DB}.agent_team_history "
                          f"WHERE {TENANT} UNION ALL SELECT toString(team) AS team FROM {DB}.team_config_current "
                          f"WHERE {TENANT}) ORDER BY team", multi=True, include_all=True)


def handled_contacts(where: str) -> str:
    """The rows of ``agent_handled_15m`` (one per handled contact, not yet summed, with its
    ``handled_at``) that ``where`` selects, as a subquery: ``FROM {handled_contacts(w)} WHERE w``.

    The view reads ``interactions FINAL``: every version of every contact of the tenant is
    merged before any filter (450 ms for one agent over 10 million contacts). Here the
    contacts that ``where`` selects in any version are found first (primary key), their
    latest version taken with argMax(version) -- what FINAL keeps -- and ``where`` applied
    again to it, so a contact transferred away from an agent is not counted for it (27 ms).
    """
    ended = "toStartOfFifteenMinutes(assumeNotNull(ifNull(wrapup_ended_at, ended_at)))"
    candidates = (f"SELECT tenant, interaction_id FROM (SELECT tenant, interaction_id, "
                  "assumeNotNull(agent_id) AS agent_id, assumeNotNull(ifNull(wrapup_ended_at, ended_at)) AS handled_at, "
                  f"{ended} AS interval_start FROM {DB}.interactions "
                  "WHERE answered_at IS NOT NULL AND agent_id IS NOT NULL "
                  f"AND (wrapup_ended_at IS NOT NULL OR ended_at IS NOT NULL)) WHERE {where}")
    latest = ("SELECT tenant, argMax(tuple(agent_id, answered_at, wrapup_ended_at, ended_at, talk_ms, hold_ms, "
              f"acw_ms, transfers, csat), version) AS r FROM {DB}.interactions "
              f"WHERE (tenant, interaction_id) IN ({candidates}) GROUP BY tenant, interaction_id")
    return ("(SELECT tenant, assumeNotNull(r.1) AS agent_id, "
            "assumeNotNull(ifNull(r.3, r.4)) AS handled_at, toStartOfFifteenMinutes(handled_at) AS interval_start, "
            "toUInt8(1) AS handled, "
            "r.5 AS talk_ms, r.6 AS hold_ms, r.7 AS acw_ms, toUInt8(r.8 > 0) AS transferred, "
            "toUInt8(r.9 IS NOT NULL) AS csat_ratings, toUInt8(ifNull(r.9, 0) >= 4) AS csat_good "
            f"FROM ({latest}) WHERE r.2 IS NOT NULL AND r.1 IS NOT NULL AND (r.3 IS NOT NULL OR r.4 IS NOT NULL))")


def people_fields(percent: str, one_decimal: str) -> Json:
    """Agent and team tables: shares as percentages, AHT in seconds, one column with a decimal."""
    return field_config(overrides=[
        {"matcher": {"id": "byRegexp", "options": percent},
         "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 0}]},
        {"matcher": {"id": "byName", "options": "aht_s"},
         "properties": [{"id": "unit", "value": "s"}, {"id": "decimals", "value": 0}]},
        {"matcher": {"id": "byName", "options": one_decimal}, "properties": [{"id": "decimals", "value": 1}]}])


def agents() -> Json:
    board = table(
        "Leaderboard", "Per agent over the time range: contacts handled (wrap-up ended), AHT, CSAT "
        "(ratings of 4-5 / ratings) and occupancy ((busy + ACW) / (busy + ACW + ready)).",
        [target(f"""
SELECT t.agent_id AS agent, ifNull(h.contacts, 0) AS handled, h.aht_s AS aht_s, h.csat AS csat,
       t.occupancy AS occupancy, t.logged_in_h AS logged_in_h
FROM (SELECT agent_id, sum(busy_ms + acw_ms) / nullIf(sum(busy_ms + acw_ms + ready_ms), 0) AS occupancy,
             sum(logged_in_ms) / 3600000 AS logged_in_h
      FROM {DB}.agent_intervals_15m WHERE {AGENT_FILTER} GROUP BY agent_id) AS t
LEFT JOIN (SELECT agent_id, toNullable(sum(handled)) AS contacts, {AHT} AS aht_s,
                  sum(csat_good) / nullIf(sum(csat_ratings), 0) AS csat
           FROM {handled_contacts(AGENT_FILTER)} WHERE {AGENT_FILTER} GROUP BY agent_id) AS h ON h.agent_id = t.agent_id
ORDER BY handled DESC, agent""")],
        fieldconfig=people_fields("csat|occupancy", "logged_in_h"))
    timeline = state_timeline(
        "State timeline", "Per agent and quarter hour, the state the agent spent most of it in (from the "
        "stream's time-in-state figures).",
        [target(f"""
SELECT interval_start AS time, agent_id,
       multiIf(900000 - logged_in_ms >= greatest(ready_ms, busy_ms, acw_ms, not_ready_ms), 'logged_out',
               busy_ms >= greatest(ready_ms, acw_ms, not_ready_ms), 'busy',
               acw_ms >= greatest(ready_ms, not_ready_ms), 'acw',
               ready_ms >= not_ready_ms, 'ready', 'not_ready') AS state
FROM {DB}.agent_intervals_15m WHERE {AGENT_FILTER}
ORDER BY time, agent_id""")],
        fieldconfig=field_config(display_name="${__field.labels.agent_id}", color_mode="fixed",
                                 mappings=value_colors(STATE_COLORS)),
        transformations=[{"id": "partitionByValues",
                          "options": {"fields": ["agent_id"], "keepFields": False, "naming": {"asLabels": True}}}])
    teams = table(
        "Teams", "Per team over the range, each agent counted in the team it was in at the time: agents on the "
        "floor (most at once in a quarter hour), contacts handled, AHT, occupancy, the available share of "
        "logged-in time (ready, busy or after-call work), CSAT and the mean QA score.",
        [target(f"""
SELECT i.team AS team, i.n_agents AS agents, ifNull(h.n_handled, 0) AS handled, h.aht_s AS aht_s,
       i.occupancy AS occupancy, i.available_share AS available_share, h.csat AS csat, q.qa AS qa_score
FROM (SELECT team, max(agents) AS n_agents,
             (sum(busy_ms) + sum(acw_ms)) / nullIf(sum(busy_ms) + sum(acw_ms) + sum(ready_ms), 0) AS occupancy,
             (sum(ready_ms) + sum(busy_ms) + sum(acw_ms)) / nullIf(sum(logged_in_ms), 0) AS available_share
      FROM {DB}.team_intervals_15m WHERE {TEAM_FILTER} AND $__timeFilter(interval_start) GROUP BY team) AS i
LEFT JOIN (SELECT team, toNullable(sum(handled)) AS n_handled,
                  (sum(talk_ms) + sum(hold_ms) + sum(acw_ms)) / 1000 / nullIf(sum(handled), 0) AS aht_s,
                  sum(csat_good) / nullIf(sum(csat_ratings), 0) AS csat
           FROM {DB}.team_handled_15m WHERE {TEAM_FILTER} AND $__timeFilter(interval_start) GROUP BY team) AS h
    ON h.team = i.team
LEFT JOIN (SELECT team, sum(qa_score * evaluated) / nullIf(sum(evaluated), 0) AS qa
           FROM {DB}.team_quality_daily WHERE {TEAM_FILTER} AND $__dateFilter(day) GROUP BY team) AS q
    ON q.team = i.team
ORDER BY handled DESC, team""")],
        fieldconfig=people_fields("csat|occupancy|available_share", "qa_score"))
    now = table(
        "Agents now", "Each agent's state at the latest snapshot, how long they have been in it and the "
        "contacts in hand.",
        [target(f"SELECT agent_id AS agent, state, reason, in_state_s, held, arrayStringConcat(queues, ', ') AS queues "
                f"FROM {DB}.agents_now WHERE {TENANT} AND {AGENTS} AND {AGENTS_OF_QUEUES} AND {AGENTS_OF_TEAMS} "
                "AND state != 'logged_out' "
                "ORDER BY state, in_state_s DESC")],
        fieldconfig=field_config(mappings=value_colors(STATE_COLORS), overrides=[
            {"matcher": {"id": "byName", "options": "state"},
             "properties": [{"id": "custom.cellOptions", "value": {"type": "color-text"}}]},
            {"matcher": {"id": "byName", "options": "in_state_s"}, "properties": [{"id": "unit", "value": "s"}]}]))
    return dashboard(
        uid="ccpulse-agents", title="Agents", tags=["agents"], refresh="30s", time_from="now-12h",
        description="For supervisors: agents' handled contacts, AHT, CSAT and occupancy, their states "
                    "over the day and right now; pick a team to see only its agents, and the teams side by side.",
        variables=[tenant_var(), queue_var(), team_var(), agent_var(multi=True)],
        panels=layout([[(board, 14, 10), (now, 10, 10)], [(teams, 24, 8)], [(timeline, 24, 10)]]))


# --- 5. my performance (one agent) -------------------------------------------------------------

MINE = f"{TENANT} AND agent_id = {one('agent')} AND $__timeFilter(interval_start)"


def my_performance() -> Json:
    def mine(title: str, description: str, sql: str, **fc: object) -> Json:
        return stat(title, description, [target(sql)], fieldconfig=field_config(**fc), color_mode="none")

    handled = mine("Handled", "Contacts you finished (wrap-up ended) in the time range.",
                   f"SELECT sum(handled) AS handled FROM {handled_contacts(MINE)} WHERE {MINE}", unit="none", decimals=0)
    aht = mine("Average handle time", "Your talk + hold + after-call work per handled contact.",
               f"SELECT {AHT} AS aht_s FROM {handled_contacts(MINE)} WHERE {MINE}", unit="s", decimals=0)
    csat = mine("CSAT", "Share of your rated contacts the customer rated 4 or 5.",
                f"SELECT sum(csat_good) / nullIf(sum(csat_ratings), 0) AS csat FROM {handled_contacts(MINE)} "
                f"WHERE {MINE}", unit="percentunit", decimals=0)
    occupancy = mine("Occupancy", "(Busy + after-call work) / (busy + after-call work + ready).",
                     f"SELECT sum(busy_ms + acw_ms) / nullIf(sum(busy_ms + acw_ms + ready_ms), 0) AS occupancy "
                     f"FROM {DB}.agent_intervals_15m WHERE {MINE}", unit="percentunit", decimals=0)
    per_hour = timeseries(
        "Handled per hour", "Your contacts per hour and their average handle time.",
        [target(f"SELECT time, contacts AS handled, aht_s FROM (SELECT toStartOfHour(interval_start) AS time, "
                f"sum(handled) AS contacts, {AHT} AS aht_s FROM {handled_contacts(MINE)} WHERE {MINE} GROUP BY time) "
                "ORDER BY time", fmt="timeseries")],
        fieldconfig=field_config(overrides=[
            {"matcher": {"id": "byName", "options": "aht_s"},
             "properties": [{"id": "unit", "value": "s"}, {"id": "custom.drawStyle", "value": "line"},
                            {"id": "custom.axisPlacement", "value": "right"}]}]), bars=True)
    states = bargauge(
        "Where the time went", "Your hours in each state over the time range.",
        [target(f"SELECT sum(ready_ms) / 3600000 AS ready, sum(busy_ms) / 3600000 AS busy, "
                f"sum(acw_ms) / 3600000 AS acw, sum(not_ready_ms) / 3600000 AS not_ready "
                f"FROM {DB}.agent_intervals_15m WHERE {MINE}")],
        fieldconfig=field_config(unit="h", decimals=1, color_mode="fixed",
                                 overrides=[override_color(s, c) for s, c in STATE_COLORS.items()]))
    reasons = table(
        "Not ready, by reason", "Your minutes not ready per reason (break, lunch, training ...).",
        # agent_not_ready_15m spelt out with the filter inside its version check too: the view's
        # subquery reads every agent's every interval (545 ms at 300k contacts, bench/panels.py).
        [target(f"SELECT reason, sum(ms) / 60000 AS minutes FROM {DB}.agent_not_ready_intervals FINAL "
                f"WHERE {MINE} AND (tenant, agent_id, interval_start, version) IN "
                f"(SELECT tenant, agent_id, interval_start, version FROM {DB}.agent_intervals FINAL WHERE {MINE}) "
                "GROUP BY reason ORDER BY minutes DESC")],
        fieldconfig=field_config(decimals=0))
    return dashboard(
        uid="ccpulse-my-performance", title="My performance", tags=["agents"], refresh="1m",
        time_from="now/d",
        description="One agent's own figures (variable Agent): handled contacts, AHT, CSAT, occupancy and "
                    "time per state. No other agent's rows and no ranking.",
        variables=[tenant_var(), agent_var(multi=False)],
        panels=layout([[(handled, 6, 5), (aht, 6, 5), (csat, 6, 5), (occupancy, 6, 5)],
                       [(per_hour, 12, 8), (states, 12, 8)], [(reasons, 12, 6)]]))


# --- 6. client report ------------------------------------------------------------------------

DAYS = f"{TENANT} AND $__dateFilter(local_day)"


def client_report() -> Json:
    def total(title: str, description: str, sql: str, **fc: object) -> Json:
        return stat(title, description, [target(sql)], fieldconfig=field_config(**fc), color_mode="none")

    offered = total("Offered", "Contacts offered to the client's queues, business days in the range.",
                    f"SELECT sum(offered) AS offered FROM {DB}.client_billing_daily WHERE {DAYS}",
                    unit="none", decimals=0)
    handled = total("Handled", "Contacts handled to the end of wrap-up: the unit when billing by contact.",
                    f"SELECT sum(handled) AS handled FROM {DB}.client_billing_daily WHERE {DAYS}",
                    unit="none", decimals=0)
    minutes = total("Talk minutes", "Talk of handled contacts, in minutes to the second: the unit when "
                    "billing by minute.",
                    f"SELECT sum(talk_minutes) AS talk_minutes FROM {DB}.client_billing_daily WHERE {DAYS}",
                    unit="none", decimals=1)
    billable = total("Billable minutes (per started minute)", "Talk minutes rounded up per contact, for "
                     "contracts that bill every started minute; contacts handled (wrap-up ended), business "
                     "days in the range.",
                     f"SELECT sum(billable_talk_minutes) AS billable_minutes FROM {DB}.client_billing_daily "
                     f"WHERE {DAYS}", unit="none", decimals=0)
    sl = total("Service level", "Answered within T / (answered + abandoned - short abandons), all queues.",
               f"SELECT sum(answered_in_sl) / nullIf(sum(answered) + sum(abandoned) - sum(short_abandons), 0) "
               f"AS service_level FROM {DB}.daily_kpis WHERE {DAYS}", **PERCENT)
    daily = table(
        "Daily report", "One row per business day in the client's time zone: volumes, service level and "
        "the billing units. Inspect > Data > Download CSV exports this table for the client.",
        [target(f"SELECT local_day, offered, answered, abandoned, handled, talk_minutes, handle_minutes, "
                f"service_level, asa_s FROM {DB}.client_billing_daily WHERE {DAYS} ORDER BY local_day")],
        fieldconfig=field_config(overrides=[
            {"matcher": {"id": "byName", "options": "service_level"},
             "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]},
            {"matcher": {"id": "byRegexp", "options": ".*_minutes"}, "properties": [{"id": "decimals", "value": 1}]},
            {"matcher": {"id": "byName", "options": "asa_s"},
             "properties": [{"id": "unit", "value": "s"}, {"id": "decimals", "value": 0}]}]), sort_by=None)
    queues = table(
        "Service level by queue", "Per queue over the range, by the queue's own SL formula, against its goal. "
        "Inspect > Data > Download CSV exports it.",
        [target(f"SELECT queue, n_offered AS offered, n_answered AS answered, n_abandoned AS abandoned, "
                f"service_level, goal FROM (SELECT queue, sum(offered) AS n_offered, sum(answered) AS n_answered, "
                f"sum(abandoned) AS n_abandoned, {sl_by_variant('any(sl_variant)')} AS service_level, "
                f"any(sl_goal) AS goal FROM {DB}.interval_kpis WHERE {DAYS} AND queue != '' GROUP BY queue) "
                "ORDER BY queue")],
        fieldconfig=field_config(overrides=[
            {"matcher": {"id": "byRegexp", "options": "service_level|goal"},
             "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]}]))
    return dashboard(
        uid="ccpulse-client-report", title="Client report", tags=["clients"], refresh="",
        time_from="now-30d",
        description="For one client (tenant): volumes, service level, talk minutes and handled contacts for "
                    "billing by minute or by contact. Tables export as CSV (Inspect > Data).",
        variables=[tenant_var()],
        panels=layout([[(offered, 5, 5), (handled, 5, 5), (minutes, 5, 5), (billable, 5, 5), (sl, 4, 5)],
                       [(daily, 14, 12), (queues, 10, 12)]]))


# --- 7. alerts --------------------------------------------------------------------------------

TENANTS = f"$__conditionalAll(has({many('tenant')}, tenant), $tenant)"


def alerts() -> Json:
    firing = stat(
        "Firing now", "Alert episodes whose latest notification is a firing one.",
        [target(f"SELECT countIf(status = 'firing') AS firing FROM {DB}.alerts_current WHERE {TENANTS}")],
        fieldconfig=field_config(unit="none", decimals=0, steps=thresholds("green", (1, "red")),
                                 color_mode="thresholds"))
    fired = timeseries(
        "Alerts fired", "New alert episodes (first firing notification) per time bucket, by severity.",
        [target(f"SELECT $__timeInterval(at) AS time, toString(severity) AS severity, count() AS fired "
                f"FROM {DB}.alerts FINAL WHERE {TENANTS} AND status = 'firing' AND renotify = 0 "
                "AND $__timeFilter(at) GROUP BY time, severity ORDER BY time, severity", fmt="timeseries")],
        fieldconfig=field_config(unit="none", decimals=0, display_name="${__field.labels.severity}",
                                 overrides=[override_color(s, c) for s, c in SEVERITY_COLORS.items()]), bars=True)
    current = table(
        "Current state", "Each alert episode firing now or active in the range, with its latest status, "
        "value and threshold; firing first.",
        [target(f"SELECT status, severity, rule, tenant, queue, channel, metric, value, threshold, started_at, "
                f"last_at FROM {DB}.alerts_current WHERE {TENANTS} AND (status = 'firing' OR $__timeFilter(last_at)) "
                "ORDER BY status = 'firing' DESC, last_at DESC")],
        fieldconfig=field_config(mappings=value_colors({**STATUS_COLORS, **SEVERITY_COLORS}), overrides=[
            {"matcher": {"id": "byRegexp", "options": "status|severity"},
             "properties": [{"id": "custom.cellOptions", "value": {"type": "color-text"}}]}]))
    history = table(
        "History", "Every notification in the range (firing, repeated firing, resolved), newest first. "
        "Inspect > Data > Download CSV exports it.",
        [target(f"SELECT at, status, renotify, severity, rule, tenant, queue, channel, metric, value, threshold, "
                f"started_at FROM {DB}.alerts FINAL WHERE {TENANTS} AND $__timeFilter(at) ORDER BY at DESC")],
        fieldconfig=field_config(mappings=value_colors({**STATUS_COLORS, **SEVERITY_COLORS}), overrides=[
            {"matcher": {"id": "byRegexp", "options": "status|severity"},
             "properties": [{"id": "custom.cellOptions", "value": {"type": "color-text"}}]}]))
    return dashboard(
        uid="ccpulse-alerts", title="Alerts", tags=["alerts"], refresh="30s", time_from="now-7d",
        description="SLA alerts of the stream (centre file rules): what is firing now and the history.",
        variables=[tenant_var(multi=True)],
        panels=layout([[(firing, 6, 6), (fired, 18, 6)], [(current, 24, 8)], [(history, 24, 10)]]))


# --- 8. campaigns, the IVR and quality ------------------------------------------------------------

RATE_COLUMNS = {"matcher": {"id": "byRegexp", "options": ".*_rate|containment|qa_coverage|csat_score"},
                "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]}


def campaigns_ivr_quality() -> Json:
    camp = f"FROM {DB}.campaign_intervals_15m WHERE {TENANT} AND $__timeFilter(interval_start)"
    # Sums are named n_* inside and renamed outside: a ClickHouse alias equal to a column name
    # would stand for the sum wherever the column is named again (sum(sum(...)) is refused).
    outbound = stat(
        "Outbound", "Dial attempts in the range, the share that reached a person (contact rate) and the "
        "dialer abandon rate: connects dropped for want of a free agent / connects (regulators cap it, "
        "e.g. 3 % in the UK).",
        [target(f"SELECT n_attempts AS attempts, n_connects / nullIf(n_attempts, 0) AS contact_rate, "
                f"n_dropped / nullIf(n_connects, 0) AS dialer_abandon_rate, n_conversions AS conversions "
                f"FROM (SELECT sum(attempts) AS n_attempts, sum(connects) AS n_connects, "
                f"sum(dialer_abandoned) AS n_dropped, sum(conversions) AS n_conversions {camp})")],
        fieldconfig=field_config(decimals=0, overrides=[RATE_COLUMNS]), color_mode="none")
    campaigns = table(
        "Campaigns", "Per campaign over the range: attempts, connects, right-party contacts, conversions and "
        "their rates; attempts per list record among the records first dialled in the range.",
        [target(f"SELECT c.campaign AS campaign, n_attempts AS attempts, n_connects AS connects, "
                f"n_connects / nullIf(n_attempts, 0) AS contact_rate, n_rpc AS right_party_contacts, "
                f"n_conversions AS conversions, n_conversions / nullIf(n_rpc, 0) AS conversion_rate, "
                f"n_dropped / nullIf(n_connects, 0) AS dialer_abandon_rate, "
                f"n_work_ms / nullIf(n_handled, 0) / 1000 AS aht_s, r.per_record AS attempts_per_record "
                f"FROM (SELECT campaign, sum(attempts) AS n_attempts, sum(connects) AS n_connects, "
                f"sum(right_party_contacts) AS n_rpc, sum(conversions) AS n_conversions, "
                f"sum(dialer_abandoned) AS n_dropped, sum(talk_ms) + sum(acw_ms) AS n_work_ms, "
                f"sum(handled) AS n_handled {camp} GROUP BY campaign) AS c "
                f"LEFT JOIN (SELECT campaign, avg(attempts) AS per_record FROM {DB}.campaign_records "
                f"WHERE {TENANT} AND $__timeFilter(first_dialed_at) GROUP BY campaign) AS r ON r.campaign = c.campaign "
                "ORDER BY campaign")],
        fieldconfig=field_config(overrides=[RATE_COLUMNS, {"matcher": {"id": "byName", "options": "aht_s"},
                                                           "properties": [{"id": "unit", "value": "s"}]}]))
    abandon = timeseries(
        "Dialer abandon rate", "Per campaign and time bucket: dialer-abandoned connects / connects.",
        [target(f"SELECT $__timeInterval(interval_start) AS time, campaign, "
                f"sum(dialer_abandoned) / nullIf(sum(connects), 0) AS dialer_abandon_rate {camp} "
                "GROUP BY time, campaign ORDER BY time", fmt="timeseries")],
        fieldconfig=field_config(**PERCENT, min_=0, display_name="${__field.labels.campaign}"))
    ivr_where = f"FROM {DB}.ivr_intervals_15m WHERE {TENANT} AND $__timeFilter(interval_start)"
    ivr = stat(
        "IVR", "Sessions in the range; containment: the share the IVR served itself; hang-ups in the IVR "
        "(neither contained nor abandoned); mean time in the IVR.",
        [target(f"SELECT n AS sessions, n_served / nullIf(n, 0) AS containment, n_hung / nullIf(n, 0) AS ivr_hangup_rate, "
                f"n_ms / nullIf(n, 0) / 1000 AS avg_ivr_s FROM (SELECT sum(sessions) AS n, sum(self_served) AS n_served, "
                f"sum(hung_up) AS n_hung, sum(ivr_ms) AS n_ms {ivr_where})")],
        fieldconfig=field_config(decimals=0, overrides=[
            RATE_COLUMNS, {"matcher": {"id": "byName", "options": "avg_ivr_s"},
                           "properties": [{"id": "unit", "value": "s"}]}]), color_mode="none")
    ivr_results = timeseries(
        "IVR sessions by result", "Per time bucket: to a queue, served by the IVR, hung up in it, sent elsewhere.",
        [target(f"SELECT $__timeInterval(interval_start) AS time, sum(to_queue) AS to_queue, "
                f"sum(self_served) AS self_served, sum(hung_up) AS hung_up, sum(transferred_out) AS transferred_out "
                f"{ivr_where} GROUP BY time ORDER BY time", fmt="timeseries")], bars=True, stacked=True)
    paths = table(
        "IVR paths", "Which menu paths and intents lead where: sessions per path, how they left the IVR and the "
        "queue they reached.",
        [target(f"SELECT path, result, queue, n AS sessions, n_answered AS answered, n_ms / n / 1000 AS avg_ivr_s "
                f"FROM (SELECT path, result, queue, sum(sessions) AS n, sum(answered) AS n_answered, sum(ivr_ms) AS n_ms "
                f"FROM {DB}.ivr_paths WHERE {TENANT} AND $__timeFilter(first_at) GROUP BY path, result, queue) "
                "ORDER BY sessions DESC LIMIT 50")],
        sort_by="sessions")
    quality = table(
        "Quality and satisfaction per agent", "Per agent over the days in the range: contacts handled, evaluated "
        "(latest score per form), coverage, mean QA score, critical failures, and CSAT beside them.",
        [target(f"SELECT agent_id, n_handled AS handled, n_evaluated AS evaluated, "
                f"n_evaluated / nullIf(n_handled, 0) AS qa_coverage, n_score / nullIf(n_evaluated, 0) AS qa_score, "
                f"n_critical AS critical_failures, n_critical / nullIf(n_evaluated, 0) AS critical_rate, "
                f"n_good / nullIf(n_rated, 0) AS csat_score "
                f"FROM (SELECT agent_id, sum(handled) AS n_handled, sum(evaluated) AS n_evaluated, "
                f"sum(ifNull(qa_score, 0) * evaluated) AS n_score, sum(critical_failures) AS n_critical, "
                f"sum(csat_good) AS n_good, sum(csat_ratings) AS n_rated FROM {DB}.agent_quality_daily "
                f"WHERE {TENANT} AND $__dateFilter(day) GROUP BY agent_id) ORDER BY agent_id")],
        fieldconfig=field_config(overrides=[RATE_COLUMNS, {"matcher": {"id": "byName", "options": "qa_score"},
                                                           "properties": [{"id": "decimals", "value": 1}]}]))
    reasons = table(
        "Transfers by reason", "Transfers that gave a reason, per queue the contact left and reason.",
        [target(f"SELECT queue, reason, sum(transfers) AS n_transfers FROM {DB}.transfer_reasons_15m "
                f"WHERE {TENANT} AND $__timeFilter(interval_start) GROUP BY queue, reason ORDER BY n_transfers DESC")],
        sort_by="n_transfers")
    recordings = table(
        "Contacts with recordings", "The latest contacts with a recording: open it from the recording column.",
        [target(f"SELECT ifNull(answered_at, dialed_at) AS at, agent_id, ifNull(queue, campaign) AS queue_or_campaign, "
                f"direction, outcome, talk_ms / 1000 AS talk_s, qa_score, recording "
                f"FROM {DB}.interactions_current WHERE {TENANT} AND recording IS NOT NULL "
                "AND $__timeFilter(last_event_at) ORDER BY last_event_at DESC LIMIT 100")],
        fieldconfig=field_config(overrides=[{"matcher": {"id": "byName", "options": "recording"}, "properties": [
            {"id": "links", "value": [{"title": "Open the recording", "url": "${__value.raw}", "targetBlank": True}]}]}]))
    return dashboard(
        uid="ccpulse-campaigns-ivr-quality", title="Campaigns, IVR and quality", tags=["history"], refresh="1m",
        time_from="now-7d",
        description="Per tenant: outbound campaigns (contact, conversion and dialer abandon rates), the IVR in "
                    "front of the queues (containment, hang-ups, paths), quality scores and transfer reasons.",
        variables=[tenant_var()],
        panels=layout([[(outbound, 8, 5), (ivr, 8, 5), (abandon, 8, 5)],
                       [(campaigns, 24, 8)],
                       [(ivr_results, 12, 9), (paths, 12, 9)],
                       [(quality, 14, 10), (reasons, 10, 10)],
                       [(recordings, 24, 10)]]))


# --- 9. staffing ----------------------------------------------------------------------------------

STAFF_FILTER = f"{TENANT} AND {QUEUES}"


def staffing() -> Json:
    forecast = timeseries(
        "Contacts: forecast and actual", "Per half hour, the selected queues together: contacts forecast with "
        "the 90 % band, and those offered (the forecast is recomputed every CCPULSE_FORECAST_INTERVAL_S).",
        [target(f"SELECT interval_start AS time, sum(forecast_offered) AS forecast, sum(forecast_low) AS band_low, "
                f"sum(forecast_high) AS band_high, sum(actual_offered) AS offered FROM {DB}.required_agents "
                f"WHERE {STAFF_FILTER} AND $__timeFilter(interval_start) AND forecast_offered IS NOT NULL "
                "GROUP BY time ORDER BY time", fmt="timeseries")],
        fieldconfig=field_config(unit="none", decimals=0))
    agents = timeseries(
        "Agents: required and staffed", "Per half hour: the agents Erlang A says the selected queues need for "
        "their goals, and the agents that were available (ready, busy or after-call work).",
        [target(f"SELECT interval_start AS time, sum(required) AS required_agents, sum(staffed) AS staffed_agents "
                f"FROM {DB}.required_agents WHERE {STAFF_FILTER} AND $__timeFilter(interval_start) "
                "AND required IS NOT NULL GROUP BY time ORDER BY time", fmt="timeseries")],
        fieldconfig=field_config(unit="none", decimals=1))
    short = table(
        "Next hours: required against available now", "Per queue, the next eight half hours of the forecast "
        "(from the newest figures), the agents they need, and those available at the latest snapshot.",
        [target(f"SELECT f.queue AS queue, f.interval_start AS interval_start, f.forecast_offered AS forecast, "
                f"f.required AS required, ifNull(n.available, 0) AS available_now, "
                f"toInt64(f.required) - toInt64(ifNull(n.available, 0)) AS short_by "
                f"FROM {DB}.required_agents AS f "
                f"LEFT JOIN (SELECT queue, sum(agents) AS available FROM {DB}.agents_by_state WHERE {TENANT} "
                f"AND state IN ('ready', 'busy', 'acw') GROUP BY queue) AS n ON n.queue = f.queue "
                f"WHERE f.tenant = {one('tenant')} AND $__conditionalAll(has({many('queue')}, f.queue), $queue) "
                f"AND f.required IS NOT NULL AND f.interval_start >= (SELECT toStartOfInterval(max(interval_start), "
                f"INTERVAL 30 MINUTE) FROM {DB}.kpi_interval_parts WHERE {TENANT}) "
                "ORDER BY queue, interval_start LIMIT 8 BY queue")],
        sort_by=None)
    now = table(
        "Now", "Per queue, at the rate of the last rolling window (15 minutes): the agents Erlang A says the "
        "queue needs for its goal, those available now (ready, busy or after-call work), and the service level "
        "and abandonment those can be expected to give. Recomputed every minute.",
        [target(f"SELECT queue, offered AS contacts_in_window, required_agents, available AS available_now, "
                f"toInt64(available) - toInt64(required_agents) AS spare, expected_sl, expected_abandon, note "
                f"FROM {DB}.staffing_live FINAL WHERE {STAFF_FILTER} ORDER BY queue")],
        fieldconfig=field_config(overrides=[{"matcher": {"id": "byRegexp", "options": "expected_.*"},
                                             "properties": [{"id": "unit", "value": "percentunit"},
                                                            {"id": "decimals", "value": 1}]}]))
    error = stat(
        "Forecast error", "WAPE of the forecast over the half hours in the range that have happened: sum of "
        "|offered - forecast| / sum of offered.",
        [target(f"SELECT sum(abs(ifNull(actual_offered, 0) - forecast_offered)) / nullIf(sum(ifNull(actual_offered, 0)), 0) "
                f"AS wape FROM {DB}.required_agents WHERE {STAFF_FILTER} AND $__timeFilter(interval_start) "
                f"AND forecast_offered IS NOT NULL AND interval_start <= (SELECT max(interval_start) FROM {DB}.kpi_interval_parts)")],
        fieldconfig=field_config(**PERCENT), color_mode="none")
    return dashboard(
        uid="ccpulse-staffing", title="Staffing", tags=["planning"], refresh="1m", time_from="now-1d",
        description="Do we have enough people? Per queue: contacts forecast against offered, agents required "
                    "(Erlang A, the queue's own goal) against staffed, and the next hours against the agents "
                    "available now. docs/staffing.md says how each is computed.",
        variables=[tenant_var(), queue_var()],
        panels=layout([[(now, 24, 6)], [(forecast, 16, 9), (error, 8, 9)], [(agents, 12, 9), (short, 12, 9)]]))


# --- all of them --------------------------------------------------------------------------------

BOARDS = {
    "wallboard.json": wallboard,
    "intervals.json": intervals,
    "channel-mix.json": channel_mix,
    "agents.json": agents,
    "my-performance.json": my_performance,
    "client-report.json": client_report,
    "alerts.json": alerts,
    "campaigns-ivr-quality.json": campaigns_ivr_quality,
    "staffing.json": staffing,
}


def build_all() -> dict[str, Json]:
    """File name -> dashboard JSON model; the same dicts on every call."""
    return {name: build() for name, build in BOARDS.items()}


def render(board: Json) -> str:
    """The committed text of a dashboard: pretty JSON, keys in build order, one trailing newline."""
    return json.dumps(board, indent=2, sort_keys=False) + "\n"


def write_all(out_dir: Path) -> list[Path]:
    """Write every dashboard into ``out_dir`` (created if missing); returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, board in build_all().items():
        path = out_dir / name
        path.write_text(render(board), encoding="utf-8")
        paths.append(path)
    return paths
