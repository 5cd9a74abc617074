"""Must-show 3: the HTML report in headless Chromium, saved as PNG and PDF, charts drawn.

Artifacts go to ``$CIOT_ARTIFACTS`` (default ``var/artifacts/`` in the repository, ignored
by git): ``wifi-report-<lang>.png`` and ``.pdf`` per run, for a human to look at.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from report_helpers import small_fleet_report

from cloud.config import load_config
from cloud.inventory import load_inventory
from commune_iot.localsvc import InfluxDB

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: What each chart draws: the series lines, the village bars, the filled heat cells.
DRAWN = {"clients-line": "path.series", "village-bars": "rect.bar", "heatmap": "rect.cell:not(.empty)"}


def _artifacts() -> Path:
    d = Path(os.environ.get("CIOT_ARTIFACTS") or REPO / "var" / "artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (apt-get install chromium)")
@pytest.mark.timeout(180)
async def test_report_renders_in_chromium_with_charts_png_and_pdf(
    tmp_path: Path, influx_server: InfluxDB, influx_db: str
) -> None:
    from playwright.async_api import async_playwright

    cfg = load_config(None, reports={"output_dir": tmp_path})
    inventory = load_inventory(cfg.inventory)
    svc, report = await small_fleet_report(influx_server, influx_db, inventory, cfg, days=7)
    await svc.influx.aclose()
    out = _artifacts()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for lang in ("vi", "en"):
                page = await browser.new_page(viewport={"width": 1200, "height": 900})
                # Offline by construction: any request leaving the page fails the test.
                requests: list[str] = []
                page.on("request", lambda r, seen=requests: seen.append(r.url))
                await page.set_content(svc.render(report, "html", lang).decode(), wait_until="load")
                for chart, drawn in DRAWN.items():
                    svg = page.locator(f'svg[data-chart="{chart}"]')
                    assert await svg.count() == 1, chart
                    box = await svg.bounding_box()
                    assert box is not None and box["width"] > 300 and box["height"] > 50, (chart, box)
                    marks = await svg.locator(drawn).count()
                    assert marks > 0, chart
                    area = await svg.evaluate(
                        "(el, sel) => [...el.querySelectorAll(sel)].reduce((a, n) => {"
                        " const b = n.getBBox(); return a + b.width * Math.max(b.height, 1); }, 0)",
                        drawn,
                    )
                    assert area > 100, (chart, area)
                rows = await page.locator("tr[data-level=ap]").count()
                assert rows == 35
                assert requests == [] or all(u.startswith(("about:", "data:")) for u in requests), requests
                png = out / f"wifi-report-{lang}.png"
                await page.screenshot(path=str(png), full_page=True)
                pdf = out / f"wifi-report-{lang}.pdf"
                await page.emulate_media(media="print")
                await page.pdf(path=str(pdf), prefer_css_page_size=True, print_background=True)
                await page.close()
                assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
                data = pdf.read_bytes()
                assert data[:5] == b"%PDF-"
                pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
                assert pages >= 4, pages  # summary, charts, and a page per table at least
                boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
                assert boxes and all(  # every page A4: 210 x 297 mm = 595.3 x 841.9 pt
                    abs(float(w) - 595.3) < 1 and abs(float(h) - 841.9) < 1 for w, h in boxes
                ), boxes[:3]
        finally:
            await browser.close()
