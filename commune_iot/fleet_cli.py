"""``commune-iot fleet ...``: boards' configuration and commands, through the cloud's API.

It talks to the running cloud service over HTTP (``--url``, an API token from ``--token-file``
or ``$CIOT_API_TOKEN``: ``commune-iot users token NAME`` makes one), so every change goes
through the same validation, permissions and audit trail as the web API.

    commune-iot fleet status
    commune-iot fleet config get dr-cam-01 > dr-cam-01.yaml      # edit it, then:
    commune-iot fleet config set dr-cam-01 dr-cam-01.yaml --wait 30
    commune-iot fleet config set tt-ap-03 ap.yaml --secret collectors.0.snmp.community=@community.txt
    commune-iot fleet config diff dr-cam-01
    commune-iot fleet cmd dr-cam-01 snapshot --wait 30 --out now.jpg
    commune-iot fleet cmd tt-ap-03 ping --arg count=5 --wait 30
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

FINAL = ("done", "failed", "expired")


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class Api:
    """A few JSON calls to the cloud API with a bearer token."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
                status = int(r.status)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail = json.loads(raw).get("detail", raw.decode(errors="replace"))
            except (ValueError, AttributeError):
                detail = raw.decode(errors="replace")
            raise ApiError(exc.code, detail) from None
        if r.headers.get("content-type", "").startswith("application/json"):
            return status, json.loads(raw)
        return status, raw

    def get(self, path: str) -> Any:
        return self.call("GET", path)[1]


def _api(args: argparse.Namespace) -> Api:
    token = ""
    if args.token_file:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    token = token or os.environ.get("CIOT_API_TOKEN", "")
    if not token:
        raise SystemExit(
            "fleet: no API token: --token-file FILE or $CIOT_API_TOKEN (commune-iot users token NAME)"
        )
    return Api(args.url, token)


def _node(node: str) -> str:
    return urllib.parse.quote(node, safe="")


def _explain(exc: ApiError) -> str:
    if exc.status == 422 and isinstance(exc.detail, list):
        lines = []
        for d in exc.detail:
            loc = [str(p) for p in d.get("loc", []) if p not in ("body",)]
            lines.append(f"  {'.'.join(loc) or '(request)'}: {d.get('msg')}")
        return "refused by the schema (nothing was sent to the board):\n" + "\n".join(lines)
    return str(exc.detail) if exc.status != 401 else "not logged in: check the API token"


def _status(args: argparse.Namespace) -> int:
    api = _api(args)
    q = f"?commune={urllib.parse.quote(args.commune)}" if args.commune else ""
    rows = api.get(f"/api/v1/fleet/nodes{q}")
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"{'board':<12} {'commune':<9} {'online':<7} {'agent':<8} {'desired':>7} {'running':>7}  sync")
    for r in rows:
        online = {True: "yes", False: "no", None: "?"}[r["online"]]
        running = "-" if r["running_version"] is None else str(r["running_version"])
        line = (
            f"{r['node']:<12} {r['commune']:<9} {online:<7} {r['agent_version'] or '-':<8} "
            f"{r['desired_version']:>7} {running:>7}  {r['sync']}"
        )
        if r["commands_open"]:
            line += f", {r['commands_open']} command(s) open"
        if r["error"] and r["sync"] in ("rejected", "reverted", "stale"):
            line += f": {r['error']}"
        print(line)
    return 0


def _config_get(args: argparse.Namespace) -> int:
    api = _api(args)
    twin = api.get(f"/api/v1/fleet/nodes/{_node(args.node)}/config")
    if args.json:
        print(json.dumps(twin, ensure_ascii=False, indent=2))
        return 0
    which = args.which or ("desired" if twin["desired"] is not None else "reported")
    doc = twin[which]
    if doc is None:
        print(
            f"fleet: {args.node} has no {which} configuration yet (has the board been online?)",
            file=sys.stderr,
        )
        return 1
    print(
        f"# {which} configuration of {args.node}: desired version {twin['desired_version']}, running "
        f"{twin['running_version']}, {twin['sync']}\n"
        "# Secrets show as '**********' (keep the board's); set new ones with --secret PATH=@FILE."
    )
    print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), end="")
    return 0


