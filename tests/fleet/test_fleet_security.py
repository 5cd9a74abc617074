"""Issue 15, must-show 4 (and item 5): on the shipped hardened broker, board A can neither publish on
board B's command or configuration topic nor read them (nor set its own: only the cloud may);
police and MIC users get 403 on every fleet route (walked from the OpenAPI schema); a technician
scoped to one commune cannot reach another's boards; every change and command is in the audit
trail with its diff or arguments."""

from __future__ import annotations

import os
import re
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fleet_helpers import CLOUD_USER, FleetLab
from paho.mqtt.enums import CallbackAPIVersion
from support import wait_until

BOARDS = ["dr-cam-08", "dr-cam-09", "tt-cam-01"]
A, B = "dr-cam-08", "dr-cam-09"


class Mqtt:
    """A paho v5 client that records what it receives."""

    def __init__(self, lab: FleetLab, user: str) -> None:
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{os.urandom(3).hex()}", protocol=mqtt.MQTTv5
        )
        self.got: list[str] = []
        self.payloads: list[bytes] = []
        self.cond = threading.Condition()
        self.ready = threading.Event()
        if user == CLOUD_USER:
            self.c.username_pw_set(user, (lab.run_dir / "bundles" / f"{user}.password").read_text().strip())
            port = lab.broker.port
        else:
            bundle = lab.run_dir / "bundles" / user
            self.c.username_pw_set(user, (bundle / "mqtt.password").read_text().strip())
            self.c.tls_set(ca_certs=str(bundle / "ca.crt"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
            port = lab.broker.tls_port
        self.c.on_message = self._on_message
        self.c.on_connect = lambda *a: self.ready.set()
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        assert self.ready.wait(10)

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.got.append(msg.topic)
            self.payloads.append(bytes(msg.payload))
            self.cond.notify_all()

    def subscribe(self, *topics: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe([(t, 1) for t in topics])
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def wait_for(self, topic: str) -> list[str]:
        with self.cond:
            assert self.cond.wait_for(lambda: topic in self.got, 10), f"{topic} never arrived; got {self.got}"
            return list(self.got)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_a_board_can_neither_send_nor_read_another_boards_commands_and_configuration(lab: FleetLab) -> None:
    a, b, cloud = Mqtt(lab, A), Mqtt(lab, B), Mqtt(lab, CLOUD_USER)
    base_a, base_b = f"ciot/v1/da-ron/{A}", f"ciot/v1/da-ron/{B}"
    try:
        b.subscribe(f"{base_b}/cmd", f"{base_b}/config")
        # its own topics, B's, and every board's commands (one subscription per topic: Mosquitto
        # delivers a message once per matching subscription)
        a.subscribe(f"{base_a}/config", f"{base_b}/cmd", f"{base_b}/config", "ciot/v1/+/+/cmd")
        cloud.subscribe("ciot/v1/#")
        # A speaks on B's control topics, and on its own (only the cloud may): all dropped.
        for topic in (f"{base_b}/cmd", f"{base_b}/config", f"{base_a}/cmd", f"{base_a}/config"):
            a.publish(topic, b'{"forged": true}', retain=topic.endswith("config"))
        a.publish(f"{base_a}/reply")  # its own replies and reports do go through
        a.publish(f"{base_a}/reported")
        # The cloud commands and configures B, then A: A gets only its own.
        cloud.publish(f"{base_b}/cmd")
        cloud.publish(f"{base_b}/config", b'{"from": "cloud"}', retain=True)
        cloud.publish(f"{base_a}/cmd")  # sent last: once A has it, B's would have arrived too
        got_a = a.wait_for(f"{base_a}/cmd")
        got_b = b.wait_for(f"{base_b}/config")
        seen = cloud.wait_for(f"{base_a}/cmd")
        assert [t for t in got_a if t.startswith(base_b)] == [], f"A read B's topics: {got_a}"
        assert got_a == [f"{base_a}/cmd"], got_a  # the cloud's command; its own forgeries dropped
        assert got_b.count(f"{base_b}/cmd") == 1 and got_b.count(f"{base_b}/config") == 1  # the cloud's only
        assert f"{base_a}/reply" in seen and f"{base_a}/reported" in seen
        forged = [t for t in seen if t in (f"{base_b}/cmd", f"{base_b}/config", f"{base_a}/config")]
        assert forged == [f"{base_b}/cmd", f"{base_b}/config"], seen  # the cloud's own, nothing of A
    finally:
        for c in (a, b, cloud):
            c.close()
    # Nothing of A's was kept as B's retained configuration.
    late = Mqtt(lab, CLOUD_USER)
    try:
        late.subscribe(f"{base_b}/config")
        late.wait_for(f"{base_b}/config")
        assert late.payloads == [b'{"from": "cloud"}']
    finally:
        late.close()


#: Request bodies by route, valid as far as possible so that only the role can refuse them.
BODIES: dict[tuple[str, str], Any] = {
    ("put", "/api/v1/fleet/nodes/{node}/config"): {"config": {"health_interval_s": 5}},
    ("post", "/api/v1/fleet/nodes/{node}/commands"): {"name": "diag"},
}


def _fleet_routes(lab: FleetLab) -> list[tuple[str, str]]:
    schema = lab.api("admin").get("/openapi.json")
    return [
        (method, path)
        for path, ops in schema["paths"].items()
        if path.startswith("/api/v1/fleet")
        for method in ops
    ]


def _url(path: str, node: str, command_id: str) -> str:
    return re.sub(r"\{node\}", node, path).replace("{command_id}", command_id)


def test_police_and_mic_get_403_on_every_fleet_route_and_scope_holds(lab: FleetLab) -> None:
    _, row = lab.command(A, "diag", ttl_s=1)  # a real command id for the routes that take one
    routes = _fleet_routes(lab)
    assert len(routes) >= 9, routes
    for user in ("ca-daron", "mic"):
        api = lab.api(user)
        for method, path in routes:
            status, body = api.call(method.upper(), _url(path, A, row["id"]), BODIES.get((method, path)))
            assert status == 403, f"{user}: {method.upper()} {path} answered {status}: {body!r:.200}"
    # A technician of Tu Tra: Tu Tra's boards yes, Da Ron's no (404, like a board that does not exist).
    tt = lab.api("kythuat-tutra")
    for method, path in routes:
        if "{" not in path:
            continue
        status, _ = tt.call(method.upper(), _url(path, A, row["id"]), BODIES.get((method, path)))
        assert status == 404, f"{method.upper()} {path} answered {status} to Tu Tra's technician"
    assert {n["commune"] for n in tt.get("/api/v1/fleet/nodes")} == {"tu-tra"}
    status, _ = tt.call("POST", "/api/v1/fleet/nodes/tt-cam-01/commands", {"name": "diag", "ttl_s": 1})
    assert status == 201
    assert lab.api("kythuat").call("GET", f"/api/v1/fleet/nodes/{A}/config")[0] == 200


def test_every_change_and_command_is_audited_with_its_diff_or_arguments(lab: FleetLab) -> None:
    node = "tt-cam-01"
    first = lab.set_config(node, {"health_interval_s": 10})
    second = lab.set_config(node, {"health_interval_s": 5})
    _, row = lab.command(node, "ping", args={"count": 2}, ttl_s=1)
    entries = lab.api("admin").get("/api/v1/audit?limit=50")
    changes = [e for e in entries if e["action"] == "fleet_config_set" and e["target"] == f"node:{node}"]
    assert [e["detail"]["version"] for e in changes][:2] == [second, first]
    assert changes[0]["actor"] == "kythuat" and changes[0]["commune"] == "tu-tra"
    assert {"path": "health_interval_s", "desired": 5.0, "before": 10.0} in changes[0]["detail"]["changes"]
    cmd = next(e for e in entries if e["action"] == "fleet_command" and e["target"] == f"command:{row['id']}")
    assert cmd["detail"]["name"] == "ping" and cmd["detail"]["args"] == {"count": 2}
    wait_until(
        "the command to expire",
        lambda: lab.api().get(f"/api/v1/fleet/commands/{row['id']}")["state"] == "expired",
        10,
    )


@pytest.mark.parametrize("user", ["ca-daron", "mic"])
def test_the_command_line_says_403_plainly(
    lab: FleetLab, user: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lab.fleet_cli("cmd", A, "diag", user=user) == 2
    assert "your role does not allow this" in capsys.readouterr().err
