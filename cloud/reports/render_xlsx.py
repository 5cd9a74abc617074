"""XLSX export for officials who reuse the numbers: a summary sheet and one sheet per commune.

Cells hold numbers (not text) with number formats, so Excel or LibreOffice show them in
the reader's locale (``1.234,5`` on a Vietnamese system) and sums keep working. Header
row frozen, columns sized, period and footnotes written above and below the table.
"""

from __future__ import annotations

import io
from datetime import datetime

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from cloud.inventory import Inventory
from cloud.reports.i18n import Lang, day, footnotes, t
from cloud.reports.table import COLUMNS, row_name
from cloud.reports.wifi_model import Row, WifiReport

HEADER_FILL = PatternFill("solid", fgColor="1F6F8B")
HEADER_FONT = Font(bold=True, color="FFFFFF")
TOTAL_FONT = Font(bold=True)


def _sheet_title(name: str) -> str:
    bad = "[]:*?/\\"
    return "".join("-" if ch in bad else ch for ch in name)[:31]


def _table(ws: Worksheet, report: WifiReport, rows: list[Row], lang: Lang, title: str) -> None:
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([f"{t('period', lang)}: {day(report.first, lang)} – {day(report.last, lang)}"])
    ws.append(
        [f"{t('previous', lang)}: {day(report.previous_first, lang)} – {day(report.previous_last, lang)}"]
    )
    ws.append([])
    header = [t("level", lang), t("id", lang), t("name", lang)] + [c.label(lang) for c in COLUMNS]
    ws.append(header)
    hr = ws.max_row
    for cell in ws[hr]:
        cell.fill = HEADER_FILL
        cell.font = HEADER_FONT
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    ws.row_dimensions[hr].height = 45
    for row in rows:
        values: list[object] = [t(f"level_{row.level}", lang), row.id, row_name(row, lang)]
        for c in COLUMNS:
            v = c.get(row)
            if isinstance(v, datetime):
                v = v.replace(tzinfo=None)  # Excel has no time zones; the footnotes say which
            values.append(v)
        ws.append(values)
        r = ws.max_row
        for i, c in enumerate(COLUMNS, start=4):
            ws.cell(r, i).number_format = c.xlsx_format
        if row.level in ("all", "commune"):
            for cell in ws[r]:
                cell.font = TOTAL_FONT
    ws.freeze_panes = ws.cell(hr + 1, 4)
    widths = [12, 14, 34] + [14] * len(COLUMNS)
    for i, wdt in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = wdt
    ws.append([])
    ws.append([t("footnotes", lang)])
    ws.cell(ws.max_row, 1).font = TOTAL_FONT
    for i, note in enumerate(_notes(report, lang), start=1):
        ws.append([f"{i}. {note}"])


def _notes(report: WifiReport, lang: Lang) -> list[str]:
    return footnotes(
        lang,
        tz=report.timezone,
        grain=str(report.grain_s // 60),
        gap=str(report.gap_s // 60),
        open0=report.opening_hours[0],
        open1=report.opening_hours[1],
        prev0=day(report.previous_first, lang),
        prev1=day(report.previous_last, lang),
    )


def render_xlsx(report: WifiReport, lang: Lang, inventory: Inventory) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = _sheet_title(t("summary", lang))
    summary_rows = [report.total, *report.communes, *report.sites]
    _table(ws, report, summary_rows, lang, t("title", lang))
    for c in report.communes:
        sheet = wb.create_sheet(_sheet_title(c.name))
        rows = (
            [c]
            + [s for s in report.sites if s.commune == c.id]
            + [a for a in report.aps if a.commune == c.id]
        )
        _table(sheet, report, rows, lang, f"{t('title', lang)} – {c.name}")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