def _read_secret(spec: str) -> tuple[str, str]:
    path, sep, value = spec.partition("=")
    if not sep or not path:
        raise SystemExit(
            f"fleet: --secret wants PATH=VALUE, PATH=@FILE or PATH=- (got {spec.split('=')[0]!r})"
        )
    if value == "-":
        value = getpass.getpass(f"{path}: ")
    elif value.startswith("@"):
        value = Path(value[1:]).read_text(encoding="utf-8").rstrip("\r\n")
    return path, value


def _wait_config(api: Api, node: str, version: int, wait_s: float) -> int:
    deadline = time.monotonic() + wait_s
    while True:
        twin = api.get(f"/api/v1/fleet/nodes/{_node(node)}/config")
        answered = twin["report_version"] == version or (twin["running_version"] or 0) > version
        if answered and twin["report_state"] != "applied":
            print(f"board {node}: version {version} {twin['report_state']}: {twin['error']}")
            return 1
        if answered and twin["good"]:
            print(f"board {node}: version {version} applied and good")
            return 0
        if time.monotonic() > deadline:
            state = "on trial" if answered else "no answer yet (offline? it gets it on reconnect)"
            print(f"board {node}: version {version}: {state} after {wait_s:g} s")
            return 2
        time.sleep(0.5)


def _config_set(args: argparse.Namespace) -> int:
    api = _api(args)
    text = sys.stdin.read() if str(args.file) == "-" else Path(args.file).read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    secrets = dict(_read_secret(s) for s in args.secret)
    try:
        _, out = api.call(
            "PUT", f"/api/v1/fleet/nodes/{_node(args.node)}/config", {"config": doc, "secrets": secrets}
        )
    except ApiError as exc:
        print(f"fleet: {_explain(exc)}", file=sys.stderr)
        return 2
    print(f"board {args.node}: desired configuration version {out['version']}")
    for c in out["changes"]:
        before, after = (json.dumps(c[k], ensure_ascii=False) for k in ("before", "desired"))
        print(f"  {c['path']}: {before} -> {after}")
    for path in out["secrets"]:
        print(f"  {path}: secret set (sealed for the board)")
    if args.wait:
        return _wait_config(api, args.node, int(out["version"]), args.wait)
    return 0


def _config_diff(args: argparse.Namespace) -> int:
    out = _api(args).get(f"/api/v1/fleet/nodes/{_node(args.node)}/config/diff")
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"board {args.node}: desired version {out['desired_version']}, running {out['running_version']}")
    for d in out["differences"]:
        desired = json.dumps(d["desired"], ensure_ascii=False)
        print(f"  {d['path']}: desired {desired}, board runs {json.dumps(d['reported'], ensure_ascii=False)}")
    if not out["differences"]:
        print("  no difference")
    return 1 if out["differences"] else 0


def _config_history(args: argparse.Namespace) -> int:
    rows = _api(args).get(f"/api/v1/fleet/nodes/{_node(args.node)}/config/history")
    for v in rows:
        outcome = v["outcome"] or "no answer"
        err = f": {v['outcome_error']}" if v["outcome_error"] else ""
        print(f"v{v['version']:<4} {v['at'][:19]} by {v['by']:<12} {outcome}{err}")
    return 0


