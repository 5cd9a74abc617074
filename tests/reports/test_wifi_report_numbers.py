"""Must-show 1: every number of a month's Wi-Fi report against values computed by hand.

September 2026 (local time, Asia/Ho_Chi_Minh), AP polls every 5 minutes, read by the report
at its 15-minute rollups (3 polls per bucket):

* ``dr-ap-01`` (Đạ Ròn) goes through the **real pipeline**: Metrics messages published to a
  real Mosquitto, consumed by the real cloud runtime (ingest worker, journal, drainer) into a
  real InfluxDB. Its month holds a 32-bit counter wrap (in_octets starts 2.5 MB below 2**32),
  a 64-bit out counter, a reboot on the 15th at 12:02 (uptime and counters restart), an AP
  outage on the 25th 14:00-16:30 (polls say unreachable), a 3-hour gap behind its offline
  board on the 20th 08:00-11:00 (nothing sent), a commune uplink outage on the 5th 00:00-01:00
  and a 30-client peak on the 10th 20:00-20:15.
* ``dr-ap-02`` and ``tt-ap-01`` (the bulk: a month and two months of polls) take the same
  conversion (``cloud/ingest/convert.py``) but are written straight to the same InfluxDB, to
  keep the test fast. ``tt-ap-01`` also has August, for the change against the previous period.
* Outage records are written by the alerter's own ``OutageRecorder``.

The expected values are arithmetic on the scenario, never calls into the report code.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from report_helpers import (
    POLL,
    Poll,
    cloud_config,
    eventually,
    every_poll,
    local,
    messages,
    publish,
    write_converted,
)

from cloud.alerting.outages import OutageRecorder
from cloud.notify.messages import Message, Notice
from cloud.reports.period import Period
from cloud.reports.service import ReportService
from cloud.reports.wifi_model import Row
from cloud.runtime import Runtime
from cloud.storage.influx import InfluxClient
from commune_iot.localsvc import InfluxDB, Mosquitto

H = 3600.0
TZ = "Asia/Ho_Chi_Minh"
SEP1, OCT1 = local(2026, 9, 1), local(2026, 10, 1)
AUG2 = local(2026, 8, 2)
BOARD_GAP = (local(2026, 9, 20, 8), local(2026, 9, 20, 11))
UPLINK_GAP = (local(2026, 9, 5, 0), local(2026, 9, 5, 1))
AP_OUTAGE = (local(2026, 9, 25, 14), local(2026, 9, 25, 16, 30))
B_OUTAGE = (local(2026, 8, 31, 22), local(2026, 9, 1, 2))  # began in August
C_SNMP = (local(2026, 9, 12, 10), local(2026, 9, 12, 11))  # snmp_unreachable: not down
PEAK = (local(2026, 9, 10, 20), local(2026, 9, 10, 20, 15))
REBOOT = local(2026, 9, 15, 12, 2)
C32 = 2**32


def _in(t: datetime, span: tuple[datetime, datetime]) -> bool:
    return span[0] <= t < span[1]


def polls_a() -> list[Poll]:
    out = []
    for t in every_poll(SEP1, OCT1):
        if _in(t, BOARD_GAP) or _in(t, UPLINK_GAP):
            continue  # the board sent nothing
        if _in(t, AP_OUTAGE):
            out.append(Poll(t, None))
            continue
        hour = (t + timedelta(hours=7)).hour  # local hour (UTC+7, no DST)
        clients = 30 if _in(t, PEAK) else (4 if 6 <= hour < 22 else 0)
        k = (t - SEP1) // POLL
        if t < REBOOT:
            up = 1e6 + (t - SEP1).total_seconds()
            cin, cout = (C32 - 2_500_000 + k * 1_000_000) % C32, 5 * C32 + k * 100_000
        else:
            j = (t - local(2026, 9, 15, 12)) // POLL  # 12:05 is the first poll after the reboot
            up = (t - REBOOT).total_seconds()
            cin, cout = 600_000 + (j - 1) * 1_000_000, 60_000 + (j - 1) * 100_000
        out.append(Poll(t, clients, up, cin, cout))
    return out


def polls_b() -> list[Poll]:
    out = []
    for t in every_poll(local(2026, 9, 1, 2), OCT1):
        if _in(t, UPLINK_GAP):
            continue
        k = (t - local(2026, 9, 1, 2)) // POLL
        out.append(Poll(t, 2, 5e5 + k * 300, 2**40 + k * 2_000_000, 2**33 + k * 200_000))
    return out


def polls_c() -> list[Poll]:
    out = []
    for t in every_poll(AUG2, OCT1):
        k = (t - AUG2) // POLL
        out.append(Poll(t, 2 if t < SEP1 else 1, 2e5 + k * 300, (k * 1_000_000) % C32, k * 100_000))
    return out


def notice(
    alert_id: int,
    scope: str,
    subject: str,
    commune: str,
    cause: str,
    span: tuple[datetime, datetime],
    **kw: object,
) -> Notice:
    s, e = span[0].timestamp(), span[1].timestamp()
    return Notice(
        kind="resolve", alert_id=alert_id, key=f"{scope}:{subject}", scope=scope, subject=subject,
        commune=commune, cause=cause, severity="critical", started_at=s, at=e, duration_s=e - s, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def row(rows: list[Row], id_: str) -> Row:
    return next(r for r in rows if r.id == id_)


@pytest.mark.timeout(240)
async def test_month_report_numbers_match_hand_computation(
    tmp_path: Path, mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str
) -> None:
    cfg = cloud_config(tmp_path, mosquitto, influx_server, influx_db)
    runtime = Runtime(cfg)
    await runtime.start()
    assert runtime.worker.wait_connected(10), runtime.worker.last_error
    a = polls_a()
    influx = InfluxClient(influx_server.url, username=influx_server.username, password=influx_server.password)
    try:
        await asyncio.to_thread(publish, mosquitto, messages("da-ron", "dr-ap-01", "dr-ap-01", a))
        await influx.create_database(influx_db)  # ingest creates it too, on its first write

        async def stored_a() -> int:
            s = await influx.query(
                'SELECT count("reachable") FROM "ap" WHERE "device"=\'dr-ap-01\'', db=influx_db
            )
            return int(s[0]["values"][0][1]) if s else 0

        await eventually(stored_a, lambda n: n == len(a), 120, f"{len(a)} polls of dr-ap-01 ingested")
    finally:
        await runtime.stop()
        await influx.aclose()
    inv = runtime.inventory
    async with InfluxClient(
        influx_server.url, username=influx_server.username, password=influx_server.password, timeout_s=60
    ) as influx:
        await write_converted(influx, influx_db, inv, messages("da-ron", "dr-ap-02", "dr-ap-02", polls_b()))
        await write_converted(influx, influx_db, inv, messages("tu-tra", "tt-ap-01", "tt-ap-01", polls_c()))
        rec = OutageRecorder(influx, influx_db, inv)
        m = Message("outage", "")
        await rec.send(notice(1, "node", "dr-ap-01", "da-ron", "silent", BOARD_GAP), m)
        await rec.send(
            notice(2, "device", "dr-ap-01", "da-ron", "device", AP_OUTAGE, problem="unreachable"), m
        )
        await rec.send(
            notice(3, "device", "dr-ap-02", "da-ron", "device", B_OUTAGE, problem="unreachable"), m
        )
        await rec.send(
            notice(4, "commune", "da-ron", "da-ron", "uplink", UPLINK_GAP, members=("dr-ap-01", "dr-ap-02")),
            m,
        )
        await rec.send(
            notice(5, "device", "tt-ap-01", "tu-tra", "device", C_SNMP, problem="snmp_unreachable"), m
        )

        svc = ReportService(influx, influx_db, inv, cfg.reports)
        period = Period(date(2026, 9, 1), date(2026, 9, 30), TZ)
        now = datetime(2026, 11, 28, 12, tzinfo=UTC)
        rep = await svc.build(period, now=now, refresh=True)
        cqs = await influx.query("SHOW CONTINUOUS QUERIES")
        assert {"cq_ap_15m", "cq_ap_if_15m"} <= {
            v[0] for s in cqs if s["name"] == influx_db for v in s["values"]
        }
        only_da_ron = await svc.build(period, "da-ron", now=now)

    assert (rep.previous_first, rep.previous_last) == (date(2026, 8, 2), date(2026, 8, 31))
    ra, rb, rc = row(rep.aps, "dr-ap-01"), row(rep.aps, "dr-ap-02"), row(rep.aps, "tt-ap-01")
    A, B, C = ra.metrics, rb.metrics, rc.metrics
    buckets = 30 * 96  # 15-minute buckets in September
    open_buckets = 30 * 64  # 06:00-22:00

    # --- dr-ap-01 -------------------------------------------------------------------------
    missing_a = 12 + 10 + 4  # board gap 3 h, AP outage 2.5 h, uplink outage 1 h (buckets)
    open_missing_a = 12 + 10  # the uplink outage was at night
    sum_a = open_buckets * 4 - open_missing_a * 4 + (30 - 4)  # the peak bucket has 30, not 4
    assert A.client_hours == pytest.approx(sum_a * 0.25)  # = 1904.5
    assert A.client_hours == pytest.approx(1904.5)
    assert A.avg_clients_open == pytest.approx(sum_a / (open_buckets - open_missing_a))
    assert A.peak_clients == pytest.approx(30)
    assert A.peak_at == datetime(2026, 9, 10, 20, 0, tzinfo=A.peak_at.tzinfo)  # type: ignore[union-attr]
    assert A.peak_at.utcoffset() == timedelta(hours=7)  # type: ignore[union-attr]
    readings_a = buckets - missing_a
    pairs_a = readings_a - 1 - 3  # not across the three gaps
    # every bucket pair: 3 polls x 1 MB in (wrap or not), 3 x 100 kB out; the reboot pair counts
    # what the counter holds 8 min after the reboot (12:05 600 kB + 1 MB at 12:10)
    assert A.traffic_in_bytes == pytest.approx((pairs_a - 1) * 3_000_000 + 1_600_000)
    assert A.traffic_out_bytes == pytest.approx((pairs_a - 1) * 300_000 + 160_000)
    assert A.unknown_s == pytest.approx(4 * H)  # board 3 h + uplink 1 h
    assert A.down_s == pytest.approx(2.5 * H)
    assert A.availability_pct == pytest.approx((720 - 4 - 2.5) / (720 - 4) * 100)
    assert (A.outages, A.board_outages) == (1, 2)
    assert A.coverage_pct == pytest.approx(readings_a / buckets * 100)  # beside availability
    prof_a = [0.0] * 6 + [4.0] * 16 + [0.0] * 2
    prof_a[20] = (119 * 4 + 30) / 120  # 30 days x 4 buckets at 20h, one of them 30
    assert A.hourly_profile == pytest.approx(prof_a)
    assert A.busiest_hours == [20, 6, 7]
    assert ra.previous is not None and ra.previous.client_hours is None  # no readings: no data, not 0
    assert ra.change_pct["client_hours"] is None and ra.change_availability_pts is None

    # --- dr-ap-02 -------------------------------------------------------------------------
    readings_b = buckets - 8 - 4  # starts 1 Sep 02:00; uplink outage
    assert B.client_hours == pytest.approx(readings_b * 2 * 0.25)
    assert B.avg_clients_open == pytest.approx(2)
    assert B.peak_clients == pytest.approx(2)
    assert B.peak_at == datetime(2026, 9, 1, 2, 0, tzinfo=B.peak_at.tzinfo)  # type: ignore[union-attr]
    assert B.traffic_in_bytes == pytest.approx((readings_b - 2) * 3 * 2_000_000)  # 64-bit, no wrap
    assert B.traffic_out_bytes == pytest.approx((readings_b - 2) * 3 * 200_000)
    assert B.down_s == pytest.approx(2 * H)  # 22:00-02:00, clipped to the period
    assert B.unknown_s == pytest.approx(1 * H)
    assert B.availability_pct == pytest.approx((720 - 1 - 2) / (720 - 1) * 100)
    assert B.busiest_hours == [0, 1, 2]
    assert B.coverage_pct == pytest.approx(readings_b / buckets * 100)
    assert rb.previous is not None
    assert rb.previous.availability_pct == pytest.approx((720 - 2) / 720 * 100)  # 22:00-24:00 on 31 Aug
    assert rb.change_availability_pts == pytest.approx((720 - 1 - 2) / 719 * 100 - (720 - 2) / 720 * 100)

    # --- tt-ap-01: no anomalies, August for the comparison ----------------------------------
    assert C.client_hours == pytest.approx(buckets * 1 * 0.25)  # 720
    assert C.traffic_in_bytes == pytest.approx(buckets * 3_000_000)  # from 31 Aug 23:45's reading
    assert C.traffic_out_bytes == pytest.approx(buckets * 300_000)
    assert C.availability_pct == pytest.approx(100)  # the snmp_unreachable alert is not down time
    assert (C.outages, C.down_s, C.unknown_s, C.coverage_pct) == (0, 0, 0, 100)
    assert rc.previous is not None
    assert rc.previous.client_hours == pytest.approx(buckets * 2 * 0.25)
    assert rc.previous.traffic_in_bytes == pytest.approx((buckets - 1) * 3_000_000)  # no reading before 2 Aug
    assert rc.change_pct["client_hours"] == pytest.approx(-50)
    assert rc.change_pct["avg_clients_open"] == pytest.approx(-50)
    assert rc.change_pct["peak_clients"] == pytest.approx(-50)
    assert rc.change_pct["traffic_in_bytes"] == pytest.approx((buckets - (buckets - 1)) / (buckets - 1) * 100)
    assert rc.change_availability_pts == pytest.approx(0)

    # --- groups ------------------------------------------------------------------------------
    dr = row(rep.communes, "da-ron")
    assert dr.metrics.aps == sum(1 for d in inv.devices if d.kind == "ap" and d.commune == "da-ron")
    assert dr.metrics.client_hours == pytest.approx(1904.5 + readings_b * 0.5)
    assert dr.metrics.peak_clients == pytest.approx(30 + 2)  # same bucket: A's peak + B
    assert dr.metrics.peak_at == A.peak_at
    assert dr.metrics.avg_clients_open == pytest.approx(sum_a / (open_buckets - open_missing_a) + 2)
    assert dr.metrics.traffic_in_bytes == pytest.approx(A.traffic_in_bytes + B.traffic_in_bytes)
    known_a, known_b = (720 - 4) * H, (720 - 1) * H
    assert dr.metrics.availability_pct == pytest.approx(
        (known_a - 2.5 * H + known_b - 2 * H) / (known_a + known_b) * 100
    )
    assert (dr.metrics.down_s, dr.metrics.unknown_s) == (pytest.approx(4.5 * H), pytest.approx(5 * H))
    assert (dr.metrics.outages, dr.metrics.board_outages) == (2, 3)
    assert row(rep.sites, "dr-thon-01").metrics == A  # a village with one AP is that AP

    tot = rep.total.metrics
    assert tot.aps == 35
    assert tot.client_hours == pytest.approx(1904.5 + readings_b * 0.5 + 720)
    assert tot.peak_clients == pytest.approx(30 + 2 + 1)
    assert tot.hourly_profile[20] == pytest.approx(prof_a[20] + 2 + 1)
    assert tot.hourly_profile[3] == pytest.approx(0 + 2 + 1)
    known_c = 720 * H
    assert tot.availability_pct == pytest.approx(
        (known_a - 2.5 * H + known_b - 2 * H + known_c) / (known_a + known_b + known_c) * 100
    )
    assert tot.coverage_pct == pytest.approx((readings_a + readings_b + buckets) / (35 * buckets) * 100)
    assert rep.total.change_pct["client_hours"] == pytest.approx((tot.client_hours - 1440) / 1440 * 100)
    # 10 Sep is a Thursday: 4 Thursdays x 4 buckets at 20h for A, one of them 30
    assert rep.heatmap[3][20] == pytest.approx((15 * 4 + 30) / 16 + 2 + 1)
    # the hourly line: A's four buckets 20:00-21:00 on 10 Sep (30, 4, 4, 4) + B + C
    i = (9 * 24) + 20
    assert rep.series.lines["all"][i] == pytest.approx((30 + 4 + 4 + 4) / 4 + 2 + 1)
    assert rep.series.lines["tu-tra"][i] == pytest.approx(1)
    # an AP without any data is "no data", not 100 % available
    assert row(rep.aps, "lx-ap-01").metrics.availability_pct is None
    lx = row(rep.aps, "lx-ap-01").metrics
    assert (lx.client_hours, lx.traffic_in_bytes, lx.outages, lx.coverage_pct) == (None, None, None, 0)

    # the commune filter gives the commune's own figures; the rollups were complete (refreshed
    # by the first build), so this build found nothing stale
    assert only_da_ron.rollups is not None and only_da_ron.rollups.checked
    assert (only_da_ron.rollups.stale_days, only_da_ron.rollups.refreshed) == ([], False)
    assert only_da_ron.total.metrics.client_hours == pytest.approx(dr.metrics.client_hours)
    assert only_da_ron.total.metrics.peak_clients == pytest.approx(32)
    assert [c.id for c in only_da_ron.communes] == ["da-ron"]
