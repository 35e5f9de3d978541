"""Grafana-managed alert rules mirror the centre file's SLA rules, and their SQL asks ClickHouse
exactly what the stream's own rules ask its in-memory figures.

The SQL runs on a real ClickHouse engine (embedded chdb, the schema from the migrations), over
rows written by the sink's own batch builders; the expected values come from the stream's
rule code (streams.domain.alerts.value_of) on the same counts, so a wrong column, SL variant, window,
sample or matcher fails here. Grafana itself (its expression engine and provisioning reader)
cannot be installed on this machine: the documents are checked against the provisioning
format as data, not loaded into a Grafana.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
import yaml

from streams.domain import kpi
from streams.domain.alerts import BAD_WHEN, QUEUE_METRICS, Figures, value_of
from streams.config.centre import CentreConfig, load_centre
from streams.clickhouse import ClickHouse
from streams.clickhouse.connect import connect
from streams.grafana import alert_rules as ar
from streams.clickhouse.migrate import migrate
from streams.clickhouse import rows

ROOT = Path(__file__).resolve().parents[2]
ALERTING = ROOT / "grafana" / "provisioning" / "alerting"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "clickhouse.yaml"


def _closed_hours_now() -> str:
    """A one-hour span of every day that is twelve hours away from now in New York: closed now."""
    h = (datetime.now(ZoneInfo("America/New_York")).hour + 12) % 24
    return f"{h:02d}:00-{h + 1:02d}:00"


CENTRE_YAML = f"""
defaults: {{sl_threshold_s: 20, sl_goal: 0.8}}
tenants:
  acme:
    timezone: Europe/London
    queues:
      sales: {{sl_goal: 0.9}}
      support: {{sl_variant: ignore_abandons, sl_goal: 0.7}}
  globex:
    timezone: America/New_York
    business_hours: {{mon-sun: "{_closed_hours_now()}"}}
    queues:
      desk: {{}}
windows: {{rolling_minutes: [5, 15, 60]}}
alerts:
  rules:
    - {{name: sl-goal, metric: service_level, threshold: goal, window_minutes: 15, min_sample: 10, for_s: 60,
       severity: critical, business_hours_only: true}}
    - {{name: sl-floor, metric: service_level, threshold: 0.5, window_minutes: 5, min_sample: 5, for_s: 0,
       channels: [voice]}}
    - {{name: abandons, metric: abandon_rate, threshold: 0.1, window_minutes: 60, tenants: [acme], for_s: 120}}
    - {{name: slow.answer, metric: asa_s, threshold: 30, window_minutes: 15, min_sample: 3, for_s: 90.5,
       severity: info}}
    - {{name: long-wait, metric: oldest_wait_s, threshold: 120, window_minutes: 5, queues: [sales], for_s: 0}}
    - {{name: queue-depth, metric: waiting, threshold: 4, window_minutes: 5}}
    - {{name: understaffed, metric: ready_agents_while_waiting, threshold: 2, renotify_s: 300,
       severity: critical}}
