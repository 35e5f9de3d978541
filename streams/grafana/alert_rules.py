"""Grafana-managed alert rules that mirror the centre file's SLA rules: a second line of defence.

The stream evaluates its own rules (streams/domain/alerts.py) on the figures it holds in memory. If
the stream stops, so do its alerts. These rules ask ClickHouse the same questions from Grafana,
so a breach is still noticed when the worker is down or stuck; and one more rule notices
exactly that: live figures that stopped being written while contacts were in progress.

Each centre rule becomes one Grafana rule: A = ClickHouse SQL returning one row per
(tenant, queue, channel) with one numeric column ``value`` (Grafana turns string columns into
labels), B = reduce(last), C = threshold (the rule's threshold and bad direction). The figure
and its sample size come from ``kpi_live`` (the stream's own rolling windows), the queue's SL
variant and goal from ``queue_settings FINAL`` (the settings the stream computed with), and
only groups the stream wrote within the last ``fresh_s`` seconds count: leftovers of a
stopped stream are the stale rule's business, not a breach.

What is mirrored: metric, threshold (``goal`` per queue), window, ``for``, severity, the
tenant/queue/channel matchers, ``min_sample``, business hours (series outside them are
dropped), ``renotify_s`` (as the policy's repeat interval). Not mirrored: ``hysteresis`` and
``recover_for_s`` (Grafana resolves as soon as the condition stops holding).
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from streams.domain.alerts import BAD_WHEN, QUEUE_METRICS, RATE_METRICS, AlertRule
from streams.config.centre import _day_range, _span

if TYPE_CHECKING:
    from streams.config.centre import CentreConfig

DATASOURCE_UID = "ccpulse-clickhouse"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
EXPR_UID = "__expr__"
FOLDER = "ccpulse"
GROUP = "ccpulse"
INTERVAL_S = 60
DATABASE = "ccpulse"
STALE_AFTER_S = 300
STALE_RULE_UID = "ccpulse-stale-figures"
STALE_RULE_TITLE = "ccpulse: live figures not updated"
DRIFT_RULE_UID = "ccpulse-figures-drift"
DRIFT_RULE_TITLE = "ccpulse: figures differed from the records"
SHORT_RULE_UID = "ccpulse-short-of-agents"
MISS_RULE_UID = "ccpulse-forecast-missed"
DIALER_RULE_UID = "ccpulse-dialer-abandon-rate"
DIALER_RULE_TITLE = "ccpulse: dialer abandon rate over the limit"
DRIFT_WINDOW_MIN = 15
CONTACT_POINT = "ccpulse-webhook"
WEBHOOK_ENV = "GRAFANA_ALERT_WEBHOOK_URL"
#: Every rule carries ``ccpulse`` = one of these; the notification policy routes on it.
ROUTE_LABEL = "ccpulse"
ROUTE_VALUES = ("sla", "pipeline")
RULES_FILE = "ccpulse-rules.yaml"
CONTACT_POINTS_FILE = "contact-points.yaml"
POLICIES_FILE = "policies.yaml"

#: SQL of each SL variant over the kpi_live view's columns.
_SL_VARIANT_SQL = (
    "multiIf(s.variant = 'ignore_abandons', k.sl_ignore_abandons, "
    "s.variant = 'abandons_within_t_ok', k.sl_abandons_within_t_ok, "
    "s.variant = 'abandons_within_t_ignored', k.sl_abandons_within_t_ignored, "
    "k.sl_abandons_count_against)")
#: The figure of each per-channel metric (alias k = kpi_live, s = queue_settings).
_VALUE_SQL = {
    "service_level": _SL_VARIANT_SQL,
    "abandon_rate": "k.abandon_rate",
    "asa_s": "k.asa_s",
    "oldest_wait_s": "k.oldest_waiting_s",
    "waiting": "k.waiting",
}
#: The sample a rate metric needs (streams.domain.alerts.value_of): contacts that left the queue, or answered.
_SAMPLE_SQL = {"service_level": "k.answered + k.abandoned", "abandon_rate": "k.answered + k.abandoned",
               "asa_s": "k.answered"}


# --- identities ----------------------------------------------------------------------------

def rule_uid(name: str) -> str:
    """A stable Grafana uid (<= 40 chars of [A-Za-z0-9_-]) from the rule name: re-publishing updates, never duplicates."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", name)
    uid = f"ccpulse-sla-{safe}"
    if safe == name and len(uid) <= 40:
        return uid
    return f"ccpulse-sla-{safe[:18]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def duration(seconds: float) -> str:
    """Seconds as a Prometheus-style duration ("90s", "15m", "1h"), rounded up to whole seconds."""
    s = int(math.ceil(seconds))
    for unit, n in (("h", 3600), ("m", 60)):
        if s and s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def threshold_of(rule: AlertRule) -> tuple[str, float]:
    """(Grafana threshold evaluator, limit) that the value column is compared with.

    A ``goal`` rule's value is the service level minus the queue's own goal (each queue has
    its own), so its limit is 0."""
    op = "lt" if BAD_WHEN[rule.metric] == "below" else "gt"
    return op, 0.0 if rule.threshold == "goal" else float(rule.threshold)


