"""Files people open are data, not code (issue 24). Who writes into them: any producer of a
tenant names its queues; the client opens the CSV and the workbook."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from streams.cli.common import print_result
from streams.config.centre import BillingConfig
from streams.reports.client import COUNT_FIELDS, build
from streams.reports.render import to_csv, write

EVIL = "=HYPERLINK(A3&B3,A3)"


def _report(tenant: str = "acme", queue: str = EVIL):  # type: ignore[no-untyped-def]
    counts = dict(offered=10, answered=8, answered_in_sl=6, abandoned=2, handled=8, talk_ms=480_000,
                  billable_talk_minutes=8)
    row = ("2026-03-02", queue, *(counts.get(f, 0) for f in COUNT_FIELDS))
    return build(tenant, "2026-03", [row], {queue: (0.8, "abandons_count_against")},
                 BillingConfig(unit="contact", rate=1, currency="=1+2"), 0.8)


def test_a_queue_named_like_a_formula_is_text_in_the_workbook(tmp_path: Path) -> None:
    path = tmp_path / "r.xlsx"
    write(_report(), path, "xlsx")
    from openpyxl import load_workbook

    ws = load_workbook(path)["Queues"]
    assert ws["A2"].value == EVIL and ws["A2"].data_type == "s"
    with zipfile.ZipFile(path) as z:
        sheets = [z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/")]
    assert not any("<f>" in x or "<f " in x for x in sheets)  # no formula anywhere in the file


def test_csv_cells_that_would_run_get_an_apostrophe_and_numbers_stay_numbers() -> None:
    out = io.StringIO()
    print_result(["queue", "n", "delta"], [[EVIL, 5, -3], ["@SUM(1)", 1, 0], ["\tx", 2, 1], ["sales", 3, 2]], "csv", out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[1:] == [["'" + EVIL, "5", "-3"], ["'@SUM(1)", "1", "0"], ["'\tx", "2", "1"], ["sales", "3", "2"]]
    billing = list(csv.reader(io.StringIO(to_csv(_report()))))[-1]
    assert billing[4] == "'=1+2"


def test_names_in_any_script_or_with_markup_print_in_the_pdf(tmp_path: Path) -> None:
    for tenant, queue in (("acme<b", "sales&<i>"), ("Ромашка", "Продажи")):
        path = tmp_path / "r.pdf"
        write(_report(tenant, queue), path, "pdf")
        data = path.read_bytes()
        assert data.startswith(b"%PDF") and b"DejaVuSans" in data  # the Unicode font, embedded
