"""Every dashboard query against ClickHouse loaded by a simulated run (broker -> faust
worker -> embedded ClickHouse), with the plugin's macros and Grafana's variables expanded
as they would be (streams/grafana/macros.py): no error, the columns the panel type needs, at
least one row; and figures a wrong query would get wrong, against independent counts."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest

from streams.grafana.dashboards import build_all
from streams.traffic.producer import from_event
from streams.traffic.simulate import SimConfig, Simulation, event_time_order, simulate
from streams.grafana.macros import expand
from tests.conftest import make_env
from tests.integration.pipeline_helpers import send
from tests.services import Broker, Worker, run_cli, wait_for

pytestmark = pytest.mark.integration

BOARDS = build_all()
TENANT, QUEUE = "acme", "acme-sales"
Q15 = 15 * 60_000
DAY = 86_400_000
#: An SL goal no queue meets (every window with a slow answer breaches it): the alerts
#: table gets rows for the annotations and the alerts board.
CENTRE = """
tenants:
  acme:
    timezone: Europe/London
    queues:
      acme-sales: {sl_goal: 0.9, sl_variant: ignore_abandons, sl_threshold_s: 30}
windows: {rolling_minutes: [5, 15, 60], refresh_s: 1}
alerts:
  rules:
    - {name: sl-perfect, metric: service_level, threshold: 1.0, window_minutes: 60, min_sample: 5,
       for_s: 0, recover_for_s: 0, severity: critical}
"""


@dataclass
class Loaded:
    worker: Worker
    sim: Simulation
    from_ms: int
    to_ms: int
    options: dict[str, list[str]] = field(default_factory=dict)  # variable -> its options (chained)
    values: dict[str, Any] = field(default_factory=dict)         # variable -> the value tests choose

    def sql(self, sql: str) -> tuple[list[tuple[str, str]], list[list[Any]]]:
        """(name, type) of the columns and the rows, through the worker's read-only /sql."""
        types = [(r[0], r[1]) for r in _post(self.worker, f"DESCRIBE ({sql})")["rows"]]
        return types, _post(self.worker, sql)["rows"]

    def expand(self, sql: str, board: str, *, all_: bool = False, **overrides: Any) -> str:
        return expand(sql, from_ms=self.from_ms, to_ms=self.to_ms, interval_s=900,
                      variables=board_values(self, board, all_, **overrides), all_values=self.options)


