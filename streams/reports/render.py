"""The client report as a file: CSV (stdlib), Excel (openpyxl: native charts the client can
edit) or PDF (reportlab: tables and vector charts, no browser or LaTeX to install). Each shows
the same figures: the month's totals and billing, the days, the queues against their goals."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from streams.reports.cells import neutral, pdf_fonts, text_cells
from streams.reports.client import ClientReport, Counts, VARIANT_LABELS

DAY_COLUMNS = ("day", "offered", "answered", "abandoned", "service_level", "abandon_rate", "asa_s", "handled",
               "aht_s", "talk_minutes", "billed_units", "csat")


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f} %"


def _num(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:,.{digits}f}"


def day_values(r: ClientReport, label: str, c: Counts) -> list[Any]:
    """One row of the daily table (raw numbers: rates as fractions, rounded for reading)."""
    def rnd(v: float | None, n: int) -> float | None:
        return None if v is None else round(v, n)

    return [label, c.offered, c.answered, c.abandoned, rnd(c.service_level(), 4), rnd(c.abandon_rate, 4),
            rnd(c.asa_s, 1), c.handled, rnd(c.aht_s, 1), float(c.talk_minutes), float(r.units(c)), rnd(c.csat, 4)]


def summary_lines(r: ClientReport) -> list[tuple[str, str]]:
    t, b = r.total, r.billing
    sl = t.service_level()
    return [
        ("Client", r.tenant), ("Month", r.month),
        ("Contacts offered", f"{t.offered:,}"), ("Answered", f"{t.answered:,}"), ("Abandoned", f"{t.abandoned:,}"),
        ("Service level", f"{_pct(sl)} against the contract's {_pct(r.sl_goal)}"
                          + ("" if sl is None else (" (met)" if sl >= r.sl_goal else " (missed)"))),
        ("Abandon rate", _pct(t.abandon_rate)), ("Average speed of answer", f"{_num(t.asa_s)} s"),
        ("Handled", f"{t.handled:,}"), ("Average handle time", f"{_num(t.aht_s)} s"),
        ("Customer satisfaction (4-5 of 5)", _pct(t.csat)),
        ("Billed", f"{r.units(t):,} {r.unit_label} x {b.rate:g} {b.currency} = {r.amount:,} {b.currency}"),
    ]


def to_csv(r: ClientReport) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(DAY_COLUMNS)
    for d, c in r.days:
        w.writerow(["" if v is None else neutral(v) for v in day_values(r, d.isoformat(), c)])
    w.writerow(["" if v is None else neutral(v) for v in day_values(r, "total", r.total)])
    w.writerow([])
    w.writerow([neutral(v) for v in ("billing", r.billing.unit, r.billing.rounding, r.billing.rate,
                                     r.billing.currency, str(r.units(r.total)), str(r.amount))])
    return out.getvalue()


def to_xlsx(r: ClientReport, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    ws.append([f"Monthly report: {r.tenant}, {r.month}"])
    ws["A1"].font = Font(bold=True, size=14)
    for k, v in summary_lines(r):
        ws.append([k, v])
    ws.append([])
    ws.append(["amount", float(r.amount), r.billing.currency])
    ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = 34, 70

    days = wb.create_sheet("Daily")
    days.append(list(DAY_COLUMNS))
    for d, c in r.days:
        days.append(day_values(r, d.isoformat(), c))
    days.append(day_values(r, "total", r.total))
    n = len(r.days)
    for col, fmt in (("E", "0.0%"), ("F", "0.0%"), ("L", "0.0%")):
        for row in range(2, n + 3):
            days[f"{col}{row}"].number_format = fmt
    if n:
        volumes = BarChart()
        volumes.title, volumes.y_axis.title = "Contacts per day", "contacts"
        volumes.add_data(Reference(days, min_col=2, max_col=4, min_row=1, max_row=n + 1), titles_from_data=True)
        volumes.set_categories(Reference(days, min_col=1, min_row=2, max_row=n + 1))
        days.add_chart(volumes, "N2")
        sl = LineChart()
        sl.title, sl.y_axis.title = "Service level per day", "share"
        sl.add_data(Reference(days, min_col=5, min_row=1, max_row=n + 1), titles_from_data=True)
        sl.set_categories(Reference(days, min_col=1, min_row=2, max_row=n + 1))
        days.add_chart(sl, "N20")

    queues = wb.create_sheet("Queues")
    queues.append(["queue", "offered", "answered", "abandoned", "service_level", "goal", "met", "formula"])
    for q in r.queues:
        queues.append([q.queue, q.counts.offered, q.counts.answered, q.counts.abandoned,
                       None if q.service_level is None else round(q.service_level, 4), q.goal,
                       "" if q.met is None else ("yes" if q.met else "no"), VARIANT_LABELS.get(q.variant, q.variant)])
    for sheet in wb.worksheets:
        text_cells(sheet)  # a queue named "=HYPERLINK(...)" stays a name
    wb.save(path)


def to_pdf(r: ClientReport, path: Path) -> None:
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.linecharts import HorizontalLineChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from xml.sax.saxutils import escape

    font, bold = pdf_fonts()
    styles = getSampleStyleSheet()
    for st in styles.byName.values():
        st.fontName = bold if "Heading" in st.name or st.name == "Title" else font
    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("FONTSIZE", (0, 0), (-1, -1), 8),
                       ("FONTNAME", (0, 0), (-1, -1), font), ("FONTNAME", (0, 0), (-1, 0), bold),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ee")),
                       ("ALIGN", (1, 1), (-1, -1), "RIGHT")])
    story: list[Any] = [Paragraph(escape(f"Monthly report: {r.tenant}, {r.month}"), styles["Title"])]
    summary = Table([list(x) for x in summary_lines(r)], colWidths=[70 * mm, 170 * mm])
    summary.setStyle(TableStyle([("FONTSIZE", (0, 0), (-1, -1), 9), ("FONTNAME", (0, 0), (-1, -1), font),
                                 ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.grey)]))
    story += [summary, Spacer(1, 6 * mm)]

    if r.days:
        labels = [d.strftime("%d") for d, _ in r.days]
        chart = Drawing(250 * mm, 60 * mm)
        bars = VerticalBarChart()
        bars.x, bars.y, bars.width, bars.height = 15 * mm, 8 * mm, 110 * mm, 45 * mm
        bars.data = [[c.offered for _, c in r.days], [c.answered for _, c in r.days], [c.abandoned for _, c in r.days]]
        bars.categoryAxis.categoryNames = labels
        bars.categoryAxis.labels.fontSize = 6
        bars.valueAxis.valueMin = 0
        for i, colour in enumerate((colors.HexColor("#7a8ca5"), colors.HexColor("#2e7d32"), colors.HexColor("#c62828"))):
            bars.bars[i].fillColor = colour
        chart.add(bars)
        chart.add(String(15 * mm, 55 * mm, "Contacts per day: offered, answered, abandoned", fontSize=8, fontName=font))
        line = HorizontalLineChart()
        line.x, line.y, line.width, line.height = 140 * mm, 8 * mm, 100 * mm, 45 * mm
        line.data = [[100 * (c.service_level() or 0) for _, c in r.days], [100 * r.sl_goal] * len(r.days)]
        line.categoryAxis.categoryNames = labels
        line.categoryAxis.labels.fontSize = 6
        line.valueAxis.valueMin, line.valueAxis.valueMax = 0, 100
        line.lines[0].strokeColor, line.lines[1].strokeColor = colors.HexColor("#1565c0"), colors.HexColor("#c62828")
        chart.add(line)
        chart.add(String(140 * mm, 55 * mm, "Service level per day (%) against the goal (red)", fontSize=8, fontName=font))
        story += [chart, Spacer(1, 4 * mm)]

    def text(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:,.3f}" if v < 1.0001 and v != int(v) else f"{v:,.1f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    rows = [list(DAY_COLUMNS)] + [[text(v) for v in day_values(r, d.isoformat(), c)] for d, c in r.days]
    rows.append([text(v) for v in day_values(r, "total", r.total)])
    daily = Table(rows, repeatRows=1)
    daily.setStyle(grid)
    story += [Paragraph("Days (the client's business days)", styles["Heading2"]), daily, Spacer(1, 6 * mm)]
    qrows = [["queue", "offered", "answered", "abandoned", "service level", "goal", "met", "formula"]]
    for q in r.queues:
        qrows.append([q.queue, f"{q.counts.offered:,}", f"{q.counts.answered:,}", f"{q.counts.abandoned:,}",
                      _pct(q.service_level), _pct(q.goal), "" if q.met is None else ("yes" if q.met else "no"),
                      VARIANT_LABELS.get(q.variant, q.variant)])
    queues = Table(qrows, repeatRows=1)
    queues.setStyle(grid)
    story += [Paragraph("Queues against their goals", styles["Heading2"]), queues]
    SimpleDocTemplate(str(path), pagesize=landscape(A4), title=escape(f"{r.tenant} {r.month}"), author="ccpulse",
                      leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm).build(story)


def write(r: ClientReport, path: Path, fmt: str) -> None:
    if fmt == "csv":
        path.write_text(to_csv(r), encoding="utf-8")
    elif fmt == "xlsx":
        to_xlsx(r, path)
    elif fmt == "pdf":
        to_pdf(r, path)
    else:
        raise ValueError(f"format {fmt!r}: pdf, csv or xlsx")

