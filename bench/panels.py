"""ClickHouse time of every dashboard query over a long history (``panel_max_ms``).

A history of N interactions (default 10 million, about half a year of three tenants) is
generated inside the embedded ClickHouse with SQL, together with the interval, agent,
live and alert rows the stream would have written for it. Then every panel, variable and
annotation query of every dashboard (streams/grafana/dashboards.py), with the plugin's
macros expanded as Grafana would (streams/grafana/macros.py) over the dashboard's own
default time range ending at the newest data, runs ``repeats`` times; a query's figure is
its median, and ``panel_max_ms`` is the slowest query's.
"""
from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from streams.clickhouse import ClickHouse
from streams.clickhouse.connect import connect
from streams.clickhouse.migrate import migrate

DAY_MS = 86_400_000
TENANTS = ("acme", "globex", "initech")
#: (tenant, queue, channel) groups of the generated history, 3 per tenant.
GROUPS = [(t, f"{t}-{q}", c) for t in TENANTS for q, c in (("sales", "voice"), ("support", "voice"), ("chat", "chat"))]
AGENTS_PER_TENANT = 60


def _note(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


#: The columns the panel bench fills; the rest (outbound, IVR, quality...) take their defaults.
GENERATED_COLUMNS = (
    "interaction_id", "tenant", "channel", "queue", "first_queue", "queues", "customer_id", "priority", "agent_id",
    "first_agent_id", "offered_at", "answered_at", "abandoned_at", "ended_at", "wrapup_ended_at",
    "first_response_at", "last_event_at", "wait_ms", "talk_ms", "hold_ms", "acw_ms", "holds", "transfers",
    "outcome", "disposition", "resolved", "csat", "csat_at", "closed_by_timeout", "anomalies", "n_events", "version")


def year_shape(tenants: int = 20, queues: int = 400, agents: int = 5000) -> tuple[list[str], list[tuple[str, str, str]], int]:
    """A large outsourcer (issue 25): ``tenants`` clients, ``queues`` queues shared out among them
    (every third a chat queue), ``agents`` agents. The first tenant is ``acme`` with the queues
    the dashboards' default variables name (acme-sales, acme-support, acme-chat)."""
    names = ["acme"] + [f"client{n:02d}" for n in range(2, tenants + 1)]
    per = max(3, queues // tenants)
    groups = []
    for t in names:
        for q in range(per):
            label = ("sales", "support", "chat")[q] if q < 3 else f"q{q:02d}"
            groups.append((t, f"{t}-{label}", "chat" if q % 3 == 2 else "voice"))
    return names, groups, max(1, agents // tenants)


def generate(ch: ClickHouse, interactions: int, days: int = 180, end_ms: int = 1_780_000_000_000,
             shape: tuple[list[str], list[tuple[str, str, str]], int] | None = None) -> int:
    """Fill the tables; returns the newest event time (ms). Deterministic (hashes, no rand)."""
    tenants, shaped_groups, agents_per = shape or (list(TENANTS), GROUPS, AGENTS_PER_TENANT)
    db = ch.database
    start_s = (end_ms - days * DAY_MS) // 1000
    step = days * 86_400 / interactions
    groups = "[" + ", ".join(f"('{t}', '{q}', '{c}')" for t, q, c in shaped_groups) + "]"
    h = "cityHash64(number, {salt})"
    t0 = time.monotonic()
    chunk = 10_000_000  # rows per statement: progress to show, and memory within bounds
    for lo in range(0, interactions, chunk):
        n = min(chunk, interactions - lo)
        ch.command(f"""
        INSERT INTO {db}.interactions ({", ".join(GENERATED_COLUMNS)})
        SELECT
            concat('h', toString(number)) AS interaction_id, g.1 AS tenant, g.3 AS channel, g.2 AS queue,
            g.2 AS first_queue, [g.2] AS queues,
            if({h.format(salt=1)} % 10 < 8, concat(g.1, '-c', toString({h.format(salt=2)} % 50000)), NULL),
            0 AS priority,
            if(answered, concat(g.1, '-a', toString({h.format(salt=3)} % {agents_per})), NULL) AS agent_id,
            agent_id AS first_agent_id,
            offered, if(answered, offered + wait / 1000, NULL), if(answered, NULL, offered + wait / 1000),
            if(answered, offered + (wait + talk + hold) / 1000, NULL),
            if(answered, offered + (wait + talk + hold + acw) / 1000, NULL),
            NULL, offered + (wait + talk + hold + acw) / 1000 AS last_event_at,
            wait, talk, hold, acw, hold > 0, 0, if(answered, 'answered', 'abandoned'), NULL, NULL,
            if(answered AND {h.format(salt=4)} % 4 = 0, 1 + {h.format(salt=5)} % 5, NULL), NULL, 0, [], 4, 1
        FROM
        (
            SELECT number,
                   {groups}[1 + {h.format(salt=6)} % {len(shaped_groups)}] AS g,
                   toDateTime64({start_s} + number * {step}, 3, 'UTC') AS offered,
                   {h.format(salt=7)} % 10 < 9 AS answered,
                   toUInt64({h.format(salt=8)} % 90000) AS wait,
                   if(answered, toUInt64(60000 + {h.format(salt=9)} % 400000), 0) AS talk,
                   if(answered AND {h.format(salt=10)} % 5 = 0, toUInt64({h.format(salt=11)} % 60000), 0) AS hold,
                   if(answered, toUInt64({h.format(salt=12)} % 90000), 0) AS acw
            FROM numbers({lo}, {n})
        )""")
        if interactions > chunk:
            _note(f"  {lo + n:,} of {interactions:,} contacts")
    _note(f"{interactions:,} interactions generated in {time.monotonic() - t0:.1f} s")
    # What the stream writes: 15-minute parts (4 source partitions), queue settings, agents.
    month = 30 * 86_400
    for lo_s in range(start_s - start_s % 86_400, end_ms // 1000 + 1, month):  # whole days: no interval split
        ch.command(f"""
        INSERT INTO {db}.kpi_interval_parts
            (tenant, queue, channel, interval_start, local_day, source_partition, offered, answered,
             answered_in_sl, abandoned, abandoned_in_sl, short_abandons, wait_answered_ms, wait_abandoned_ms,
             handled, talk_ms, hold_ms, acw_ms, csat_ratings, csat_good, billable_talk_minutes, max_wait_ms,
             sl_threshold_s, short_abandon_s, version)
        SELECT tenant, queue, channel, toStartOfFifteenMinutes(assumeNotNull(offered_at)) AS iv, toDate(iv),
               cityHash64(interaction_id) % 4, count(), countIf(outcome = 'answered'),
               countIf(outcome = 'answered' AND wait_ms <= 20000), countIf(outcome = 'abandoned'),
               countIf(outcome = 'abandoned' AND wait_ms <= 20000), countIf(outcome = 'abandoned' AND wait_ms <= 5000),
               sumIf(wait_ms, outcome = 'answered'), sumIf(wait_ms, outcome = 'abandoned'),
               countIf(outcome = 'answered'), sum(talk_ms), sum(hold_ms), sum(acw_ms),
               countIf(csat IS NOT NULL), countIf(csat >= 4), sum(intDiv(talk_ms + 59999, 60000)), max(wait_ms),
               20, 5, 1
        FROM {db}.interactions
        WHERE offered_at >= toDateTime64({lo_s}, 3, 'UTC') AND offered_at < toDateTime64({lo_s + month}, 3, 'UTC')
        GROUP BY tenant, queue, channel, iv, cityHash64(interaction_id) % 4""")
    ch.command(f"""
        INSERT INTO {db}.queue_settings
        SELECT g.1, g.2, 20, 0.8, 'abandons_count_against', 5, 7, now64(3)
        FROM (SELECT arrayJoin({groups}) AS g)""")
    intervals = days * 96
    ch.command(f"""
        INSERT INTO {db}.agent_intervals
        SELECT t, concat(t, '-a', toString(a)), toDateTime64({start_s} + iv * 900, 3, 'UTC'),
               900000, 200000, 450000, 150000, 100000, 450000, 1, 1
        FROM (SELECT arrayJoin({tenants}) AS t, arrayJoin(range({agents_per})) AS a,
                     arrayJoin(range({intervals})) AS iv)
        WHERE cityHash64(t, a, iv) % 3 = 0""")
    ch.command(f"""
        INSERT INTO {db}.agent_not_ready_intervals
        SELECT tenant, agent_id, interval_start, 'break', not_ready_ms, version FROM {db}.agent_intervals""")
    end_s = end_ms // 1000
    ch.command(f"""
        INSERT INTO {db}.agent_live
        SELECT t, concat(t, '-a', toString(a)), ['ready', 'busy', 'acw', 'not_ready'][1 + a % 4],
               if(a % 4 = 3, 'break', ''), toDateTime64({end_s} - 60 * a, 3, 'UTC'), a % 4 = 1,
               [concat(t, '-sales'), concat(t, '-support'), concat(t, '-chat')],
               toDateTime64({end_s}, 3, 'UTC'), 1
        FROM (SELECT arrayJoin({tenants}) AS t, arrayJoin(range({agents_per})) AS a)""")
    ch.command(f"""
        INSERT INTO {db}.kpi_live_parts
            (tenant, queue, channel, window_minutes, source_partition, snapshot_at, offered, answered,
             answered_in_sl, abandoned, waiting, oldest_waiting_since, version)
        SELECT g.1, g.2, g.3, w, p, toDateTime64({end_s}, 3, 'UTC'), 40, 35, 30, 5, 2,
               toDateTime64({end_s} - 45, 3, 'UTC'), {end_ms}
        FROM (SELECT arrayJoin({groups}) AS g, arrayJoin([5, 15, 60]) AS w, arrayJoin(range(4)) AS p)""")
    ch.command(f"""
        INSERT INTO {db}.alerts
            (alert_id, rule, severity, status, tenant, queue, channel, metric, value, threshold,
             started_at, at)
        SELECT concat('sl/', g.1, '/', g.2, '/', toString(n)), 'sl-below-goal', 'critical',
               ['firing', 'resolved'][1 + n % 2], g.1, g.2, g.3, 'service_level', 0.6, 0.8,
               toDateTime64({end_s} - 3600 * (n - n % 2), 3, 'UTC'), toDateTime64({end_s} - 3600 * n, 3, 'UTC')
        FROM (SELECT arrayJoin({groups}) AS g, arrayJoin(range(400)) AS n)""")
    _note(f"intervals, agents, live figures and alerts generated ({time.monotonic() - t0:.1f} s in all)")
    return end_ms


def _range(spec: dict[str, str], end_ms: int) -> tuple[int, int]:
    """A dashboard's default time range (now-1h, now-7d, now/d ...) ending at ``end_ms``."""
    m = re.fullmatch(r"now-(\d+)([mhd])", spec["from"])
    if m:
        return end_ms - int(m.group(1)) * {"m": 60_000, "h": 3_600_000, "d": DAY_MS}[m.group(2)], end_ms
    if spec["from"] == "now/d":
        return end_ms - end_ms % DAY_MS, end_ms
    raise ValueError(f"time range {spec} not understood")


def _queries(boards: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any], str]]:
    out = []
    for name, board in boards.items():
        for p in board["panels"]:
            for t in p["targets"]:
                out.append((name, f"{p['title']} {t['refId']}", board, t["rawSql"]))
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                out.append((name, f"variable {v['name']}", board, v["query"]["rawSql"]))
        for a in board["annotations"]["list"]:
            if not a.get("builtIn"):
                out.append((name, f"annotation {a['name']}", board, a["target"]["rawSql"]))
    return out


def _values(board: dict[str, Any]) -> dict[str, Any]:
    """Busy real values: the first tenant, its sales queue, voice, a busy agent."""
    choice = {"tenant": "acme", "queue": "acme-sales", "channel": "voice", "agent": "acme-a7", "team": "acme-t1",
              "campaign": "acme-outbound"}
    out: dict[str, Any] = {}
    for v in board["templating"]["list"]:
        if v["type"] == "custom":
            out[v["name"]] = v["current"]["value"]
        else:
            value = choice.get(v["name"], "")  # a variable this bench does not know yet: no filter value
            out[v["name"]] = [value] if v.get("multi") else value
    return out


def _time_queries(ch: ClickHouse, end_ms: int, repeats: int) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """Every dashboard query with its variables filled: (first run, median of ``repeats`` more)
    per query, slowest first."""
    from streams.grafana.dashboards import build_all
    from streams.grafana.macros import expand

    first: list[tuple[float, str]] = []
    warm: list[tuple[float, str]] = []
    for name, what, board, raw in _queries(build_all()):
        from_ms, to_ms = _range(board["time"], end_ms)
        sql = expand(raw, from_ms=from_ms, to_ms=to_ms, interval_s=900, variables=_values(board))
        runs = []
        for _ in range(repeats + 1):
            t = time.perf_counter()
            ch.query(sql)
            runs.append((time.perf_counter() - t) * 1000)
        first.append((runs[0], f"{name} / {what}"))
        warm.append((statistics.median(runs[1:]), f"{name} / {what}"))
    return sorted(first, reverse=True), sorted(warm, reverse=True)


def measure_panels(workdir: Path, interactions: int = 10_000_000, repeats: int = 5) -> dict[str, Any]:
    ch = connect(f"chdb://{workdir / 'panels-chdb'}", "ccpulse")
    try:
        migrate(ch)
        end_ms = generate(ch, interactions)
        _, timings = _time_queries(ch, end_ms, repeats)
        _note("slowest dashboard queries: " + "; ".join(f"{w} {ms:.0f} ms" for ms, w in timings[:3]))
        return {
            "panel_interactions": interactions, "panel_queries": len(timings),
            "panel_max_ms": round(timings[0][0], 1), "panel_p50_ms": round(statistics.median(t for t, _ in timings), 1),
            "panel_slowest": timings[0][1], "panel_over_300ms": sum(t > 300 for t, _ in timings),
        }
    finally:
        ch.close()


def measure_year(workdir: Path, interactions: int = 100_000_000, days: int = 365, repeats: int = 3,
                 tenants: int = 20, queues: int = 400, agents: int = 5000) -> dict[str, Any]:
    """A year of a large outsourcer (issue 25): ``interactions`` contacts over ``days`` days of
    ``tenants`` clients, ``queues`` queues and ``agents`` agents, generated into the embedded
    engine; then every dashboard query, cold (its first run in a freshly opened engine, in
    dashboard order; the operating system's file cache is not dropped) and warm (the median of
    ``repeats`` runs after)."""
    path = workdir / "year-chdb"
    ch = connect(f"chdb://{path}", "ccpulse")
    t0 = time.monotonic()
    try:
        migrate(ch)
        _note(f"year: generating {interactions:,} contacts over {days} days ({tenants} tenants, {queues} queues, "
              f"{agents:,} agents)")
        end_ms = generate(ch, interactions, days=days, shape=year_shape(tenants, queues, agents))
        size = ch.query("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'ccpulse' AND active").rows[0][0]
    finally:
        ch.close()
    generated_s = time.monotonic() - t0
    ch = connect(f"chdb://{path}", "ccpulse")  # a fresh engine: its caches empty
    try:
        cold, warm = _time_queries(ch, end_ms, repeats)
    finally:
        ch.close()
    _note("year: slowest dashboard queries (warm): " + "; ".join(f"{w} {ms:.0f} ms" for ms, w in warm[:3]))
    _note("year: slowest dashboard queries (cold): " + "; ".join(f"{w} {ms:.0f} ms" for ms, w in cold[:3]))
    return {
        "year_interactions": interactions, "year_days": days, "year_tenants": tenants, "year_queues": queues,
        "year_agents": agents, "year_generate_s": round(generated_s, 1), "year_data_mb": round((size or 0) / 2**20, 1),
        "year_panel_queries": len(warm),
        "year_panel_max_ms": round(warm[0][0], 1), "year_panel_p50_ms": round(statistics.median(t for t, _ in warm), 1),
        "year_panel_cold_max_ms": round(cold[0][0], 1),
        "year_panel_cold_p50_ms": round(statistics.median(t for t, _ in cold), 1),
        "year_panel_slowest": warm[0][1], "year_panel_cold_slowest": cold[0][1],
        "year_panel_over_300ms": sum(t > 300 for t, _ in warm),
        "year_panel_slowest_5": [[w, round(ms, 1)] for ms, w in warm[:5]],
    }