def _parse_arg(spec: str) -> tuple[str, Any]:
    key, sep, raw = spec.partition("=")
    if not sep:
        raise SystemExit(f"fleet: --arg wants KEY=VALUE (got {spec!r})")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _cmd(args: argparse.Namespace) -> int:
    api = _api(args)
    body: dict[str, Any] = {"name": args.name, "args": dict(_parse_arg(a) for a in args.arg)}
    if args.ttl:
        body["ttl_s"] = args.ttl
    if args.id:
        body["id"] = args.id
    try:
        status, row = api.call("POST", f"/api/v1/fleet/nodes/{_node(args.node)}/commands", body)
    except ApiError as exc:
        print(f"fleet: {_explain(exc)}", file=sys.stderr)
        return 2
    again = " (this id was issued before: the same command)" if status == 200 else ""
    print(f"command {row['id']} ({row['name']}) for {args.node}: {row['state']}{again}", file=sys.stderr)
    if args.wait:
        deadline = time.monotonic() + args.wait
        while row["state"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.3)
            row = api.get(f"/api/v1/fleet/commands/{row['id']}")
    print(json.dumps(row, ensure_ascii=False, indent=2))
    if row["state"] == "done" and args.out and (row["result"] or {}).get("snapshot_sha256"):
        deadline = time.monotonic() + 10
        while True:
            try:
                _, jpeg = api.call("GET", f"/api/v1/fleet/commands/{row['id']}/snapshot")
                break
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        Path(args.out).write_bytes(jpeg)
        print(f"picture saved to {args.out}", file=sys.stderr)
    if row["state"] in FINAL:
        return 0 if row["state"] == "done" else 1
    return 0 if not args.wait else 2


def _key(args: argparse.Namespace) -> int:
    print(_api(args).get("/api/v1/fleet/key")["cloud_public_key"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    fleet = sub.add_parser("fleet", help="boards' configuration and commands, through the cloud API")
    fleet.add_argument(
        "--url",
        default=os.environ.get("CIOT_API_URL", "http://127.0.0.1:8000"),
        help="cloud API base URL (default $CIOT_API_URL or http://127.0.0.1:8000)",
    )
    fleet.add_argument(
        "--token-file", default=None, help="file holding an API token (default $CIOT_API_TOKEN)"
    )
    fs = fleet.add_subparsers(dest="fleet_cmd", required=True)

    st = fs.add_parser("status", help="every board: online, agent version, desired/running config, sync")
    st.add_argument("--commune", default=None)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)

    cfg = fs.add_parser("config", help="a board's desired configuration (device twin)")
    cs = cfg.add_subparsers(dest="config_cmd", required=True)
    get = cs.add_parser("get", help="print the configuration to edit (YAML): desired if set, else reported")
    get.add_argument("node")
    get.add_argument("--which", choices=("desired", "reported"), default=None)
    get.add_argument("--json", action="store_true", help="the whole twin as JSON")
    get.set_defaults(func=_config_get)
    put = cs.add_parser("set", help="set the desired configuration from a YAML file ('-': stdin)")
    put.add_argument("node")
    put.add_argument("file")
    put.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="PATH=@FILE",
        help="set a secret (sealed for the board), e.g. collectors.0.snmp.community=@file; PATH=- asks",
    )
    put.add_argument("--wait", type=float, default=0, help="wait up to S seconds for the board's answer")
    put.set_defaults(func=_config_set)
    diff = cs.add_parser("diff", help="desired against what the board reports (exit 1 when they differ)")
    diff.add_argument("node")
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(func=_config_diff)
    hist = cs.add_parser("history", help="desired versions and what the board answered")
    hist.add_argument("node")
    hist.set_defaults(func=_config_history)

    cmd = fs.add_parser(
        "cmd", help="run a command on a board: snapshot, poll, ping, diag, logs, rebirth, restart, update"
    )
    cmd.add_argument("node")
    cmd.add_argument("name")
    cmd.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="argument (JSON or text)"
    )
    cmd.add_argument("--ttl", type=float, default=None, help="seconds it may wait for the board")
    cmd.add_argument("--id", default=None, help="your id for it (issuing the same id again runs it once)")
    cmd.add_argument("--wait", type=float, default=0, help="wait up to S seconds for the result")
    cmd.add_argument("--out", default=None, help="snapshot: save the picture here")
    cmd.set_defaults(func=_cmd)

    key = fs.add_parser("key", help="the cloud's public key, for control.cloud_public_key on boards")
    key.set_defaults(func=_key)
