"""``ccpulse report client`` as a centre manager runs it, on a real pipeline's figures (the
worker owns the embedded engine, so the report reads through its endpoint): each format read
back, its figures and bill against the simulator's truth."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.integration.conftest import SimulatedRun
from tests.services import run_cli

pytestmark = pytest.mark.integration


def test_the_monthly_report_bills_the_clients_queue_contacts_by_started_minute(simulated_run: SimulatedRun,
                                                                              tmp_path: Path) -> None:
    from openpyxl import load_workbook
    from pypdf import PdfReader

    queued = [r for r in simulated_run.sim.truth.values() if r["tenant"] == "acme" and r["offered_at_ms"] is not None]
    handled = [r for r in queued if r["outcome"] == "answered"]
    minutes = sum(-(-r["talk_ms"] // 60_000) for r in handled)  # each contact rounded up (the centre file's contract)
    outs = {}
    for fmt in ("csv", "xlsx", "pdf"):
        outs[fmt] = tmp_path / f"acme.{fmt}"
        p = run_cli(simulated_run.env, "report", "client", "--tenant", "acme", "--month", "2026-03",
                    "--format", fmt, "--out", str(outs[fmt]))
        assert f"wrote {outs[fmt]}" in p.stdout and f"Handled: {len(handled):,}" in p.stdout
    rows = list(csv.DictReader(outs["csv"].open()))
    total = next(r for r in rows if r["day"] == "total")
    assert (int(total["offered"]), int(total["handled"]), float(total["billed_units"])) == (
        len(queued), len(handled), minutes)
    summary = {r[0]: r[1] for r in load_workbook(outs["xlsx"])["Summary"].iter_rows(values_only=True) if r and r[0]}
    assert summary["amount"] == pytest.approx(minutes * 0.5)
    text = " ".join(page.extract_text() for page in PdfReader(outs["pdf"]).pages)
    assert f"{minutes:,} talk minutes (each contact rounded up) x 0.5 GBP = {minutes * 0.5:,.2f} GBP" in text
    assert "against the contract's 85.0 %" in text


def test_a_report_for_an_unknown_client_or_month_says_what_to_do(simulated_run: SimulatedRun, tmp_path: Path) -> None:
    p = run_cli(simulated_run.env, "report", "client", "--tenant", "nobody", "--month", "2026-03", check=False)
    assert p.returncode == 2 and "no figures for tenant 'nobody' in 2026-03" in p.stderr
    p = run_cli(simulated_run.env, "report", "client", "--tenant", "acme", "--month", "March", check=False)
    assert p.returncode == 2 and "YYYY-MM" in p.stderr
    p = run_cli(simulated_run.env, "report", "client", "--tenant", "acme' OR 1=1", "--month", "2026-03", check=False)
    assert p.returncode == 2 and "is not a tenant name" in p.stderr
