"""The HTML report: one self-contained page (inline CSS and SVG, no script, no CDN).

Shown in the web UI and printed to PDF from the browser: ``@page { size: A4 }``, each
section starts on a new page, table rows never split. Numbers are shown in the language's
format and kept raw in ``data-raw`` attributes, with the whole report as JSON in a
``<script type="application/json" id="report-data">`` block, so tests (and scripts) can
compare exact values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from functools import cache
from importlib import resources

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from cloud.inventory import Inventory
from cloud.reports import charts
from cloud.reports.i18n import Lang, day, footnotes, moment, number, t
from cloud.reports.store import StoredReport
from cloud.reports.table import COLUMNS, Value, commune_names, row_name
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


def _tick_label(lang: Lang) -> Callable[[datetime], str]:
    def label(at: datetime) -> str:
        if at.hour or at.minute:
            return at.strftime("%H:%M")
        return at.strftime("%d/%m") if lang == "vi" else at.strftime("%m-%d")

    return label


def freshness(report: WifiReport, lang: Lang) -> str:
    """One line on how complete the rollups behind the figures were (see :class:`Rollups`)."""
    r = report.rollups
    if r is None:
        return t("rollups_unknown", lang)
    if r.error:
        return t("rollups_error", lang).format(error=r.error)
    if r.refreshed and not r.stale_days:
        return t("rollups_forced", lang)
    if r.refreshed:
        shown = ", ".join(d.strftime("%d/%m") if lang == "vi" else d.isoformat() for d in r.stale_days[:5])
        if len(r.stale_days) > 5:
            shown += ", …"
        return t("rollups_refreshed", lang).format(n=len(r.stale_days), days=shown)
    return t("rollups_ok", lang)


def notes_of(report: WifiReport, lang: Lang) -> list[str]:
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


def render_html(
    report: WifiReport, lang: Lang, inventory: Inventory, *, nav: str = "", header: str = ""
) -> str:
    """The page; ``header`` (the web UI's bar with the user and logout) and ``nav`` (links and
    the period picker) are added when it is served by the app, left out of a kept file."""
    communes = commune_names(inventory)
    series = report.series
    n = len(series.lines.get("all", []))
    ticks = charts.day_ticks(series.start, series.step_s, n, _tick_label(lang)) if n else []
    labels = {"all": t("all", lang), **communes}
    line = charts.line_chart(
        series.lines, labels, ticks, lambda v, d: number(v, lang, d), empty=t("empty_chart", lang)
    )
    colours = {key: charts.PALETTE[i % len(charts.PALETTE)] for i, key in enumerate(series.lines)}
    several = len(report.communes) > 1  # village names repeat across communes
    bars = charts.bar_chart(
        [
            (
                f"{s.name} · {communes.get(s.commune, s.commune)}" if several else s.name,
                s.metrics.client_hours,
                s.commune,
            )
            for s in report.sites
        ],
        lambda v: number(v, lang, 0),
        colours=colours,
    )
    heat = charts.heatmap(report.heatmap, t("weekdays", lang).split(","), lambda v: number(v, lang, 1))
    sections = [
        ("by_commune", [report.total, *report.communes], False),
        ("by_site", report.sites, several),
        ("by_ap", report.aps, several),
    ]
    data_until = report.rollups.data_until if report.rollups else report.measured_until
    tpl = _env().get_template("wifi_report.html")
    return tpl.render(
        lang=lang,
        t=lambda k: t(k, lang),
        r=report,
        css=Markup(_css()),
        scope=communes.get(report.commune, report.commune) if report.commune else t("all_communes", lang),
        period=f"{day(report.first, lang)} – {day(report.last, lang)}",
        previous=f"{day(report.previous_first, lang)} – {day(report.previous_last, lang)}",
        generated=moment(report.generated_at, lang),
        data_until=moment(data_until, lang),
        freshness=freshness(report, lang),
        stale=bool(report.rollups and report.rollups.error),
        headline=_cells(report.total, lang),
        columns=COLUMNS,
        sections=[
            (
                k,
                with_commune,
                [
                    (row, row_name(row, lang), communes.get(row.commune, ""), _cells(row, lang))
                    for row in rows
                ],
            )
            for k, rows, with_commune in sections
        ],
        line_chart=Markup(line),
        bar_chart=Markup(bars),
        heatmap=Markup(heat),
        notes=notes_of(report, lang),
        header=Markup(header),
        nav=Markup(nav),
        data_json=Markup(report.model_dump_json().replace("</", "<\\/")),
    )


def render_list(kept: Sequence[StoredReport], lang: Lang, inventory: Inventory, *, header: str = "") -> str:
    """The kept reports (``GET /reports``): period, scope, how it was made, its files."""
    communes = commune_names(inventory)
    rows = []
    for s in kept:
        first, last = date.fromisoformat(s.first), date.fromisoformat(s.last)
        if len(s.period) == 7:  # a calendar month
            period = t("month", lang).format(m=f"{first.month:02d}", y=first.year)
        else:
            period = f"{day(first, lang)} – {day(last, lang)}"
        origin = t(f"origin_{s.origin}", lang) if s.origin in ("monthly", "manual") else s.origin
        state = "" if s.state == "done" else t(f"state_{s.state}", lang)
        rows.append(
            {
                "id": s.id,
                "period": period,
                "scope": communes.get(s.commune, s.commune) if s.commune else t("all_communes", lang),
                "origin": origin,
                "state": state,
                "files": s.files if s.state == "done" else [],
            }
        )
    return (
        _env()
        .get_template("report_list.html")
        .render(lang=lang, t=lambda k: t(k, lang), css=Markup(_css()), header=Markup(header), rows=rows)
    )
