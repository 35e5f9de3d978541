"""Who may read what in ClickHouse: a read-only user for Grafana and the data team, and one
user per client tenant that sees only its own rows.

Written as a ``users.d`` XML file because every ClickHouse server reads those. The engine
enforces every limit; nothing here checks SQL text:

- rows: a filter per table (``tenant = '<tenant>'``) applies to the tables, so every view over
  them is filtered too; tables without a tenant column are hidden from client users (``0``);
- statements: ``GRANT SELECT ON <database>.*`` and nothing else, so no other database, no
  table function (``file``, ``url``, ``remote`` need grants of their own), no ``KILL QUERY``;
- settings: ``readonly=2`` because Grafana's driver sets ``max_execution_time`` on every
  query, with constraints that keep time, memory and ``readonly`` itself within bounds;
- networks: loopback and private addresses (the Grafana container, an office) unless told.

``legacy=True`` writes what a ClickHouse before 20.x understands (CI's 18.16 server): no
grants and no constraints, which those servers refuse, and ``allow_databases`` instead.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

#: Tables of sql/migrations with a ``tenant`` column; every other table is hidden from clients.
TENANT_TABLES = ("raw_events", "interactions", "queue_settings", "kpi_interval_parts", "kpi_live_parts",
                 "agent_intervals", "agent_not_ready_intervals", "agent_live", "alerts", "figure_repairs",
                 "team_config", "forecasts", "staffing_live")
OTHER_TABLES = ("dead_letters", "schema_migrations", "schema_views")
READONLY_PROFILE = "ccpulse_readonly"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Password:
    """A literal password (stored as its SHA-256) or the name of an environment variable the
    server reads it from at start (``from_env``, current servers)."""

    value: str | None = None
    env: str | None = None

    def xml(self) -> str:
        if self.env:
            return f'<password from_env="{escape(self.env)}"/>'
        digest = hashlib.sha256((self.value or "").encode()).hexdigest()
        return f"<password_sha256_hex>{digest}</password_sha256_hex>"


_PLAIN_TENANT = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")


def client_user(tenant: str) -> str:
    """The ClickHouse user of a client tenant, one per tenant (injective).

    A plain name (lower-case letters and digits, single underscores between) is kept:
    ``acme`` -> ``client_acme``. Any other name keeps a readable form and adds ``__`` and a
    hash of the exact name, which no plain name can end with: ``acme-1``, ``acme.1`` and
    ``ACME`` become three users, none of them ``client_acme_1`` or ``client_acme``. Each
    user's password variable is its name upper-cased, so each has its own secret too."""
    if _PLAIN_TENANT.fullmatch(tenant):
        return f"client_{tenant}"
    readable = re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", tenant.lower())).strip("_")[:40] or "t"
    return f"client_{readable}__{hashlib.sha256(tenant.encode()).hexdigest()[:10]}"


def client_users(tenants: list[str]) -> dict[str, str]:
    """tenant -> its user, or ValueError naming tenants that would share one."""
    users: dict[str, str] = {}
    for t in tenants:
        u = client_user(t)
        if (other := next((o for o, v in users.items() if v == u and o != t), None)) is not None:
            raise ValueError(f"tenants {other!r} and {t!r} would share ClickHouse user {u!r}: rename one")
        users[t] = u
    return users


#: Where the users may connect from unless ``networks`` says otherwise: this machine and
#: private networks (the Grafana container, the data team's office); never the internet.
DEFAULT_NETWORKS = ("127.0.0.1", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
#: Bounds a reader or client cannot lift with a query's SETTINGS.
MAX_EXECUTION_TIME_S = 60
MAX_MEMORY_BYTES = 4_000_000_000


def users_xml(database: str, tenants: list[str], reader: str = "grafana",
              reader_password: Password = Password(env="CLICKHOUSE_GRAFANA_PASSWORD"),
              tenant_password: dict[str, Password] | None = None,
              networks: tuple[str, ...] | list[str] = DEFAULT_NETWORKS, legacy: bool = False) -> str:
    """The users.d file: ``reader`` reads every tenant; ``client_<tenant>`` reads its own.

    Passwords of client users default to the environment variable
    ``CLICKHOUSE_CLIENT_<TENANT>_PASSWORD``: a server without it set refuses to start, so no
    user is ever left with a guessable default.
    """
    if not _NAME.match(database):
        raise ValueError(f"database name {database!r} is not a plain identifier")
    for n in networks:
        if not re.fullmatch(r"[0-9A-Fa-f:./]+", n):
            raise ValueError(f"network {n!r} is not an address or CIDR range")
    users = [_user(reader, reader_password, database, None, networks, legacy)]
    for t, user in sorted(client_users(sorted(set(tenants))).items()):
        pw = (tenant_password or {}).get(t) or Password(env=f"CLICKHOUSE_{user.upper()}_PASSWORD")
        users.append(_user(user, pw, database, t, networks, legacy))
    return (
        '<?xml version="1.0"?>\n'
        "<!-- Generated by `ccpulse db access`: read-only users for ccpulse (docs/sql-guide.md). -->\n"
        "<yandex>\n"
        f"  <profiles>\n    <{READONLY_PROFILE}>\n"
        "      <!-- 2: no writes and no DDL; query settings within the constraints (Grafana sets some) -->\n"
        "      <readonly>2</readonly>\n"
        + ("" if legacy else _limits()) +
        f"    </{READONLY_PROFILE}>\n  </profiles>\n"
        "  <users>\n" + "".join(users) + "  </users>\n"
        "</yandex>\n"
    )


def _limits() -> str:
    return (
        f"      <max_execution_time>{MAX_EXECUTION_TIME_S}</max_execution_time>\n"
        f"      <max_memory_usage>{MAX_MEMORY_BYTES}</max_memory_usage>\n"
        "      <constraints>\n"
        "        <readonly><const/></readonly>\n"
        "        <allow_ddl><const/></allow_ddl>\n"
        "        <allow_introspection_functions><const/></allow_introspection_functions>\n"
        f"        <max_execution_time><min>1</min><max>{MAX_EXECUTION_TIME_S}</max></max_execution_time>\n"
        f"        <max_memory_usage><min>1</min><max>{MAX_MEMORY_BYTES}</max></max_memory_usage>\n"
        "      </constraints>\n"
    )


def _user(name: str, password: Password, database: str, tenant: str | None,
          networks: tuple[str, ...] | list[str], legacy: bool) -> str:
    nets = "".join(f"<ip>{escape(n)}</ip>" for n in networks)
    lines = [f"    <{name}>", f"      {password.xml()}",
             f"      <networks>{nets}</networks>",
             f"      <profile>{READONLY_PROFILE}</profile>", "      <quota>default</quota>"]
    if legacy:
        lines.append(f"      <allow_databases><database>{database}</database></allow_databases>")
    else:
        lines.append(f"      <grants><query>GRANT SELECT ON {database}.*</query></grants>")
    if tenant is not None:
        literal = "'" + tenant.replace("\\", "\\\\").replace("'", "\\'") + "'"
        lines.append(f"      <databases><{database}>")
        for table in TENANT_TABLES:
            lines.append(f"        <{table}><filter>{escape(f'tenant = {literal}')}</filter></{table}>")
        for table in OTHER_TABLES:
            lines.append(f"        <{table}><filter>0</filter></{table}>")
        lines.append(f"      </{database}></databases>")
    lines.append(f"    </{name}>")
    return "\n".join(lines) + "\n"
