"""Fixtures: a cloud config pointing at the real test broker and InfluxDB, and a running runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cloud_helpers import MakeConfig

from cloud.config import CloudConfig, load_config
from cloud.runtime import Runtime
from commune_iot.localsvc import InfluxDB, Mosquitto


@pytest.fixture
def make_config(tmp_path: Path, mosquitto: Mosquitto, influx_db: str, sql_url: str) -> MakeConfig:
    """Config for a worker; pass ``influx=`` to use another server, ``client_id=`` per worker."""

    def make(influx: InfluxDB, client_id: str = "test-worker", **mqtt: object) -> CloudConfig:
        """``mqtt`` keys override the MQTT section (e.g. receive_maximum)."""
        return load_config(
            None,
            mqtt={"url": mosquitto.url, "client_id": client_id, "commit_interval_ms": 5, **mqtt},
            influx={
                "url": influx.url,
                "database": influx_db,
                "username": influx.username,
                "password": influx.password,
                "flush_interval_s": 0.05,
                "retry_initial_s": 0.2,
                "retry_max_s": 1.0,
                "spool_dir": tmp_path / "spool",
                "retention": {"raw_days": 0},  # traffic stamped from cloud_helpers.BASE, a fixed day
            },
            sql={"url": sql_url},
            snapshots_dir=tmp_path / "snapshots",
        )

    return make


@pytest.fixture
async def runtime(make_config: MakeConfig, influx_server: InfluxDB) -> AsyncIterator[Runtime]:
    rt = Runtime(make_config(influx_server))
    await rt.start()
    assert rt.worker.wait_connected(10), rt.worker.last_error
    yield rt
    await rt.stop()
