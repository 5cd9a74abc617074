"""Fixtures of the web tests: a running portal (see web_portal.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_lab import ConsoleLab, start_lab
from support import need_model
from web_helpers import camera_event, publish
from web_portal import NAMES, PASSWORDS, ROLES, SEED, Portal, wait_ready, wait_stored

from cloud.auth.users import UserStore
from cloud.storage.sql import SqlStore
from commune_iot.fleet import CloudProcess, cloud_config
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxDB) -> Iterator[Portal]:
    run = tmp_path_factory.mktemp("portal")
    broker = Mosquitto(run / "broker").start()
    pw_file = run / "influx.pw"
    pw_file.write_text(influx_server.password)
    cfg = cloud_config(
        mqtt_url=broker.url,
        influx_url=influx_server.url,
        influx_db=f"web_{os.getpid()}_{run.name}".replace("-", "_"),
        influx_user=influx_server.username,
        influx_password_file=pw_file,
        state_dir=run / "state",
        http_port=free_port(),
        client_id=f"web-{run.name}",
    )
    cfg["events"] = {"exports_dir": str(run / "state" / "exports")}
    cfg["labels"] = {"enabled": True, "model": str(need_model())}
    cloud = CloudProcess.write(run, cfg)
    sql = SqlStore(cfg["sql"]["url"])
    users = UserStore(sql.engine)
    tokens = {}
    for name, (roles, communes) in ROLES.items():
        users.add(
            name,
            PASSWORDS[name],
            frozenset(roles),
            communes=frozenset(communes),
            display_name=NAMES.get(name, ""),
        )
        tokens[name] = users.create_token(name, "tests")
    sql.dispose()
    try:
        cloud.start()
        wait_ready(cloud)
        sent = [camera_event(c, d, i, start, dur) for i, (c, d, start, dur) in enumerate(SEED)]
        publish(broker.port, [m for ev in sent for m in ev.messages])
        p = Portal(cloud.url, cloud, broker, cfg["sql"]["url"], tokens, sent)
        p.artifacts = Path(os.environ.get("CIOT_ARTIFACTS", "var/artifacts"))
        p.artifacts.mkdir(parents=True, exist_ok=True)
        wait_stored(p)
        yield p
    finally:
        cloud.stop()
        broker.stop()


@pytest.fixture(scope="session")
def console_lab(tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxDB) -> Iterator[ConsoleLab]:
    """The technicians' console against a real cloud, broker and agents (see console_lab.py); one
    for the session: each test starts the boards it needs, of its own."""
    lab = start_lab(tmp_path_factory.mktemp("console"), influx_server)
    try:
        yield lab
    finally:
        lab.close()
