"""The code's shape: modules import each other in one direction only (no cycle, counting
imports inside functions and for type checking too), so each can be read, tested and moved
on its own."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "schemas", "bench")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        deps: set[str] = set()
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.Import):
                deps |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                deps |= {f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in mods else n.module for a in n.names}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_kpi_formulas_are_written_once() -> None:
    """Every view's ratios and sums come from sql/fragments (streams/clickhouse/migrate.py places them):
    a formula changed there changes every view, and no migration holds a copy."""
    from streams.clickhouse.migrate import fragments, load_migrations, view_definitions

    frags = fragments()
    assert set(frags) >= {"KPI_RATIOS", "KPI_SUMS"}
    for f in (ROOT / "sql" / "migrations").glob("*.sql"):
        text = f.read_text()
        lines = [ln.strip().rstrip(",") for ln in text.splitlines()]
        for name, sql in frags.items():
            frag = [ln.strip().rstrip(",") for ln in sql.splitlines()]
            runs = {tuple(frag[i:i + 3]) for i in range(len(frag) - 2)}
            copied = [i for i in range(len(lines) - 2) if tuple(lines[i:i + 3]) in runs]
            assert not copied, f"{f.name} copies {name} at line {copied[0] + 1}: write {{{name}}} instead"

    class Engine:
        database, dialect = "db", "modern"

    views = dict(view_definitions(Engine, load_migrations()))  # type: ignore[arg-type]
    assert all("{" not in sql for sql in views.values())
    for name in ("kpi_intervals_15m", "kpi_intervals_30m", "kpi_live", "kpi_intervals_15m_sql"):
        assert "sl_abandons_within_t_ignored" in views[name] and "sum(csat_good) AS csat_good" in views[name], name


def test_data_flows_one_way_between_the_packages() -> None:
    """config and domain (pure: the rules of a contact centre) import none of the packages
    that do I/O; the worker assembles them, the command line drives it."""
    layers = {
        "streams.config": {"streams.config", "streams.domain", "streams.redact"},
        "streams.domain": {"streams.domain", "streams.config", "streams.redact"},
        "streams.kafka": {"streams.kafka", "streams.config", "streams.domain"},
        "streams.traffic": {"streams.traffic", "streams.config", "streams.domain"},
        "streams.clickhouse": {"streams.clickhouse", "streams.config", "streams.domain", "streams.redact"},
    }
    graph = import_graph()
    wrong = []
    for mod, deps in graph.items():
        for prefix, allowed in layers.items():
            if mod == prefix or mod.startswith(prefix + "."):
                wrong += [(mod, d) for d in deps if d.startswith("streams")
                          and not any(d == a or d.startswith(a + ".") for a in allowed)]
    assert not wrong, f"imports against the flow: {wrong}"
