"""The Docker stack checked without Docker: docker-compose.yml, the Dockerfile and Grafana's
provisioning agree with each other and with the code (settings, CLI, packaging).

Every check is a function that returns a list of problems, so each one is also run against a
deliberately broken copy to show that it can fail.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote

import pytest
import yaml

from streams.cli.main import build_parser
from streams.config.settings import ENV_PREFIX, ConfigError, Settings, load_settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "clickhouse.yaml"
DASHBOARD_PROVIDERS = ROOT / "grafana" / "provisioning" / "dashboards" / "ccpulse.yaml"
CONTACT_POINTS = ROOT / "grafana" / "provisioning" / "alerting" / "contact-points.yaml"

EXPECTED_SERVICES = {"kafka", "clickhouse", "setup", "worker", "simulator", "grafana", "intake"}
APP_SERVICES = {"setup", "worker", "simulator", "intake"}
DATASOURCE_UID = "ccpulse-clickhouse"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
GRAFANA_DB_USER = "grafana"  # the read-only ClickHouse user the datasource connects as


@pytest.fixture(autouse=True)
def _no_ccpulse_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are validated as the containers would see them, not with this shell's CCPULSE_*."""
    for k in list(os.environ):
        if k.startswith(ENV_PREFIX):
            monkeypatch.delenv(k)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())  # safe_load resolves anchors and `<<` merges


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(COMPOSE)


# --- compose interpolation and service model ---------------------------------------------

_VAR = re.compile(r"\$(?:(?P<esc>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))")


#: What ``ccpulse compose-env`` gives a machine: a value for every variable the compose file
#: requires (``${VAR:?...}``, the secrets, which have no default).
SECRETS = {v: f"{v.lower()}-Xy9" for v in re.findall(r"\$\{(\w+):\?", COMPOSE.read_text())}


def interpolate(value: str, env: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Compose's ``$VAR``/``${VAR:-default}``/``$$`` substitution against ``env`` (default: a
    fresh machine after ``ccpulse compose-env``, i.e. only ``SECRETS``). Returns the text and
    whether every variable had a value or a default (else compose refuses, or the container
    gets an empty value)."""
    env = SECRETS if env is None else env
    complete = True

    def sub(m: re.Match[str]) -> str:
        nonlocal complete
        if m.group("esc"):
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        val = env.get(name)
        if op in (":-", ":?", ":+"):
            val = val or None
        if op and op.endswith("+"):
            return arg if val is not None else ""
        if val is not None:
            return val
        if op and op.endswith("-"):
            return arg
        complete = False
        return ""

    return _VAR.sub(sub, value), complete


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def app_services(compose: Mapping[str, Any]) -> set[str]:
    """Services running the image this repository builds (a service with ``build`` tags it)."""
    services = compose["services"]
    built = {s.get("image") for s in services.values() if "build" in s}
    return {n for n, s in services.items() if "build" in s or s.get("image") in built}


def _words(v: Any) -> list[str]:
    return shlex.split(v) if isinstance(v, str) else [str(x) for x in v]


def service_argv(service: Mapping[str, Any], image: "Image") -> list[str]:
    """What the container runs: an ``entrypoint`` override also drops the image's CMD."""
    cmd = service.get("command")
    if service.get("entrypoint") is not None:
        argv = _words(service["entrypoint"]) + (_words(cmd) if cmd is not None else [])
    else:
        argv = list(image.entrypoint) + (_words(cmd) if cmd is not None else list(image.cmd))
    return [interpolate(a)[0] for a in argv]


