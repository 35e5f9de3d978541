"""Publish the datasource, dashboards and alerting to a running Grafana over its HTTP API.

For a Grafana that is not ours to provision from files (a shared or hosted one). Everything
is created or updated by uid, so pushing twice leaves the same state: dashboards are compared
first and left alone when equal, rules are upserted and rules of ours that the centre file
no longer has are deleted, and our notification route replaces only its own earlier copy in
the policy tree. Payloads are built by pure functions (tested without a server); the I/O is
in ``push``. Every failure becomes a ``PushError`` that says what to do next.

Differences from file provisioning: the API stores values verbatim (no ``$VAR`` expansion),
so the ClickHouse password and the webhook URL are resolved here, from the environment or
the command line.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlparse

from streams.grafana import alert_rules as ar

PLUGIN_ID = ar.DATASOURCE_TYPE
TIMEOUT_S = 10.0


class PushError(Exception):
    """A failure for a person: one message naming what failed and what to do next."""


# --- pure payload builders ---------------------------------------------------------------------

_ENV_REF = re.compile(r"^\$\{?(\w+)\}?$")


def env_reference(value: Any) -> str | None:
    """The variable name of a provisioning ``$VAR`` / ``${VAR}`` value, else None."""
    m = _ENV_REF.match(str(value or ""))
    return m.group(1) if m else None


def datasource_payload(provisioning: Mapping[str, Any], uid: str, password: str,
                       host: str | None = None) -> dict[str, Any]:
    """The ``/api/datasources`` body for the datasource ``uid`` of a provisioning file, with the
    password (which the file only names as ``$VAR``) filled in, and optionally another host."""
    found = [d for d in provisioning.get("datasources") or [] if d.get("uid") == uid]
    if len(found) != 1:
        raise PushError(f"the datasource provisioning file defines uid {uid} {len(found)} times; it must define it once")
    d = found[0]
    json_data = dict(d.get("jsonData") or {})
    if host:
        name, _, port = host.partition(":")
        json_data["host"] = name
        if port:
            json_data["port"] = int(port)
    secure = {k: v for k, v in (d.get("secureJsonData") or {}).items() if k != "password"}
    secure["password"] = password
    return {"name": d["name"], "uid": uid, "type": d["type"], "access": d.get("access", "proxy"),
            "isDefault": bool(d.get("isDefault", False)), "jsonData": json_data, "secureJsonData": secure}


def dashboard_payload(dashboard: Mapping[str, Any], folder_uid: str) -> dict[str, Any]:
    """``POST /api/dashboards/db`` body: in our folder, overwriting whatever has the same uid."""
    body = {k: v for k, v in dashboard.items() if k not in ("id", "version")}
    return {"dashboard": body, "folderUid": folder_uid, "overwrite": True,
            "message": "ccpulse grafana push"}


def dashboard_unchanged(current: Mapping[str, Any] | None, payload: Mapping[str, Any]) -> bool:
    """Whether ``GET /api/dashboards/uid/..`` (``current``) already holds this payload."""
    if not current:
        return False
    have = {k: v for k, v in (current.get("dashboard") or {}).items() if k not in ("id", "version")}
    return have == payload["dashboard"] and (current.get("meta") or {}).get("folderUid") == payload["folderUid"]


#: Fields of a provisioning-API rule that we set (the API adds id, updated, provenance...).
RULE_FIELDS = ("uid", "title", "condition", "data", "noDataState", "execErrState", "for", "labels",
               "annotations", "isPaused", "folderUID", "ruleGroup", "orgID")


def api_rules(rules_doc: Mapping[str, Any], folder_uid: str) -> list[dict[str, Any]]:
    """The rules of a provisioning document as ``/api/v1/provisioning/alert-rules`` bodies."""
    out = []
    for group in rules_doc["groups"]:
        for r in group["rules"]:
            body = copy.deepcopy(dict(r))
            body.update(folderUID=folder_uid, ruleGroup=group["name"], orgID=group.get("orgId", 1))
            out.append({k: body[k] for k in RULE_FIELDS})
    return out


def seconds(text: str) -> float:
    """A Prometheus-style duration ("1m31s", "15m", "0s") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", text or "")
    return sum(float(n) * units[u] for n, u in parts)


