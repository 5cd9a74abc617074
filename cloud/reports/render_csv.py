"""CSV export: one row per AP, village, commune and the total, machine-readable numbers.

Numbers are written raw with a dot for decimals (so any tool parses them the same in
either language); headers are in the report's language. The service adds a UTF-8 BOM so
Excel opens Vietnamese text correctly. Text a spreadsheet would run as a formula (a name
starting with ``=``, say) is neutralised (:mod:`cloud.csvcells`).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

from cloud.csvcells import safe_row
from cloud.reports.i18n import Lang, t
from cloud.reports.table import COLUMNS, Value, row_name
from cloud.reports.wifi_model import WifiReport


def _cell(v: Value) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, float):
        s = repr(v)  # the shortest text that reads back as the same float: raw, never rounded
        return format(Decimal(s), "f") if "e" in s else s  # 1e-05 -> 0.00001: any tool parses it
    return str(v)


def render_csv(report: WifiReport, lang: Lang) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(
        [t("level", lang), t("id", lang), t("name", lang), t("commune", lang), t("site", lang)]
        + [c.label(lang) for c in COLUMNS]
    )
    for row in report.rows():
        w.writerow(
            safe_row(
                [t(f"level_{row.level}", lang), row.id, row_name(row, lang), row.commune, row.site]
                + [_cell(c.get(row)) for c in COLUMNS]
            )
        )
    return buf.getvalue()
