"""The centre file: defaults, overrides, business hours, and errors that name the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from streams.config.centre import load_centre
from streams.config.settings import ConfigError
from tests.services import run_cli

GOOD = """
defaults: {sl_threshold_s: 20, sl_goal: 0.8}
tenants:
  acme:
    timezone: Europe/London
    business_hours: {mon-fri: "08:00-18:00", sat: "09:00-13:00"}
    queue_defaults: {sl_threshold_s: 30}
    queues:
      sales: {sl_goal: 0.9, sl_variant: ignore_abandons}
"""


def test_overrides_apply_in_order(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(GOOD)
    c = load_centre(f)
    sales, support, other = c.queue("acme", "sales"), c.queue("acme", "support"), c.queue("globex", "x")
    assert (sales.sl_threshold_s, sales.sl_goal, sales.sl_variant) == (30, 0.9, "ignore_abandons")
    assert (support.sl_threshold_s, support.sl_goal) == (30, 0.8)
    assert (other.sl_threshold_s, other.sl_goal, other.sl_variant) == (20, 0.8, "abandons_count_against")
    t = c.tenant("acme")
    assert t.is_open(0, 8 * 60) and not t.is_open(0, 18 * 60) and t.is_open(5, 12 * 60) and not t.is_open(6, 600)
    assert c.tenant("nobody").is_open(6, 0)
    assert load_centre(None).windows.rolling_minutes == (5, 15, 60)


@pytest.mark.parametrize("text, key", [
    ("tenants: {acme: {queues: {sales: {sl_goal: 1.5}}}}", "tenants.acme.queues.sales.sl_goal"),
    ("tenants: {acme: {timezone: Mars/Olympus}}", "tenants.acme.timezone"),
    ("defaults: {sl_variant: best_case}", "defaults.sl_variant"),
    ("tenants: {acme: {business_hours: {weekdays: '9-5'}}}", "tenants.acme.business_hours"),
    ("windows: {rolling_minutes: [0]}", "windows.rolling_minutes"),
    ("tenants: {acme: {queus: {}}}", "tenants.acme.queus"),
])
def test_errors_name_the_offending_key(tmp_path: Path, text: str, key: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_centre(f)
    assert f"{f}: {key}:" in str(e.value)


def test_cli_reports_a_bad_centre_file_in_one_line(tmp_path: Path) -> None:
    import os

    f = tmp_path / "c.yaml"
    f.write_text("tenants: {acme: {queues: {sales: {sl_threshold_s: -3}}}}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCPULSE_")}
    env.update(CCPULSE_CENTRE_CONFIG=str(f), CCPULSE_STATE_DIR=str(tmp_path / "s"))
    p = run_cli(env, "config", check=False)
    assert p.returncode == 2 and "tenants.acme.queues.sales.sl_threshold_s" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    f.write_text(":")
    p = run_cli(env, "config", check=False)
    assert p.returncode == 2 and "not valid YAML" in p.stderr


def test_the_example_centre_file_loads_and_says_what_the_demo_runs_with() -> None:
    from streams.config.centre import EXAMPLE_CENTRE

    c = load_centre(EXAMPLE_CENTRE)
    assert sorted(c.tenants) == ["acme", "globex", "initech"]  # the simulator's tenants
    assert c.queue("acme", "acme-sales").sl_threshold_s == 30 and c.queue("acme", "acme-sales").sl_goal == 0.9
    assert c.queue("globex", "globex-billing").sl_threshold_s == 30  # the tenant's queue defaults
    assert c.queue("nobody", "q").sl_threshold_s == 20                # an unknown queue: the defaults
    assert [r.name for r in c.alerts.rules] == ["sl-below-goal", "abandons-high", "long-wait", "nobody-ready"]
    text = EXAMPLE_CENTRE.read_text()
    assert sum(line.strip().startswith("#") or " # " in line for line in text.splitlines()) >= 30  # commented


def test_commands_of_one_state_folder_share_its_centre_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.config.settings import Settings

    monkeypatch.delenv("CCPULSE_CENTRE_CONFIG", raising=False)
    assert Settings(state_dir=tmp_path).centre_config is None  # nothing there: all defaults
    (tmp_path / "centre.yaml").write_text("tenants: {acme: {timezone: UTC}}\n")
    assert Settings(state_dir=tmp_path).centre_config == tmp_path / "centre.yaml"
    other = tmp_path / "mine.yaml"
    assert Settings(state_dir=tmp_path, centre_config=other).centre_config == other  # the configured one wins
