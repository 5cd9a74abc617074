"""``commune-iot``: one console script for every role.

Each subcommand imports its side lazily, so ``commune-iot edge run`` works on a board
that installed only the ``edge`` extra (no FastAPI, no SQLAlchemy).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commune_iot import __version__


def _edge_run(args: argparse.Namespace) -> int:
    from edge.runtime import run_from_config

    return run_from_config(args.config)


def _cloud_serve(args: argparse.Namespace) -> int:
    from cloud.service import serve

    return serve(args.config, host=args.host, port=args.port)


def _cloud_ingest(args: argparse.Namespace) -> int:
    from cloud.service import ingest_only

    return ingest_only(args.config)


def _demo(args: argparse.Namespace) -> int:
    from commune_iot.demo import run_demo

    return run_demo(run_dir=args.run_dir, port=args.port, devices=args.devices, fresh=args.fresh)


def _bench_ingest(args: argparse.Namespace) -> int:
    from commune_iot.bench.ingest import main

    return main(messages=args.messages, workers=args.workers, run_dir=args.run_dir)


def _bench_edge_memory(args: argparse.Namespace) -> int:
    from commune_iot.bench.memory import main

    return main(seconds=args.seconds, run_dir=args.run_dir)


def _bench_outage(args: argparse.Namespace) -> int:
    from commune_iot.bench.outage import main

    return main(trials=args.trials, run_dir=args.run_dir, seed=args.seed)


def _snmp_probe(args: argparse.Namespace) -> int:
    from edge.collectors.snmp.probe import run

    return run(args)


def _bench_snmp(args: argparse.Namespace) -> int:
    from commune_iot.bench.snmp import main

    return int(main(aps=args.aps, many=args.many, cycles=args.cycles, run_dir=args.run_dir))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="commune-iot", description=__doc__)
    p.add_argument("--version", action="version", version=f"commune-iot {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    edge = sub.add_parser("edge", help="edge agent (runs on a board beside a camera or access point)")
    edge_sub = edge.add_subparsers(dest="edge_cmd", required=True)
    run = edge_sub.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    run.add_argument("--config", type=Path, default=None, help="edge YAML (default: $CIOT_EDGE_CONFIG)")
    run.set_defaults(func=_edge_run)

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
    demo.set_defaults(func=_demo)

    bench = sub.add_parser("bench", help="benchmarks; each ends with one line of JSON")
    bench_sub = bench.add_subparsers(dest="bench_cmd", required=True)
    bi = bench_sub.add_parser("ingest", help="MQTT -> ingest -> InfluxDB throughput vs a bare subscriber")
    bi.add_argument("--messages", type=int, default=50_000)
    bi.add_argument("--workers", type=int, default=1)
    bi.add_argument("--run-dir", type=Path, default=None)
    bi.set_defaults(func=_bench_ingest)
    bm = bench_sub.add_parser("edge-memory", help="RSS of an idle edge agent")
    bm.add_argument("--seconds", type=float, default=20.0)
    bm.add_argument("--run-dir", type=Path, default=None)
    bm.set_defaults(func=_bench_edge_memory)
    bo = bench_sub.add_parser("outage", help="seconds from a frozen agent (SIGSTOP) to the webhook notice")
    bo.add_argument("--trials", type=int, default=20)
    bo.add_argument("--seed", type=int, default=None)
    bo.add_argument("--run-dir", type=Path, default=None)
    bo.set_defaults(func=_bench_outage)
    bs = bench_sub.add_parser("snmp", help="SNMP poll cycle of 35 and 1,000 simulated APs, CPU per poll")
    bs.add_argument("--aps", type=int, default=35, help="APs in the small cycle (default 35)")
    bs.add_argument("--many", type=int, default=1000, help="APs in the large cycle (default 1000)")
    bs.add_argument("--cycles", type=int, default=3, help="timed cycles of each size (default 3)")
    bs.add_argument("--run-dir", type=Path, default=None)
    bs.set_defaults(func=_bench_snmp)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
