"""``ccpulse grafana push``: the payloads it sends, and every failure a person can meet before
anything is written, each a one-line error (exit 2) that says what to do next.

Not tested here: the happy path against a real Grafana. No Grafana server can be installed on
this machine (it is in neither Debian, PyPI nor npm), and a mock standing in for Grafana would
only test our assumptions about it. So the payloads are checked as data (built by pure
functions from the same provisioning files Grafana reads), and the failure paths run against
real local peers: a port nobody listens on, a real HTTP server that is not Grafana, and a
minimal HTTP server with one fixed behaviour each (refusing the token, forbidding, lacking the
ClickHouse plugin) that stands for nothing more than that behaviour.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from streams.config.centre import load_centre
from streams.grafana import alert_rules as ar
from streams.grafana.push import (PushError, api_rules, contact_point_payload, dashboard_payload, dashboard_unchanged,
                                  datasource_payload, env_reference, merged_policy_tree, resolve_password,
                                  rule_group_interval, rule_unchanged, seconds)
from tests.services import free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "clickhouse.yaml"


def _env(tmp_path: Path, **kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CCPULSE_", "GRAFANA_", "CLICKHOUSE_GRAFANA_"))}
    env.update({"CCPULSE_STATE_DIR": str(tmp_path / "state"), "CLICKHOUSE_GRAFANA_PASSWORD": "s3cret"})
    env.update(kw)
    return env


def _push(tmp_path: Path, url: str, *extra: str, **env: str) -> Any:
    return run_cli(_env(tmp_path, **env), "grafana", "push", "--url", url, "--token", "glsa_test", *extra,
                   check=False, timeout=60)


# --- real peers ------------------------------------------------------------------------------

class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers from a fixed table {path: (status, JSON body)}, 404 for anything else; records requests."""

    routes: dict[str, tuple[int, Any]] = {}
    seen: list[tuple[str, str, str | None]] = []

    def _answer(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, body = self.routes.get(self.path.split("?")[0], (404, {"message": "Not found"}))
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def peer() -> Iterator[Any]:
    """Start a fixed-behaviour HTTP server on a free port: ``start(routes) -> (url, seen)``."""
    servers = []

    def start(routes: dict[str, tuple[int, Any]]) -> tuple[str, list[tuple[str, str, str | None]]]:
        handler = type("Handler", (_Recorder,), {"routes": routes, "seen": []})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}", handler.seen

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


HEALTH = (200, {"commit": "abc", "database": "ok", "version": "11.3.0"})  # what Grafana's /api/health answers


# --- failures, end to end through the CLI ------------------------------------------------------

def test_nobody_listening_names_the_url_and_what_to_check(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    p = _push(tmp_path, url)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"ccpulse: cannot reach Grafana at {url} (connection refused)")
    assert "check the URL" in p.stderr and "Grafana is running" in p.stderr


def test_unknown_host_is_named(tmp_path: Path) -> None:
    p = _push(tmp_path, "http://no-such-host.invalid:3000")
    assert p.returncode == 2 and "cannot resolve host 'no-such-host.invalid'" in p.stderr


