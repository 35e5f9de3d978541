"""The command line: clear one-line errors with exit code 2, and the local broker's life cycle."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.services import free_port, run_cli


def _env(tmp_path: Path, **kw: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    env.update({"CCPULSE_STATE_DIR": str(tmp_path / "state"), "CCPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'ch'}"})
    env.update(kw)
    return env


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    p = run_cli(_env(tmp_path, CCPULSE_PARTITIONS="many"), "config", check=False)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("ccpulse: setting 'partitions'") and "Traceback" not in p.stderr


def test_bad_yaml_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("partitions: [1,\n")
    p = run_cli(_env(tmp_path), "--config", str(cfg), "config", check=False)
    assert p.returncode == 2 and "not valid YAML" in p.stderr and "Traceback" not in p.stderr
    cfg.write_text("partitons: 3\n")
    p = run_cli(_env(tmp_path), "--config", str(cfg), "config", check=False)
    assert p.returncode == 2 and "partitons" in p.stderr


def test_yaml_file_and_env_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("partitions: 8\napp_id: from-yaml\n")
    p = run_cli(_env(tmp_path, CCPULSE_APP_ID="from-env", CCPULSE_CLICKHOUSE_URL="clickhouse://u:s3cret@h:9000/d"),
                "--config", str(cfg), "config")
    lines = dict(line.split(None, 1) for line in p.stdout.splitlines())
    assert (lines["partitions"], lines["app_id"]) == ("8", "from-env")
    assert "s3cret" not in p.stdout and lines["clickhouse_url"] == "clickhouse://u:***@h:9000/d"


def test_unreachable_broker_is_a_clear_error(tmp_path: Path) -> None:
    p = run_cli(_env(tmp_path, CCPULSE_BROKER=f"kafka://127.0.0.1:{free_port()}"), "setup", check=False, timeout=60)
    assert p.returncode == 2 and "no Kafka broker" in p.stderr and "Traceback" not in p.stderr


def test_worker_refuses_to_start_without_its_broker_or_clickhouse(tmp_path: Path, broker) -> None:
    """One line and exit 2, before faust starts (it would end in a traceback)."""
    p = run_cli(_env(tmp_path, CCPULSE_BROKER=f"kafka://127.0.0.1:{free_port()}"), "worker", check=False, timeout=60)
    assert p.returncode == 2 and "no Kafka broker" in p.stderr and "Traceback" not in p.stderr + p.stdout
    p = run_cli(_env(tmp_path, CCPULSE_BROKER=broker.url,
                     CCPULSE_CLICKHOUSE_URL=f"clickhouse://default:@127.0.0.1:{free_port()}/ccpulse"),
                "worker", check=False, timeout=60)
    assert p.returncode == 2 and "unreachable" in p.stderr and "check clickhouse_url" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_unknown_queue_in_a_rule_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "centre.yaml"
    cfg.write_text("tenants:\n  acme:\n    queues: {sales: {}}\n"
                   "alerts:\n  rules:\n    - {name: r1, metric: service_level, threshold: 0.8, queues: [nope]}\n")
    p = run_cli(_env(tmp_path, CCPULSE_CENTRE_CONFIG=str(cfg)), "worker", check=False, timeout=60)
    assert p.returncode == 2 and "names queue 'nope'" in p.stderr and "Traceback" not in p.stderr + p.stdout


def test_dev_broker_lifecycle_and_taken_port(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, CCPULSE_DEV_BROKER_PORT=str(port), CCPULSE_BROKER=f"kafka://127.0.0.1:{port}")
    assert run_cli(env, "dev", "status", check=False).returncode == 1
    try:
        assert "broker running" in run_cli(env, "dev", "up").stdout
        assert "running" in run_cli(env, "dev", "status").stdout
        assert "broker running" in run_cli(env, "dev", "up").stdout  # idempotent
        assert "created" in run_cli(env, "setup").stdout
        assert "created" not in run_cli(env, "setup").stdout
    finally:
        assert "stopped" in run_cli(env, "dev", "down").stdout
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        p = run_cli(env, "dev", "up", check=False)
    assert p.returncode == 2 and f"port {port} is taken" in p.stderr


def test_sql_error_is_reported(tmp_path: Path) -> None:
    env = _env(tmp_path)
    run_cli(env, "db", "migrate")
    p = run_cli(env, "sql", "SELECT nope FROM ccpulse.interactions", check=False)
    assert p.returncode == 2 and "query failed" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [["replay", "/no/such/file", "--format", "jsonl"]])
def test_missing_file_is_reported(tmp_path: Path, args: list[str]) -> None:
    p = run_cli(_env(tmp_path), *args, check=False)
    assert p.returncode == 2 and "no such file" in p.stderr


def test_dev_down_stops_only_its_own_broker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A stale pid file naming another process (the pid was reused) must not get it killed."""
    import subprocess
    import sys

    from streams.cli import devstack

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = tmp_path / "broker" / "tansu.pid"
        pid_file.parent.mkdir(parents=True)
        pid_file.write_text(str(other.pid))
        said = devstack.down(tmp_path, 1)
        assert "not a Tansu broker" in said and other.poll() is None and not pid_file.exists()
    finally:
        other.kill()
        other.wait()
