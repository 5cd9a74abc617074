"""``python -m edge --config FILE``: run one agent (what tests and the demo spawn)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.runtime import run_from_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge", description="Run one edge agent.")
    parser.add_argument("--config", type=Path, default=None, help="edge YAML (default: $CIOT_EDGE_CONFIG)")
    args = parser.parse_args(argv)
    return run_from_config(args.config)


if __name__ == "__main__":
    sys.exit(main())