"""


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> CentreConfig:
    f = tmp_path_factory.mktemp("centre") / "centre.yaml"
    f.write_text(CENTRE_YAML)
    return load_centre(f)


def _by_uid(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["uid"]: r for g in doc["groups"] for r in g["rules"]}


# --- the committed files ------------------------------------------------------------------------

def test_committed_alerting_is_what_the_code_builds() -> None:
    from streams.config.centre import EXAMPLE_CENTRE

    built = ar.build_alerting(load_centre(EXAMPLE_CENTRE))  # what docker-compose's worker runs with
    assert sorted(p.name for p in ALERTING.glob("*.yaml")) == sorted(built)
    for name, doc in built.items():
        committed = yaml.safe_load((ALERTING / name).read_text())
        assert committed == doc, (f"grafana/provisioning/alerting/{name} is out of date: run `ccpulse grafana build` "
                                  "(without CCPULSE_CENTRE_CONFIG: centre.example.yaml) and commit the result")
        assert (ALERTING / name).read_text() == ar.render(doc), f"{name}: run `ccpulse grafana build`"


def test_documents_follow_the_provisioning_format(centre: CentreConfig) -> None:
    docs = ar.build_alerting(centre)
    rules = docs[ar.RULES_FILE]
    assert rules["apiVersion"] == 1 and len(rules["groups"]) == 1
    group = rules["groups"][0]
    assert group["folder"] == ar.FOLDER and group["interval"] == "1m" and group["orgId"] == 1
    for r in group["rules"]:
        assert {"uid", "title", "condition", "data", "for", "labels", "annotations", "noDataState",
                "execErrState"} <= set(r)
        assert len(r["uid"]) <= 40 and r["uid"].replace("-", "").replace("_", "").isalnum()
        assert r["noDataState"] in ("OK", "NoData", "Alerting") and r["execErrState"] in ("OK", "Error", "Alerting")
        refs = [d["refId"] for d in r["data"]]
        assert r["condition"] == refs[-1] == "C" and len(set(refs)) == len(refs)
        for d in r["data"][1:]:  # every expression reads an earlier node
            assert d["model"]["expression"] in refs[:refs.index(d["refId"])]
        # Grafana expands $VAR in labels and ${VAR} in annotations when reading the file: none may slip in.
        assert not any("$" in v for v in r["labels"].values()) and "$" not in r["title"]
        assert not any("${" in v for v in r["annotations"].values())
        assert "$" not in r["data"][0]["model"]["rawSql"]  # no plugin macros: the SQL runs as written
    assert len({r["uid"] for r in group["rules"]}) == len({r["title"] for r in group["rules"]}) == len(group["rules"])
    cp = docs[ar.CONTACT_POINTS_FILE]["contactPoints"][0]
    assert cp["receivers"][0]["settings"]["url"] == "$GRAFANA_ALERT_WEBHOOK_URL"
    root = docs[ar.POLICIES_FILE]["policies"][0]
    assert root["receiver"] == cp["name"] == cp["receivers"][0]["uid"] and root["routes"][0]["receiver"] == cp["name"]


def test_every_datasource_a_rule_uses_is_provisioned(centre: CentreConfig) -> None:
    provisioned = {d["uid"]: d["type"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    provisioned[ar.EXPR_UID] = ar.EXPR_UID  # Grafana's built-in expressions
    for doc in (ar.build_rules(centre), yaml.safe_load((ALERTING / ar.RULES_FILE).read_text())):
        for r in _by_uid(doc).values():
            for d in r["data"]:
                assert d["datasourceUid"] in provisioned, (r["uid"], d["datasourceUid"])
                ds = d["model"]["datasource"]
                assert ds == {"uid": d["datasourceUid"], "type": provisioned[d["datasourceUid"]]}


# --- the mirror -----------------------------------------------------------------------------------

def test_each_centre_rule_has_one_grafana_rule_with_its_figures(centre: CentreConfig) -> None:
    doc = ar.build_rules(centre)
    got = _by_uid(doc)
    assert len(got) == len(centre.alerts.rules) + 5
    assert {ar.STALE_RULE_UID, ar.DRIFT_RULE_UID, ar.DIALER_RULE_UID} <= set(got)
    for rule in centre.alerts.rules:
        matching = [r for r in got.values() if r["labels"].get("rule") == rule.name]
        assert len(matching) == 1, rule.name
        g = matching[0]
        assert g["uid"] == ar.rule_uid(rule.name) and g["title"] == rule.name
        assert g["labels"] == {"ccpulse": "sla", "rule": rule.name, "metric": rule.metric, "severity": rule.severity}
        evaluator = g["data"][2]["model"]["conditions"][0]["evaluator"]
        assert evaluator["type"] == ("lt" if BAD_WHEN[rule.metric] == "below" else "gt")
        sql = g["data"][0]["model"]["rawSql"]
        if rule.metric not in QUEUE_METRICS:
            assert f"k.window_minutes = {rule.window_minutes}" in sql
        for col, values in (("tenant", rule.tenants), ("queue", rule.queues), ("channel", rule.channels)):
            if values and not (col == "channel" and rule.metric in QUEUE_METRICS):
                assert f"{col} IN ({', '.join(repr(v) for v in values)})" in sql, (rule.name, col)
            else:
                assert f"{col} IN (" not in sql.split("FROM ccpulse.agents_now")[0], (rule.name, col)
    # The figures, rule by rule, as written in CENTRE_YAML.
    figures = {r["title"]: (r["data"][2]["model"]["conditions"][0]["evaluator"], r["for"], r["labels"]["severity"])
               for r in got.values() if r["labels"].get("ccpulse") == "sla" and "rule" in r["labels"]}
    assert figures == {
        "sl-goal": ({"type": "lt", "params": [0.0]}, "1m", "critical"),  # SL minus each queue's goal
        "sl-floor": ({"type": "lt", "params": [0.5]}, "0s", "warning"),
        "abandons": ({"type": "gt", "params": [0.1]}, "2m", "warning"),
        "slow.answer": ({"type": "gt", "params": [30.0]}, "91s", "info"),
        "long-wait": ({"type": "gt", "params": [120.0]}, "0s", "warning"),
        "queue-depth": ({"type": "gt", "params": [4.0]}, "1m", "warning"),
        "understaffed": ({"type": "lt", "params": [2.0]}, "1m", "critical"),
    }
    assert got[ar.rule_uid("slow.answer")]["uid"].startswith("ccpulse-sla-slow-answer-")  # '.' is not uid material
    sql = {r["title"]: r["data"][0]["model"]["rawSql"] for r in got.values()}
    assert "k.answered + k.abandoned >= 10" in sql["sl-goal"] and "k.answered >= 3" in sql["slow.answer"]
    assert ">=" not in sql["queue-depth"].split("WHERE", 1)[1].replace("version >=", "")  # no sample for counts
    assert "now('America/New_York')" in sql["sl-goal"] and "now('America/New_York')" not in sql["sl-floor"]
    stale = got[ar.STALE_RULE_UID]
    assert stale["data"][2]["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [300.0]}
    assert stale["execErrState"] == "Alerting" and stale["labels"] == {"ccpulse": "pipeline", "severity": "critical"}


def test_a_slow_refresh_widens_the_staleness() -> None:
    slow = CentreConfig(windows={"refresh_s": 600})
    doc = ar.build_rules(slow)
    assert _by_uid(doc)[ar.STALE_RULE_UID]["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [1800.0]
    from streams.config.centre import EXAMPLE_CENTRE

    assert ar.build_rules(load_centre(EXAMPLE_CENTRE)) == yaml.safe_load((ALERTING / ar.RULES_FILE).read_text())


def test_rule_uids_are_stable_and_distinct() -> None:
    names = ["sl-goal", "sl.goal", "sl_goal", "x" * 64, "x" * 63 + "y"]
    uids = [ar.rule_uid(n) for n in names]
    assert uids == [ar.rule_uid(n) for n in names] and len(set(uids)) == len(uids)
    assert all(len(u) <= 40 for u in uids) and uids[0] == "ccpulse-sla-sl-goal"


def test_policy_repeats_as_the_stream_renotifies(centre: CentreConfig) -> None:
    route = ar.build_policies(centre)["policies"][0]["routes"][0]
    assert route["object_matchers"] == [["ccpulse", "=~", "sla|pipeline"]] and route["repeat_interval"] == "15m"
    assert route["routes"] == [{"object_matchers": [["rule", "=", "understaffed"]], "repeat_interval": "5m"}]
    assert "routes" not in ar.ccpulse_route(load_centre(None))


# --- the SQL on a real ClickHouse ---------------------------------------------------------------

Group = tuple[str, str, str]
#: group -> (partition, counts, waiting, oldest waiting since, written at)
Groups = dict[Group, tuple[int, list[int], int, "int | None", int]]


def _vec(**counts: int) -> list[int]:
    v = kpi.zero()
    for k, n in counts.items():
        v[kpi.IDX[k]] = n
    return v


def _groups(now: int) -> Groups:
    old = now - 600_000  # ten minutes ago: past the five-minute freshness
    return {
        # SL 12/(25-1) = 0.5 (goal 0.9), abandons 4/24, ASA 40 s, 6 waiting for 200 s.
        ("acme", "sales", "voice"): (0, _vec(offered=30, answered=20, answered_in_sl=12, abandoned=5,
                                             short_abandons=1, wait_answered_ms=800_000), 6, now - 200_000, now),
        # ignore_abandons: SL 8/10 = 0.8 against its goal 0.7 (abandons_count_against would say 0.4).
        ("acme", "support", "chat"): (1, _vec(offered=20, answered=10, answered_in_sl=8, abandoned=10,
                                              wait_answered_ms=100_000), 1, now - 30_000, now),
        # Three contacts left the queue: below every min_sample of 5 or more.
        ("acme", "sales", "email"): (2, _vec(offered=3, answered=2, abandoned=1, wait_answered_ms=120_000), 0, None,
                                     now),
        # SL 0.2, but globex is closed now (business hours) for the rule that honours them.
        ("globex", "desk", "voice"): (3, _vec(offered=10, answered=10, answered_in_sl=2, wait_answered_ms=50_000),
                                      5, now - 10_000, now),
        # Breaching figures written ten minutes ago by a stream that stopped: not a breach now, a stall.
        ("acme", "stalled", "voice"): (5, _vec(offered=40, answered=20, abandoned=20), 9, old - 300_000, old),
        # Written ten minutes ago too, but the last write was zeros: a queue that went quiet.
        ("acme", "quiet", "voice"): (6, _vec(), 0, None, old),
    }


#: agent -> (tenant, state, queues)
AGENTS = {"a1": ("acme", "ready", ["sales"]), "a2": ("acme", "busy", ["sales"]), "a3": ("acme", "ready", ["support"]),
          "a4": ("acme", "ready", ["support"]), "a5": ("acme", "logged_out", ["sales"])}


@pytest.fixture(scope="module")
def now() -> int:
    return (int(time.time()) - 1) * 1000  # whole seconds: kpi_live's oldest_waiting_s is whole seconds


@pytest.fixture(scope="module")
def groups(now: int) -> Groups:
    return _groups(now)


@pytest.fixture(scope="module")
def ch(tmp_path_factory: pytest.TempPathFactory, centre: CentreConfig, now: int,
       groups: Groups) -> Iterator[ClickHouse]:
    """A fresh embedded ClickHouse, migrated, holding the groups, AGENTS and the queue settings."""
    c = connect(f"chdb://{tmp_path_factory.mktemp('chdb')}", ar.DATABASE)
    migrate(c)
    for (t, q, ch_), (p, vec, waiting, oldest, at) in groups.items():
        c.insert(rows.KPI_LIVE_TABLE, rows.kpi_live_batch(
            [(p, (t, q, ch_), w, vec, waiting, oldest, at) for w in centre.windows.rolling_minutes], at))
    queues = sorted({(t, q) for t, q, _ in groups})
    stale_goal = centre.queue("acme", "sales").model_copy(update={"sl_goal": 0.3})
    c.insert(rows.QUEUE_SETTINGS_TABLE, rows.queue_settings_batch([("acme", "sales", stale_goal)]))
    time.sleep(0.01)  # the current settings replace it (ReplacingMergeTree(updated_at) FINAL)
    c.insert(rows.QUEUE_SETTINGS_TABLE, rows.queue_settings_batch([(t, q, centre.queue(t, q)) for t, q in queues]))
    c.insert(rows.AGENT_LIVE_TABLE, rows.agent_live_batch(
        [(t, a, (state, "", now, 0, qs)) for a, (t, state, qs) in AGENTS.items()], now, now))
    yield c
    c.close()


def _stream_value(rule: Any, centre: CentreConfig, groups: Groups, now: int, group: Group) -> float | None:
    """What the stream's own rule compares with its threshold for this group (None: no alert possible)."""
    t, q, channel = group
    if rule.metric in QUEUE_METRICS:
        fresh = [g for g, v in groups.items() if g[:2] == (t, q) and v[4] == now]
        waiting = sum(groups[g][2] for g in fresh)
        agents = [a for a in AGENTS.values() if a[0] == t and q in a[2]]
        if not fresh or not agents:
            return None
        value, _ = value_of(rule.metric, Figures.of(kpi.zero(), waiting, 0.0,
                                                    sum(a[1] == "ready" for a in agents)), centre.queue(t, q))
        return None if value == float("inf") else value
    _p, vec, waiting, oldest, at = groups[group]
    if at != now:
        return None  # not written lately: the Grafana rule leaves it to the stale rule
    tc = centre.tenant(t)
    local = datetime.now(timezone.utc).astimezone(ZoneInfo(tc.timezone))
    if rule.business_hours_only and not tc.is_open(local.weekday(), local.hour * 60 + local.minute):
        return None
    qc = centre.queue(t, q)
    value, sample = value_of(rule.metric, Figures.of(vec, waiting, (at - oldest) / 1000 if oldest else 0.0), qc)
    if value is None or (sample is not None and sample < rule.min_sample):
        return None
    return value - rule.limit(qc) if rule.threshold == "goal" else value