def ccpulse_invocations(argv: list[str]) -> tuple[list[list[str]], list[str]]:
    """The ccpulse argument lists in a command: ``ccpulse ...`` or ``sh -c "ccpulse a && ccpulse b"``."""
    if argv[:1] == ["ccpulse"]:
        return [argv[1:]], []
    if len(argv) == 3 and argv[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and argv[1] == "-c":
        found, problems = [], []
        for part in argv[2].split("&&"):
            words = shlex.split(part)
            if words[:1] == ["ccpulse"]:
                found.append(words[1:])
            else:
                problems.append(f"{part.strip()!r} in {argv[2]!r} is not a ccpulse command")
        return found, problems
    return [], [f"{argv!r} does not run ccpulse"]


def cli_problems(args: list[str]) -> list[str]:
    """Whether ``ccpulse args`` parses (unknown commands/options make argparse exit)."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            build_parser().parse_args(args)
    except SystemExit:
        last = (out.getvalue().strip().splitlines() or ["?"])[-1]
        return [f"`ccpulse {shlex.join(args)}`: {last}"]
    return []


def setting_problems(env: Mapping[str, str]) -> list[str]:
    """Every CCPULSE_* name must be a Settings field and its value (defaults interpolated) valid."""
    problems, values = [], {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in Settings.model_fields:
            problems.append(f"{key}: streams.config.settings.Settings has no field {name!r}")
            continue
        value, complete = interpolate(raw)
        if not complete:  # only the deployer's environment knows this value
            continue
        values[name] = value
        try:
            load_settings(**{name: value})
        except ConfigError as e:
            problems.append(f"{key}={raw!r}: {e}")
    if not problems:
        try:
            load_settings(**values)
        except ConfigError as e:
            problems.append(f"together: {e}")
    return problems


def effective_settings(env: Mapping[str, str]) -> Settings:
    vals = {k[len(ENV_PREFIX):].lower(): interpolate(v)[0] for k, v in env.items() if k.startswith(ENV_PREFIX)}
    return load_settings(**vals)


# --- Dockerfile ----------------------------------------------------------------------------

@dataclass
class Image:
    base: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    copies: dict[str, str] = field(default_factory=dict)  # repo path -> absolute path in the image


def _exec_form(rest: str) -> list[str]:
    return json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]


def parse_dockerfile(text: str) -> Image:
    """The few instructions that matter here, with line continuations and comments handled."""
    lines, buf = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith("#") or (not s and not buf):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        lines.append(buf + s)
        buf = ""
    img, workdir = Image(), "/"
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr, rest = instr.upper(), rest.strip()
        if instr == "FROM":
            img.base = rest.split()[0]
        elif instr == "WORKDIR":
            workdir = posixpath.join(workdir, rest)
        elif instr == "USER":
            img.user = rest
        elif instr == "ENTRYPOINT":
            img.entrypoint, img.cmd = _exec_form(rest), []
        elif instr == "CMD":
            img.cmd = _exec_form(rest)
        elif instr == "ENV":
            words = shlex.split(rest)
            if words and "=" not in words[0]:
                img.env[words[0]] = " ".join(words[1:])
            else:
                img.env.update(w.split("=", 1) for w in words)
        elif instr in ("COPY", "ADD"):
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            srcs, dest = words[:-1], posixpath.join(workdir, words[-1])
            for src in srcs:
                name = src.rstrip("/")
                if (ROOT / name).is_dir() or not (dest.endswith("/") or len(srcs) > 1):
                    target = dest  # a directory's contents go into dest; one file may be renamed
                else:
                    target = posixpath.join(dest, posixpath.basename(name))
                img.copies[name] = posixpath.normpath(target)
    return img


def dockerfile_problems(img: Image, pyproject: Mapping[str, Any], dockerignore: str = "") -> list[str]:
    problems = []
    packages = [p.rstrip("*").rstrip(".") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    needed = sorted({p for p in packages if "." not in p} | {"sql", "pyproject.toml", pyproject["project"]["readme"]})
    for name in needed:
        if name not in img.copies:
            problems.append(f"Dockerfile does not COPY {name}")
    ignored = {ln.strip().rstrip("/") for ln in dockerignore.splitlines() if ln.strip() and not ln.startswith("#")}
    for name in img.copies:
        if not (ROOT / name).exists():
            problems.append(f"Dockerfile copies {name}, which is not in the repository")
        if name in ignored:
            problems.append(f"Dockerfile copies {name}, which .dockerignore leaves out of the context")
    # streams/clickhouse/migrate.py reads <dir of streams>/../sql/migrations, and sql/ is not in the wheel:
    # the code must run from where streams/ and sql/ were copied side by side.
    if "streams" in img.copies and "sql" in img.copies:
        home = posixpath.dirname(img.copies["streams"])
        if posixpath.join(home, "sql") != img.copies["sql"]:
            problems.append(f"sql/ copied to {img.copies['sql']}, migrations are looked up in {home}/sql")
        if home not in img.env.get("PYTHONPATH", "").split(":"):
            problems.append(f"PYTHONPATH does not name {home}: the installed copy would not find sql/migrations")
    if img.user in ("", "root", "0") or img.user.startswith(("root:", "0:")):
        problems.append(f"the image runs as root (USER {img.user or 'unset'})")
    if img.entrypoint[:1] != ["ccpulse"] or "ccpulse" not in pyproject["project"]["scripts"]:
        problems.append(f"ENTRYPOINT {img.entrypoint} is not the ccpulse console script")
    for args in ccpulse_invocations(img.entrypoint + img.cmd)[0]:
        problems += cli_problems(args)
    problems += setting_problems(img.env)
    return problems


@pytest.fixture(scope="module")
def image() -> Image:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- compose checks ------------------------------------------------------------------------

def env_problems(compose: Mapping[str, Any]) -> list[str]:
    return [f"{name}: {p}" for name, svc in compose["services"].items() for p in setting_problems(environment(svc))]


def command_problems(compose: Mapping[str, Any], image: Image) -> list[str]:
    problems = []
    for name in sorted(app_services(compose)):
        invocations, found = ccpulse_invocations(service_argv(compose["services"][name], image))
        problems += [f"{name}: {p}" for p in found]
        problems += [f"{name}: {p}" for args in invocations for p in cli_problems(args)]
        if not invocations and not found:
            problems.append(f"{name}: runs no ccpulse command")
    return problems


def mounts(service: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, source, target) for every volume entry, short or long syntax."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((v.get("type", "volume"), str(v.get("source", "")), v["target"]))
            continue
        src, _, rest = v.partition(":")
        target = rest.split(":")[0]
        out.append(("bind" if src.startswith((".", "/", "~")) else "volume", src, target))
    return out


def volume_problems(compose: Mapping[str, Any]) -> list[str]:
    problems, declared = [], set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for kind, src, target in mounts(svc):
            if kind == "bind":
                if not src.startswith("."):
                    problems.append(f"{name}: bind mount {src} is outside the repository")
                elif not (ROOT / src).exists():
                    problems.append(f"{name}: bind mount source {src} does not exist")
            elif src and src not in declared:
                problems.append(f"{name}: named volume {src} is not declared under `volumes:`")
    return problems


def dependency_problems(compose: Mapping[str, Any]) -> list[str]:
    problems, services = [], compose["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        for dep, spec in deps.items():
            if dep not in services:
                problems.append(f"{name} depends on unknown service {dep}")
            elif spec.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck")
    return problems


def _listeners(value: str) -> dict[str, str]:
    return dict(item.split("://", 1) for item in value.split(",") if item)


def kafka_problems(compose: Mapping[str, Any]) -> list[str]:
    problems, services = [], compose["services"]
    kenv = environment(services["kafka"])
    advertised, listeners = _listeners(kenv["KAFKA_ADVERTISED_LISTENERS"]), _listeners(kenv["KAFKA_LISTENERS"])
    protocols = dict(p.split(":") for p in kenv["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for lname in set(advertised) | set(listeners) | set(kenv["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")):
        if lname not in listeners or lname not in protocols:
            problems.append(f"kafka: listener {lname} is not in both KAFKA_LISTENERS and the protocol map")
    host_ports = {p.rsplit(":", 2)[-2] if p.count(":") > 1 else p.split(":")[0]: p.split(":")[-1]
                  for p in map(str, services["kafka"].get("ports") or [])}
    for lname, addr in advertised.items():
        host, port = addr.rsplit(":", 1)
        if host in ("127.0.0.1", "localhost") and host_ports.get(port) != listeners.get(lname, ":").rsplit(":", 1)[1]:
            problems.append(f"kafka: {lname} advertises {addr} but host port {port} is not published to it")
    for name in sorted(app_services(compose)):
        broker = interpolate(environment(services[name]).get("CCPULSE_BROKER", ""))[0]
        for addr in broker[len("kafka://"):].split(";"):
            if addr not in advertised.values():
                problems.append(f"{name}: CCPULSE_BROKER {broker} is not an advertised listener "
                                f"{sorted(advertised.values())}")
            elif addr.rsplit(":", 1)[0] not in services:
                problems.append(f"{name}: broker host in {broker} is not a service")
    return problems


_CH_URL = re.compile(r"clickhouse://(?P<user>[^:@/]+):(?P<password>.*)@(?P<host>[^:@/]+):(?P<port>\d+)/(?P<db>\w+)")


def clickhouse_url(service: Mapping[str, Any]) -> dict[str, str]:
    """The parts of a service's CCPULSE_CLICKHOUSE_URL, the password left uninterpolated."""
    m = _CH_URL.fullmatch(environment(service).get("CCPULSE_CLICKHOUSE_URL", ""))
    return m.groupdict() if m else {}


def clickhouse_problems(compose: Mapping[str, Any]) -> list[str]:
    problems, services = [], compose["services"]
    chenv = environment(services["clickhouse"])
    for name in sorted(app_services(compose)):
        url = clickhouse_url(services[name])
        if url.get("host") not in services:
            problems.append(f"{name}: CCPULSE_CLICKHOUSE_URL is not clickhouse://user:password@<service>:port/db")
            continue
        if unquote(url["user"]) != chenv.get("CLICKHOUSE_USER"):
            problems.append(f"{name}: ClickHouse user {url['user']} is not CLICKHOUSE_USER "
                            f"{chenv.get('CLICKHOUSE_USER')}")
        if url["password"] != chenv.get("CLICKHOUSE_PASSWORD"):
            problems.append(f"{name}: ClickHouse password {url['password']!r} is not the server's "
                            f"{chenv.get('CLICKHOUSE_PASSWORD')!r}")
    return problems


def env_default_problems(compose: Mapping[str, Any], var: str, what: str) -> list[str]:
    """Grafana gets ``var`` (with a default, so a fresh machine works), and every other service
    that names the same variable (e.g. where the ClickHouse user is created) has the same default."""
    genv = environment(compose["services"]["grafana"])
    if var not in genv:
        return [f"grafana's environment does not set {var} ({what})"]
    value, complete = interpolate(genv[var])
    if not complete or not value:
        return [f"grafana's {var} ({what}) has no value: require it (${{{var}:?...}}, a secret) or give a default"]
    problems = []
    if var in SECRETS and "${" + var + ":?" not in genv[var]:
        problems.append(f"grafana's {var} ({what}) is a secret: require it (${{{var}:?...}}), "
                        "unset it would be empty")
    for name, svc in compose["services"].items():
        for key, raw in environment(svc).items():
            for default in re.findall(r"\$\{" + var + r":?-([^}]*)\}", raw):
                if name != "grafana" and default != value:
                    problems.append(f"{name}: {key} defaults {var} to {default!r}, grafana to {value!r}")
    return problems


def alerting_problems(compose: Mapping[str, Any], contact_points: Mapping[str, Any]) -> list[str]:
    """Every ``$VAR`` of the alerting contact points is in grafana's environment, with a default."""
    problems = []
    for cp in contact_points.get("contactPoints") or []:
        for r in cp.get("receivers") or []:
            for key, raw in (r.get("settings") or {}).items():
                for var in re.findall(r"\$\{?(\w+)\}?", str(raw)):
                    problems += env_default_problems(compose, var, f"contact point {cp.get('name')} {key}")
    return problems


def grafana_problems(compose: Mapping[str, Any], datasources: Mapping[str, Any],
                     providers: Mapping[str, Any]) -> list[str]:
    problems, services = [], compose["services"]
    grafana, chenv = services["grafana"], environment(services["clickhouse"])
    genv = environment(grafana)
    ds = [d for d in datasources.get("datasources") or [] if d.get("uid") == DATASOURCE_UID]
    if len(ds) != 1:
        return [f"datasource uid {DATASOURCE_UID} defined {len(ds)} times"]
    d = ds[0]
    jd, secure = d.get("jsonData") or {}, d.get("secureJsonData") or {}
    if d.get("type") != DATASOURCE_TYPE:
        problems.append(f"datasource type {d.get('type')} is not {DATASOURCE_TYPE}")
    if DATASOURCE_TYPE not in (genv.get("GF_INSTALL_PLUGINS") or "").replace(" ", ",").split(","):
        problems.append(f"grafana does not install {DATASOURCE_TYPE} (GF_INSTALL_PLUGINS)")
    if jd.get("host") not in services or jd.get("protocol") not in ("native", "http"):
        problems.append(f"datasource host/protocol {jd.get('host')}/{jd.get('protocol')} is not a service/protocol")
    url = clickhouse_url(services["worker"])
    where = (jd.get("host"), str(jd.get("port")), jd.get("defaultDatabase"))
    if where != (url.get("host"), url.get("port"), url.get("db")):
        problems.append(f"datasource {jd.get('host')}:{jd.get('port')}/{jd.get('defaultDatabase')} is not where the "
                        f"worker writes ({url.get('host')}:{url.get('port')}/{url.get('db')})")
    if jd.get("username") != GRAFANA_DB_USER or jd.get("username") == chenv.get("CLICKHOUSE_USER"):
        problems.append(f"datasource username {jd.get('username')} is not the read-only ClickHouse user "
                        f"{GRAFANA_DB_USER} (Grafana runs any SQL a dashboard holds: never the writer)")
    m = re.fullmatch(r"\$\{?(\w+)\}?", str(secure.get("password", "")))
    if not m:
        problems.append("datasource password is not an environment reference ($VAR) in secureJsonData")
    else:
        problems += env_default_problems(compose, m.group(1), "the datasource password")
    targets = {src.rstrip("/"): target for kind, src, target in mounts(grafana) if kind == "bind"}
    if targets.get("./grafana/provisioning") != "/etc/grafana/provisioning":
        problems.append("./grafana/provisioning is not mounted at /etc/grafana/provisioning")
    paths = [(p.get("options") or {}).get("path") for p in providers.get("providers") or []]
    if paths != [targets.get("./grafana/dashboards")]:
        problems.append(f"dashboard provider paths {paths} != grafana's dashboards mount "
                        f"{targets.get('./grafana/dashboards')}")
    return problems


# --- the real files --------------------------------------------------------------------------

def test_services_exist(compose: dict[str, Any]) -> None:
    assert EXPECTED_SERVICES <= set(compose["services"])
    assert app_services(compose) == APP_SERVICES
    assert compose["services"]["kafka"]["image"] == "apache/kafka:3.9.0"
    assert compose["services"]["clickhouse"]["image"] == "clickhouse/clickhouse-server:24.8"
    assert compose["services"]["grafana"]["image"] == "grafana/grafana-oss:11.3.0"


def test_every_ccpulse_variable_is_a_valid_setting(compose: dict[str, Any]) -> None:
    assert env_problems(compose) == []
    assert any(k.startswith(ENV_PREFIX) for k in environment(compose["services"]["worker"]))


def test_app_services_run_real_ccpulse_commands(compose: dict[str, Any], image: Image) -> None:
    assert command_problems(compose, image) == []
    argv = service_argv(compose["services"]["setup"], image)
    assert [a[:2] for a in ccpulse_invocations(argv)[0]] == [["setup"], ["db", "migrate"]]


def test_dependencies_and_life_cycle(compose: dict[str, Any]) -> None:
    s = compose["services"]
    assert dependency_problems(compose) == []
    assert s["setup"]["depends_on"] == {"kafka": {"condition": "service_healthy"},
                                        "clickhouse": {"condition": "service_healthy"}}
    assert s["worker"]["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
    assert "worker" in s["simulator"]["depends_on"]
    assert s["setup"]["restart"] == "no" and s["worker"]["restart"] == "unless-stopped"
    # `--scale worker=N` needs neither a fixed name nor a fixed host port
    assert "container_name" not in s["worker"] and "ports" not in s["worker"]


def test_worker_is_reachable_and_checked_on_its_own_port(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    s = effective_settings(environment(worker))
    assert s.web_host == "0.0.0.0" and s.store == "memory://"
    port = re.search(r"127\.0\.0\.1:(\d+)/health", " ".join(worker["healthcheck"]["test"]))
    assert port and int(port.group(1)) == s.web_port


def test_bind_mounts_exist_and_volumes_are_declared(compose: dict[str, Any]) -> None:
    assert volume_problems(compose) == []


def test_kafka_listeners(compose: dict[str, Any]) -> None:
    assert kafka_problems(compose) == []
    kenv = environment(compose["services"]["kafka"])
    assert {"broker", "controller"} == set(kenv["KAFKA_PROCESS_ROLES"].split(","))
    assert kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(kenv["KAFKA_NODE_ID"] + "@")
    assert "healthcheck" in compose["services"]["kafka"]


def test_clickhouse_server(compose: dict[str, Any]) -> None:
    ch = compose["services"]["clickhouse"]
    assert clickhouse_problems(compose) == []
    assert environment(ch)["CLICKHOUSE_PASSWORD"].startswith("${CLICKHOUSE_PASSWORD:?")
    assert ch["ports"] and all(str(p).startswith("127.0.0.1:") for p in ch["ports"])
    assert ch["ulimits"]["nofile"]["soft"] >= 262144
    assert [k for k, _, t in mounts(ch) if t == "/var/lib/clickhouse"] == ["volume"]


def test_grafana_provisioning(compose: dict[str, Any]) -> None:
    ds, providers = _yaml(DATASOURCES), _yaml(DASHBOARD_PROVIDERS)
    assert ds["apiVersion"] == 1 and providers["apiVersion"] == 1
    assert grafana_problems(compose, ds, providers) == []
    assert (ROOT / "grafana" / "dashboards" / "README.md").exists()


def test_grafana_alerting_contact_point_is_configured(compose: dict[str, Any]) -> None:
    cps = _yaml(CONTACT_POINTS)
    assert cps["apiVersion"] == 1 and alerting_problems(compose, cps) == []
    url = cps["contactPoints"][0]["receivers"][0]["settings"]["url"]
    assert url == "$GRAFANA_ALERT_WEBHOOK_URL"  # a secret: from the environment, never committed


def test_dockerfile(image: Image, pyproject: dict[str, Any]) -> None:
    assert image.base == "python:3.11-slim-bookworm"
    assert image.entrypoint == ["ccpulse"] and image.cmd == ["worker"]
    assert dockerfile_problems(image, pyproject, (ROOT / ".dockerignore").read_text()) == []


# --- each check can fail -------------------------------------------------------------------

def test_setting_check_catches_wrong_names_and_values() -> None:
    assert setting_problems({"CCPULSE_BROKER": "kafka://kafka:9092", "OTHER": "x"}) == []
    assert "no field 'brokers'" in setting_problems({"CCPULSE_BROKERS": "kafka://kafka:9092"})[0]
    assert setting_problems({"CCPULSE_PARTITIONS": "0"})
    assert setting_problems({"CCPULSE_BROKER": "kafka:9092"})  # the validator wants kafka://
    assert setting_problems({"CCPULSE_CLICKHOUSE_URL": "${CH_URL:-http://clickhouse:8123}"})  # default checked
    assert setting_problems({"CCPULSE_CLICKHOUSE_URL": "${CH_URL}"}) == []  # no default: the deployer's call


def test_interpolation_follows_compose() -> None:
    assert interpolate("a${X:-b}c$$d") == ("abc$d", True)
    assert interpolate("${X:-b}", {"X": "x"}) == ("x", True)
    assert interpolate("${X}") == ("", False)


def test_command_check_catches_wrong_commands(compose: dict[str, Any], image: Image) -> None:
    for svc, cmd in [("worker", ["wrker"]), ("simulator", ["simulate", "--interactons", "5"])]:
        broken = copy.deepcopy(compose)
        broken["services"][svc]["command"] = cmd
        assert command_problems(broken, image), cmd
    for script in ["ccpulse setup && ccpulse db migrat", "ccpulse setup && rm -rf /tmp/x"]:
        broken = copy.deepcopy(compose)
        broken["services"]["setup"]["command"] = [script]
        assert command_problems(broken, image), script
    broken = copy.deepcopy(compose)
    del broken["services"]["setup"]["command"]  # `sh -c` with nothing to run: the image CMD is dropped
    assert command_problems(broken, image)


def test_volume_check_catches_missing_paths(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["grafana"]["volumes"].append("./grafana/no-such-dir:/x:ro")
    broken["services"]["clickhouse"]["volumes"].append("undeclared:/y")
    assert len(volume_problems(broken)) == 2


def test_dependency_check_catches_unhealthy_waits(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    del broken["services"]["clickhouse"]["healthcheck"]
    assert dependency_problems(broken)


def test_kafka_check_catches_unreachable_broker(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["environment"]["CCPULSE_BROKER"] = "kafka://kafka:29092"
    assert kafka_problems(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["kafka"]["ports"] = ["127.0.0.1:9092:9092"]
    assert kafka_problems(broken)


def test_clickhouse_check_catches_credential_drift(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"] = "${CH_PASS:-ccpulse}"
    assert clickhouse_problems(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["environment"]["CCPULSE_CLICKHOUSE_URL"] = "clickhouse://ccpulse:x@elsewhere:9000/db"
    assert clickhouse_problems(broken)


def test_grafana_check_catches_drift(compose: dict[str, Any]) -> None:
    ds, providers = _yaml(DATASOURCES), _yaml(DASHBOARD_PROVIDERS)
    for mutate in (lambda d, p: d["datasources"][0].update(uid="other"),
                   lambda d, p: d["datasources"][0].update(type="vertamedia-clickhouse-datasource"),
                   lambda d, p: d["datasources"][0]["jsonData"].update(username="default"),
                   lambda d, p: d["datasources"][0]["jsonData"].update(defaultDatabase="default"),
                   lambda d, p: d["datasources"][0]["jsonData"].update(port=8123),
                   lambda d, p: d["datasources"][0]["secureJsonData"].update(password="ccpulse"),
                   lambda d, p: d["datasources"][0]["jsonData"].update(username="ccpulse"),  # the writer
                   lambda d, p: d["datasources"][0]["secureJsonData"].update(password="$NOT_IN_GRAFANA_ENV"),
                   lambda d, p: p["providers"][0]["options"].update(path="/etc/grafana/dashboards")):
        d, p = copy.deepcopy(ds), copy.deepcopy(providers)
        mutate(d, p)
        assert grafana_problems(compose, d, p)
    var = ds["datasources"][0]["secureJsonData"]["password"].lstrip("$")
    for svc, value in [("grafana", "${%s}" % var), ("clickhouse", "${%s:-other}" % var)]:
        broken = copy.deepcopy(compose)  # no default; another service creating the user differently
        broken["services"][svc]["environment"][var] = value
        assert grafana_problems(broken, ds, providers), (svc, value)
    cps = _yaml(CONTACT_POINTS)
    broken = copy.deepcopy(compose)
    del broken["services"]["grafana"]["environment"]["GRAFANA_ALERT_WEBHOOK_URL"]
    assert alerting_problems(broken, cps)


def test_dockerfile_check_catches_missing_copies_and_root(image: Image, pyproject: dict[str, Any]) -> None:
    text = DOCKERFILE.read_text()
    for old, new in [("COPY sql/ ./sql/", ""), ("COPY schemas/ ./schemas/", ""),
                     ("COPY sql/ ./sql/", "COPY sql/ /opt/sql/"), ("PYTHONPATH=/app", "PYTHONPATH=/srv"),
                     ("USER ccpulse", "USER root"), ('CMD ["worker"]', 'CMD ["wrker"]'),
                     ('ENTRYPOINT ["ccpulse"]', 'ENTRYPOINT ["ccpulse"]\nENV CCPULSE_PARTITION=4')]:
        assert old in text, old
        assert dockerfile_problems(parse_dockerfile(text.replace(old, new)), pyproject), (old, new)
    assert dockerfile_problems(image, pyproject, "sql/\n")  # copied but left out of the build context


def test_clickhouse_access_file_is_mounted_current_and_its_passwords_are_set(compose: dict[str, Any]) -> None:
    """The users.d file the ClickHouse container reads is what `ccpulse db access` writes for
    the simulated tenants, and every password it reads from the environment has a value
    there: an unset variable would leave a user with an empty password."""
    import re

    from streams.clickhouse.access import users_xml

    ch = compose["services"]["clickhouse"]
    src = ROOT / "clickhouse" / "users.d" / "ccpulse-access.xml"
    assert [k for k, _, t in mounts(ch) if t == "/etc/clickhouse-server/users.d/ccpulse-access.xml"] == ["bind"]
    assert src.read_text() == users_xml("ccpulse", ["acme", "globex", "initech"]), \
        "regenerate: ccpulse db access --tenant acme --tenant globex --tenant initech --out " + str(src)
    env = environment(ch)
    for var in re.findall(r'from_env="([^"]+)"', src.read_text()):
        value, complete = interpolate(env.get(var, ""))
        assert var in env and complete and value, f"{var} must be required (${{{var}:?...}}) by the clickhouse service"
        assert not interpolate(env[var], {})[1], f"{var} must have no default: compose refuses to start without it"
    grafana_env = environment(compose["services"]["grafana"])
    assert interpolate(grafana_env["CLICKHOUSE_GRAFANA_PASSWORD"])[0] == interpolate(env["CLICKHOUSE_GRAFANA_PASSWORD"])[0]


def test_no_secret_has_a_default_and_compose_env_writes_each_once(compose: dict[str, Any], tmp_path: Path) -> None:
    """A fresh machine gets no guessable password: every secret is required (compose stops
    with the message), and `ccpulse compose-env` writes a random one for each, keeping
    those already written when run again."""
    import subprocess
    import sys

    secrets = {"CLICKHOUSE_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "CLICKHOUSE_GRAFANA_PASSWORD",
               "CLICKHOUSE_CLIENT_ACME_PASSWORD", "CLICKHOUSE_CLIENT_GLOBEX_PASSWORD",
               "CLICKHOUSE_CLIENT_INITECH_PASSWORD"}
    assert set(SECRETS) == secrets
    for name, svc in compose["services"].items():
        for key, raw in environment(svc).items():
            for var in secrets & set(re.findall(r"\$\{(\w+)", raw)):
                assert not interpolate(raw, {})[1], f"{name}: {key} gives {var} a default"
    assert compose["services"]["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    plugins = environment(compose["services"]["grafana"])["GF_INSTALL_PLUGINS"]
    assert re.fullmatch(r"grafana-clickhouse-datasource \d+\.\d+\.\d+", plugins), "pin the plugin's version"
    out = tmp_path / ".env"

    def run() -> dict[str, str]:
        subprocess.run([sys.executable, "-m", "streams.cli", "compose-env", "--compose", str(COMPOSE),
                        "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
        return dict(ln.split("=", 1) for ln in out.read_text().splitlines() if "=" in ln and not ln.startswith("#"))

    first = run()
    assert set(first) == secrets and len(set(first.values())) == len(secrets)
    assert all(len(v) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", v) for v in first.values())  # fits in a URL
    assert out.stat().st_mode & 0o077 == 0
    assert run() == first  # again: nothing changes
