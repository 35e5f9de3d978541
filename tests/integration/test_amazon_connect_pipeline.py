"""``ccpulse connect amazon-connect`` through a real broker and worker: the documented contact
records become exact records, the broken one a dead letter; reading the folder again changes
nothing."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_asterisk import pbx  # noqa: F401 -- the fixture: a worker on its own topics
from tests.services import REPO, run_cli, wait_for
from tests.streams.test_amazon_connect import EXPECTED

pytestmark = pytest.mark.integration
SQL = ("SELECT interaction_id, toString(direction), outcome, wait_ms, talk_ms, hold_ms, acw_ms, transfers "
       "FROM ccpulse.interactions_current WHERE tenant = 'aws' ORDER BY interaction_id")


def test_contact_records_become_exact_records(pbx: Any, tmp_path: Path) -> None:  # noqa: F811
    env, w = pbx
    folder = tmp_path / "ctr"
    folder.mkdir()
    for f in (REPO / "tests" / "data" / "amazon-connect").glob("*.json*"):
        shutil.copy(f, folder / f.name)
    p = run_cli(env, "connect", "amazon-connect", "--ctr", str(folder), "--tenant", "aws")
    assert "7 contact records read so far" in p.stdout and "1 dead letters" in p.stdout

    def stored() -> dict[str, tuple]:
        return {r[0]: tuple(r[1:]) for r in w.query(SQL)}

    wait_for(lambda: stored() == EXPECTED, 60, "the five contacts stored exactly", interval=1.0)
    wait_for(lambda: w.query("SELECT reason FROM ccpulse.dead_letters FINAL") == [("missing_field",)], 60,
             "the broken record dead-lettered", interval=1.0)
    run_cli(env, "connect", "amazon-connect", "--ctr", str(folder), "--tenant", "aws", "--from-start")
    time.sleep(3)
    assert stored() == EXPECTED
    assert w.query("SELECT count(), uniqExact(event_id) FROM ccpulse.raw_events FINAL WHERE tenant = 'aws'") == [(22, 22)]  # 6 + 2 + 5 + 4 + 5 events, each once
