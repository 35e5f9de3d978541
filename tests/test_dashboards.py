"""The dashboards as files: generated JSON committed without drift, every reference to the
data source and to variables resolvable, layouts that do not overlap, and the plugin's
macros used in ways it expands correctly. No services needed (tests/integration/
test_panel_queries.py runs the same queries against ClickHouse)."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.grafana import dashboards
from streams.grafana.dashboards import DATASOURCE, build_all, render, write_all
from streams.grafana.macros import (
    BUILTIN_VARIABLES,
    PLUGIN_MACROS,
    VARIABLE_RE,
    MacroError,
    conditional_all,
    expand,
    macro_args,
)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "grafana" / "dashboards"
PROVISIONED = REPO / "grafana" / "provisioning" / "datasources" / "clickhouse.yaml"
REGENERATE = ("run `ccpulse grafana build`, or python -c \"from pathlib import Path; "
              "from streams.grafana.dashboards import write_all; write_all(Path('grafana/dashboards'))\"")
UIDS = {"ccpulse-wallboard", "ccpulse-intervals", "ccpulse-channel-mix", "ccpulse-agents", "ccpulse-my-performance",
        "ccpulse-client-report", "ccpulse-alerts", "ccpulse-campaigns-ivr-quality", "ccpulse-staffing"}
BOARDS = build_all()


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, SQL) of every panel target, query variable and annotation."""
    for p in board["panels"]:
        for t in p["targets"]:
            yield f"panel {p['title']!r} {t['refId']}", t["rawSql"]
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            yield f"variable {v['name']}", v["query"]["rawSql"]
    for a in board["annotations"]["list"]:
        if not a.get("builtIn"):
            yield f"annotation {a['name']}", a["target"]["rawSql"]


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in board["templating"]["list"]}