def _breaches(op: str, limit: float, value: float) -> bool:
    return value < limit if op == "lt" else value > limit


def test_each_rules_sql_returns_what_the_stream_would_compare(ch: ClickHouse, centre: CentreConfig,
                                                              groups: Groups, now: int) -> None:
    breaching: dict[str, set[Group]] = {}
    for rule in centre.alerts.rules:
        res = ch.query(ar.rule_sql(rule, centre))
        assert res.columns == ["tenant", "queue", "channel", "value"], rule.name
        got = {(t, q, c): v for t, q, c, v in res.rows}
        candidates = {(t, q, "*") for t, q, _ in groups} if rule.metric in QUEUE_METRICS else set(groups)
        want = {}
        for g in candidates:
            v = _stream_value(rule, centre, groups, now, g) if rule.matches(*g) else None
            if v is not None:
                want[g] = v
        assert got.keys() == want.keys(), rule.name
        for g, v in want.items():
            assert got[g] == pytest.approx(v, abs=1e-9), (rule.name, g)
        op, limit = ar.threshold_of(rule)
        breaching[rule.name] = {g for g, v in got.items() if _breaches(op, limit, v)}
    assert breaching == {
        "sl-goal": {("acme", "sales", "voice")},  # 0.5 < 0.9; support is fine by its own variant; globex closed
        "sl-floor": {("globex", "desk", "voice")},  # 0.2 < 0.5; acme/sales/voice is at 0.5, not below
        "abandons": {("acme", "sales", "voice"), ("acme", "support", "chat")},  # 0.17 and 0.5 > 0.1
        "slow.answer": {("acme", "sales", "voice")},  # ASA 40 s > 30 (support: 10 s; email: sample 2 < 3)
        "long-wait": {("acme", "sales", "voice")},  # 200 s > 120, sales only
        "queue-depth": {("acme", "sales", "voice"), ("globex", "desk", "voice")},  # 6 and 5 > 4
        "understaffed": {("acme", "sales", "*")},  # one ready agent while 6 wait; support has two
    }