def test_a_web_server_that_is_not_grafana(tmp_path: Path) -> None:
    """python's own http.server serving a directory: a real server, just not Grafana."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>hello</h1>")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        p = _push(tmp_path, url)
    finally:
        srv.shutdown()
        srv.server_close()
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"ccpulse: {url} is not a Grafana: GET /api/health answered 404" in p.stderr
    assert "Grafana's root URL" in p.stderr


@pytest.mark.parametrize("health", [{"status": "UP"}, b"<html>welcome</html>", b"{not json"])
def test_health_that_is_not_grafanas(tmp_path: Path, peer: Any, health: Any) -> None:
    url, seen = peer({"/api/health": (200, health)})  # a Spring Boot-style health, a page, broken JSON
    p = _push(tmp_path, url)
    assert p.returncode == 2 and f"ccpulse: {url} is not a Grafana" in p.stderr and "Traceback" not in p.stderr
    assert [path for _, path, _ in seen] == ["/api/health"]


def test_token_refused(tmp_path: Path, peer: Any) -> None:
    url, seen = peer({"/api/health": HEALTH, "/api/org": (401, {"message": "invalid API key"})})
    p = _push(tmp_path, url)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"Grafana at {url} refused the token (401 Unauthorized)" in p.stderr
    assert "service account token" in p.stderr and "--token" in p.stderr
    assert ("GET", "/api/org", "Bearer glsa_test") in seen  # the token was sent, as a bearer token
    assert all(m == "GET" for m, _, _ in seen)  # nothing was written before the checks passed


def test_token_without_permission(tmp_path: Path, peer: Any) -> None:
    url, _ = peer({"/api/health": HEALTH, "/api/org": (403, {"message": "You'll need additional permissions"})})
    p = _push(tmp_path, url)
    assert p.returncode == 2 and "403 Forbidden" in p.stderr and "Admin role" in p.stderr


def test_clickhouse_plugin_missing(tmp_path: Path, peer: Any) -> None:
    url, seen = peer({"/api/health": HEALTH, "/api/org": (200, {"id": 1, "name": "Main Org."})})
    p = _push(tmp_path, url)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "does not have the ClickHouse plugin grafana-clickhouse-datasource" in p.stderr
    assert "GF_INSTALL_PLUGINS=grafana-clickhouse-datasource" in p.stderr and "restart Grafana" in p.stderr
    assert [path for _, path, _ in seen] == ["/api/health", "/api/org",
                                             "/api/plugins/grafana-clickhouse-datasource/settings"]


def test_local_mistakes_are_caught_before_any_request(tmp_path: Path) -> None:
    p = _push(tmp_path, "localhost:3000")
    assert p.returncode == 2 and "is not an http(s) URL" in p.stderr
    p = run_cli(_env(tmp_path), "grafana", "push", "--url", "http://127.0.0.1:1", check=False)
    assert p.returncode == 2 and "no Grafana token" in p.stderr
    p = _push(tmp_path, "http://127.0.0.1:1", CLICKHOUSE_GRAFANA_PASSWORD="")
    assert p.returncode == 2 and "set CLICKHOUSE_GRAFANA_PASSWORD" in p.stderr
    p = _push(tmp_path, "http://127.0.0.1:1", "--webhook-url", "hooks.example.com/x")
    assert p.returncode == 2 and "not an http(s) URL" in p.stderr


# --- payloads ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def provisioning() -> dict[str, Any]:
    return yaml.safe_load(DATASOURCES.read_text())


def test_datasource_payload_is_the_provisioned_one_with_the_password(provisioning: dict[str, Any]) -> None:
    body = datasource_payload(provisioning, ar.DATASOURCE_UID, "s3cret")
    assert body["uid"] == ar.DATASOURCE_UID and body["type"] == ar.DATASOURCE_TYPE and body["access"] == "proxy"
    assert body["jsonData"]["username"] == "grafana"  # the read-only user, never the writer
    assert body["jsonData"] == (provisioning["datasources"][0]["jsonData"])
    assert body["secureJsonData"] == {"password": "s3cret"}  # the API does not expand $VAR: resolved here
    other = datasource_payload(provisioning, ar.DATASOURCE_UID, "x", host="ch.internal:9440")
    assert (other["jsonData"]["host"], other["jsonData"]["port"]) == ("ch.internal", 9440)
    with pytest.raises(PushError, match="defines uid nope 0 times"):
        datasource_payload(provisioning, "nope", "x")


def test_password_comes_from_the_variable_the_file_names(provisioning: dict[str, Any]) -> None:
    ref = env_reference(provisioning["datasources"][0]["secureJsonData"]["password"])
    assert ref == "CLICKHOUSE_GRAFANA_PASSWORD"
    assert resolve_password(provisioning, ar.DATASOURCE_UID, None, {ref: "from-env"}) == "from-env"
    assert resolve_password(provisioning, ar.DATASOURCE_UID, "given", {ref: "from-env"}) == "given"
    with pytest.raises(PushError, match="set CLICKHOUSE_GRAFANA_PASSWORD"):
        resolve_password(provisioning, ar.DATASOURCE_UID, None, {})


def test_dashboards_are_wrapped_into_the_folder_and_overwrite() -> None:
    dash = {"uid": "ccpulse-wallboard", "title": "Wallboard", "id": 7, "version": 3, "panels": [{"id": 1}]}
    body = dashboard_payload(dash, "ccpulse")
    assert body == {"dashboard": {"uid": "ccpulse-wallboard", "title": "Wallboard", "panels": [{"id": 1}]},
                    "folderUid": "ccpulse", "overwrite": True, "message": "ccpulse grafana push"}
    current = {"dashboard": {**dash, "id": 12, "version": 9}, "meta": {"folderUid": "ccpulse"}}
    assert dashboard_unchanged(current, body)  # a second push leaves it alone
    assert not dashboard_unchanged({**current, "meta": {"folderUid": "general"}}, body)
    assert not dashboard_unchanged({**current, "dashboard": {**dash, "title": "Old"}}, body)
    assert not dashboard_unchanged(None, body)


def test_dashboards_from_the_generator_have_uids() -> None:
    dashboards = pytest.importorskip("streams.grafana.dashboards")
    built = dashboards.build_all()
    assert built and all(d.get("uid") for d in built.values())
    assert len({d["uid"] for d in built.values()}) == len(built)
    assert all(dashboard_payload(d, "ccpulse")["dashboard"]["uid"] == d["uid"] for d in built.values())


def test_alert_rules_for_the_provisioning_api(tmp_path: Path) -> None:
    centre_file = tmp_path / "centre.yaml"
    centre_file.write_text(
        "alerts:\n  rules:\n"
        "    - {name: sl-goal, metric: service_level, threshold: goal, for_s: 120, severity: critical}\n"
        "    - {name: queue-depth, metric: waiting, threshold: 5, renotify_s: 300}\n")
    doc = ar.build_rules(load_centre(centre_file))
    bodies = api_rules(doc, "ops")
    assert [b["uid"] for b in bodies] == ["ccpulse-sla-sl-goal", "ccpulse-sla-queue-depth", ar.STALE_RULE_UID,
                                             ar.DRIFT_RULE_UID, ar.DIALER_RULE_UID, ar.SHORT_RULE_UID,
                                             ar.MISS_RULE_UID]
    for b, r in zip(bodies, doc["groups"][0]["rules"]):
        assert b["folderUID"] == "ops" and b["ruleGroup"] == ar.GROUP and b["orgID"] == 1
        assert {k: b[k] for k in r} == r  # the same rule as the file, plus where it lives
        stored = {**b, "id": 4, "provenance": "api", "updated": "2026-01-01T00:00:00Z",  # as Grafana keeps it:
                  "data": [{**d, "model": {**d["model"], "hide": False}} for d in b["data"]]}  # plus defaults
        assert rule_unchanged(stored, b)
        assert not rule_unchanged({**stored, "for": "5m"}, b)
        assert not rule_unchanged({**stored, "labels": {**b["labels"], "severity": "info"}}, b)
    assert bodies[0]["for"] == "2m" and bodies[0]["labels"]["severity"] == "critical"
    assert rule_unchanged({**bodies[0], "for": "120s"}, bodies[0])  # the same duration, spelt another way
    assert seconds("1m31s") == 91 and seconds("0s") == 0 and seconds("1h") == 3600
    assert rule_group_interval(doc) == 60


def test_contact_point_and_policy_merge_keep_everyone_elses() -> None:
    cp = contact_point_payload("https://hooks.example.com/grafana")
    assert cp == {"name": "ccpulse-webhook", "uid": "ccpulse-webhook", "type": "webhook",
                  "settings": {"url": "https://hooks.example.com/grafana", "httpMethod": "POST"},
                  "disableResolveMessage": False}
    route = ar.ccpulse_route(load_centre(None))
    theirs = {"receiver": "ops-pager", "object_matchers": [["team", "=", "ops"]]}
    tree = {"receiver": "grafana-default-email", "group_by": ["grafana_folder", "alertname"],
            "routes": [theirs, {**route, "group_wait": "5m"}]}  # an older copy of ours
    merged = merged_policy_tree(tree, route)
    assert merged["receiver"] == "grafana-default-email" and merged["routes"] == [route, theirs]
    assert merged_policy_tree(merged, route) == merged  # pushing again changes nothing
    assert merged_policy_tree({"receiver": "x"}, route) == {"receiver": "x", "routes": [route]}
    assert tree["routes"][1]["group_wait"] == "5m"  # the input is not modified


def test_cli_build_writes_dashboards_and_alerting(tmp_path: Path) -> None:
    pytest.importorskip("streams.grafana.dashboards")
    centre_file = tmp_path / "centre.yaml"
    centre_file.write_text("alerts:\n  rules:\n    - {name: depth, metric: waiting, threshold: 5}\n")
    out = tmp_path / "grafana"
    p = run_cli(_env(tmp_path), "grafana", "build", "--out", str(out), "--centre", str(centre_file))
    for name in (ar.RULES_FILE, ar.CONTACT_POINTS_FILE, ar.POLICIES_FILE):
        f = out / "provisioning" / "alerting" / name
        assert f"wrote {f}" in p.stdout
        assert yaml.safe_load(f.read_text()) == ar.build_alerting(load_centre(centre_file))[name]
    assert list((out / "dashboards").glob("*.json"))
    assert "1 alert rule(s) from the centre file" in p.stdout


# --- client organisations ------------------------------------------------------------------------

def test_a_client_organisation_queries_as_the_client_user_and_holds_only_its_report(
        provisioning: dict[str, Any]) -> None:
    from streams.clickhouse.access import users_xml
    from streams.grafana.dashboards import build_all
    from streams.grafana.push import CLIENT_DASHBOARDS, client_datasource_payload, client_org_name, client_password_env

    base = datasource_payload(provisioning, ar.DATASOURCE_UID, "reader-pw")
    ds = client_datasource_payload(base, "acme", "acme-pw")
    assert ds["uid"] == base["uid"] == ar.DATASOURCE_UID  # the dashboards find it unchanged
    assert ds["jsonData"]["username"] == "client_acme" and ds["secureJsonData"]["password"] == "acme-pw"
    assert base["jsonData"]["username"] == "grafana" and base["secureJsonData"]["password"] == "reader-pw"
    assert ds["isDefault"] is True
    # the variable that holds the password is the one the ClickHouse users file reads
    assert f'from_env="{client_password_env("acme")}"' in users_xml("ccpulse", ["acme"])
    assert client_org_name("acme") != client_org_name("globex")
    assert set(CLIENT_DASHBOARDS) <= set(build_all()) and "wallboard.json" not in CLIENT_DASHBOARDS


def test_client_push_errors_say_what_to_do(tmp_path: Path) -> None:
    p = run_cli(_env(tmp_path), "grafana", "push", "--url", "http://127.0.0.1:1", "--clients", "--client", "acme",
                check=False)
    assert p.returncode == 2 and "set GRAFANA_ADMIN_PASSWORD" in p.stderr
    p = run_cli(_env(tmp_path, GRAFANA_ADMIN_PASSWORD="x"), "grafana", "push", "--url", "http://127.0.0.1:1",
                "--clients", "--client", "acme", check=False)
    assert p.returncode == 2 and "CLICKHOUSE_CLIENT_ACME_PASSWORD" in p.stderr
    p = run_cli(_env(tmp_path, GRAFANA_ADMIN_PASSWORD="x", CLICKHOUSE_CLIENT_ACME_PASSWORD="y"), "grafana", "push",
                "--url", "http://127.0.0.1:1", "--clients", "--client", "acme", check=False, timeout=60)
    assert p.returncode == 2 and "127.0.0.1:1" in p.stderr and "Traceback" not in p.stderr
