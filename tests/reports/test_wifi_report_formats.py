"""Must-show 2: the XLSX opens with openpyxl and holds the same numbers as the HTML and the CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openpyxl import load_workbook
from report_helpers import small_fleet_report

from cloud.config import load_config
from cloud.inventory import load_inventory
from cloud.reports.render_html import notes_of
from cloud.reports.table import COLUMNS
from commune_iot.localsvc import InfluxDB

NUMERIC = [c.key for c in COLUMNS if c.digits >= 0]


class _Cells(HTMLParser):
    """(level, id) -> {column key: data-raw} from the report's tables."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        self._cur: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-level"):
            self._cur = (a["data-level"] or "", a.get("data-id") or "")
            self.rows.setdefault(self._cur, {})
        elif tag == "td" and self._cur and a.get("data-key"):
            self.rows[self._cur][a["data-key"] or ""] = a.get("data-raw") or ""


def _num(v: object) -> float | None:
    if v in (None, ""):
        return None
    return float(v)  # type: ignore[arg-type]


async def test_xlsx_csv_and_html_hold_the_same_numbers(
    tmp_path: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    cfg = load_config(None, reports={"output_dir": tmp_path})
    inventory = load_inventory(cfg.inventory)
    svc, report = await small_fleet_report(influx_server, influx_db, inventory, cfg)
    await svc.influx.aclose()
    assert report.total.metrics.client_hours and report.total.metrics.traffic_in_bytes

    html = svc.render(report, "html", "vi").decode()
    cells = _Cells()
    cells.feed(html)
    xlsx = svc.render(report, "xlsx", "vi")
    (tmp_path / "r.xlsx").write_bytes(xlsx)
    wb = load_workbook(tmp_path / "r.xlsx")
    text = svc.render(report, "csv", "vi").decode("utf-8-sig")
    csv_rows = list(csv.reader(io.StringIO(text)))

    # the workbook: a summary sheet, one per commune, Vietnamese headers, frozen header, formats
    assert wb.sheetnames == ["Tổng hợp", "Đạ Ròn", "Tu Tra", "Lạc Xuân"]
    xrows: dict[tuple[str, str], dict[str, object]] = {}
    level_of = {"Toàn bộ": "all", "Xã": "commune", "Thôn": "site", "Điểm phát": "ap"}
    for ws in wb.worksheets:
        header_row = next(r for r in range(1, 10) if ws.cell(r, 1).value == "Cấp")
        headers = [ws.cell(header_row, c).value for c in range(1, ws.max_column + 1)]
        assert headers[3] == "Xã" and headers[4:] == [c.label("vi") for c in COLUMNS]
        assert ws.freeze_panes == f"E{header_row + 1}"
        assert ws.column_dimensions["C"].width >= 30
        for r in range(header_row + 1, ws.max_row + 1):
            level = level_of.get(str(ws.cell(r, 1).value))
            if level is None:
                continue
            key = (level, str(ws.cell(r, 2).value))
            vals = {c.key: ws.cell(r, i + 5).value for i, c in enumerate(COLUMNS)}
            if level in ("site", "ap"):  # village names repeat across communes: each row names its own
                assert ws.cell(r, 4).value in {"Đạ Ròn", "Tu Tra", "Lạc Xuân"}, (r, ws.cell(r, 4).value)
            if key in xrows:
                assert xrows[key] == vals  # a commune row on the summary and on its own sheet
            xrows[key] = vals
            assert ws.cell(r, 5 + [c.key for c in COLUMNS].index("client_hours")).number_format == "#,##0.0"
    per_commune = {ws.title: ws.max_row for ws in wb.worksheets[1:]}
    assert all(n > 10 for n in per_commune.values()), per_commune

    head = csv_rows[0]
    crows = {(level_of[r[0]], r[1]): dict(zip(head[5:], r[5:], strict=True)) for r in csv_rows[1:]}
    rows = report.rows()
    assert len(crows) == len(rows) == len(cells.rows) == len(xrows) == 1 + 3 + 35 + 35
    for r in rows:
        key = (r.level, r.id)
        for c in COLUMNS:
            want = c.get(r)
            x = xrows[key][c.key]
            h = cells.rows[key][c.key]
            v = crows[key][c.label("vi")]
            if c.key in NUMERIC:
                if want is None:
                    assert x is None and h == "" and v == "", (key, c.key)
                    continue
                assert x == pytest.approx(want), (key, c.key)
                assert float(h) == pytest.approx(want), (key, c.key)
                assert float(v) == pytest.approx(want, rel=1e-6), (key, c.key)
            elif c.key == "peak_at" and want is not None:
                assert x.strftime("%Y-%m-%d %H:%M") == v == want.strftime("%Y-%m-%d %H:%M")  # type: ignore[union-attr]
                assert h.startswith(want.strftime("%Y-%m-%dT%H:%M"))  # type: ignore[union-attr]
            elif c.key == "busiest_hours":
                assert x == v == h
    # The total's client-hours, shown Vietnamese style (1.234,5) in the HTML
    ch = report.total.metrics.client_hours
    shown = f"{ch:,.1f}".replace(",", "X").replace(".", ",").replace("X", ".")
    assert re.search(rf'data-key="client_hours" data-raw="[^"]+">{re.escape(shown)}<', html)


async def test_english_and_csv_headers(tmp_path: Path, influx_server: InfluxDB, influx_db: str) -> None:
    cfg = load_config(None, reports={"output_dir": tmp_path})
    inventory = load_inventory(cfg.inventory)
    svc, report = await small_fleet_report(influx_server, influx_db, inventory, cfg, days=1)
    await svc.influx.aclose()
    en = svc.render(report, "html", "en").decode()
    vi = svc.render(report, "html", "vi").decode()
    assert '<html lang="en">' in en and "Client-hours" in en and "Public Wi-Fi usage report" in en
    assert (
        '<html lang="vi">' in vi
        and "Giờ sử dụng (người-giờ)" in vi
        and "Báo cáo sử dụng Wi-Fi công cộng" in vi
    )
    assert "Ghi chú cách tính" in vi and "06:00" in vi
    assert "http://" not in vi.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN, nothing remote
    assert "@page { size: A4" in vi
    head = svc.render(report, "csv", "en").decode("utf-8-sig").splitlines()[0]
    assert head.startswith("Level,Id,Name,Commune,Village,APs,Peak clients")


LIBREOFFICE = shutil.which("libreoffice")


def _pdf_pages(pdf: Path) -> list[str]:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    n = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    size = re.search(r"^Page size:\s+([\d.]+) x ([\d.]+)", info, re.M)
    assert size and float(size[1]) > float(size[2]), info  # landscape
    return [
        subprocess.run(
            ["pdftotext", "-f", str(i), "-l", str(i), str(pdf), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for i in range(1, n + 1)
    ]


@pytest.mark.skipif(
    not (LIBREOFFICE and shutil.which("pdftotext")),
    reason="LibreOffice Calc and poppler-utils not installed (./dev.sh setup installs them)",
)
@pytest.mark.timeout(240)
async def test_xlsx_prints_in_libreoffice_one_page_wide_with_day_month_dates(
    tmp_path: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    """Opened and printed by a real spreadsheet program, as MIC staff would (12b): every sheet
    on A4 landscape one page wide with its method notes, the peak time read as day/month."""
    cfg = load_config(None, reports={"output_dir": tmp_path})
    inventory = load_inventory(cfg.inventory)
    svc, report = await small_fleet_report(influx_server, influx_db, inventory, cfg, days=7)
    await svc.influx.aclose()
    xlsx = tmp_path / "bao-cao.xlsx"
    xlsx.write_bytes(svc.render(report, "xlsx", "vi"))
    wb = load_workbook(xlsx)
    for ws in wb.worksheets:  # the print setup as written, which the PDF below shows obeyed
        assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth == 1
        assert ws.page_setup.fitToHeight == 0 and ws.sheet_properties.pageSetUpPr.fitToPage
        assert ws.print_title_rows and ws.freeze_panes
    # A profile of its own: LibreOffice refuses to start twice on one profile (parallel runs).
    profile = (tmp_path / "lo-profile").as_uri()
    cmd = [
        LIBREOFFICE or "libreoffice",
        f"-env:UserInstallation={profile}",
        "--headless",
        "--convert-to",
        "pdf",
    ]
    await asyncio.to_thread(
        subprocess.run,
        [*cmd, "--outdir", str(tmp_path), str(xlsx)],
        capture_output=True,
        timeout=180,
        check=True,
    )
    pages = await asyncio.to_thread(_pdf_pages, tmp_path / "bao-cao.pdf")
    first_commune = next(i for i, p in enumerate(pages) if "Báo cáo sử dụng Wi-Fi công cộng – Đạ Ròn" in p)
    summary = pages[:first_commune]
    assert 1 <= len(summary) <= 2, len(summary)
    for text in pages:  # one page wide: the first and the last column on every page
        assert "Cấp" in text and "Thay đổi tỷ" in text, text[:300]
    joined = " ".join(" ".join(summary).split())
    assert "Ghi chú cách tính" in joined
    last_note = notes_of(report, "vi")[-1]
    assert " ".join(last_note.split()) in joined  # the method notes are printed, not cut off
    peak = report.total.metrics.peak_at
    assert peak is not None and peak.day != peak.month
    assert peak.strftime("%d/%m/%Y %H:%M") in summary[0]  # 07/10/2026 20:30: day first
    assert peak.strftime("%m/%d/%Y") not in summary[0] and "###" not in summary[0]
    assert len(pages) <= 2 * len(wb.worksheets)
