"""Generated access and secrets (issue 24): a client's ClickHouse user is its own, whatever its
tenant is called; secrets are private from their first byte; masking hides any password."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from streams.clickhouse.access import client_user, client_users, users_xml
from streams.redact import redact
from tests.services import run_cli

LOOKALIKES = ["acme", "acme-1", "acme_1", "acme.1", "ACME", "Acme", "acme__1", "Ромашка", "ромашка"]


def test_every_tenant_gets_a_user_and_a_secret_of_its_own() -> None:
    users = client_users(LOOKALIKES)
    assert len(set(users.values())) == len(LOOKALIKES)
    assert len({f"CLICKHOUSE_{u.upper()}_PASSWORD" for u in users.values()}) == len(LOOKALIKES)
    assert users["acme"] == "client_acme" and users["acme_1"] == "client_acme_1"  # plain names unchanged
    assert all(re.fullmatch(r"client_[a-z0-9_]+", u) for u in users.values())
    xml = users_xml("ccpulse", LOOKALIKES)
    for t, u in users.items():
        assert xml.count(f"<{u}>") == 1
    assert client_user("acme-1") != client_user("acme.1") != client_user("acme_1")


def test_compose_env_writes_a_private_file_even_over_a_readable_leftover(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("x: ${GRAFANA_ADMIN_PASSWORD:?set it}\ny: ${CLICKHOUSE_PASSWORD:?set it}\n")
    leftover = tmp_path / ".env.tmp"
    leftover.write_text("old")
    leftover.chmod(0o644)
    old = os.umask(0)
    try:
        run_cli(dict(os.environ), "compose-env", "--compose", str(compose), "--out", str(tmp_path / ".env"))
    finally:
        os.umask(old)
    env = tmp_path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "GRAFANA_ADMIN_PASSWORD=" in env.read_text() and not leftover.exists()


def test_masking_hides_any_password_a_url_can_carry() -> None:
    for url in ("clickhouse://default:p@ss:w@rd@host:9000/db", "clickhouse://u:a@b@h", "kafka://u:%40x@h:9092"):
        masked = redact(f"connecting to {url} now")
        assert "***" in masked and "ss" not in masked.split("://")[1].split("@")[0].replace("***", "")
        assert masked.endswith(" now") and "@h" in masked or "@host" in masked
    assert redact("clickhouse://default:p@ss:w@rd@host:9000/db") == "clickhouse://default:***@host:9000/db"