def test_sl_goal_value_uses_the_current_settings(ch: ClickHouse, centre: CentreConfig) -> None:
    rule = next(r for r in centre.alerts.rules if r.name == "sl-goal")
    got = {(t, q, c): v for t, q, c, v in ch.query(ar.rule_sql(rule, centre)).rows}
    assert got[("acme", "sales", "voice")] == pytest.approx(0.5 - 0.9)  # not the replaced goal 0.3
    assert got[("acme", "support", "chat")] == pytest.approx(0.8 - 0.7)


def test_stale_rule_sees_a_stream_that_stopped_mid_traffic(ch: ClickHouse) -> None:
    res = ch.query(ar.stale_sql())
    assert res.columns == ["partition", "value"]
    got = dict(res.rows)
    assert set(got) == {"0", "1", "2", "3", "5"}  # 6 ended quiet (zeros): no stall to report there
    assert 600 <= got["5"] < 700 and all(0 <= got[p] < 60 for p in ("0", "1", "2", "3"))
    limit = ar.stale_rule()["data"][2]["model"]["conditions"][0]["evaluator"]["params"][0]
    assert {p for p, v in got.items() if v > limit} == {"5"}


def test_drift_rule_counts_the_rows_the_worker_found_drifted_lately_per_tenant(ch: ClickHouse) -> None:
    from streams.domain.recount import Difference

    now = int(time.time() * 1000)
    d = Difference((0, "acme", "sales", "voice", 0), ("offered",), (6,), (1,))
    e = Difference((1, "globex", "desk", "voice", 0), ("offered",), (2,), (1,))
    ch.insert(rows.FIGURE_REPAIRS_TABLE, rows.figure_repair_batch([d, d, e], now, "repaired", "worker"))
    ch.insert(rows.FIGURE_REPAIRS_TABLE, rows.figure_repair_batch([e], now, "repaired", "late"))  # on purpose
    ch.insert(rows.FIGURE_REPAIRS_TABLE, rows.figure_repair_batch([e], now - 3_600_000, "repaired", "worker"))
    res = ch.query(ar.drift_sql())
    assert res.columns == ["tenant", "value"]
    assert res.rows == [("acme", 2.0), ("globex", 1.0)]


