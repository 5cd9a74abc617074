"""Fixtures that start real servers (Mosquitto, InfluxDB, PostgreSQL) from the system's binaries.

Nothing here is mocked: every test that takes one of these fixtures talks to a real
broker or database on loopback, started on a free port with its own data directory.

A test that takes ``sql_url`` runs once per SQL engine (``[sqlite]``, ``[postgresql]``),
each time on an empty database of its own; ``pytest --sql sqlite`` runs only one engine,
and ``@pytest.mark.sql("postgresql")`` keeps a slow end-to-end test to the one it is about.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import CLOUD_USER, provision

from commune_iot.localsvc import InfluxDB, Mosquitto, PostgreSQL, SecureMosquitto, broker_home

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
INFLUX_USER = "ciot_admin"
INFLUX_PASSWORD = "test-only-password"
POSTGRES_PASSWORD = "test-only-password"
SQL_ENGINES = ("sqlite", "postgresql")
_databases = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sql",
        default=",".join(SQL_ENGINES),
        help="SQL engines for the tests that take sql_url (default: sqlite,postgresql)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sql_url" in metafunc.fixturenames:
        engines = [e for e in metafunc.config.getoption("sql").split(",") if e]
        unknown = set(engines) - set(SQL_ENGINES)
        if unknown:
            raise pytest.UsageError(f"--sql: unknown engine(s) {sorted(unknown)}; use {SQL_ENGINES}")
        only = metafunc.definition.get_closest_marker("sql")
        if only is not None:  # @pytest.mark.sql("postgresql"): a slow test run on one engine only
            engines = [e for e in engines if e in only.args]
        metafunc.parametrize("sql_url", engines, indirect=True)


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """One InfluxDB (with HTTP Basic auth on) for the session; tests use their own database."""
    server = InfluxDB(tmp_path_factory.mktemp("influx"), username=INFLUX_USER, password=INFLUX_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgreSQL]:
    """One PostgreSQL cluster for the session; each test gets a database of its own (``sql_url``)."""
    server = PostgreSQL(tmp_path_factory.mktemp("postgres"), password=POSTGRES_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for the test: a SQLite file, or a new PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.db'}"
        return
    server: PostgreSQL = request.getfixturevalue("postgres_server")
    name = f"t{next(_databases)}_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture
def influx_db(request: pytest.FixtureRequest) -> str:
    """A database name unique to the test and its parameters (created by the code under test
    when missing): the name, shortened, and a hash of the whole test id."""
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    return "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + digest


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
