"""One fleet lab per test module (broker, cloud, users); each module lists the boards it provisions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fleet_helpers import FleetLab, start_lab

from commune_iot.localsvc import InfluxDB


@pytest.fixture(scope="module")
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxDB
) -> Iterator[FleetLab]:
    boards: list[str] = request.module.BOARDS
    run = start_lab(tmp_path_factory.mktemp("fleet"), influx_server, boards, influx_server.password or "")
    yield run
    run.close()