def sample_values(board: dict[str, Any], all_: bool = False) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A value for every variable: one made-up option each, or "All" where it is offered."""
    values: dict[str, Any] = {}
    for name, v in variables(board).items():
        if v["type"] == "custom":
            values[name] = v["current"]["value"]
        elif all_ and v["includeAll"]:
            values[name] = "$__all"
        else:
            values[name] = [f"x-{name}"] if v["multi"] else f"x-{name}"
    return values, {n: [f"x-{n}", f"y-{n}"] for n in values}


# --- the committed files -------------------------------------------------------------------

def test_committed_dashboards_equal_the_generated_ones() -> None:
    committed = {p.name: p.read_text(encoding="utf-8") for p in sorted(OUT.glob("*.json"))}
    generated = {name: render(board) for name, board in BOARDS.items()}
    assert sorted(committed) == sorted(generated), f"grafana/dashboards/*.json differ from the generator: {REGENERATE}"
    stale = [name for name in generated if committed[name] != generated[name]]
    assert not stale, f"{stale} are out of date with streams/grafana/dashboards.py: {REGENERATE}"


def test_generation_is_deterministic_and_write_all_writes_what_build_all_returns(tmp_path: Path) -> None:
    assert build_all() == build_all()
    paths = write_all(tmp_path / "out")
    assert sorted(p.name for p in paths) == sorted(BOARDS)
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert json.loads(text) == BOARDS[path.name]
        assert text == json.dumps(BOARDS[path.name], indent=2, sort_keys=False) + "\n"


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_dashboard_file_parses_into_a_complete_model(name: str) -> None:
    board = json.loads((OUT / name).read_text(encoding="utf-8"))
    for key in ("uid", "title", "tags", "schemaVersion", "templating", "panels", "time", "refresh"):
        assert key in board, f"{name} lacks {key}"
    assert board["uid"].startswith("ccpulse-") and "ccpulse" in board["tags"]
    assert 36 <= board["schemaVersion"] <= 41
    assert board["panels"] and all(p["targets"] for p in board["panels"])


def test_uids_and_titles_are_unique_and_as_documented() -> None:
    uids = [b["uid"] for b in BOARDS.values()]
    assert sorted(uids) == sorted(UIDS)
    assert len({b["title"] for b in BOARDS.values()}) == len(BOARDS)
    readme = (OUT / "README.md").read_text(encoding="utf-8")
    for name, board in BOARDS.items():
        assert name in readme and board["uid"] in readme, f"grafana/dashboards/README.md does not list {name}"


# --- the data source -----------------------------------------------------------------------

def test_every_query_uses_the_provisioned_clickhouse_datasource_by_uid() -> None:
    provisioned = yaml.safe_load(PROVISIONED.read_text())["datasources"]
    by_uid = {d["uid"]: d["type"] for d in provisioned}
    assert by_uid.get(DATASOURCE["uid"]) == DATASOURCE["type"]
    for name, board in BOARDS.items():
        refs = [("panel", p["datasource"]) for p in board["panels"]]
        refs += [("target", t["datasource"]) for p in board["panels"] for t in p["targets"]]
        refs += [("variable", v["datasource"]) for v in board["templating"]["list"] if v["type"] == "query"]
        refs += [("annotation", a["datasource"]) for a in board["annotations"]["list"] if not a.get("builtIn")]
        refs += [("annotation target", a["target"]["datasource"])
                 for a in board["annotations"]["list"] if not a.get("builtIn")]
        for kind, ref in refs:
            assert ref == DATASOURCE, f"{name}: a {kind} refers to {ref}, not {DATASOURCE}"


def test_targets_are_sql_queries_of_the_plugin_with_a_matching_format() -> None:
    for name, board in BOARDS.items():
        for p in board["panels"]:
            assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
            for t in p["targets"]:
                assert t["editorType"] == "sql" and t["queryType"] in ("table", "timeseries")
                assert t["format"] == {"table": 1, "timeseries": 0}[t["queryType"]]
                if t["queryType"] == "timeseries":
                    # the plugin turns long rows into series only when they come ordered by time
                    assert re.search(r"AS time\b", t["rawSql"]), (name, p["title"])
                    assert re.search(r"ORDER BY time(,|\s|$)(?!.*ORDER BY)", t["rawSql"], re.DOTALL), (name, p["title"])


# --- variables ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_variable_a_query_uses_is_defined_before_it_or_built_in(name: str) -> None:
    board = BOARDS[name]
    defined = list(variables(board))
    known = set(defined) | set(BUILTIN_VARIABLES) | {f"__{m}" for m in PLUGIN_MACROS}
    for where, sql in queries(board):
        used = {m.group(1) or m.group(2) or m.group(4) for m in VARIABLE_RE.finditer(sql)}
        assert used <= known, f"{name} {where}: undefined {sorted(used - known)}"
        if where.startswith("variable "):
            own = defined.index(where.split()[1])
            later = used & set(defined[own:])
            assert not later, f"{name} {where} depends on {later}, defined after it (chain tenant -> queue -> ...)"


def test_variables_are_chained_tenant_first() -> None:
    for name, board in BOARDS.items():
        vs = variables(board)
        assert next(iter(vs)) == "tenant", name
        for child in ("queue", "channel", "agent"):
            if child in vs:
                assert dashboards.one("tenant") in vs[child]["query"]["rawSql"], f"{name}: {child} ignores tenant"
        if "channel" in vs:
            assert "$queue" in vs["channel"]["query"]["rawSql"]


def test_multi_value_variables_are_only_used_in_lists_and_all_through_conditional_all() -> None:
    for name, board in BOARDS.items():
        vs = variables(board)
        for where, sql in queries(board):
            for m in re.finditer(r"\$\{(\w+):(\w+)\}", sql):
                v = vs.get(m.group(1))
                if v is None:
                    continue  # Grafana's own ($__from...)
                # Only the encoded formats: a quoted value can end its literal with a backslash.
                want = "queryparam" if v.get("multi") else "percentencode"
                assert m.group(2) == want, f"{name} {where}: ${{{m.group(1)}:{m.group(2)}}}, not :{want}"
            for cond in re.finditer(re.escape("$__conditionalAll("), sql):
                args = macro_args(sql, cond.end() - 1)
                assert len(args) == 2, f"{name} {where}: {sql[cond.start():cond.start() + 80]}"
                # the plugin reads the variable from `$name` or `${name}`, not `${name:format}`
                var = re.fullmatch(r"\$(\w+)|\$\{(\w+)\}", args[1].strip())
                assert var, f"{name} {where}: {args}"
                assert vs[var.group(1) or var.group(2)]["includeAll"], f"{name} {where}: conditionalAll without All"


@pytest.mark.parametrize("name", sorted(BOARDS))
@pytest.mark.parametrize("all_", [False, True], ids=["values", "all"])
def test_every_query_expands_without_ambiguous_macros(name: str, all_: bool) -> None:
    values, options = sample_values(BOARDS[name], all_)
    for where, sql in queries(BOARDS[name]):
        try:
            out = expand(sql, from_ms=1_767_225_600_000, to_ms=1_767_312_000_000, interval_s=60,
                         variables=values, all_values=options)
        except MacroError as e:
            pytest.fail(f"{name} {where}: {e}")
        assert "$" not in out and ("1=1" in out) == (all_ and "$__conditionalAll" in sql), (name, where)


# --- panels and layout ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panel_ids_are_unique_and_grid_positions_do_not_overlap(name: str) -> None:
    panels = BOARDS[name]["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, (name, p["title"])
        boxes.append((p["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for (ta, ax0, ay0, ax1, ay1), (tb, bx0, by0, bx1, by1) in combinations(boxes, 2):
        assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, f"{name}: {ta!r} overlaps {tb!r}"


def test_wallboard_is_live_and_colours_sl_by_each_queue_goal() -> None:
    board = BOARDS["wallboard.json"]
    assert board["refresh"] == "5s"
    sl = next(p for p in board["panels"] if p["title"].startswith("Service level"))
    assert sl["type"] == "stat" and "now()" not in sl["targets"][0]["rawSql"]
    (mapping,) = [t["options"]["mappings"] for t in sl["transformations"] if t["id"] == "rowsToFields"]
    steps = [(m["fieldName"], m["handlerArguments"]["threshold"]["color"]) for m in mapping
             if m["handlerKey"] == "threshold1"]
    assert steps == [("below_goal", "red"), ("goal", "green")]  # red below the queue's goal, green from it
    assert all("now()" not in sql for _, sql in queries(board))  # replayed data shows as live data does


def test_intervals_offer_15_and_30_minutes_and_mark_alerts() -> None:
    board = BOARDS["intervals.json"]
    step = variables(board)["step"]
    assert [o["value"] for o in step["options"]] == ["15", "30"]
    (alerts,) = [a for a in board["annotations"]["list"] if not a.get("builtIn")]
    assert "FROM ccpulse.alerts" in alerts["target"]["rawSql"] and "AS time" in alerts["target"]["rawSql"]


def test_my_performance_shows_one_agent_and_no_one_else() -> None:
    board = BOARDS["my-performance.json"]
    agent = variables(board)["agent"]
    assert not agent["multi"] and not agent["includeAll"]
    for where, sql in queries(board):
        if where.startswith("panel"):
            assert f"agent_id = {dashboards.one('agent')}" in sql, f"{where} is not limited to the chosen agent"
            assert not re.search(r"\b(rank|row_number|dense_rank|leaderboard)\b", sql, re.IGNORECASE), where


def test_agents_board_has_a_leaderboard_and_a_state_timeline() -> None:
    types = {p["title"]: p["type"] for p in BOARDS["agents.json"]["panels"]}
    assert types["Leaderboard"] == "table" and types["State timeline"] == "state-timeline"


def test_client_report_tables_say_how_to_export_csv() -> None:
    tables = [p for p in BOARDS["client-report.json"]["panels"] if p["type"] == "table"]
    assert tables and all("Download CSV" in p["description"] for p in tables)


def test_panels_have_titles_and_descriptions() -> None:
    for name, board in BOARDS.items():
        for p in board["panels"]:
            assert p["title"] and len(p["description"]) > 20, (name, p["title"])


# --- the macro emulation itself (as the plugin's source defines it) ---------------------------------

def test_macros_expand_as_the_plugin_does() -> None:
    out = expand("SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) AND d >= ($__fromTime) "
                 "AND $__dateFilter(d) AND n = ($__interval_s) AND $__timeFilter_ms(t)",
                 from_ms=1_700_000_000_123, to_ms=1_700_003_600_999, interval_s=30, variables={})
    assert out == ("SELECT toStartOfInterval(toDateTime(t), INTERVAL 30 second) AS time FROM x WHERE "
                   "t >= toDateTime(1700000000) AND t <= toDateTime(1700003600) AND d >= (toDateTime(1700000000)) "
                   "AND d >= toDate('2023-11-14') AND d <= toDate('2023-11-14') AND n = (30) AND "
                   "t >= fromUnixTimestamp64Milli(1700000000123) AND t <= fromUnixTimestamp64Milli(1700003600999)")


def test_a_macro_without_arguments_before_a_parenthesis_is_refused() -> None:
    with pytest.raises(MacroError, match="fromTime"):  # sqlutil would swallow " AND x IN (1"
        expand("WHERE t >= $__fromTime AND x IN (1)", from_ms=0, to_ms=1000, interval_s=1, variables={})


def test_variables_and_conditional_all() -> None:
    sql = "WHERE t = ${t:singlequote} AND $__conditionalAll(q IN (${q:singlequote}), $q) AND c IN ($c) AND n = $n"
    kw: dict[str, Any] = {"from_ms": 0, "to_ms": 1000, "interval_s": 1}
    got = expand(sql, variables={"t": "o'k", "q": ["a", "b"], "c": ["x"], "n": "5"}, **kw)
    assert got == "WHERE t = 'o\\'k' AND q IN ('a','b') AND c IN ('x') AND n = 5"
    got = expand(sql, variables={"t": "a", "q": "$__all", "c": "$__all", "n": "5"}, all_values={"c": ["x", "y"]}, **kw)
    assert got == "WHERE t = 'a' AND 1=1 AND c IN ('x','y') AND n = 5"
    # `${q:singlequote}` as the second argument: the plugin cannot read the name and keeps the condition
    assert conditional_all("$__conditionalAll(q IN (1), ${q:singlequote})", {"q": "$__all"}) == "q IN (1)"


def test_sl_formula_follows_the_queue_variant() -> None:
    sql = dashboards.sl_by_variant("v")
    for variant in ("ignore_abandons", "abandons_within_t_ok", "abandons_within_t_ignored"):
        assert f"v = '{variant}'" in sql
    assert sql.rstrip(")").endswith("sum(answered) + sum(abandoned) - sum(short_abandons), 0")  # the default


def test_a_variable_value_can_never_end_its_string_literal() -> None:
    """Whatever a URL puts in a variable (quotes, backslashes, comment markers), the SQL that
    reaches ClickHouse holds it only percent-encoded; the engine decodes it back."""
    hostile = "nobody\\' OR 1=1 -- ,\"x"
    kw: dict[str, Any] = {"from_ms": 0, "to_ms": 1000, "interval_s": 1}
    for name, board in BOARDS.items():
        vs = variables(board)
        values = {v: ([hostile, "b"] if d.get("multi") else hostile) for v, d in vs.items()}
        plain = {v: (["a", "b"] if d.get("multi") else "a") for v, d in vs.items()}
        for where, sql in queries(board):
            got, benign = expand(sql, variables=values, **kw), expand(sql, variables=plain, **kw)
            assert "nobody\\" not in got and "OR 1=1" not in got, f"{name} {where}: the value is in the SQL as it is"
            assert (got.count("'"), got.count("\\")) == (benign.count("'"), benign.count("\\")), \
                f"{name} {where}: a value added a quote or a backslash"
    # and the engine's decoding gives back the value, multi-values one by one
    one = expand(dashboards.one("t"), variables={"t": hostile}, **kw)
    many = expand(dashboards.many("q"), variables={"q": [hostile, "a&b=c"]}, **kw)
    assert one == "decodeURLComponent('nobody%5C%27%20OR%201%3D1%20--%20%2C%22x')"
    assert "var-q=nobody%5C%27" in many and "var-q=a%26b%3Dc" in many