# --- SQL -------------------------------------------------------------------------------------

def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _in(column: str, values: tuple[str, ...]) -> list[str]:
    return [f"{column} IN ({', '.join(map(_quote, values))})"] if values else []


def _fresh(db: str, fresh_s: int, cols: str = "k.tenant, k.queue, k.channel, k.window_minutes") -> str:
    """Rows the stream wrote in the last ``fresh_s`` seconds (``version`` is the writer's wall clock in ms)."""
    return (f"({cols}) IN (SELECT tenant, queue, channel, window_minutes FROM {db}.kpi_live_parts "
            f"WHERE version >= toUInt64(toUnixTimestamp64Milli(now64(3))) - {fresh_s * 1000})")


def _open_now(centre: CentreConfig, tenant_col: str) -> list[str]:
    """SQL conditions: each tenant with business hours is open now in its own time zone."""
    out = []
    for name, t in sorted(centre.tenants.items()):
        if not t.business_hours:
            continue
        now = f"now({_quote(t.timezone)})"
        minute = f"(toHour({now}) * 60 + toMinute({now}))"
        spans = []
        for days, span in t.business_hours.items():
            weekdays = ", ".join(str(d + 1) for d in _day_range(days))  # toDayOfWeek: Monday = 1
            start, end = _span(span)
            spans.append(f"(toDayOfWeek({now}) IN ({weekdays}) AND {minute} >= {start} AND {minute} < {end})")
        out.append(f"({tenant_col} != {_quote(name)} OR {' OR '.join(spans)})")
    return out


def rule_sql(rule: AlertRule, centre: CentreConfig, *, fresh_s: int = STALE_AFTER_S, db: str = DATABASE) -> str:
    """ClickHouse SQL with string columns tenant, queue, channel and one Float64 ``value``:
    exactly what the stream's rule would compare with its threshold, one row per group it matches."""
    if rule.metric in QUEUE_METRICS:
        return _ready_agents_sql(rule, centre, fresh_s=fresh_s, db=db)
    where = [f"k.window_minutes = {rule.window_minutes}", _fresh(db, fresh_s)]
    if rule.metric in RATE_METRICS:
        where.append(f"{_SAMPLE_SQL[rule.metric]} >= {rule.min_sample}")
    where += _in("k.tenant", rule.tenants) + _in("k.queue", rule.queues) + _in("k.channel", rule.channels)
    if rule.business_hours_only:
        where += _open_now(centre, "k.tenant")
    value = _VALUE_SQL[rule.metric]
    join = ""
    if rule.metric == "service_level":
        join = ("    INNER JOIN (SELECT tenant, queue, toString(sl_variant) AS variant, sl_goal AS goal\n"
                f"                FROM {db}.queue_settings FINAL) AS s ON s.tenant = k.tenant AND s.queue = k.queue\n")
        if rule.threshold == "goal":
            value = f"{value} - s.goal"
    conds = "\n      AND ".join(where)
    return (
        "SELECT toString(t) AS tenant, toString(q) AS queue, toString(c) AS channel, toFloat64(assumeNotNull(v)) AS value\n"
        "FROM\n"
        "(\n"
        f"    SELECT k.tenant AS t, k.queue AS q, k.channel AS c, {value} AS v\n"
        f"    FROM {db}.kpi_live AS k\n"
        f"{join}"
        f"    WHERE {conds}\n"
        ")\n"
        "WHERE v IS NOT NULL\n"
        "ORDER BY tenant, queue, channel")