def contains(have: Any, want: Any) -> bool:
    """Whether ``have`` holds everything in ``want`` (Grafana adds defaults to what it stores)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and all(k in have and contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(contains, have, want))
    return bool(have == want)


def rule_unchanged(current: Mapping[str, Any] | None, body: Mapping[str, Any]) -> bool:
    """Whether the rule Grafana holds (``GET .../alert-rules/UID``) already says what ``body`` says."""
    if not current or seconds(str(current.get("for", ""))) != seconds(str(body["for"])):
        return False
    return all(contains(current.get(k), body[k]) for k in RULE_FIELDS if k != "for")


def rule_group_interval(rules_doc: Mapping[str, Any]) -> int:
    """The evaluation interval of our group, in seconds ("1m" → 60)."""
    text = rules_doc["groups"][0]["interval"]
    n, unit = int(text[:-1]), text[-1]
    return n * {"s": 1, "m": 60, "h": 3600}[unit]


def contact_point_payload(url: str) -> dict[str, Any]:
    return {"name": ar.CONTACT_POINT, **ar.contact_point(url)}


def _is_ours(route: Mapping[str, Any]) -> bool:
    return any(m and m[0] == ar.ROUTE_LABEL for m in route.get("object_matchers") or [])


def merged_policy_tree(tree: Mapping[str, Any], route: Mapping[str, Any]) -> dict[str, Any]:
    """The org's policy tree with our route first among the root's children, replacing an
    earlier copy of it; the root and everybody else's routes are kept."""
    out = copy.deepcopy(dict(tree))
    others = [r for r in out.get("routes") or [] if not _is_ours(r)]
    out["routes"] = [copy.deepcopy(dict(route))] + others
    return out


def webhook_url_problem(url: str) -> str | None:
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return f"webhook URL {url!r} is not an http(s) URL"
    return None


def grafana_url_problem(url: str) -> str | None:
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return f"--url {url!r} is not an http(s) URL: use Grafana's root, e.g. http://localhost:3000"
    return None


# --- talking to Grafana ------------------------------------------------------------------------

@dataclass
class Plan:
    """Everything one push publishes."""

    datasource: dict[str, Any]
    dashboards: dict[str, dict[str, Any]]  # file name -> dashboard JSON
    rules_doc: dict[str, Any]
    route: dict[str, Any]
    folder: str = ar.FOLDER
    webhook_url: str | None = None


def _status(e: BaseException) -> int | None:
    return getattr(e, "status_code", None)


def _message(e: BaseException) -> str:
    resp = getattr(e, "response", None)
    if isinstance(resp, dict) and resp.get("message"):
        return str(resp["message"])
    text = str(resp if resp is not None else e).strip().replace("\n", " ")
    return text[:200]


def _network_reason(text: str, url: str) -> str:
    """A short cause from a connection error's nested text."""
    low = text.lower()
    for needle, reason in (("refused", "connection refused"), ("resolve", "cannot resolve host"),
                           ("name or service not known", "cannot resolve host"), ("unreachable", "network unreachable"),
                           ("reset", "connection reset"), ("ssl", "TLS handshake failed"),
                           ("certificate", "TLS certificate not trusted")):
        if needle in low:
            return f"{reason} {urlparse(url).hostname!r}" if reason == "cannot resolve host" else reason
    return text.strip().splitlines()[-1][:120] if text.strip() else ""


def explain(e: BaseException, url: str, what: str) -> PushError:
    """One error for a person, from whatever the client raised while doing ``what``."""
    import niquests

    from grafana_client.client import GrafanaException, GrafanaTimeoutError

    if isinstance(e, PushError):
        return e
    if isinstance(e, GrafanaTimeoutError) or isinstance(e, niquests.exceptions.Timeout):
        return PushError(f"Grafana at {url} did not answer within {TIMEOUT_S:g} s while {what}: check that it is "
                         "running and not overloaded, and that the URL is right")
    if isinstance(e, ValueError) and not isinstance(e, PushError):  # a 2xx body that is not JSON
        return PushError(f"{url} answered something that is not JSON while {what}: is the URL Grafana's root "
                         "(e.g. http://localhost:3000), not a proxy's page?")
    if isinstance(e, niquests.exceptions.RequestException) or (
            isinstance(e, GrafanaException) and _status(e) == 0):
        reason = _network_reason(str(e), url) or type(e).__name__
        return PushError(f"cannot reach Grafana at {url} ({reason}) while {what}: check the URL (scheme, host, "
                         "port) and that Grafana is running, e.g. `docker compose ps grafana`")
    status = _status(e)
    if status == 401:
        return PushError(f"Grafana at {url} refused the token (401 Unauthorized) while {what}: create a service "
                         "account token in Grafana (Administration > Users and access > Service accounts, role "
                         "Admin) and pass it with --token or GRAFANA_TOKEN")
    if status == 403:
        return PushError(f"Grafana at {url} accepted the token but it may not do this (403 Forbidden) while {what}: "
                         f"{_message(e)}; give the service account the Admin role (datasources and alerting need it)")
    if isinstance(e, GrafanaException) and status:
        return PushError(f"Grafana at {url} answered {status} while {what}: {_message(e)}")
    return PushError(f"unexpected answer from {url} while {what}: {type(e).__name__}: {e}")


