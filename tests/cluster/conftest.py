"""A three-node NATS cluster (MQTT + JetStream) of the test's own, from Debian's nats-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from commune_iot.localcluster import NatsCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three nodes on loopback, each with its own ports and data dir; tests kill nodes freely."""
    nodes = NatsCluster(tmp_path / "nats")
    try:
        yield nodes.start()
    finally:
        nodes.kill()