def _ready_agents_sql(rule: AlertRule, centre: CentreConfig, *, fresh_s: int, db: str) -> str:
    """Ready agents of each queue while any of its contacts waits (channel "*", as the stream's group)."""
    window = centre.windows.rolling_minutes[0]  # every window row repeats the waiting contacts
    where = [f"window_minutes = {window}",
             _fresh(db, fresh_s, "tenant, queue, channel, window_minutes")]
    where += _in("tenant", rule.tenants) + _in("queue", rule.queues)
    if rule.business_hours_only:
        where += _open_now(centre, "tenant")
    conds = "\n          AND ".join(where)
    return (
        "SELECT toString(w.t) AS tenant, toString(w.q) AS queue, '*' AS channel, toFloat64(a.ready) AS value\n"
        "FROM\n"
        "(\n"
        "    SELECT tenant AS t, queue AS q, sum(waiting) AS waiting\n"
        f"    FROM {db}.kpi_live\n"
        f"    WHERE {conds}\n"
        "    GROUP BY t, q\n"
        ") AS w\n"
        "INNER JOIN\n"
        "(\n"
        "    SELECT tenant AS t, arrayJoin(queues) AS q, countIf(state = 'ready') AS ready\n"
        f"    FROM {db}.agents_now\n"
        "    GROUP BY t, q\n"
        ") AS a ON a.t = w.t AND a.q = w.q\n"
        "WHERE w.waiting > 0\n"
        "ORDER BY tenant, queue")


def stale_sql(db: str = DATABASE) -> str:
    """Seconds since each source partition last wrote live figures, for partitions whose last
    write still had contacts in the windows or waiting. A quiet centre's figures end with a
    write of zeros (the stream keeps writing a group for twice its longest window after its
    last contact), so only a stream that stopped mid-traffic leaves an active last write."""
    return (
        "SELECT toString(p.source_partition) AS partition,\n"
        "       (toInt64(toUnixTimestamp64Milli(now64(3))) - toInt64(p.last)) / 1000 AS value\n"
        f"FROM (SELECT source_partition, max(version) AS last FROM {db}.kpi_live_parts FINAL GROUP BY source_partition) AS p\n"
        f"WHERE (p.source_partition, p.last) IN (SELECT source_partition, version FROM {db}.kpi_live_parts FINAL\n"
        "                                        WHERE offered + answered + abandoned + waiting > 0)\n"
        "ORDER BY partition")


# --- rule documents --------------------------------------------------------------------------

def _data(sql: str, op: str, limit: float) -> list[dict[str, Any]]:
    """A = the ClickHouse query (table format: string columns become labels), B = last, C = threshold."""
    return [
        {"refId": "A", "relativeTimeRange": {"from": 600, "to": 0}, "datasourceUid": DATASOURCE_UID,
         "model": {"refId": "A", "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
                   "editorType": "sql", "queryType": "table", "format": 1, "rawSql": sql,
                   "intervalMs": 1000, "maxDataPoints": 43200}},
        {"refId": "B", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": EXPR_UID,
         "model": {"refId": "B", "datasource": {"type": EXPR_UID, "uid": EXPR_UID}, "type": "reduce",
                   "expression": "A", "reducer": "last", "settings": {"mode": "dropNN"}}},
        {"refId": "C", "relativeTimeRange": {"from": 0, "to": 0}, "datasourceUid": EXPR_UID,
         "model": {"refId": "C", "datasource": {"type": EXPR_UID, "uid": EXPR_UID}, "type": "threshold",
                   "expression": "B", "conditions": [{"evaluator": {"type": op, "params": [limit]}}]}},
    ]


