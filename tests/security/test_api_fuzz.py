"""schemathesis against the API's own OpenAPI schema: no input gives a server error (issue 9, must-show 6).

The app runs in-process (schemathesis' ASGI transport, which also runs its lifespan, so the
real ingest runtime is up against a real Mosquitto and InfluxDB and ``/readyz`` answers 200).
Every operation of ``/openapi.json`` is called with cases schemathesis generates from the
schema (positive and negative: wrong types, out-of-range values, odd strings), reproducibly
(``derandomize=True``), twice:

* with an admin bearer token (every route reachable), ``EXAMPLES`` cases per operation (20 in
  the default run; the slow variant runs them all);
* without credentials, fewer cases (4 in the default run): every ``/api/v1`` route must
  refuse (401/403), never fail.

Asserted: no response is a 5xx. Rather than stopping (and shrinking) at the first one, every
5xx is collected with its request, so one run shows all of them. Nothing is excluded: the
destructive operations (logout, maintenance delete, exports) run too; logout with a bearer
token does not revoke the token.

Some seed data is stored first (an event with its snapshot, an alert, a maintenance window)
so that ids in paths sometimes exist and the "found" branches run as well.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.transport.requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from support import admin_headers

from cloud.api.app import create_app
from cloud.config import load_config
from cloud.runtime import Runtime
from commune_iot.localsvc import InfluxDB, Mosquitto

EXAMPLES = 100
EXAMPLES_ANONYMOUS = 10


@pytest.fixture
def api(
    mosquitto: Mosquitto, influx_server: InfluxDB, influx_db: str, tmp_path: Path, sql_url: str
) -> Iterator[tuple[Any, Runtime]]:
    cfg = load_config(
        None,
        mqtt={"url": mosquitto.url, "client_id": "fuzz-api", "commit_interval_ms": 5},
        influx={
            "url": influx_server.url,
            "database": influx_db,
            "username": influx_server.username,
            "password": influx_server.password,
            "spool_dir": tmp_path / "spool",
            "self_metrics_s": 0,
        },
        sql={"url": sql_url},
        snapshots_dir=tmp_path / "snapshots",
        events={"exports_dir": tmp_path / "exports", "signing_key_file": tmp_path / "keys" / "evidence.pem"},
    )
    runtime = Runtime(cfg, role="fuzz")
    app = create_app(runtime)  # its lifespan (run by schemathesis) starts and stops the runtime
    try:
        yield app, runtime
    finally:
        asgi.shutdown_lifespans()


def _seed(runtime: Runtime, headers: dict[str, str], schema: Any) -> None:
    """An event with a snapshot and a maintenance window, through the real paths."""
    import hashlib
    from datetime import UTC, datetime, timedelta

    from cloud.ingest.consumer import _Received
    from edge.collectors.snapshot import tiny_jpeg
    from wire import Channel, MotionEvent, encode, topic_for

    jpeg = tiny_jpeg("fuzz")
    node = runtime.inventory.devices[0]
    cam = next(d for d in runtime.inventory.devices if d.kind == "camera")
    now = datetime.now(UTC).replace(microsecond=0)
    ev = MotionEvent(
        node=cam.node,
        session="f0220000",
        seq=1,
        ts=now,
        event_id="fuzz-1",
        device=cam.id,
        phase="end",
        start=now - timedelta(seconds=5),
        end=now,
        peak_area_pct=3.0,
        snapshot_sha256=hashlib.sha256(jpeg).hexdigest(),
        snapshot_bytes=len(jpeg),
    )
    t = time.time()
    runtime.worker._commit(
        [
            _Received(topic_for(cam.commune, cam.node, Channel.SNAPSHOT, "fuzz-1"), jpeg, t),
            _Received(topic_for(cam.commune, cam.node, Channel.EVENT), encode(ev), t),
        ]
    )
    op = schema["/api/v1/maintenance"]["POST"]
    body = {
        "target_kind": "node",
        "target": node.node,
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
    }
    response = op.Case(body=body).call(headers=headers)
    assert response.status_code < 300, response.text


def _fuzz(schema: Any, headers: dict[str, str], examples: int) -> tuple[list[str], dict[str, int]]:
    errors: list[str] = []
    calls: dict[str, int] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{op.method.upper()} {op.path}"
        calls[label] = 0

        @settings(
            max_examples=examples,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            case=st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))
        )
        def call(case: Any) -> None:
            calls[label] += 1  # noqa: B023 (runs inside this iteration)
            try:
                response = case.call(headers=headers)
            except Exception as exc:  # the ASGI transport re-raises what the app raised: a 500
                errors.append(
                    f"exception {case.method} {case.formatted_path} query={case.query}: {exc!r}"[:500]
                )
                return
            if response.status_code >= 500:
                errors.append(
                    f"{response.status_code} {case.method} {case.formatted_path} query={case.query} "
                    f"body={str(case.body)[:200]}: {response.text[:300]}"
                )

        call()
    return errors, calls


@pytest.mark.parametrize(
    ("examples", "anonymous"),
    [(20, 4), pytest.param(EXAMPLES, EXAMPLES_ANONYMOUS, marks=pytest.mark.slow)],
)
def test_no_input_makes_the_api_fail(
    api: tuple[Any, Runtime], monkeypatch: pytest.MonkeyPatch, examples: int, anonymous: int
) -> None:
    # The venv's urllib3 is urllib3-future (pulled in by niquests), whose pool container
    # schemathesis' keep-alive retry bookkeeping cannot iterate. In-process ASGI calls open
    # no connections, so the count is 0.
    monkeypatch.setattr(schemathesis.transport.requests, "_count_opened_connections", lambda _session: 0)
    app, runtime = api
    started = time.monotonic()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan: runtime up
    assert runtime.worker.wait_connected(15), runtime.worker.last_error
    headers = admin_headers(runtime.sql.engine)
    _seed(runtime, headers, schema)
    errors, calls = _fuzz(schema, headers, examples)
    anon_errors, anon_calls = _fuzz(schema, {}, anonymous)
    elapsed = time.monotonic() - started
    print(
        f"\nschemathesis: {len(calls)} operations, {sum(calls.values())} cases with a token, "
        f"{sum(anon_calls.values())} without, in {elapsed:.0f} s"
    )
    assert len(calls) >= 30  # every operation of the schema was exercised
    assert all(n > 0 for n in calls.values()), calls
    assert not errors, "\n".join(errors[:20])
    assert not anon_errors, "\n".join(anon_errors[:20])
