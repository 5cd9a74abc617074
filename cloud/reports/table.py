"""The report's table columns, shared by the HTML, XLSX and CSV renderers (one source of truth).

Values are raw numbers in display units (GB, hours, %), never rounded here: each format
rounds only what it shows, and keeps the raw value (data attribute, cell value, CSV field).
None is *no data*: shown as "–" (HTML), an empty cell (XLSX, CSV), never as 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cloud.inventory import Inventory
from cloud.reports.i18n import Lang, hours, t
from cloud.reports.wifi_model import Row

Value = float | int | str | datetime | None


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    get: Callable[[Row], Value]
    digits: int  # shown decimals; -1: not a number
    xlsx_format: str

    def label(self, lang: Lang) -> str:
        return t(self.key, lang)


def _gb(v: float | None) -> float | None:
    return v / 1e9 if v is not None else None


def _h(seconds: float | None) -> float | None:
    return seconds / 3600 if seconds is not None else None


COLUMNS: tuple[Column, ...] = (
    Column("aps", lambda r: r.metrics.aps, 0, "0"),
    Column("peak_clients", lambda r: r.metrics.peak_clients, 1, "#,##0.0"),
    Column("peak_at", lambda r: r.metrics.peak_at, -1, "dd/mm/yyyy hh:mm"),
    Column("avg_clients_open", lambda r: r.metrics.avg_clients_open, 1, "#,##0.0"),
    Column("client_hours", lambda r: r.metrics.client_hours, 1, "#,##0.0"),
    Column("traffic_in_gb", lambda r: _gb(r.metrics.traffic_in_bytes), 3, "#,##0.000"),
    Column("traffic_out_gb", lambda r: _gb(r.metrics.traffic_out_bytes), 3, "#,##0.000"),
    Column("availability_pct", lambda r: r.metrics.availability_pct, 2, "0.00"),
    Column("coverage_pct", lambda r: r.metrics.coverage_pct, 1, "0.0"),
    Column("outages", lambda r: r.metrics.outages, 0, "0"),
    Column("down_h", lambda r: _h(r.metrics.down_s), 2, "#,##0.00"),
    Column("unknown_h", lambda r: _h(r.metrics.unknown_s), 2, "#,##0.00"),
    Column("busiest_hours", lambda r: hours(r.metrics.busiest_hours) or None, -1, "@"),
    Column("change_client_hours", lambda r: r.change_pct.get("client_hours"), 1, "+0.0;-0.0;0.0"),
    Column("change_traffic", lambda r: r.change_pct.get("traffic_in_bytes"), 1, "+0.0;-0.0;0.0"),
    Column("change_availability", lambda r: r.change_availability_pts, 2, "+0.00;-0.00;0.00"),
)


def row_name(row: Row, lang: Lang) -> str:
    return t("all", lang) if row.level == "all" else row.name


def commune_names(inventory: Inventory) -> dict[str, str]:
    """Commune id -> display name (village names repeat across communes: a row names its commune)."""
    return {c.id: c.name or c.id for c in inventory.communes}