def _describe(rule: AlertRule) -> tuple[str, str]:
    op, limit = threshold_of(rule)
    word = "below" if op == "lt" else "above"
    where = "{{ $labels.tenant }}/{{ $labels.queue }}/{{ $labels.channel }}"
    if rule.threshold == "goal":
        summary = f"{where}: service level below the queue's goal"
        desc = ("Service level ({{ $labels.queue }}'s own SL variant) minus its goal is {{ printf \"%.3f\" $values.B.Value }} "
                f"over the last {rule.window_minutes} min.")
    else:
        shown = f"{limit:g}"
        summary = f"{where}: {rule.metric} {word} {shown}"
        desc = (f"{rule.metric} is {{{{ printf \"%.3g\" $values.B.Value }}}} ({word} {shown}) "
                f"over the last {rule.window_minutes} min.")
    if rule.metric in QUEUE_METRICS:
        desc = f"{{{{ printf \"%.0f\" $values.B.Value }}}} ready agents ({word} {limit:g}) while contacts wait in the queue."
    desc += (f" Grafana's copy of the ccpulse rule {rule.name!r} (severity {rule.severity}); the stream alerts on "
             "it too, so this one matters most when the stream's own alerts are silent.")
    return summary, desc


def grafana_rule(rule: AlertRule, centre: CentreConfig, *, fresh_s: int = STALE_AFTER_S) -> dict[str, Any]:
    """One Grafana rule (file-provisioning shape) for one centre rule."""
    op, limit = threshold_of(rule)
    summary, desc = _describe(rule)
    return {
        "uid": rule_uid(rule.name),
        "title": rule.name,
        "condition": "C",
        "data": _data(rule_sql(rule, centre, fresh_s=fresh_s), op, limit),
        # No fresh figures is no traffic or a stopped stream; the stale rule speaks for the latter.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": duration(rule.for_s),
        "annotations": {"summary": summary, "description": desc},
        "labels": {ROUTE_LABEL: "sla", "rule": rule.name, "metric": rule.metric, "severity": rule.severity},
        "isPaused": False,
    }


def stale_rule(*, stale_after_s: int = STALE_AFTER_S) -> dict[str, Any]:
    """The stream stopped: a partition's last live figures, written mid-traffic, are too old."""
    return {
        "uid": STALE_RULE_UID,
        "title": STALE_RULE_TITLE,
        "condition": "C",
        "data": _data(stale_sql(), "gt", float(stale_after_s)),
        "noDataState": "OK",  # nothing in progress at the last write: a quiet centre, not a stall
        "execErrState": "Alerting",  # Grafana cannot read the figures either: people must know
        "for": "0s",
        "annotations": {
            "summary": "ccpulse live figures not updated for over " + duration(stale_after_s),
            "description": ("Partition {{ $labels.partition }} last wrote live figures "
                            "{{ printf \"%.0f\" $values.B.Value }} s ago, while contacts were in progress: "
                            "the ccpulse worker has stopped, is stuck, or cannot write to ClickHouse, so its own "
                            "SLA alerts are silent too. Check `docker compose ps worker` and the worker log."),
        },
        "labels": {ROUTE_LABEL: "pipeline", "severity": "critical"},
        "isPaused": False,
    }


def drift_sql(db: str = DATABASE, minutes: int = DRIFT_WINDOW_MIN) -> str:
    """Interval rows per tenant that the worker's own check found different from the recount
    of the records (and rewrote) lately. Late data recounted on purpose (source ``late``)
    is the stream working as designed, not drift."""
    return (
        "SELECT tenant, toFloat64(count()) AS value\n"
        f"FROM {db}.figure_repairs\n"
        f"WHERE source = 'worker' AND found_at >= now() - INTERVAL {minutes} MINUTE\n"
        "GROUP BY tenant ORDER BY tenant")


