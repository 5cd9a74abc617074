"""One onboarding lab per test module (see onboarding_lab.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from onboarding_lab import Lab, start_lab

from commune_iot.localsvc import InfluxDB, broker_home


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxDB) -> Iterator[Lab]:
    run = tmp_path_factory.mktemp("onboarding")
    with broker_home() as home:
        lab = start_lab(home, run, influx_server, f"t_onboarding_{run.name.replace('-', '_')}")
        try:
            yield lab
        finally:
            lab.close()
            if lab.broker.log_path.exists():  # the home goes: keep the broker's log with the run
                shutil.copyfile(lab.broker.log_path, run / "mosquitto.log")
