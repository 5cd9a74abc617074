"""The HTML report: one self-contained page (inline CSS and SVG, no script, no CDN).

Shown in the web UI and printed to PDF from the browser: ``@page { size: A4 }``, each
section starts on a new page, table rows never split. Numbers are shown in the language's
format and kept raw in ``data-raw`` attributes, with the whole report as JSON in a
``<script type="application/json" id="report-data">`` block, so tests (and scripts) can
compare exact values.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from importlib import resources

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from cloud.inventory import Inventory
from cloud.reports import charts
from cloud.reports.i18n import Lang, day, footnotes, moment, number, t
from cloud.reports.table import COLUMNS, Value, row_name
from cloud.reports.wifi_model import Row, WifiReport


@cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("cloud.reports", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


@cache
def _css() -> str:
    return resources.files("cloud.reports").joinpath("templates/wifi_report.css").read_text(encoding="utf-8")


def _show(v: Value, digits: int, lang: Lang) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, datetime):
        return moment(v, lang)
    return number(float(v), lang, max(digits, 0))


def _raw(v: Value) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v
    return v.isoformat()


def _cells(row: Row, lang: Lang) -> list[dict[str, str]]:
    return [
        {"key": c.key, "raw": _raw(c.get(row)), "text": _show(c.get(row), c.digits, lang)} for c in COLUMNS
    ]


def render_html(report: WifiReport, lang: Lang, inventory: Inventory, *, nav: str = "") -> str:
    commune_names = {c.id: c.name or c.id for c in inventory.communes}
    series = report.series
    n = len(series.lines.get("all", []))
    ticks: list[tuple[int, str]] = []
    if n:
        every = max(1, n // 8)
        for i in range(0, n, every):
            at = series.start + timedelta(seconds=series.step_s * i)
            ticks.append((i, at.strftime("%d/%m") if lang == "vi" else at.strftime("%m-%d")))
    labels = {"all": t("all", lang), **commune_names}
    line = charts.line_chart(series.lines, labels, ticks, lambda v: number(v, lang, 0))
    colours = {key: charts.PALETTE[i % len(charts.PALETTE)] for i, key in enumerate(series.lines)}
    several = len({s.commune for s in report.sites}) > 1  # village names repeat across communes
    bars = charts.bar_chart(
        [
            (
                f"{s.name} · {commune_names.get(s.commune, s.commune)}" if several else s.name,
                s.metrics.client_hours,
                s.commune,
            )
            for s in report.sites
        ],
        lambda v: number(v, lang, 0),
        colours=colours,
    )
    heat = charts.heatmap(report.heatmap, t("weekdays", lang).split(","), lambda v: number(v, lang, 1))
    notes = footnotes(
        lang,
        tz=report.timezone,
        grain=str(report.grain_s // 60),
        gap=str(report.gap_s // 60),
        open0=report.opening_hours[0],
        open1=report.opening_hours[1],
        prev0=day(report.previous_first, lang),
        prev1=day(report.previous_last, lang),
    )
    sections = [
        ("by_commune", [report.total, *report.communes]),
        ("by_site", report.sites),
        ("by_ap", report.aps),
    ]
    tpl = _env().get_template("wifi_report.html")
    return tpl.render(
        lang=lang,
        t=lambda k: t(k, lang),
        r=report,
        css=Markup(_css()),
        scope=commune_names.get(report.commune, report.commune)
        if report.commune
        else t("all_communes", lang),
        period=f"{day(report.first, lang)} – {day(report.last, lang)}",
        previous=f"{day(report.previous_first, lang)} – {day(report.previous_last, lang)}",
        generated=moment(report.generated_at, lang),
        measured_until=moment(report.measured_until, lang),
        headline=_cells(report.total, lang),
        columns=COLUMNS,
        sections=[
            (k, [(row, row_name(row, lang), _cells(row, lang)) for row in rows]) for k, rows in sections
        ],
        line_chart=Markup(line),
        bar_chart=Markup(bars),
        heatmap=Markup(heat),
        notes=notes,
        nav=Markup(nav),
        data_json=Markup(report.model_dump_json().replace("</", "<\\/")),
    )