def drift_rule() -> dict[str, Any]:
    """Stored figures drifted from the records: repaired already, but people must know why."""
    return {
        "uid": DRIFT_RULE_UID,
        "title": DRIFT_RULE_TITLE,
        "condition": "C",
        "data": _data(drift_sql(), "gt", 0.0),
        "noDataState": "OK",  # no repairs: nothing drifted
        "execErrState": "Error",
        "for": "0s",
        "annotations": {
            "summary": "{{ $labels.tenant }}: interval figures differed from the interaction records",
            "description": ("The ccpulse worker found {{ printf \"%.0f\" $values.B.Value }} interval rows of "
                            "{{ $labels.tenant }} whose stored figures were not the recount of the records in the "
                            f"last {DRIFT_WINDOW_MIN} min, and rewrote them: the dashboards are right again. "
                            "Something made them drift (a restart from an incomplete recovery, rows written by "
                            "hand, a lost write): see ccpulse.figure_repairs and the worker log, and run "
                            "`ccpulse verify` over older days."),
        },
        "labels": {ROUTE_LABEL: "pipeline", "severity": "warning"},
        "isPaused": False,
    }


def dialer_abandon_sql(hours: int, min_connects: int, db: str = DATABASE) -> str:
    """Per outbound campaign over the last ``hours``: connects the dialer dropped for want of a free
    agent / connects, once there are ``min_connects`` (campaign_intervals_15m, by dial time)."""
    return (
        "SELECT tenant, campaign, toFloat64(sum(dialer_abandoned) / sum(connects)) AS value\n"
        f"FROM {db}.campaign_intervals_15m\n"
        f"WHERE interval_start >= now() - INTERVAL {int(hours)} HOUR\n"
        f"GROUP BY tenant, campaign HAVING sum(connects) >= {int(min_connects)}\n"
        "ORDER BY tenant, campaign")


def dialer_abandon_rule(centre: CentreConfig) -> dict[str, Any]:
    """A campaign drops more connected calls than the regulated limit allows."""
    o = centre.outbound
    return {
        "uid": DIALER_RULE_UID,
        "title": DIALER_RULE_TITLE,
        "condition": "C",
        "data": _data(dialer_abandon_sql(o.window_hours, o.min_connects), "gt", float(o.dialer_abandon_limit)),
        "noDataState": "OK",  # no campaign with enough connects: nothing to judge
        "execErrState": "Error",
        "for": "0s",
        "annotations": {
            "summary": "{{ $labels.tenant }}/{{ $labels.campaign }}: dialer abandon rate over "
                       f"{o.dialer_abandon_limit:.0%}",
            "description": ("The dialer dropped {{ humanizePercentage $values.B.Value }} of the calls a "
                            f"person answered in the last {o.window_hours} h (limit {o.dialer_abandon_limit:.0%}, "
                            "centre file outbound.dialer_abandon_limit): slow the dialer's pacing or add agents to "
                            "the campaign."),
        },
        "labels": {ROUTE_LABEL: "sla", "severity": "critical", "campaign_rule": "dialer_abandon"},
        "isPaused": False,
    }


def short_of_agents_sql(db: str = DATABASE) -> str:
    """Per queue: the most agents the forecast needs in the half hours around the next 30 minutes,
    less the agents available now (ready, busy or in after-call work)."""
    return (
        "SELECT f.tenant AS tenant, f.queue AS queue,\n"
        "       toFloat64(max(f.required_agents)) - toFloat64(any(ifNull(n.available, 0))) AS value\n"
        f"FROM (SELECT * FROM {db}.forecasts FINAL) AS f\n"
        f"LEFT JOIN (SELECT tenant, queue, sum(agents) AS available FROM {db}.agents_by_state\n"
        "           WHERE state IN ('ready', 'busy', 'acw') GROUP BY tenant, queue) AS n\n"
        "    ON n.tenant = f.tenant AND n.queue = f.queue\n"
        "WHERE f.required_agents IS NOT NULL AND f.interval_start > now() - INTERVAL 30 MINUTE\n"
        "  AND f.interval_start <= now() + INTERVAL 30 MINUTE\n"
        "GROUP BY tenant, queue ORDER BY tenant, queue")