def _provisioned(e: BaseException) -> bool:
    """Grafana refuses API changes to things it provisioned from files (or marked read-only)."""
    m = _message(e).lower()
    return _status(e) in (400, 403, 409, 412) and any(w in m for w in ("provision", "provenance", "read-only"))


def connect(url: str, token: str | None, timeout: float = TIMEOUT_S) -> Any:
    from grafana_client import GrafanaApi

    if (problem := grafana_url_problem(url)):
        raise PushError(problem)
    u = urlparse(url)
    if not u.path.endswith("/"):  # grafana-client glues "api" straight onto the path
        url = u._replace(path=u.path + "/").geturl()
    return GrafanaApi.from_url(url, credential=token, timeout=timeout)


def check_grafana(api: Any, url: str) -> str:
    """Grafana's version, or why ``url`` is not a Grafana (``/api/health`` needs no token)."""
    try:
        health = api.client.GET("/health")
    except Exception as e:
        status = _status(e)
        if status in (401, 403):
            raise explain(e, url, "checking /api/health") from None
        if status:
            raise PushError(f"{url} is not a Grafana: GET /api/health answered {status} ({_message(e)[:80]}); "
                            "use Grafana's root URL, e.g. http://localhost:3000") from None
        if isinstance(e, ValueError):  # a 2xx body that is not JSON
            raise PushError(f"{url} is not a Grafana: GET /api/health did not answer JSON; use Grafana's root "
                            "URL, e.g. http://localhost:3000") from None
        raise explain(e, url, "checking /api/health") from None
    if not isinstance(health, dict) or "database" not in health:
        raise PushError(f"{url} is not a Grafana: GET /api/health answered {str(health)[:80]!r}, not Grafana's "
                        "health JSON; use Grafana's root URL, e.g. http://localhost:3000")
    if health.get("database") != "ok":
        raise PushError(f"Grafana at {url} is unhealthy (database: {health.get('database')}): fix Grafana first")
    return str(health.get("version", "?"))


def check_token(api: Any, url: str) -> str:
    """The organisation the token acts in."""
    try:
        org = api.client.GET("/org")
    except Exception as e:
        raise explain(e, url, "checking the token (GET /api/org)") from None
    return str((org or {}).get("name", "?")) if isinstance(org, dict) else "?"


def check_plugin(api: Any, url: str) -> None:
    try:
        api.client.GET(f"/plugins/{PLUGIN_ID}/settings")
    except Exception as e:
        if _status(e) == 404:
            raise PushError(f"Grafana at {url} does not have the ClickHouse plugin {PLUGIN_ID}: install it "
                            f"(`grafana cli plugins install {PLUGIN_ID}`, or GF_INSTALL_PLUGINS={PLUGIN_ID} for the "
                            "Docker image) and restart Grafana, then push again") from None
        raise explain(e, url, f"checking the plugin {PLUGIN_ID}") from None


