"""The shipped broker configuration (firmware_config/mosquitto/mosquitto-secure.conf) with
files made by ``commune-iot provision``, on a real Mosquitto: strangers are refused, a board
can speak only for itself, and a revoked board cannot come back.

The configuration is used as shipped (only its container paths, ports and log destination
are rewritten) and the broker runs as production runs it: as its own unprivileged user, reading
files laid out as the README says (``secure_broker`` in tests/conftest.py).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from support import CLOUD_USER, broker_password, provision

from commune_iot.cli import main as cli
from commune_iot.localsvc import SecureMosquitto, broker_account

BOARD_A, BOARD_B, CLOUD = "dr-cam-01", "dr-cam-02", CLOUD_USER


@pytest.fixture
def broker(secure_broker: SecureMosquitto) -> SecureMosquitto:
    for board in (BOARD_A, BOARD_B):
        provision(secure_broker, board)
    return secure_broker.start()


class Client:
    """A paho MQTT v5 client that waits for what the broker answered."""

    def __init__(self, broker: SecureMosquitto, user: str | None, password: str | None, *, tls: bool) -> None:
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{os.urandom(3).hex()}", protocol=mqtt.MQTTv5
        )
        if user is not None:
            self.c.username_pw_set(user, password)
        if tls:
            self.c.tls_set(ca_certs=str(broker.auth / "ca.crt"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.connected = threading.Event()
        self.reason: ReasonCode | None = None
        self.messages: list[mqtt.MQTTMessage] = []
        self.arrived = threading.Condition()
        self.suback: list[ReasonCode] = []
        self.subscribed = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        port = broker.tls_port if tls else broker.port
        self.c.connect_async("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def _on_connect(self, c: Any, u: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.reason = reason
        self.connected.set()

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.arrived:
            self.messages.append(msg)
            self.arrived.notify_all()

    def _on_subscribe(self, c: Any, u: Any, mid: int, reasons: list[ReasonCode], props: Any) -> None:
        self.suback = reasons
        self.subscribed.set()

    def accepted(self, timeout: float = 10) -> bool:
        assert self.connected.wait(timeout), "no CONNACK"
        assert self.reason is not None
        return not self.reason.is_failure

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.subscribed.clear()
        self.c.subscribe(topic, qos=1)
        assert self.subscribed.wait(10)
        return self.suback

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def wait_for(self, topic: str, timeout: float = 10) -> list[str]:
        with self.arrived:
            self.arrived.wait_for(lambda: any(m.topic == topic for m in self.messages), timeout)
            return [m.topic for m in self.messages]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _board(broker: SecureMosquitto, name: str) -> Client:
    return Client(broker, name, broker_password(broker, name), tls=True)


def _cloud(broker: SecureMosquitto) -> Client:
    return Client(broker, CLOUD, broker_password(broker, CLOUD), tls=False)


def test_strangers_wrong_passwords_and_plain_text_are_refused(broker: SecureMosquitto) -> None:
    anonymous = Client(broker, None, None, tls=True)
    wrong = Client(broker, BOARD_A, "guess", tls=True)
    try:
        assert not anonymous.accepted() and not wrong.accepted()
        assert anonymous.reason is not None and anonymous.reason.value in (
            0x86,
            0x87,
        )  # bad auth / not authorized
    finally:
        anonymous.close()
        wrong.close()
    plain_on_tls = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    with pytest.raises((OSError, mqtt.WebsocketConnectionError, ssl.SSLError)):
        plain_on_tls.username_pw_set(BOARD_A, broker_password(broker, BOARD_A))
        plain_on_tls.connect("127.0.0.1", broker.tls_port, keepalive=5)
        rc = plain_on_tls.loop(timeout=5)  # the TLS listener never answers MQTT in clear
        raise OSError(f"no CONNACK over plain TCP (loop rc {rc})")
    good = _board(broker, BOARD_A)
    try:
        assert good.accepted()
    finally:
        good.close()


def test_a_board_speaks_only_for_itself_and_reads_only_its_commands(
    broker: SecureMosquitto,
) -> None:
    cloud = _cloud(broker)
    a = _board(broker, BOARD_A)
    try:
        assert cloud.accepted() and a.accepted()
        assert [r.is_failure for r in cloud.subscribe("ciot/v1/#")] == [False]
        # as board B, as the cloud's presence, and a retained status on B: all dropped by the broker
        a.publish(f"ciot/v1/da-ron/{BOARD_B}/health", b'{"forged": true}')
        a.publish("ciot/host/v1/state/ciot-cloud-1", b'{"online": false}')
        a.publish(f"ciot/v1/da-ron/{BOARD_B}/status", b'{"state": "offline"}', retain=True)
        a.publish(f"ciot/v1/tu-tra/{BOARD_A}/health", b"{}")  # its own id, another commune's tree
        own = f"ciot/v1/da-ron/{BOARD_A}/health"
        a.publish(own, b"{}")
        seen = cloud.wait_for(own)
        assert seen == [own], f"the broker let through {seen}"
        # Reading. Mosquitto 2.0 grants the SUBSCRIBE and checks read access per message
        # (measured: SUBACK success), so what counts is that nothing is delivered: B's
        # commands, snapshots and telemetry never reach A; its own commands do.
        for topic in (f"ciot/v1/da-ron/{BOARD_B}/cmd", "ciot/v1/+/+/snapshot/#", "ciot/v1/da-ron/+/health"):
            a.subscribe(topic)
        mine = f"ciot/v1/da-ron/{BOARD_A}/cmd"
        a.subscribe(mine)
        cloud.publish(f"ciot/v1/da-ron/{BOARD_B}/cmd", b"reboot")
        cloud.publish(f"ciot/v1/da-ron/{BOARD_B}/snapshot/ev-1", b"\xff\xd8\xff")
        b = _board(broker, BOARD_B)
        assert b.accepted()
        b.publish(f"ciot/v1/da-ron/{BOARD_B}/snapshot/ev-2", b"\xff\xd8\xff")
        b.publish(f"ciot/v1/da-ron/{BOARD_B}/health", b"{}")
        b.close()
        cloud.publish(mine, b"ping")  # the last one sent: when it arrives, the others would have
        assert a.wait_for(mine) == [mine]
    finally:
        a.close()
        cloud.close()
    late = _cloud(broker)  # nobody left a retained status on B's topic
    try:
        assert late.accepted()
        late.subscribe(f"ciot/v1/da-ron/{BOARD_B}/status")
        marker = f"ciot/v1/da-ron/{BOARD_A}/cmd"
        late.subscribe(marker)
        late.publish(marker, b"ping")
        assert late.wait_for(marker) == [marker]
    finally:
        late.close()


def test_a_revoked_board_cannot_connect_again(broker: SecureMosquitto) -> None:
    b = _board(broker, BOARD_B)
    assert b.accepted()
    b.close()
    assert cli(["provision", BOARD_B, "--revoke", "--broker-dir", str(broker.auth)]) == 0
    broker.reload()
    for _ in range(50):  # the reload is asynchronous: the first attempt may still be let in
        again = _board(broker, BOARD_B)
        refused = not again.accepted()
        again.close()
        if refused:
            break
    assert refused, "a revoked board still connects"
    other = _board(broker, BOARD_A)
    try:
        assert other.accepted()  # the others are untouched
    finally:
        other.close()


def test_a_new_server_certificate_is_served_after_the_reload(broker: SecureMosquitto) -> None:
    """``provision --ca`` again (another host name, or a renewal) with ``--reload``: Mosquitto
    reads the new certificate and key, as its own user, and the connected boards stay."""
    assert broker.proc is not None
    a = _board(broker, BOARD_A)
    ctx = ssl.create_default_context(cafile=str(broker.auth / "ca.crt"))

    def handshake(name: str) -> None:
        with (
            socket.create_connection(("127.0.0.1", broker.tls_port), 5) as raw,
            ctx.wrap_socket(raw, server_hostname=name),
        ):
            pass

    try:
        assert a.accepted()
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake("localhost")  # not yet a name of the broker's
        hup = f"kill -HUP {broker.proc.pid}"
        args = ["--ca", "--host", "127.0.0.1", "--host", "localhost", "--broker-dir", str(broker.auth)]
        assert cli(["provision", *args, "--reload", hup]) == 0
        deadline = time.monotonic() + 10
        while True:  # the reload is asynchronous
            try:
                handshake("localhost")
                break
            except ssl.SSLCertVerificationError:
                assert time.monotonic() < deadline, "the broker still serves the old certificate"
                time.sleep(0.1)
        assert a.c.is_connected()
        assert "Error: " not in broker.log()  # e.g. "Error: Unable to load server key file"
    finally:
        a.close()


def test_files_are_readable_by_the_broker_only_and_the_acl_lists_only_real_boards(
    broker: SecureMosquitto,
) -> None:
    """Laid out as the README says: the operator's files, the broker's group, nobody else;
    the CA's key stays the operator's (the broker never reads it)."""
    account = broker_account()
    group = account.pw_gid if account is not None else os.getegid()
    for name in ("passwd", "acl", "server.key", "server.crt", "ca.crt"):
        st = (broker.auth / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (os.geteuid(), group, 0o640), name
    ca_key = (broker.auth / "ca.key").stat()
    assert (ca_key.st_uid, ca_key.st_mode & 0o777) == (os.geteuid(), 0o600)
    assert sorted(p.name for p in broker.auth.iterdir()) == [
        "acl", "ca.crt", "ca.key", "passwd", "server.crt", "server.key"
    ]  # fmt: skip
    bundle = broker.bundles / BOARD_A
    assert (bundle / "mqtt.password").stat().st_mode & 0o077 == 0
    # the broker's group (the cloud's container joins it) may read the hashes, to check board
    # logins on release downloads (cloud/fleet/boardauth.py); nobody else
    assert (broker.auth / "passwd").stat().st_mode & 0o037 == 0
    acl = (broker.auth / "acl").read_text()
    assert f"user {BOARD_A}\ntopic write ciot/v1/da-ron/{BOARD_A}/status\n" in acl
    assert broker_password(broker, BOARD_A) not in (broker.auth / "passwd").read_text()
    assert (
        cli(
            ["provision", "no-such-board", "--broker-dir", str(broker.auth), "--broker-url", "mqtts://x:8883"]
        )
        == 2
    )
