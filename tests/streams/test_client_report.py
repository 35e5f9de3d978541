"""The client report: figures and bills worked out by hand, then each file read back as the
client would open it (CSV parsed, the workbook loaded, the PDF's text extracted and its first
page rendered to pixels)."""
from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from streams.config.centre import BillingConfig
from streams.reports.client import COUNT_FIELDS, build, month_of
from streams.reports.render import to_csv, write

#: (day, queue, counts in COUNT_FIELDS order)
ROWS = [
    ("2026-03-02", "sales", dict(offered=10, answered=8, answered_in_sl=6, abandoned=2, abandoned_in_sl=1,
                                 short_abandons=1, wait_answered_ms=80_000, handled=8, talk_ms=8 * 61_000,
                                 hold_ms=0, acw_ms=8 * 30_000, billable_talk_minutes=16, csat_ratings=4, csat_good=3)),
    ("2026-03-02", "support", dict(offered=5, answered=5, answered_in_sl=5, handled=5, talk_ms=5 * 120_000,
                                   billable_talk_minutes=10, wait_answered_ms=5_000)),
    ("2026-03-03", "sales", dict(offered=4, answered=2, answered_in_sl=1, abandoned=2, abandoned_in_sl=2,
                                 handled=2, talk_ms=90_500, billable_talk_minutes=3, wait_answered_ms=50_000)),
]


def rows() -> list[tuple]:
    return [(d, q, *(c.get(f, 0) for f in COUNT_FIELDS)) for d, q, c in ROWS]


def report(**billing: object):  # type: ignore[no-untyped-def]
    settings = {"sales": (0.9, "ignore_abandons"), "support": (0.8, "abandons_count_against")}
    return build("acme", "2026-03", rows(), settings, BillingConfig(**billing), 0.8)


def test_totals_service_levels_and_the_three_billing_models() -> None:
    r = report(unit="contact", rate=1.25, sl_goal=0.85)
    t = r.total
    assert (t.offered, t.answered, t.abandoned, t.handled) == (19, 15, 4, 15)
    assert t.service_level() == pytest.approx(12 / (15 + 4 - 1))       # the contract's formula: default variant
    assert r.sl_goal == 0.85 and t.abandon_rate == pytest.approx(3 / 18)
    assert [d for d, _ in r.days] == [date(2026, 3, 2), date(2026, 3, 3)]
    sales = next(q for q in r.queues if q.queue == "sales")
    assert sales.service_level == pytest.approx(7 / 10) and sales.met is False  # its own ignore_abandons, goal 0.9
    assert r.units(t) == 15 and r.amount == Decimal("18.75")
    per_second = report(unit="talk_minute", rounding="second", rate=0.5)
    talk_ms = 8 * 61_000 + 5 * 120_000 + 90_500                          # 1,178,500 ms = 19.6417 min
    assert per_second.units(per_second.total) == Decimal("19.64") and per_second.amount == Decimal("9.82")
    started = report(unit="talk_minute", rounding="started_minute", rate=0.5)
    assert started.units(started.total) == 29 and started.amount == Decimal("14.50")  # 16 + 10 + 3
    assert talk_ms / 60_000 < 29


def test_a_month_must_be_written_as_year_and_month() -> None:
    assert month_of("2026-03") == (2026, 3)
    for bad in ("2026-3", "2026-13", "March", "2026-03-01"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_of(bad)


def test_csv_reads_back_with_the_days_the_total_and_the_bill() -> None:
    lines = list(csv.reader(io.StringIO(to_csv(report(unit="talk_minute", rounding="started_minute", rate=0.5)))))
    header, *body = lines
    table = [dict(zip(header, line)) for line in body[:3]]
    assert [t["day"] for t in table] == ["2026-03-02", "2026-03-03", "total"]
    assert table[2]["handled"] == "15" and table[2]["billed_units"] == "29.0"
    assert body[-1] == ["billing", "talk_minute", "started_minute", "0.5", "EUR", "29", "14.50"]


def test_workbook_has_the_summary_the_days_two_charts_and_the_queues(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = tmp_path / "r.xlsx"
    write(report(unit="contact", rate=2, currency="GBP"), path, "xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Summary", "Daily", "Queues"]
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(values_only=True) if r and r[0]}
    assert summary["amount"] == 30.0 and summary["Handled"] == "15"
    daily = list(wb["Daily"].iter_rows(values_only=True))
    assert daily[-1][0] == "total" and daily[-1][7] == 15 and len(wb["Daily"]._charts) == 2
    queues = {r[0]: r for r in wb["Queues"].iter_rows(min_row=2, values_only=True)}
    assert queues["sales"][4] == 0.7 and queues["sales"][6] == "no" and queues["support"][6] == "yes"


def test_pdf_text_and_its_rendered_first_page(tmp_path: Path) -> None:
    import pypdfium2
    from pypdf import PdfReader

    path = tmp_path / "r.pdf"
    write(report(unit="talk_minute", rounding="started_minute", rate=0.5, currency="GBP", sl_goal=0.85), path, "pdf")
    text = " ".join(p.extract_text() for p in PdfReader(path).pages)
    assert "Monthly report: acme, 2026-03" in text
    assert "29 talk minutes (each contact rounded up) x 0.5 GBP = 14.50 GBP" in text
    assert "66.7 % against the contract's 85.0 % (missed)" in text
    page = pypdfium2.PdfDocument(path)[0].render(scale=1).to_pil().convert("RGB")
    data = page.tobytes()
    pixels = [tuple(data[i:i + 3]) for i in range(0, len(data), 3)]
    green = sum(1 for r, g, b in pixels if abs(r - 0x2E) < 20 and abs(g - 0x7D) < 20 and abs(b - 0x32) < 20)
    ink = sum(1 for p in pixels if p != (255, 255, 255))
    assert green > 200, "the answered bars are drawn"
    assert 0.02 < ink / len(pixels) < 0.6, "a page with text and charts, neither blank nor black"
