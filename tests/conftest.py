"""Fixtures that start real servers (Mosquitto, InfluxDB) from the system's binaries.

Nothing here is mocked: every test that takes one of these fixtures talks to a real
broker or database on loopback, started on a free port with its own data directory.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import CLOUD_USER, provision

from commune_iot.localsvc import InfluxDB, Mosquitto, SecureMosquitto, broker_home

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
INFLUX_USER = "ciot_admin"
INFLUX_PASSWORD = "test-only-password"


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """One InfluxDB (with HTTP Basic auth on) for the session; tests use their own database."""
    server = InfluxDB(tmp_path_factory.mktemp("influx"), username=INFLUX_USER, password=INFLUX_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(request: pytest.FixtureRequest) -> str:
    """A database name unique to the test (created by the code under test when missing)."""
    return "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]


@pytest.fixture
def fresh_influx(tmp_path: Path) -> Iterator[InfluxDB]:
    """An InfluxDB of the test's own, for tests that stop or freeze it."""
    server = InfluxDB(tmp_path / "influx", username=INFLUX_USER, password=INFLUX_PASSWORD)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own (tests stop, kill and restart it freely)."""
    broker = Mosquitto(tmp_path / "mqtt")
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    """The shipped hardened broker, run unprivileged as in production (its own user when the
    tests run as root), with a CA for 127.0.0.1 and the cloud user ``CLOUD_USER`` provisioned
    as the README says. Not started: a test provisions its boards, then starts it."""
    with broker_home() as home:
        broker = SecureMosquitto(home)
        provision(broker, "--ca", "--host", "127.0.0.1")
        provision(broker, "--cloud-user", CLOUD_USER)
        try:
            yield broker
        finally:
            broker.kill()
            if broker.log_path.exists():  # the home goes: keep the log with the test's files
                shutil.copyfile(broker.log_path, tmp_path / "mosquitto.log")
