"""Text PostgreSQL cannot hold (NUL, longer than its column) never becomes a 500 or a wedged
ingest batch; on SQLite the same requests behave the same way or better."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support import admin_headers

from cloud.api.app import create_app
from cloud.config import load_config
from cloud.runtime import Runtime
from cloud.storage.sql import BatchUpdate, DeadLetter, SqlStore, StatusUpdate


def test_nul_from_the_wire_is_stored_escaped_on_both_engines(sql_url: str) -> None:
    sql = SqlStore(sql_url)
    sql.apply(
        BatchUpdate(
            statuses=[
                StatusUpdate(
                    "dr-ap-01",
                    "da-ron",
                    True,
                    "online",
                    "birth",
                    time.time(),
                    "1.0\x00evil",
                    "ab12cd34",
                    int(time.time() * 1000),
                )
            ],
            dead=[DeadLetter("ciot/v1/da-ron/dr-ap-01/health\x00", "dr-ap-01", "bad \x00", b"\x00raw\x00")],
        )
    )
    assert sql.node_states()["dr-ap-01"]["agent_version"] == "1.0\\x00evil"
    (dead,) = sql.dead_letter_rows()
    assert (dead["topic"], dead["reason"], bytes(dead["payload"])) == (
        "ciot/v1/da-ron/dr-ap-01/health\\x00",
        "bad \\x00",
        b"\x00raw\x00",  # the payload keeps its exact bytes
    )
    sql.dispose()


@pytest.fixture
async def api(tmp_path: Path, sql_url: str) -> AsyncIterator[httpx.AsyncClient]:
    cfg = load_config(
        None,
        mqtt={"url": "mqtt://127.0.0.1:1", "client_id": "text-test"},
        influx={"spool_dir": tmp_path / "spool"},
        sql={"url": sql_url},
        snapshots_dir=tmp_path / "snapshots",
    )
    rt = Runtime(cfg)
    app = create_app(rt, manage_runtime=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=admin_headers(rt.sql.engine)
    ) as c:
        yield c
    rt.journal.close()
    await rt.influx.aclose()
    rt.sql.dispose()


async def test_text_the_database_cannot_hold_is_a_422_never_a_500(
    api: httpx.AsyncClient, sql_url: str
) -> None:
    window = {"target_kind": "node", "target": "dr-ap-01", "starts_at": "2026-12-01T00:00:00Z"}
    window["ends_at"] = "2026-12-01T01:00:00Z"
    r = await api.post("/api/v1/maintenance", json={**window, "comment": "cúp điện\x00"})
    assert r.status_code == (201 if sql_url.startswith("sqlite") else 422), r.text
    r = await api.get("/api/v1/events", params={"device": "dr-cam-01\x00"})
    assert r.status_code in (200, 422), r.text
    r = await api.post("/api/v1/maintenance", json={**window, "target": "x" * 65})
    assert r.status_code == 422  # bounded by the API on both engines
    r = await api.get(f"/api/v1/alerts/{2**31}")
    assert r.status_code == 422  # beyond a 32-bit key: cannot exist
