"""``commune-iot edge update``: the update client from a shell (what the ``update`` command runs).

Prints one JSON line (``edge.update.Result``); exit status 0 when the release was installed
(or already runs), 1 when it was refused or failed (nothing changed), 2 for a bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from edge.config import ConfigError, load_config
from edge.update.apply import Result, apply_bundle, apply_update
from edge.update.layout import ROOT_ENV, Layout

DEFAULT_ROOT = Path("/opt/commune-iot")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"commune-iot edge update: {exc}", file=sys.stderr)
        return 2
    layout = Layout(args.root or Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT))
    result: Result
    if args.bundle is not None:
        result = apply_bundle(args.bundle, cfg.update, layout, first=args.first)
    else:
        if not args.release:
            print("commune-iot edge update: --url needs --version", file=sys.stderr)
            return 2
        secret = cfg.broker.secret()
        auth = (cfg.broker.username, secret) if cfg.broker.username and secret is not None else None
        result = asyncio.run(
            apply_update(
                args.url, args.release, args.manifest_sha256, cfg=cfg.update, auth=auth, layout=layout
            )
        )
    print(json.dumps(result.as_dict()), flush=True)
    return 0 if result.ok else 1
