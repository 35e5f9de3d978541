"""Files people open are data, not code (issue 24).

A tenant's producers name its queues, agents and dispositions, and those names reach the
CSV and Excel files a client opens. A cell that starts with ``= + - @``, a tab or a carriage
return is a formula to a spreadsheet (``=HYPERLINK(...)`` sends the reader's data away), so:

- in CSV such a text cell is written with a leading apostrophe (OWASP's "CSV injection"
  rule); numbers stay numbers;
- in Excel every text cell is stored as text (openpyxl stores a string starting with ``=``
  as a formula unless told otherwise).

PDFs draw names with an embedded Unicode font (DejaVu Sans, from Debian's fonts-dejavu-core,
Bitstream Vera / DejaVu licence): Latin and Cyrillic names print as themselves.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)


def neutral(v: Any) -> Any:
    """A CSV cell: text that a spreadsheet would run gets a leading apostrophe."""
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


def text_cells(ws: Any) -> None:
    """Every string cell of an openpyxl sheet stored as text, never as a formula."""
    for row in ws.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and cell.data_type == "f":
                cell.data_type = "s"


@lru_cache(maxsize=1)
def pdf_fonts() -> tuple[str, str]:
    """(regular, bold) font names registered with reportlab: DejaVu Sans, embedded in the PDF."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for d in FONT_DIRS:
        regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont("DejaVuSans", str(regular)))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(bold)))
            pdfmetrics.registerFontFamily("DejaVuSans", normal="DejaVuSans", bold="DejaVuSans-Bold",
                                          italic="DejaVuSans", boldItalic="DejaVuSans-Bold")
            return "DejaVuSans", "DejaVuSans-Bold"
    raise RuntimeError("the PDF report needs the DejaVu fonts: apt-get install fonts-dejavu-core "
                       "(./run installs it)")