def test_dialer_rule_judges_each_campaigns_last_day_against_the_limit(ch: ClickHouse, centre: CentreConfig) -> None:
    """Per campaign, dropped connects / connects over the last 24 h, once 20 connects are in: a
    campaign of 40 connects with 2 drops is at 5 %, over the 3 % limit; one of 10 is not judged."""
    now = int(time.time() * 1000)

    def attempt(i: int, campaign: str, result: str, at: int) -> dict:
        return {"interaction_id": f"{campaign}-{i}", "tenant": "acme", "channel": "voice", "queue": None,
                "first_queue": None, "queues": [], "customer_id": None, "priority": 0, "agent_id": None,
                "first_agent_id": None, "offered_at_ms": None, "answered_at_ms": None, "abandoned_at_ms": None,
                "ended_at_ms": None, "wrapup_ended_at_ms": None, "first_response_at_ms": None, "last_event_at_ms": at,
                "wait_ms": 0, "talk_ms": 0, "hold_ms": 0, "acw_ms": 0, "holds": 0, "transfers": 0,
                "outcome": "not_connected", "disposition": None, "resolved": None, "csat": None, "csat_at_ms": None,
                "closed_by_timeout": False, "anomalies": [], "n_events": 2, "version": 4, "direction": "outbound",
                "campaign": campaign, "dialed_at_ms": at, "dial_result": result}

    recs = [attempt(i, "renewals", "dialer_abandoned" if i < 2 else "connected", now - 3_600_000) for i in range(40)]
    recs += [attempt(i, "renewals", "dialer_abandoned", now - 3 * 86_400_000) for i in range(40, 60)]  # days ago
    recs += [attempt(i, "survey", "dialer_abandoned" if i < 5 else "connected", now - 60_000) for i in range(10)]
    ch.insert(rows.INTERACTIONS_TABLE, rows.interaction_batch(recs))
    rule = next(r for g in ar.build_rules(centre)["groups"] for r in g["rules"] if r["uid"] == ar.DIALER_RULE_UID)
    res = ch.query(rule["data"][0]["model"]["rawSql"])
    assert res.columns == ["tenant", "campaign", "value"] and res.rows == [("acme", "renewals", 0.05)]
    assert rule["data"][2]["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [0.03]}


def test_staffing_rules_see_a_queue_short_of_agents_and_a_missed_forecast(ch: ClickHouse, centre: CentreConfig) -> None:
    from datetime import date

    from streams.config.centre import QueueConfig
    from streams.domain import kpi
    from streams.domain.planning import ForecastRow

    now = int(time.time() * 1000)
    half = now - now % 1_800_000
    rows_ = [ForecastRow("plan", "q", half + k * 1_800_000, date.today(), "", 40.0, 30.0, 50.0, 200.0, need)
             for k, need in ((-5, 9), (-4, 9), (-3, 9), (-2, 9), (-1, 9), (0, 7), (1, 12), (3, 30))]
    ch.insert(rows.FORECASTS_TABLE, rows.forecast_batch(rows_, 1))
    # 4 agents of q available now (one of them on a break does not count); 2 on another queue.
    ch.insert(rows.AGENT_LIVE_TABLE, rows.agent_live_batch(
        [("plan", f"a{i}", (state, "", now - 60_000, 0, ["q"])) for i, state in
         enumerate(("ready", "busy", "acw", "ready", "not_ready"))]
        + [("plan", f"b{i}", ("ready", "", now - 60_000, 0, ["other"])) for i in range(2)], now, 1))
    short = {(t, q): v for t, q, v in ch.query(ar.short_of_agents_sql()).rows if t == "plan"}
    assert short == {("plan", "q"): 12 - 4}  # the most the next 30 minutes need (12), less the 4 available
    # The four half hours that ended 30 min to 2.5 h ago forecast 160 contacts; 100 came.
    parts = []
    for k in (-4, -3, -2, -1):
        v = kpi.zero()
        v[kpi.IDX["offered"]] = 25
        parts.append((0, ("plan", "q", "voice", half + k * 1_800_000), v, QueueConfig(), date.today()))
    ch.insert(rows.KPI_INTERVALS_TABLE, rows.kpi_interval_batch(parts, 1))
    miss = {(t, q): v for t, q, v in ch.query(ar.forecast_miss_sql(20)).rows if t == "plan"}
    assert miss == {("plan", "q"): pytest.approx(60 / 160)}
    rules = {r["uid"]: r for g in ar.build_rules(centre)["groups"] for r in g["rules"]}
    assert rules[ar.SHORT_RULE_UID]["data"][2]["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [0.5]}
    assert rules[ar.MISS_RULE_UID]["data"][2]["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [0.3]}
