"""XLSX export for officials who reuse the numbers: a summary sheet and one sheet per commune.

Cells hold numbers (not text) with number formats, so Excel or LibreOffice show them in
the reader's locale (``1.234,5`` on a Vietnamese system) and sums keep working. Dates carry
an explicit ``dd/mm/yyyy hh:mm`` format: a locale-dependent date format would read 5 October
as 10 May on a Vietnamese desk. Every sheet prints on A4 landscape, one page wide, with the
header row repeated on each page and the method notes (merged across the table's width,
wrapped) below the table. Empty cells are *no data*, never 0. Checked by converting to PDF
with LibreOffice in ``tests/reports/test_wifi_report_formats.py``.
"""

from __future__ import annotations

import io
import math
from datetime import datetime

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from cloud.inventory import Inventory
from cloud.reports.i18n import Lang, day, moment, t
from cloud.reports.render_html import freshness, notes_of
from cloud.reports.table import COLUMNS, commune_names, row_name
from cloud.reports.wifi_model import Row, WifiReport

HEADER_FILL = PatternFill("solid", fgColor="1F6F8B")
HEADER_FONT = Font(bold=True, color="FFFFFF")
TOTAL_FONT = Font(bold=True)
#: Level, id, name, commune, then the metric columns (characters; the print scales to fit):
#: wide enough for a date with its time and three busiest hours, or they would print as ###.
WIDTHS = [10, 11, 30, 12] + [{"peak_at": 17, "busiest_hours": 15}.get(c.key, 11) for c in COLUMNS]
LEAD = 4  # columns before the metrics


def _sheet_title(name: str) -> str:
    bad = "[]:*?/\\"
    return "".join("-" if ch in bad else ch for ch in name)[:31]


def _wrapped_row(ws: Worksheet, text: str, *, font: Font | None = None) -> None:
    """A line of text merged across the table's width and wrapped (so it prints, not cut off)."""
    ws.append([text])
    r = ws.max_row
    ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=len(WIDTHS))
    cell = ws.cell(r, 1)
    cell.alignment = Alignment(wrap_text=True, vertical="top")
    if font is not None:
        cell.font = font
    per_line = sum(WIDTHS) * 1.1  # characters of the default font across the merged width
    ws.row_dimensions[r].height = 15 * max(1, math.ceil(len(text) / per_line)) + 2


def _table(
    ws: Worksheet, report: WifiReport, rows: list[Row], lang: Lang, title: str, communes: dict[str, str]
) -> None:
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([f"{t('period', lang)}: {day(report.first, lang)} – {day(report.last, lang)}"])
    ws.append(
        [f"{t('previous', lang)}: {day(report.previous_first, lang)} – {day(report.previous_last, lang)}"]
    )
    until = report.rollups.data_until if report.rollups else report.measured_until
    fresh = f"{t('rollups', lang)}: {freshness(report, lang)}"
    _wrapped_row(ws, f"{t('measured_until', lang)}: {moment(until, lang)} · {fresh}")
    ws.append([])
    header = [t("level", lang), t("id", lang), t("name", lang), t("commune", lang)]
    ws.append(header + [c.label(lang) for c in COLUMNS])
    hr = ws.max_row
    for cell in ws[hr]:
        cell.fill = HEADER_FILL
        cell.font = HEADER_FONT
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    ws.row_dimensions[hr].height = 62
    for row in rows:
        values: list[object] = [
            t(f"level_{row.level}", lang),
            row.id,
            row_name(row, lang),
            communes.get(row.commune, row.commune),
        ]
        for c in COLUMNS:
            v = c.get(row)
            if isinstance(v, datetime):
                v = v.replace(tzinfo=None)  # Excel has no time zones; the footnotes say which
            values.append(v)
        ws.append(values)
        r = ws.max_row
        for i, c in enumerate(COLUMNS, start=LEAD + 1):
            ws.cell(r, i).number_format = c.xlsx_format  # peak_at: dd/mm/yyyy hh:mm, never the locale's
        if row.level in ("all", "commune"):
            for cell in ws[r]:
                cell.font = TOTAL_FONT
    ws.freeze_panes = ws.cell(hr + 1, LEAD + 1)
    for i, wdt in enumerate(WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = wdt
    ws.append([])
    _wrapped_row(ws, t("legend_no_data", lang))
    ws.append([t("footnotes", lang)])
    ws.cell(ws.max_row, 1).font = TOTAL_FONT
    for i, note in enumerate(notes_of(report, lang), start=1):
        _wrapped_row(ws, f"{i}. {note}")
    _print_setup(ws, hr)


def _print_setup(ws: Worksheet, header_row: int) -> None:
    """A4 landscape, one page wide (as many pages down as needed), header row on every page."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.print_area = f"A1:{get_column_letter(len(WIDTHS))}{ws.max_row}"
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.5
    ws.oddFooter.center.text = "&P / &N"


def render_xlsx(report: WifiReport, lang: Lang, inventory: Inventory) -> bytes:
    communes = commune_names(inventory)
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = _sheet_title(t("summary", lang))
    summary_rows = [report.total, *report.communes, *report.sites]
    _table(ws, report, summary_rows, lang, t("title", lang), communes)
    for c in report.communes:
        sheet = wb.create_sheet(_sheet_title(c.name))
        rows = (
            [c]
            + [s for s in report.sites if s.commune == c.id]
            + [a for a in report.aps if a.commune == c.id]
        )
        _table(sheet, report, rows, lang, f"{t('title', lang)} – {c.name}", communes)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