def _post(worker: Worker, sql: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{worker.port}/sql", data=json.dumps({"sql": sql}).encode(),
                                 headers=worker.headers(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"ClickHouse refused the query: {json.loads(e.read()).get('error')}\n{sql}") from None


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


def _when(v: str | int) -> datetime:
    """A time as /sql returns it: ISO text, or epoch seconds for second-precision DateTime."""
    return datetime.fromtimestamp(v, tz=timezone.utc) if isinstance(v, int) else datetime.fromisoformat(v)


def _stored(worker: Worker, sim: Simulation) -> bool:
    """Records, interval KPIs, agent figures, live figures and an alert are all in."""
    n = len(sim.truth)
    queued = [r for r in sim.truth.values() if r["offered_at_ms"] is not None]  # not IVR-only or outbound
    answered = sum(r["outcome"] == "answered" for r in queued)
    answered_all = sum(r["outcome"] == "answered" for r in sim.truth.values())  # outbound calls too
    agents = len({e["agent_id"] for e in sim.agent_events})
    q = worker.query
    return (q("SELECT count() FROM ccpulse.interactions FINAL")[0][0] == n
            and q("SELECT sum(offered), sum(handled) FROM ccpulse.kpi_intervals_15m")[0] == (len(queued), answered)
            and q("SELECT count(DISTINCT agent_id) FROM ccpulse.agent_live FINAL")[0][0] == agents
            and q("SELECT sum(handled) FROM ccpulse.agent_handled_15m")[0][0] == answered_all
            and q("SELECT count() FROM ccpulse.kpi_live WHERE window_minutes = 15")[0][0] > 0
            and q("SELECT count() FROM ccpulse.alerts FINAL")[0][0] > 0)


@pytest.fixture(scope="module")
def loaded(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    tmp = tmp_path_factory.mktemp("panels")
    env = make_env(tmp, broker)
    (tmp / "centre.yaml").write_text(CENTRE)
    env["CCPULSE_CENTRE_CONFIG"] = str(tmp / "centre.yaml")
    run_cli(env, "setup")
    run_cli(env, "db", "migrate")
    # Ratings and quality scores come within minutes, so the event clock (and the live windows) end with the traffic;
    # the simulator's closing "everyone goes home" logouts are left out, so agents are still on
    # the floor as a wallboard during the day sees them.
    # The whole centre (the demo's traffic): the IVR, outbound campaigns and quality evaluations too.
    sim = simulate(SimConfig.product(seed=8, interactions=1_200, csat_max_delay_s=300, qa_max_delay_s=300))
    events = [e for e in event_time_order(sim) if "interaction_id" in e or _ms(e["ts"]) <= sim.end_ms]
    send(env, [from_event(e) for e in events])
    worker = Worker(env, tmp / "worker.log").start()
    try:
        wait_for(lambda: _stored(worker, sim), 120, "the simulated run stored in ClickHouse", interval=1.0)
        data = Loaded(worker, sim, from_ms=_ms(events[0]["ts"]) - DAY, to_ms=_ms(events[-1]["ts"]) + DAY)
        choose_values(data)
        yield data
    finally:
        worker.stop()


# --- variables: run the chain as Grafana does, choose values that exist ------------------------

def _var(board: str, name: str) -> dict[str, Any]:
    return next(v for v in BOARDS[board]["templating"]["list"] if v["name"] == name)


def _options(data: Loaded, board: str, name: str, **values: Any) -> list[str]:
    sql = expand(_var(board, name)["query"]["rawSql"], from_ms=data.from_ms, to_ms=data.to_ms, interval_s=900,
                 variables=values)
    return [r[0] for r in data.sql(sql)[1]]


def choose_values(data: Loaded) -> None:
    """tenant -> queue -> channel / agent, each from the previous one's choice."""
    tenants = _options(data, "wallboard.json", "tenant")
    assert TENANT in tenants and set(tenants) == {r["tenant"] for r in data.sim.truth.values()}
    queues = _options(data, "wallboard.json", "queue", tenant=TENANT)
    assert QUEUE in queues and {r["queue"] for r in data.sim.truth.values()
                                if r["tenant"] == TENANT and r["queue"]} <= set(queues)
    channels = _options(data, "wallboard.json", "channel", tenant=TENANT, queue=[QUEUE])
    assert "voice" in channels and set(channels) < set(_options(data, "wallboard.json", "channel", tenant=TENANT,
                                                                 queue="$__all"))
    agents = _options(data, "agents.json", "agent", tenant=TENANT, queue=[QUEUE])
    busy = [r[0] for r in data.worker.query(
        "SELECT agent_id FROM ccpulse.agent_handled_15m WHERE tenant = 'acme' GROUP BY agent_id "
        "HAVING agent_id IN (SELECT agent_id FROM ccpulse.agent_not_ready_15m WHERE reason != 'logged_in') "
        "ORDER BY sum(handled) DESC")]
    mine = [a for a in busy if a in agents]
    assert mine, f"no agent of {QUEUE} both handled contacts and took a break: {agents} / {busy}"
    all_agents = _options(data, "my-performance.json", "agent", tenant=TENANT)
    assert set(agents) < set(all_agents)  # the queue narrows the list
    teams = _options(data, "agents.json", "team", tenant=TENANT)
    logins = [e for e in data.sim.agent_events if e["type"] == "agent_login" and e["tenant"] == TENANT and e.get("team")]
    assert set(teams) == {e["team"] for e in logins}
    team = max((e for e in logins if e["agent_id"] == mine[0]), key=lambda e: e["ts"])["team"]
    data.options = {"tenant": tenants, "queue": queues, "channel": channels, "agent": agents, "team": teams}
    data.values = {"tenant": TENANT, "queue": [QUEUE], "channel": [channels[0]], "agent": mine[0], "team": [team]}


def board_values(data: Loaded, board: str, all_: bool = False, **overrides: Any) -> dict[str, Any]:
    """Each of the board's variables set as its type stores it: one value, a list, or All."""
    out: dict[str, Any] = {}
    for v in BOARDS[board]["templating"]["list"]:
        name = v["name"]
        if v["type"] == "custom":
            out[name] = v["current"]["value"]
        elif all_ and v["includeAll"]:
            out[name] = "$__all"
        else:
            value = data.values[name]
            value = value[0] if isinstance(value, list) else value
            out[name] = [value] if v["multi"] else value
    out.update(overrides)
    return out


# --- every query of every board ------------------------------------------------------------------

def _items(only: str | None = None) -> Iterator[Any]:
    for name, board in BOARDS.items():
        if (name == "staffing.json") != (only == "staffing.json"):
            continue  # the staffing board needs weeks of history: tests/integration/test_staffing_board.py
        for p in board["panels"]:
            for t in p["targets"]:
                yield pytest.param(name, "panel", p, t["rawSql"], id=f"{name}:{p['title']}:{t['refId']}")
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                yield pytest.param(name, "variable", v, v["query"]["rawSql"], id=f"{name}:var-{v['name']}")
        for a in board["annotations"]["list"]:
            if not a.get("builtIn"):
                yield pytest.param(name, "annotation", a, a["target"]["rawSql"], id=f"{name}:anno-{a['name']}")


def _kind(t: str) -> str:
    t = t.removeprefix("Nullable(").removeprefix("LowCardinality(")
    if t.startswith("DateTime"):
        return "time"
    if t.startswith(("UInt", "Int", "Float", "Decimal")):
        return "number"
    if t.startswith(("String", "FixedString", "Enum")):
        return "string"
    return t


def check_shape(kind: str, item: dict[str, Any], types: list[tuple[str, str]], rows: list[list[Any]]) -> None:
    """What Grafana needs from the frame of this panel type, variable or annotation."""
    names = [n for n, _ in types]
    kinds = {n: _kind(t) for n, t in types}
    where = f"{item.get('title') or item.get('name')} -> {types}"
    assert rows, f"no rows: {where}"
    assert len(set(names)) == len(names), f"duplicate column names: {where}"
    panel = item.get("type") if kind == "panel" else kind
    if panel == "timeseries":
        assert names[0] == "time" and types[0][1].startswith("DateTime"), f"time first, not nullable: {where}"
        assert any(k == "number" for k in kinds.values()), where
        times = [_when(r[0]) for r in rows]
        assert times == sorted(times), f"not ordered by time (the plugin cannot make series): {where}"
    elif panel in ("stat", "bargauge"):
        assert any(k == "number" for k in kinds.values()), where
    elif panel == "state-timeline":
        assert names[0] == "time" and kinds["time"] == "time" and "string" in list(kinds.values())[1:], where
    elif panel == "annotation":
        assert kinds.get("time") == "time" and kinds.get("text") == "string", where
    elif panel == "variable":
        assert kinds[names[0]] == "string" and all(r[0] for r in rows), where
    else:
        assert panel == "table" and names, where
    for t in item.get("transformations", []):  # the transformations name columns that exist
        if t["id"] == "rowsToFields":
            assert {m["fieldName"] for m in t["options"]["mappings"]} <= set(names), where
            assert len({r[names.index(t['options']['mappings'][0]['fieldName'])] for r in rows}) == len(rows)
        if t["id"] == "partitionByValues":
            assert set(t["options"]["fields"]) <= set(names), where


@pytest.mark.parametrize("all_", [False, True], ids=["values", "all"])
@pytest.mark.parametrize("board,kind,item,sql", list(_items()))
def test_query_runs_and_gives_the_panel_what_it_needs(loaded: Loaded, board: str, kind: str, item: dict[str, Any],
                                                      sql: str, all_: bool) -> None:
    types, rows = loaded.sql(loaded.expand(sql, board, all_=all_))
    check_shape(kind, item, types, rows)


@pytest.mark.parametrize("step", ["15", "30"])
def test_interval_views_step_as_chosen(loaded: Loaded, step: str) -> None:
    panel = next(p for p in BOARDS["intervals.json"]["panels"] if p["title"] == "Offered, answered, abandoned")
    _, rows = loaded.sql(loaded.expand(panel["targets"][0]["rawSql"], "intervals.json", step=step))
    starts = [_when(r[0]) for r in rows]
    assert all(t.minute % int(step) == 0 and t.second == 0 for t in starts)
    assert len(starts) == len(set(starts)) > 1


# --- figures a wrong query would get wrong -----------------------------------------------------------

def _panel(board: str, title: str) -> str:
    return next(p for p in BOARDS[board]["panels"] if p["title"] == title)["targets"][0]["rawSql"]


def test_client_report_offered_equals_the_records(loaded: Loaded) -> None:
    _, rows = loaded.sql(loaded.expand(_panel("client-report.json", "Offered"), "client-report.json"))
    (records,) = loaded.worker.query("SELECT count() FROM ccpulse.interactions FINAL "
                                     "WHERE tenant = 'acme' AND offered_at IS NOT NULL")[0]
    truth = sum(r["tenant"] == TENANT and r["offered_at_ms"] is not None for r in loaded.sim.truth.values())
    assert rows == [[records]] and records == truth


def test_client_report_billable_minutes_round_each_contact_up(loaded: Loaded) -> None:
    """Per started minute: a contact of 61 s talk bills 2 minutes, so summed talk rounded up
    (the wrong query) gives fewer minutes than the contacts rounded one by one."""
    _, rows = loaded.sql(loaded.expand(_panel("client-report.json", "Billable minutes (per started minute)"),
                                       "client-report.json"))
    talks = [r["talk_ms"] for r in loaded.sim.truth.values()
             if r["tenant"] == TENANT and r["outcome"] == "answered" and r["direction"] != "outbound"]
    truth = sum(-(-t // 60_000) for t in talks)
    assert rows == [[truth]] and truth > -(-sum(talks) // 60_000)


def test_interval_volumes_over_part_of_the_day_equal_the_records_offered_then(loaded: Loaded) -> None:
    """15-minute aligned range [from, to]: the intervals starting in it, so contacts offered
    from `from` up to the end of the interval starting at `to`."""
    offered = sorted(r["offered_at_ms"] for r in loaded.sim.truth.values()
                     if r["tenant"] == TENANT and r["offered_at_ms"] is not None)
    start = offered[len(offered) // 4] // Q15 * Q15
    end = offered[3 * len(offered) // 4] // Q15 * Q15
    sql = expand(_panel("intervals.json", "Offered, answered, abandoned"), from_ms=start, to_ms=end, interval_s=900,
                 variables=board_values(loaded, "intervals.json", all_=True), all_values=loaded.options)
    _, rows = loaded.sql(sql)
    got = sum(r[1] for r in rows)
    (records,) = loaded.worker.query(
        f"SELECT count() FROM ccpulse.interactions FINAL WHERE tenant = 'acme' AND offered_at >= "
        f"fromUnixTimestamp64Milli({start}) AND offered_at < fromUnixTimestamp64Milli({end + Q15})")[0]
    assert got == records == sum(start <= t < end + Q15 for t in offered) > 0


def test_leaderboard_handled_equals_each_agents_contacts(loaded: Loaded) -> None:
    _, rows = loaded.sql(loaded.expand(_panel("agents.json", "Leaderboard"), "agents.json", all_=True))
    truth = Counter(r["agent_id"] for r in loaded.sim.truth.values()
                    if r["tenant"] == TENANT and r["outcome"] == "answered")
    board = {r[0]: r[1] for r in rows}
    assert board and all(board[a] == truth[a] for a in board)
    assert sum(board.values()) == sum(truth.values())  # every handling agent is on the board


def test_wallboard_sl_is_the_queue_variant_against_its_goal(loaded: Loaded) -> None:
    types, rows = loaded.sql(loaded.expand(_panel("wallboard.json", "Service level now vs goal"), "wallboard.json",
                                           all_=True, window="60"))
    by_queue = {r[0].split(" · ")[0]: dict(zip([n for n, _ in types], r)) for r in rows}
    (in_sl, answered, abandoned) = loaded.worker.query(
        "SELECT sum(answered_in_sl), sum(answered), sum(abandoned) FROM ccpulse.kpi_live "
        f"WHERE tenant = 'acme' AND queue = '{QUEUE}' AND window_minutes = 60")[0]
    assert answered > 0 and abandoned > 0, "the last hour should have answered and abandoned contacts"
    # The tile names its base: answered only, for this queue's ignore_abandons formula.
    assert by_queue[QUEUE]["queue"] == f"{QUEUE} · {answered} contacts"
    assert by_queue[QUEUE]["goal"] == 0.9 and by_queue[QUEUE]["below_goal"] == 0
    # ignore_abandons (the centre file's choice for this queue), not the default formula
    assert by_queue[QUEUE]["service_level"] == pytest.approx(in_sl / answered)
    assert by_queue["acme-support"]["goal"] == 0.8  # the default goal for the others


def test_my_performance_shows_nothing_of_an_unknown_agent(loaded: Loaded) -> None:
    for p in BOARDS["my-performance.json"]["panels"]:
        for t in p["targets"]:
            _, rows = loaded.sql(loaded.expand(t["rawSql"], "my-performance.json", agent="nobody"))
            assert all(v in (None, 0) for r in rows for v in r), f"{p['title']} shows other agents' figures: {rows}"


def test_handled_contacts_subquery_equals_the_view(loaded: Loaded) -> None:
    """The agent panels read handled contacts through handled_contacts() (candidates by key,
    then the latest version) instead of the FINAL view: same figures for any filter."""
    from streams.grafana.dashboards import handled_contacts

    cols = ("agent_id, toUnixTimestamp(interval_start) AS t, sum(handled), sum(talk_ms), sum(hold_ms), "
            "sum(acw_ms), sum(csat_ratings), sum(csat_good)")
    truth = loaded.sim.truth.values()
    moved = [r for r in truth if r["tenant"] == TENANT and r["outcome"] == "answered"
             and r["first_agent_id"] and r["first_agent_id"] != r["agent_id"]]
    assert moved, "the simulated day should have a contact transferred between agents"
    mid = (loaded.from_ms + loaded.to_ms) // 2000
    filters = [f"tenant = '{TENANT}'", f"tenant = '{TENANT}' AND interval_start >= toDateTime({mid})",
               f"tenant = '{TENANT}' AND agent_id = '{moved[0]['first_agent_id']}'",
               f"tenant = '{TENANT}' AND agent_id = '{moved[0]['agent_id']}'"]
    for where in filters:
        view = loaded.worker.query(f"SELECT {cols} FROM ccpulse.agent_handled_15m WHERE {where} "
                                   "GROUP BY agent_id, t ORDER BY agent_id, t")
        sub = loaded.worker.query(f"SELECT {cols} FROM {handled_contacts(where)} WHERE {where} "
                                  "GROUP BY agent_id, t ORDER BY agent_id, t")
        assert view and sub == view, where
    first = moved[0]["first_agent_id"]
    counted = loaded.worker.query(f"SELECT count() FROM {handled_contacts(f'agent_id = {first!r}')} "
                                  f"WHERE agent_id = {first!r}")[0][0]
    assert counted == sum(r["agent_id"] == first and r["outcome"] == "answered" for r in truth)


@pytest.mark.parametrize("tenant", ["nobody\\' OR 1=1 -- ", "acme' OR '1'='1", "acme\\"])
def test_a_hostile_tenant_in_the_url_shows_nothing(loaded: Loaded, tenant: str) -> None:
    """A viewer can put any value in `var-tenant=`: it stays one string, the engine decodes it
    and no tenant has that name, so the client report shows nothing (`acme`'s is not empty)."""
    for p in BOARDS["client-report.json"]["panels"]:
        for t in p["targets"]:
            _, rows = loaded.sql(loaded.expand(t["rawSql"], "client-report.json", tenant=tenant))
            assert all(v in (None, 0) for r in rows for v in r if not isinstance(v, str)), \
                f"{p['title']} shows figures for tenant {tenant!r}: {rows[:3]}"
    _, rows = loaded.sql(loaded.expand(_panel("client-report.json", "Offered"), "client-report.json"))
    assert rows[0][0] > 0


# --- campaigns, the IVR and quality: against the simulator's own truth -----------------------------

def _board_rows(loaded: Loaded, title: str) -> list[dict[str, Any]]:
    types, rows = loaded.sql(loaded.expand(_panel("campaigns-ivr-quality.json", title), "campaigns-ivr-quality.json"))
    return [dict(zip([n for n, _ in types], r)) for r in rows]


def test_campaign_figures_equal_the_simulated_attempts(loaded: Loaded) -> None:
    out = [r for r in loaded.sim.truth.values() if r["tenant"] == TENANT and r["direction"] == "outbound"]
    assert out, "the simulated day should have outbound attempts"
    by = {r["campaign"]: r for r in _board_rows(loaded, "Campaigns")}
    for name in {r["campaign"] for r in out}:
        mine = [r for r in out if r["campaign"] == name]
        connects = sum(r["dial_result"] in ("connected", "dialer_abandoned") for r in mine)
        dropped = sum(r["dial_result"] == "dialer_abandoned" for r in mine)
        rpc = sum(r["outcome"] == "answered" and r["right_party"] for r in mine)
        converted = sum(bool(r["converted"]) for r in mine)
        records = Counter(r["record_id"] for r in mine)
        got = by[name]
        assert (got["attempts"], got["connects"], got["right_party_contacts"], got["conversions"]) == (
            len(mine), connects, rpc, converted)
        assert got["contact_rate"] == pytest.approx(connects / len(mine))
        assert got["dialer_abandon_rate"] == pytest.approx(dropped / connects)
        assert got["attempts_per_record"] == pytest.approx(len(mine) / len(records))


def test_ivr_figures_equal_the_simulated_sessions(loaded: Loaded) -> None:
    ivr = [r for r in loaded.sim.truth.values() if r["tenant"] == TENANT and r["ivr_entered_at_ms"] is not None]
    (got,) = _board_rows(loaded, "IVR")
    served = sum(r["ivr_result"] == "self_served" for r in ivr)
    hung = sum(r["ivr_result"] == "hung_up" for r in ivr)
    assert got["sessions"] == len(ivr) and served and hung
    assert got["containment"] == pytest.approx(served / len(ivr))
    assert got["ivr_hangup_rate"] == pytest.approx(hung / len(ivr))
    assert got["avg_ivr_s"] == pytest.approx(sum(r["ivr_ms"] for r in ivr) / len(ivr) / 1000)
    truth = Counter((" > ".join(r["ivr_path"]), r["ivr_result"], r["first_queue"] or "") for r in ivr)
    paths = {(p["path"], p["result"], p["queue"]): p["sessions"] for p in _board_rows(loaded, "IVR paths")}
    assert len(paths) == min(50, len(truth)) and all(truth[k] == n for k, n in paths.items())
    assert sorted(paths.values(), reverse=True) == sorted(truth.values(), reverse=True)[:len(paths)]  # the top ones


def test_quality_per_agent_equals_the_simulated_evaluations(loaded: Loaded) -> None:
    handled = [r for r in loaded.sim.truth.values() if r["tenant"] == TENANT and r["outcome"] == "answered"]
    rows = {r["agent_id"]: r for r in _board_rows(loaded, "Quality and satisfaction per agent")}
    assert sum(r["evaluated"] for r in rows.values()) == sum(r["qa_evaluations"] > 0 for r in handled) > 0
    for agent, got in rows.items():
        mine = [r for r in handled if r["agent_id"] == agent]
        scored = [r for r in mine if r["qa_evaluations"]]
        assert (got["handled"], got["evaluated"]) == (len(mine), len(scored)), agent
        if scored:
            assert got["qa_score"] == pytest.approx(sum(r["qa_score"] for r in scored) / len(scored)), agent
            assert got["critical_failures"] == sum(bool(r["qa_critical"]) for r in scored), agent


def test_transfer_reasons_equal_the_simulated_transfers(loaded: Loaded) -> None:
    truth = Counter((r["queue"], reason) for r in loaded.sim.truth.values() if r["tenant"] == TENANT
                    for reason in r["transfer_reasons"])
    got = Counter({(r["queue"], r["reason"]): r["n_transfers"] for r in _board_rows(loaded, "Transfers by reason")})
    assert got == truth and truth


def test_inbound_figures_are_those_of_the_same_day_without_ivr_or_outbound(loaded: Loaded) -> None:
    """The queue contacts of the product mix are those of the plain simulation (the IVR and the
    campaigns draw on their own random stream), so every queue's figures must be the plain
    day's: outbound attempts and IVR-only sessions add nothing to SL, waits or abandons."""
    plain = simulate(SimConfig(seed=8, interactions=1_200, csat_max_delay_s=300)).truth.values()
    want: dict[tuple[str, str], list[int]] = {}
    for r in plain:
        v = want.setdefault((r["tenant"], r["queue"]), [0, 0, 0, 0])
        v[0] += 1
        v[1] += r["outcome"] == "answered"
        v[2] += r["outcome"] == "abandoned"
        v[3] += r["wait_ms"] if r["outcome"] == "answered" else 0
    got = loaded.worker.query("SELECT tenant, queue, sum(offered), sum(answered), sum(abandoned), "
                              "sum(wait_answered_ms) FROM ccpulse.kpi_intervals_15m GROUP BY tenant, queue")
    assert {(t, q): [int(x) for x in v] for t, q, *v in got} == want
    assert len(loaded.sim.truth) > len(plain)  # with the IVR-only sessions and the outbound attempts


def test_wallboard_today_is_the_business_day_so_far(loaded: Loaded) -> None:
    types, rows = loaded.sql(loaded.expand(_panel("wallboard.json", "Today"), "wallboard.json", all_=True))
    got = dict(zip([n for n, _ in types], rows[0]))
    (day,) = loaded.worker.query("SELECT max(local_day) FROM ccpulse.interval_kpis WHERE tenant = 'acme'")[0]
    tz = __import__("zoneinfo").ZoneInfo("Europe/London")
    today = [r for r in loaded.sim.truth.values() if r["tenant"] == TENANT and r["offered_at_ms"] is not None
             and datetime.fromtimestamp(r["offered_at_ms"] / 1000, tz).date().isoformat() == str(day)]
    assert got["offered"] == len(today) > 0


def test_teams_handled_are_each_agents_contacts_in_the_team_it_was_in(loaded: Loaded) -> None:
    """Each handled contact counts for the team its agent's latest login named by the quarter hour
    the contact was handled in (worked out here from the simulator's login events)."""
    logins: dict[str, list[tuple[int, str]]] = {}
    for e in loaded.sim.agent_events:
        if e["type"] == "agent_login" and e["tenant"] == TENANT and e.get("team"):
            logins.setdefault(e["agent_id"], []).append((_ms(e["ts"]) // Q15 * Q15, e["team"]))
    truth: Counter = Counter()
    for r in loaded.sim.truth.values():
        if r["tenant"] == TENANT and r["outcome"] == "answered" and r["agent_id"] in logins:
            at = (r["wrapup_ended_at_ms"] or r["ended_at_ms"]) // Q15 * Q15
            before = [team for since, team in sorted(logins[r["agent_id"]]) if since <= at]
            if before:
                truth[before[-1]] += 1
    types, rows = loaded.sql(loaded.expand(_panel("agents.json", "Teams"), "agents.json", all_=True))
    got = {r[0]: r[2] for r in rows}
    assert got == dict(truth) and len(truth) >= 4
