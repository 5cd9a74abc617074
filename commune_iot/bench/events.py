"""``commune-iot bench events``: how fast the police event list answers with 100,000 events.

The events are written through the ingest path's SQL upsert (the same statement a real
cloud runs) into a fresh SQLite database; the web app then runs under uvicorn on
loopback, and a logged-in Da Ron police session asks for filtered list pages over real
HTTP, as a browser would (HTML page, and the JSON API). The figure is the server's answer
time seen by the client, per filter; the target is under 0.3 s.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

DAY = 86400.0
FILTERS: dict[str, str] = {
    "unfiltered": "/events",
    "camera_range": "/events?device=dr-cam-03&date_from=2026-09-01&date_to=2026-10-31",
    "night_unreviewed": "/events?time_from=22:00&time_to=05:00&reviewed=no",
    "long_events_page_20": "/events?min_duration_s=60&page=20",
    "api_commune_day": "/api/v1/events?commune=da-ron&date_from=2026-10-15&date_to=2026-10-15&limit=50",
    "vehicles_at_night": "/events?label=vehicle&time_from=22:00&time_to=05:00",
    "people_only_labelled": "/events?label=person&labelled=yes",
}
#: Objects the events carry (as a labelling board sends them), with how often.
LABELS: tuple[tuple[list[str], float], ...] = (
    (["person"], 0.35),
    (["motorcycle"], 0.2),
    (["person", "motorcycle"], 0.1),
    (["car"], 0.1),
    ([], 0.25),
)


def _fill(sql: object, n: int, cameras: list[tuple[str, str, str]], seed: int = 7) -> None:
    from cloud.events.store import EventRecord
    from cloud.storage.sql import BatchUpdate, SqlStore

    assert isinstance(sql, SqlStore)
    rnd = random.Random(seed)
    t0 = time.mktime((2026, 8, 1, 0, 0, 0, 0, 0, -1))
    span = 120 * DAY
    batch: list[EventRecord] = []
    for i in range(n):
        device, commune, site = cameras[i % len(cameras)]
        start = t0 + rnd.random() * span
        dur = rnd.expovariate(1 / 25.0)
        batch.append(
            EventRecord(
                device=device,
                event_id=f"{device}-bench-{i}",
                node=device,
                commune=commune,
                site=site,
                phase="end",
                start=start,
                end=start + dur,
                msg_ts=start + dur,
                peak_area_pct=round(rnd.uniform(0.5, 40), 2),
                boxes=[{"x": 0.1, "y": 0.2, "w": 0.1, "h": 0.3}],
                zones=[],
                score=0.8,
                frames=int(dur * 5),
                snapshot_sha256=None,
                received_at=start + dur,
                labels=[
                    {"label": name, "confidence": 0.8}
                    for name in rnd.choices([x for x, _ in LABELS], [w for _, w in LABELS])[0]
                ],
            )
        )
        if len(batch) == 5000:
            sql.apply(BatchUpdate(events=batch))
            batch = []
            print(f"  stored {i + 1:,} events", flush=True)
    if batch:
        sql.apply(BatchUpdate(events=batch))


def main(events: int = 100_000, requests: int = 50, run_dir: Path | None = None) -> int:
    import httpx
    import uvicorn

    from cloud.api.app import create_app
    from cloud.auth.roles import Role
    from cloud.auth.users import UserStore
    from cloud.config import load_config
    from cloud.runtime import Runtime
    from commune_iot.localsvc import free_port

    work = Path(tempfile.mkdtemp(prefix="ciot-bench-events-", dir=run_dir))
    cfg = load_config(
        None,
        mqtt={"url": "mqtt://127.0.0.1:1", "client_id": "bench-events"},
        influx={"spool_dir": work / "spool", "self_metrics_s": 0},
        sql={"url": f"sqlite:///{work / 'cloud.db'}"},
        snapshots_dir=work / "snapshots",
        events={"exports_dir": work / "exports", "retention_days": 3650},
        alerting={"enabled": False},
    )
    rt = Runtime(cfg)
    cameras = [(d.id, d.commune, d.site) for d in rt.inventory.devices if d.kind == "camera"]
    print(f"writing {events:,} events of {len(cameras)} cameras through the ingest upsert ...", flush=True)
    t = time.perf_counter()
    _fill(rt.sql, events, cameras)
    insert_s = time.perf_counter() - t
    print(f"  {events:,} events in {insert_s:.1f} s ({events / insert_s:,.0f} events/s)", flush=True)
    users = UserStore(rt.sql.engine)
    users.add("bench-police", "bench-password-1", frozenset({Role.POLICE}), communes=frozenset({"da-ron"}))

    app = create_app(rt, manage_runtime=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    results: dict[str, dict[str, float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as web:
            r = web.post("/login", data={"username": "bench-police", "password": "bench-password-1"})
            assert r.status_code in (200, 303), r.status_code
            for name, url in FILTERS.items():
                web.get(url)  # warm caches and the query plan
                times = []
                total = ""
                for _ in range(requests):
                    t = time.perf_counter()
                    r = web.get(url)
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200, (url, r.status_code, r.text[:200])
                if url.startswith("/api/"):
                    total = f"{r.json()['total']:,} matching"
                else:
                    total = r.text.split('id="result-count">')[1].split("<")[0]
                times.sort()
                p50 = statistics.median(times)
                p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
                results[name] = {"p50_s": round(p50, 4), "p95_s": round(p95, 4)}
                print(
                    f"  {name:<20} p50 {p50 * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  ({total})", flush=True
                )
    finally:
        server.should_exit = True
        thread.join(10)
        rt.journal.close()
        rt.sql.dispose()
    worst = max(v["p95_s"] for v in results.values())
    print(
        json.dumps(
            {
                "events": events,
                "insert_events_per_s": round(events / insert_s),
                "list_p95_s": worst,
                "list_p50_s": max(v["p50_s"] for v in results.values()),
                "per_filter": results,
                "target_p95_s": 0.3,
                "ok": worst < 0.3,
            }
        )
    )
    return 0