def _get_or_none(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as e:
        if _status(e) == 404:
            return None
        raise


def push(api: Any, url: str, plan: Plan, say: Callable[[str], None] = print) -> list[str]:
    """Publish ``plan``; one progress line per item. Returns the lines."""
    lines: list[str] = []
    note = _noter(lines, say)
    step = _stepper(url)
    version = check_grafana(api, url)
    org = check_token(api, url)
    check_plugin(api, url)
    note("grafana", f"{url} ({org})", f"version {version}")

    publish_datasource(api, url, plan.datasource, note, step)
    publish_dashboards(api, url, plan.folder, plan.dashboards, note, step)

    ap = api.alertingprovisioning
    if plan.webhook_url:
        cp = contact_point_payload(plan.webhook_url)
        existing = step("reading contact points", lambda: ap.get_contactpoints(name=ar.CONTACT_POINT)) or []
        try:
            if any(c.get("uid") == cp["uid"] for c in existing):
                ap.update_contactpoint(cp["uid"], cp)
                note("contact", ar.CONTACT_POINT, "updated")
            else:
                ap.create_contactpoint(cp)
                note("contact", ar.CONTACT_POINT, "created")
        except Exception as e:
            if not _provisioned(e):
                raise explain(e, url, "publishing the contact point") from None
            note("contact", ar.CONTACT_POINT, "skipped: provisioned from files on that Grafana")
    else:
        note("contact", ar.CONTACT_POINT, f"skipped: no webhook URL (set {ar.WEBHOOK_ENV} or --webhook-url)")

    bodies = api_rules(plan.rules_doc, plan.folder)
    for body in bodies:
        uid = body["uid"]
        current = step(f"reading alert rule {uid}", lambda: _get_or_none(lambda: ap.get_alertrule(uid)))
        if rule_unchanged(current, body):
            note("alert rule", uid, "unchanged")
            continue
        try:
            if current:
                ap.update_alertrule(uid, body)
            else:
                ap.create_alertrule(body)
        except Exception as e:
            if _provisioned(e):
                note("alert rule", uid, "skipped: provisioned from files on that Grafana")
                continue
            raise explain(e, url, f"publishing alert rule {uid}") from None
        note("alert rule", uid, "updated" if current else "created")
    group_name = plan.rules_doc["groups"][0]["name"]
    group = step("reading the rule group", lambda: _get_or_none(lambda: ap.get_rule_group(plan.folder, group_name)))
    wanted = {b["uid"] for b in bodies}
    for r in (group or {}).get("rules") or []:
        uid = str(r.get("uid"))
        if uid.startswith("ccpulse-") and uid not in wanted:  # a rule the centre file no longer has
            try:
                ap.delete_alertrule(uid)
                note("alert rule", uid, "deleted (no longer in the centre file)")
            except Exception as e:
                if not _provisioned(e):
                    raise explain(e, url, f"deleting alert rule {uid}") from None
                note("alert rule", uid, "kept: provisioned from files on that Grafana")
    interval = rule_group_interval(plan.rules_doc)
    if group and group.get("interval") != interval:
        group = step("reading the rule group", lambda: ap.get_rule_group(plan.folder, group_name))
        group["interval"] = interval
        step("setting the rule group interval", lambda: ap.update_rule_group(plan.folder, group_name, group))
        note("rule group", group_name, f"interval {interval}s")

    if plan.webhook_url:
        tree = step("reading the notification policies", ap.get_notification_policy_tree)
        merged = merged_policy_tree(tree or {}, plan.route)
        if merged == tree:
            note("policy", ar.CONTACT_POINT, "unchanged")
        else:
            try:
                ap.set_notification_policy_tree(merged)
                note("policy", ar.CONTACT_POINT, "updated")
            except Exception as e:
                if not _provisioned(e):
                    raise explain(e, url, "publishing the notification policy") from None
                note("policy", ar.CONTACT_POINT, "skipped: provisioned from files on that Grafana")
    return lines


def _noter(lines: list[str], say: Callable[[str], None]) -> Callable[[str, str, str], None]:
    """One aligned progress line per item published, kept and said."""
    def note(kind: str, name: str, state: str) -> None:
        line = f"{kind:12} {name:40} {state}"
        lines.append(line)
        say(line)
    return note


def _stepper(url: str) -> Callable[[str, Callable[[], Any]], Any]:
    def step(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except PushError:
            raise
        except Exception as e:
            raise explain(e, url, what) from None
    return step


def publish_datasource(api: Any, url: str, ds: dict[str, Any], note: Callable[[str, str, str], None],
                       step: Callable[[str, Callable[[], Any]], Any]) -> None:
    """Create or update the datasource by uid, in the organisation ``api`` acts in."""
    have = step("reading the datasource", lambda: _get_or_none(lambda: api.datasource.get_datasource_by_uid(ds["uid"])))
    if have:
        try:
            api.datasource.update_datasource_by_uid(ds["uid"], ds)
            note("datasource", ds["uid"], "updated")
        except Exception as e:
            if not _provisioned(e):
                raise explain(e, url, "updating the datasource") from None
            note("datasource", ds["uid"], "skipped: provisioned from files on that Grafana")
    else:
        try:
            api.datasource.create_datasource(ds)
        except Exception as e:
            if _status(e) == 409:
                raise PushError(f"Grafana at {url} already has a datasource named {ds['name']!r} with another uid: "
                                f"rename or delete it, since dashboards and rules look for uid {ds['uid']}") from None
            raise explain(e, url, "creating the datasource") from None
        note("datasource", ds["uid"], "created")


def publish_dashboards(api: Any, url: str, folder_uid: str, dashboards: Mapping[str, Mapping[str, Any]],
                       note: Callable[[str, str, str], None], step: Callable[[str, Callable[[], Any]], Any]) -> None:
    """The folder, then each dashboard (unchanged ones are left alone)."""
    folder = step("reading the folder", lambda: _get_or_none(lambda: api.folder.get_folder(folder_uid)))
    if folder is None:
        step("creating the folder", lambda: api.folder.create_folder(folder_uid, uid=folder_uid))
        note("folder", folder_uid, "created")
    else:
        note("folder", folder_uid, "exists")
    for name, dash in sorted(dashboards.items()):
        body = dashboard_payload(dash, folder_uid)
        uid = dash.get("uid", name)
        current = step(f"reading dashboard {uid}", lambda: _get_or_none(lambda: api.dashboard.get_dashboard(uid)))
        if dashboard_unchanged(current, body):
            note("dashboard", uid, "unchanged")
            continue
        try:
            api.dashboard.update_dashboard(body)
        except Exception as e:
            if _provisioned(e):
                note("dashboard", uid, "skipped: provisioned from files on that Grafana")
                continue
            raise explain(e, url, f"publishing dashboard {uid}") from None
        note("dashboard", uid, "updated" if current else "created")


# --- client organisations ------------------------------------------------------------------------

#: What a client's organisation holds: its report, nothing of other tenants or of the floor.
CLIENT_DASHBOARDS = ("client-report.json",)


def client_org_name(tenant: str) -> str:
    return f"ccpulse client {tenant}"


def client_password_env(tenant: str) -> str:
    """The variable holding the client user's password (the one streams/clickhouse/access.py names)."""
    from streams.clickhouse.access import client_user

    return f"CLICKHOUSE_{client_user(tenant).upper()}_PASSWORD"


def client_datasource_payload(base: Mapping[str, Any], tenant: str, password: str) -> dict[str, Any]:
    """The ops datasource, as the client's own ClickHouse user: same uid, so the dashboards work
    unchanged, and the server's row filters decide what it sees, whatever a variable holds."""
    from streams.clickhouse.access import client_user

    return {**base, "isDefault": True, "jsonData": {**base["jsonData"], "username": client_user(tenant)},
            "secureJsonData": {**base.get("secureJsonData", {}), "password": password}}


@dataclass
class ClientPlan:
    tenant: str
    datasource: dict[str, Any]
    dashboards: dict[str, dict[str, Any]]


def push_clients(api: Any, url: str, plans: list[ClientPlan], folder: str,
                 say: Callable[[str], None] = print) -> list[str]:
    """An organisation per client tenant (created by the admin, who becomes its admin), with the
    datasource as that client's ClickHouse user and the client dashboards. Client viewers are
    added to their organisation only: they never see the ops datasource."""
    lines: list[str] = []
    note = _noter(lines, say)
    step = _stepper(url)
    headers = api.client.s.headers
    for cp in plans:
        name = client_org_name(cp.tenant)
        org = step(f"reading organisation {name}",
                   lambda: _get_or_none(lambda: api.client.GET(f"/orgs/name/{quote(name, safe='')}")))
        if org is None:
            created = step(f"creating organisation {name}", lambda: api.client.POST("/orgs", json={"name": name}))
            org_id = int(created["orgId"])
            note("org", name, f"created (id {org_id})")
        else:
            org_id = int(org["id"])
            note("org", name, f"exists (id {org_id})")
        headers["X-Grafana-Org-Id"] = str(org_id)
        try:
            publish_datasource(api, url, cp.datasource, note, step)
            publish_dashboards(api, url, folder, cp.dashboards, note, step)
        finally:
            headers.pop("X-Grafana-Org-Id", None)
    return lines


def resolve_password(provisioning: Mapping[str, Any], uid: str, given: str | None,
                     env: Mapping[str, str] | None = None) -> str:
    """The datasource password: ``--clickhouse-password``, else the variable the file names."""
    if given:
        return given
    env = os.environ if env is None else env
    found = [d for d in provisioning.get("datasources") or [] if d.get("uid") == uid]
    ref = env_reference((found[0].get("secureJsonData") or {}).get("password")) if found else None
    if ref and env.get(ref):
        return env[ref]
    raise PushError(f"no ClickHouse password for the Grafana datasource: set {ref or 'the password variable'} "
                    "(the read-only user's password) or pass --clickhouse-password")
