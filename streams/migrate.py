"""Numbered SQL migrations, recorded in ``schema_migrations`` so running twice is a no-op.

One set of files serves the modern engine (chdb, current servers) and the 2018 Debian
server used in CI: the few types the old server lacks are tokens filled in here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from streams.clickhouse import ClickHouse, Dialect

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"

#: The only generation-specific SQL: keep this map small and explicit.
DIALECT_TOKENS: dict[Dialect, dict[str, str]] = {
    "modern": {"TS": "DateTime64(3, 'UTC')", "LC": "LowCardinality(String)",
               "LCN": "LowCardinality(Nullable(String))"},
    "legacy": {"TS": "DateTime('UTC')", "LC": "String", "LCN": "Nullable(String)"},
}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: list[str]
    modern_only: bool = False  # ``NNN_name.modern.sql``: recorded but not run on pre-20 servers


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for f in sorted(directory.glob("[0-9][0-9][0-9]_*.sql")):
        text = "\n".join(line for line in f.read_text().splitlines() if not line.strip().startswith("--"))
        stmts = [s.strip() for s in text.split(";") if s.strip()]
        modern = f.name.endswith(".modern.sql")
        out.append(Migration(int(f.name[:3]), f.name.removesuffix(".sql").removesuffix(".modern"), stmts, modern))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {directory}")
    return out


def render(sql: str, ch: ClickHouse) -> str:
    tokens = {"db": ch.database, **DIALECT_TOKENS[ch.dialect]}
    return re.sub(r"\{(\w+)\}", lambda m: tokens[m.group(1)], sql)


def migrate(ch: ClickHouse, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what is not applied yet; returns the names applied now."""
    ch.command(
        f"CREATE TABLE IF NOT EXISTS {ch.database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime) ENGINE = ReplacingMergeTree ORDER BY version")
    done = {r[0] for r in ch.query(f"SELECT version FROM {ch.database}.schema_migrations").rows}
    applied = []
    for m in load_migrations(directory):
        if m.version in done:
            continue
        if not (m.modern_only and ch.dialect == "legacy"):
            for stmt in m.statements:
                ch.command(render(stmt, ch))
        ch.command(f"INSERT INTO {ch.database}.schema_migrations SELECT {m.version}, '{m.name}', now()")
        applied.append(m.name)
    return applied