def forecast_miss_sql(min_forecast: int, db: str = DATABASE) -> str:
    """Per queue, over the four half hours that ended 30 minutes ago or more in the last 2.5 hours:
    |offered - forecast| / forecast, once the forecast holds ``min_forecast`` contacts."""
    return (
        "SELECT f.tenant AS tenant, f.queue AS queue,\n"
        "       abs(sum(ifNull(a.actual, 0)) - sum(f.offered)) / sum(f.offered) AS value\n"
        f"FROM (SELECT tenant, queue, interval_start, offered FROM {db}.forecasts FINAL\n"
        "      WHERE offered IS NOT NULL AND interval_start >= now() - INTERVAL 150 MINUTE\n"
        "        AND interval_start < now() - INTERVAL 30 MINUTE) AS f\n"
        "LEFT JOIN (SELECT tenant, queue, toStartOfInterval(interval_start, INTERVAL 30 MINUTE) AS t, sum(offered) AS actual\n"
        f"           FROM {db}.kpi_intervals_15m WHERE interval_start >= now() - INTERVAL 150 MINUTE\n"
        "           GROUP BY tenant, queue, t) AS a\n"
        "    ON a.tenant = f.tenant AND a.queue = f.queue AND a.t = f.interval_start\n"
        f"GROUP BY tenant, queue HAVING sum(f.offered) >= {int(min_forecast)} ORDER BY tenant, queue")


def staffing_rules(centre: CentreConfig) -> list[dict[str, Any]]:
    """Short of agents for the next 30 minutes; the forecast missed by more than the centre allows."""
    st = centre.staffing
    where = "{{ $labels.tenant }}/{{ $labels.queue }}"
    return [
        {"uid": SHORT_RULE_UID, "title": "ccpulse: short of agents for the next 30 minutes", "condition": "C",
         "data": _data(short_of_agents_sql(), "gt", st.short_by - 0.5), "noDataState": "OK", "execErrState": "Error",
         "for": "3m",  # a passing gap (a break ending) is not worth a page
         "annotations": {"summary": f"{where}: short of {{{{ printf \"%.0f\" $values.B.Value }}}} agents for the next 30 minutes",
                         "description": ("The forecast needs more agents for the queue's service-level goal (Erlang A) "
                                         "than are ready, busy or in after-call work now: call people in, move "
                                         "multi-skilled agents, or postpone breaks (the Staffing board).")},
         "labels": {ROUTE_LABEL: "sla", "severity": "warning", "staffing_rule": "short"}, "isPaused": False},
        {"uid": MISS_RULE_UID, "title": "ccpulse: forecast missed", "condition": "C",
         "data": _data(forecast_miss_sql(st.min_forecast), "gt", float(st.forecast_miss)), "noDataState": "OK",
         "execErrState": "Error", "for": "0s",
         "annotations": {"summary": f"{where}: contacts {{{{ humanizePercentage $values.B.Value }}}} off the forecast",
                         "description": (f"Over the last two hours the queue's contacts differ from the forecast by "
                                         f"more than {st.forecast_miss:.0%} (centre file staffing.forecast_miss): "
                                         "something the history does not know (an outage, a campaign, a holiday)? "
                                         "The staffing plan for the rest of the day is off by as much.")},
         "labels": {ROUTE_LABEL: "sla", "severity": "warning", "staffing_rule": "forecast_miss"}, "isPaused": False},
    ]


def stale_after(centre: CentreConfig, minimum: int = STALE_AFTER_S) -> int:
    """Seconds without a write that mean a stall: ``minimum``, or three refreshes of a slow stream."""
    return max(minimum, int(math.ceil(3 * centre.windows.refresh_s)))


