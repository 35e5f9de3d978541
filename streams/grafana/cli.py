"""``ccpulse grafana build|push``: dashboards and alerting as files, or published over the HTTP API."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml

GRAFANA_DIR = Path(__file__).resolve().parents[2] / "grafana"


def cli_error(message: str) -> Exception:
    """The command line's error: printed as one line, exit 2."""
    from streams.cli.common import CliError

    return CliError(message)


def _centre(args: argparse.Namespace, example: bool = False) -> Any:
    """``--centre``, else the settings' centre file (CCPULSE_CENTRE_CONFIG), else (``example``:
    for the provisioning files docker-compose mounts beside it) centre.example.yaml, else all
    defaults."""
    from streams.config.centre import EXAMPLE_CENTRE, load_centre

    if args.centre:
        return load_centre(args.centre)
    from streams.cli.common import settings_of as _settings

    path = _settings(args).centre_config
    if path is None and example and EXAMPLE_CENTRE.exists():
        path = EXAMPLE_CENTRE
    return load_centre(path)


def _dashboards() -> Any:
    """The dashboards module, imported late: it is written alongside this one."""
    try:
        from streams.grafana import dashboards
    except ImportError as e:
        raise cli_error(f"the dashboards generator (streams/grafana/dashboards.py) cannot be imported: {e}") from None
    return dashboards


