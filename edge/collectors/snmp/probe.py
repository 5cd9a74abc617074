"""``commune-iot snmp probe HOST``: what the board would read from an AP, for a technician.

It runs the collector's own poller once, so "the probe works" means "the agent will work".
Errors are one line on stderr and a non-zero exit status (1: the AP did not answer as
hoped; 2: bad arguments), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import warnings
from typing import Any

ENV_COMMUNITY = "CIOT_SNMP_COMMUNITY"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("host", help="AP address (IP or name)")
    p.add_argument("--port", type=int, default=161, help="SNMP UDP port (default 161)")
    p.add_argument(
        "--community",
        default=None,
        help=f"v2c community (default: ${ENV_COMMUNITY}, else 'public'); prefer the variable, "
        "a command line is visible to other users",
    )
    v3 = p.add_argument_group("SNMPv3 (authPriv)")
    v3.add_argument("--v3-user", default=None, help="use SNMPv3 with this user")
    v3.add_argument("--auth-protocol", default="SHA", choices=["SHA", "SHA256", "SHA512", "MD5"])
    v3.add_argument("--auth-key", default=None, help="auth passphrase (default: $CIOT_SNMP_AUTH_KEY)")
    v3.add_argument("--priv-protocol", default="AES", choices=["AES", "AES192", "AES256", "none"])
    v3.add_argument("--priv-key", default=None, help="privacy passphrase (default: $CIOT_SNMP_PRIV_KEY)")
    p.add_argument("--profile", default="auto", help="vendor profile: auto (default) or a profile name")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per attempt (default 2)")
    p.add_argument("--retries", type=int, default=1, help="retries per request (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _fail(message: str, code: int = 1) -> int:
    print(f"snmp probe: {message}", file=sys.stderr)
    return code


def _text(doc: dict[str, Any]) -> str:
    lines = [
        f"profile   {doc['profile']}",
        f"sysDescr  {doc['sys_descr'] or '-'}",
        f"uptime    {doc['uptime_s'] if doc['uptime_s'] is not None else 'unknown'} s"
        + (f" (from {doc['uptime_source']})" if doc["uptime_source"] else ""),
        f"clients   {doc['clients'] if doc['clients'] is not None else 'not available for this profile'}",
    ]
    for key, title in (("clients_by_radio", "per band"), ("clients_by_ssid", "per SSID")):
        if doc[key]:
            lines.append(f"  {title}: " + ", ".join(f"{k}={v}" for k, v in doc[key].items()))
    lines.append(f"interfaces ({len(doc['interfaces'])}):")
    for i in doc["interfaces"]:
        octets = (
            f"in {i['in_octets']} out {i['out_octets']} ({i['counter_bits']}-bit)"
            if i["in_octets"] is not None
            else "no octet counters"
        )
        lines.append(f"  {i['index']:>4} {i['name']:<20} {i['status'] or '-':<8} {octets}")
    lines.append(f"poll took {doc['poll_s']} s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # pysmi's, on import
    from pydantic import SecretStr, ValidationError

    from edge.collectors.snmp.client import Credentials, SnmpClient, SnmpError, Target
    from edge.collectors.snmp.poller import ApPoller
    from edge.collectors.snmp.profile import ProfileError, get_profile

    if args.profile != "auto":
        try:
            get_profile(args.profile)
        except ProfileError as exc:
            return _fail(str(exc), 2)
    if not 0 < args.port < 65536:
        return _fail(f"bad port {args.port}", 2)
    try:
        if args.v3_user:
            auth_key = args.auth_key or os.environ.get("CIOT_SNMP_AUTH_KEY")
            priv_key = args.priv_key or os.environ.get("CIOT_SNMP_PRIV_KEY")
            if not auth_key:
                return _fail("SNMPv3 needs --auth-key or $CIOT_SNMP_AUTH_KEY", 2)
            if not priv_key and args.priv_protocol != "none":
                return _fail("SNMPv3 with privacy needs --priv-key or $CIOT_SNMP_PRIV_KEY", 2)
            creds = Credentials(
                version="3",
                user=args.v3_user,
                auth_protocol=args.auth_protocol,
                auth_key=SecretStr(auth_key) if auth_key else None,
                priv_protocol=args.priv_protocol,
                priv_key=SecretStr(priv_key) if priv_key else None,
            )
        else:
            community = args.community or os.environ.get(ENV_COMMUNITY) or "public"
            creds = Credentials(community=SecretStr(community))
    except ValidationError as exc:
        return _fail(exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, "), 2)
    target = Target(args.host, args.port, args.timeout, max(0, args.retries))
    deadline = max(5.0, args.timeout * (args.retries + 1) * 4)

    async def once() -> dict[str, Any]:
        client = SnmpClient()
        try:
            poller = ApPoller(target, creds.auth_data(), args.profile)
            reading = await asyncio.wait_for(poller.poll(client), deadline)
            return reading.as_json()
        finally:
            client.close()

    try:
        doc = asyncio.run(once())
    except TimeoutError:
        return _fail(f"{target.address}: no complete answer within {deadline:g} s")
    except SnmpError as exc:
        hint = ""
        if exc.kind == "timeout":
            hint = (
                " (SNMP disabled, wrong community or v3 user, a firewall, or the host is down)"
                if not args.v3_user
                else " (SNMP disabled, wrong v3 user or keys, a firewall, or the host is down)"
            )
        return _fail(f"{exc}{hint}")
    except OSError as exc:
        return _fail(f"{target.address}: {exc.strerror or exc}")
    except Exception as exc:  # a technician's tool: one line, never a traceback
        return _fail(f"{target.address}: unexpected {type(exc).__name__}: {exc}")
    if doc["incomplete"]:
        print(f"snmp probe: warning: tables incomplete: {doc['incomplete']}", file=sys.stderr)
    if args.profile != "auto" and doc["clients"] is None and get_profile(args.profile).knows_clients:
        print(
            f"snmp probe: warning: profile {args.profile} found no client count on this device",
            file=sys.stderr,
        )
    print(json.dumps(doc, ensure_ascii=False) if args.json else _text(doc))
    return 0