def build_rules(centre: CentreConfig, *, stale_after_s: int = STALE_AFTER_S) -> dict[str, Any]:
    """Grafana alerting provisioning (apiVersion 1) with one rule per centre rule plus the stale rule."""
    stale_after_s = stale_after(centre, stale_after_s)
    rules = [grafana_rule(r, centre, fresh_s=stale_after_s) for r in centre.alerts.rules]
    rules.append(stale_rule(stale_after_s=stale_after_s))
    rules.append(drift_rule())
    rules.append(dialer_abandon_rule(centre))
    rules += staffing_rules(centre)
    return {"apiVersion": 1, "groups": [
        {"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": duration(INTERVAL_S), "rules": rules}]}


def contact_point(url: str) -> dict[str, Any]:
    """The webhook receiver (one shape for the file and the HTTP API)."""
    return {"uid": CONTACT_POINT, "type": "webhook", "settings": {"url": url, "httpMethod": "POST"},
            "disableResolveMessage": False}


def build_contact_points() -> dict[str, Any]:
    """Grafana expands ``$GRAFANA_ALERT_WEBHOOK_URL`` from its environment when it reads the file."""
    return {"apiVersion": 1, "contactPoints": [
        {"orgId": 1, "name": CONTACT_POINT, "receivers": [contact_point(f"${WEBHOOK_ENV}")]}]}


def ccpulse_route(centre: CentreConfig) -> dict[str, Any]:
    """The policy for ccpulse alerts: to the webhook, one notification per queue and rule,
    repeated as often as the stream re-notifies (each rule's ``renotify_s``)."""
    default_repeat = AlertRule.model_fields["renotify_s"].default
    route: dict[str, Any] = {
        "receiver": CONTACT_POINT,
        "object_matchers": [[ROUTE_LABEL, "=~", "|".join(ROUTE_VALUES)]],
        "group_by": ["alertname", "tenant", "queue", "channel"],
        "group_wait": "30s",
        "group_interval": "1m",
        "repeat_interval": duration(default_repeat),
    }
    own = [{"object_matchers": [["rule", "=", r.name]], "repeat_interval": duration(r.renotify_s)}
           for r in centre.alerts.rules if r.renotify_s != default_repeat]
    if own:
        route["routes"] = own
    return route


def build_policies(centre: CentreConfig) -> dict[str, Any]:
    """The whole policy tree of org 1 (file provisioning replaces it): this Grafana is ccpulse's own."""
    return {"apiVersion": 1, "policies": [
        {"orgId": 1, "receiver": CONTACT_POINT, "group_by": ["grafana_folder", "alertname"],
         "routes": [ccpulse_route(centre)]}]}


def build_alerting(centre: CentreConfig, *, stale_after_s: int = STALE_AFTER_S) -> dict[str, dict[str, Any]]:
    """File name → provisioning document, for grafana/provisioning/alerting/."""
    return {RULES_FILE: build_rules(centre, stale_after_s=stale_after_s),
            CONTACT_POINTS_FILE: build_contact_points(),
            POLICIES_FILE: build_policies(centre)}


# --- files -----------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, s: str) -> yaml.ScalarNode:
    style = "|" if "\n" in s else None  # SQL stays readable in the committed file
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_Dumper.add_representer(str, _str)

_HEADER = ("# Generated by `ccpulse grafana build` from the centre file (streams/grafana/alert_rules.py):\n"
           "# do not edit by hand. Grafana reads it at start-up from /etc/grafana/provisioning/alerting.\n")


def render(doc: dict[str, Any]) -> str:
    return _HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def write_alerting(out_dir: Path, centre: CentreConfig, *, stale_after_s: int = STALE_AFTER_S) -> list[Path]:
    """Write the three provisioning files into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, doc in build_alerting(centre, stale_after_s=stale_after_s).items():
        p = out_dir / name
        p.write_text(render(doc))
        paths.append(p)
    return paths
