"""Numbered SQL migrations, recorded in ``schema_migrations`` so running twice is a no-op.

Tables change only through new numbered files (``ALTER TABLE ... ADD COLUMN``): their data
must survive. Views hold no data, so they are *repeatable*, as Flyway's ``R__`` scripts are:
each view is defined once, in the file that introduced it, and edited there. When the
rendered definitions change, every view is dropped and created again from them, after the
table statements, so an upgraded database and a fresh one end with the same views.

One set of files serves the modern engine (chdb, current servers) and the 2018 Debian
server used in CI: the few types the old server lacks are tokens filled in here.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from streams.clickhouse import ClickHouse, Dialect

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "migrations"
#: SQL written once and placed where a migration names it (``{KPI_RATIOS}`` on a line of its
#: own, indented as it should be): the KPI formulas of every view are one text.
FRAGMENTS_DIR = MIGRATIONS_DIR.parent / "fragments"

#: The only generation-specific SQL: keep this map small and explicit.
DIALECT_TOKENS: dict[Dialect, dict[str, str]] = {
    "modern": {"TS": "DateTime64(3, 'UTC')", "LC": "LowCardinality(String)",
               "LCN": "LowCardinality(Nullable(String))"},
    "legacy": {"TS": "DateTime('UTC')", "LC": "String", "LCN": "Nullable(String)"},
}

_VIEW = re.compile(r"CREATE\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?\{db\}\.(\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]  # everything but the views, run once
    modern_only: bool = False  # ``NNN_name.modern.sql``: recorded but not run on pre-20 servers
    views: list[tuple[str, str]] = field(default_factory=list)  # (name, CREATE VIEW ...), repeatable


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for f in sorted(directory.glob("[0-9][0-9][0-9]_*.sql")):
        text = "\n".join(line for line in f.read_text().splitlines() if not line.strip().startswith("--"))
        stmts, views = [], []
        for s in (s.strip() for s in text.split(";")):
            if not s:
                continue
            m = _VIEW.match(s)
            if m:
                views.append((m.group(1), s))
            else:
                stmts.append(s)
        modern = f.name.endswith(".modern.sql")
        out.append(Migration(int(f.name[:3]), f.name.removesuffix(".sql").removesuffix(".modern"), stmts, modern,
                             views))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return out


def fragments(directory: Path = FRAGMENTS_DIR) -> dict[str, str]:
    """``{NAME}`` -> its SQL (``sql/fragments/name.sql``, comment lines left out)."""
    return {f.stem.upper(): "\n".join(ln for ln in f.read_text().splitlines() if not ln.strip().startswith("--"))
            for f in sorted(directory.glob("*.sql"))}


_FRAGMENTS = fragments()


def render(sql: str, ch: ClickHouse) -> str:
    def place(m: re.Match[str]) -> str:
        indent = m.group(1)
        return "\n".join(indent + line for line in _FRAGMENTS[m.group(2)].splitlines())

    sql = re.sub(r"(?m)^([ \t]*)\{(" + "|".join(_FRAGMENTS) + r")\}", place, sql) if _FRAGMENTS else sql
    tokens = {"db": ch.database, **DIALECT_TOKENS[ch.dialect]}
    return re.sub(r"\{(\w+)\}", lambda m: tokens[m.group(1)], sql)


def view_definitions(ch: ClickHouse, migrations: list[Migration]) -> list[tuple[str, str]]:
    """The views this engine gets, in creation order (a view after the ones it reads)."""
    return [(name, render(sql, ch)) for m in migrations if not (m.modern_only and ch.dialect == "legacy")
            for name, sql in m.views]


def migrate(ch: ClickHouse, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is not applied yet; returns the names applied now (views re-created
    because only their definitions changed are logged in ``schema_views``, not returned)."""
    db = ch.database
    ch.command(f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
               "(version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version")
    ch.command(f"CREATE TABLE IF NOT EXISTS {db}.schema_views "
               "(n UInt32, checksum String, applied_at DateTime) ENGINE = MergeTree ORDER BY n")
    done = {r[0] for r in ch.query(f"SELECT version FROM {db}.schema_migrations").rows}
    migrations = load_migrations(directory)
    applied = []
    for m in migrations:
        if m.version in done:
            continue
        if not (m.modern_only and ch.dialect == "legacy"):
            for stmt in m.statements:
                ch.command(render(stmt, ch))
        ch.command(f"INSERT INTO {db}.schema_migrations SELECT {m.version}, '{m.name}', now()")
        applied.append(m.name)
    views = view_definitions(ch, migrations)
    checksum = hashlib.sha256("\n;\n".join(sql for _, sql in views).encode()).hexdigest()
    last = ch.query(f"SELECT n, checksum FROM {db}.schema_views ORDER BY n DESC LIMIT 1").rows
    if not last or last[0][1] != checksum:
        for name, _ in reversed(views):  # dependants first
            ch.command(f"DROP TABLE IF EXISTS {db}.{name}")
        for _, sql in views:
            ch.command(sql)
        n = last[0][0] + 1 if last else 1
        ch.command(f"INSERT INTO {db}.schema_views SELECT {n}, '{checksum}', now()")
    return applied