def cmd_build(args: argparse.Namespace) -> int:
    """Write the dashboards and the alerting provisioning files, and say which."""
    from streams.grafana.alert_rules import write_alerting

    centre = _centre(args, example=True)
    out = Path(args.out)
    written = list(_dashboards().write_all(out / "dashboards"))
    written += write_alerting(out / "provisioning" / "alerting", centre)
    for p in written:
        print(f"wrote {p}")
    print(f"{len(centre.alerts.rules)} alert rule(s) from the centre file, plus the stale-figures, "
          "figures-drift, dialer-abandon-rate, short-of-agents and forecast-missed rules")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Publish datasource, dashboards, rules, contact point and policy to a running Grafana."""
    from streams.grafana import alert_rules as ar
    from streams.grafana.push import (Plan, PushError, connect, datasource_payload, push, resolve_password,
                                      webhook_url_problem)

    if not args.url:
        raise cli_error("no Grafana URL: pass --url (Grafana's root, e.g. http://localhost:3000) or set GRAFANA_URL")
    if args.clients:
        return _push_clients(args)
    token = args.token or os.environ.get("GRAFANA_TOKEN")
    if not token and "@" not in (args.url or ""):
        raise cli_error("no Grafana token: pass --token (a service account token with the Admin role) or set "
                       "GRAFANA_TOKEN")
    try:
        provisioning = yaml.safe_load(Path(args.datasource_file).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise cli_error(f"cannot read the datasource provisioning file {args.datasource_file}: {e}") from None
    webhook = args.webhook_url or os.environ.get(ar.WEBHOOK_ENV) or None
    if webhook and (problem := webhook_url_problem(webhook)):
        raise cli_error(f"{problem}: pass --webhook-url or set {ar.WEBHOOK_ENV} to the receiver's http(s) URL")
    centre = _centre(args)
    try:
        password = resolve_password(provisioning, ar.DATASOURCE_UID, args.clickhouse_password)
        plan = Plan(datasource=datasource_payload(provisioning, ar.DATASOURCE_UID, password, args.clickhouse_host),
                    dashboards=_dashboards().build_all(), rules_doc=ar.build_rules(centre),
                    route=ar.ccpulse_route(centre), folder=args.folder, webhook_url=webhook)
        api = connect(args.url, token)
        lines = push(api, args.url, plan)
    except PushError as e:
        raise cli_error(str(e)) from None
    print(f"published {len(lines) - 1} item(s) to {args.url}")
    return 0


def _push_clients(args: argparse.Namespace) -> int:
    """An organisation per client tenant with its own datasource user and report (push.push_clients)."""
    from streams.grafana import alert_rules as ar
    from streams.grafana.push import (CLIENT_DASHBOARDS, ClientPlan, PushError, check_grafana, client_datasource_payload,
                                      client_password_env, connect, datasource_payload, push_clients)

    admin_password = os.environ.get("GRAFANA_ADMIN_PASSWORD")
    if not admin_password:
        raise cli_error("client organisations are created by Grafana's admin (a service account token acts in one "
                        "organisation only): set GRAFANA_ADMIN_PASSWORD (`ccpulse compose-env` wrote it to .env) "
                        "and --admin-user if it is not admin")
    tenants = sorted(set(args.client or []) | set(_centre(args).tenants))
    if not tenants:
        raise cli_error("no client tenants: name them in the centre file (CCPULSE_CENTRE_CONFIG) or pass --client T")
    from streams.clickhouse.access import client_users

    try:
        client_users(tenants)  # one ClickHouse user and one secret per tenant, never shared
    except ValueError as e:
        raise cli_error(str(e)) from None
    missing = [client_password_env(t) for t in tenants if not os.environ.get(client_password_env(t))]
    if missing:
        raise cli_error(f"no ClickHouse password for {', '.join(missing)}: set them as for the ClickHouse server "
                        "(`ccpulse compose-env` wrote them to .env)")
    try:
        provisioning = yaml.safe_load(Path(args.datasource_file).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise cli_error(f"cannot read the datasource provisioning file {args.datasource_file}: {e}") from None
    boards = {n: b for n, b in _dashboards().build_all().items() if n in CLIENT_DASHBOARDS}
    try:
        base = datasource_payload(provisioning, ar.DATASOURCE_UID, "-", args.clickhouse_host)
        plans = [ClientPlan(t, client_datasource_payload(base, t, os.environ[client_password_env(t)]), boards)
                 for t in tenants]
        api = connect(args.url, (args.admin_user, admin_password))
        check_grafana(api, args.url)
        lines = push_clients(api, args.url, plans, args.folder)
    except PushError as e:
        raise cli_error(str(e)) from None
    print(f"published {len(plans)} client organisation(s) to {args.url}: add each client's viewers to its "
          "organisation only")
    return 0 if lines else 1


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the grafana subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="grafana_command", required=True, metavar="ACTION")
    centre_help = "centre YAML whose alert rules to mirror (default: CCPULSE_CENTRE_CONFIG, else none)"

    b = sub.add_parser("build", help="write dashboards and alerting provisioning files",
                       description="Write the dashboards (DIR/dashboards) and Grafana alerting provisioning "
                                   "(DIR/provisioning/alerting) generated from code and the centre file.")
    b.add_argument("--out", default=str(GRAFANA_DIR), help=f"directory to write into (default {GRAFANA_DIR})")
    b.add_argument("--centre", help=centre_help)
    b.set_defaults(fn=cmd_build)

    p = sub.add_parser("push", help="publish datasource, dashboards and alerting to a running Grafana",
                       description="Create or update, by uid, the ClickHouse datasource, the dashboards (folder "
                                   "--folder), the alert rules, the webhook contact point and its notification "
                                   "route on a running Grafana over its HTTP API. Pushing twice changes nothing.")
    p.add_argument("--url", default=os.environ.get("GRAFANA_URL"),
                   help="Grafana's root URL, e.g. http://localhost:3000 (default GRAFANA_URL)")
    p.add_argument("--token", help="service account token with the Admin role (default GRAFANA_TOKEN, which is "
                                   "better: an argument shows in `ps` to every user of the machine)")
    p.add_argument("--folder", default="ccpulse", help="folder uid and title for dashboards and rules (default ccpulse)")
    p.add_argument("--centre", help=centre_help)
    p.add_argument("--clickhouse-password",
                   help="password of the datasource's ClickHouse user (default: the variable the datasource "
                        "file names, CLICKHOUSE_GRAFANA_PASSWORD)")
    p.add_argument("--clickhouse-host", help="HOST[:PORT] of ClickHouse as Grafana reaches it (default: the file's)")
    p.add_argument("--webhook-url", help="where Grafana POSTs its alerts (default GRAFANA_ALERT_WEBHOOK_URL; "
                                         "without one, no contact point or route is published)")
    p.add_argument("--clients", action="store_true",
                   help="instead: an organisation per client tenant, its datasource as that client's ClickHouse "
                        "user (client_<tenant>, password CLICKHOUSE_CLIENT_<TENANT>_PASSWORD) and its report; "
                        "needs Grafana's admin (GRAFANA_ADMIN_PASSWORD)")
    p.add_argument("--client", action="append", help="a client tenant (besides those of the centre file)")
    p.add_argument("--admin-user", default="admin", help="Grafana's admin user for --clients (default admin)")
    p.add_argument("--datasource-file", default=str(GRAFANA_DIR / "provisioning" / "datasources" / "clickhouse.yaml"),
                   help="datasource provisioning file to publish (default the repository's)")
    p.set_defaults(fn=cmd_push)
