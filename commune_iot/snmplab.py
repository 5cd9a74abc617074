"""Real SNMP agents on loopback for the tests and ``bench snmp``: net-snmp ``snmpd`` and
``snmpsim`` (which replays recordings of real access points).

Both listen on free UDP ports of 127.0.0.1, keep their files under a run directory and
never touch the system's own snmpd. Readiness is checked with a hand-built SNMP GET so
this module needs neither pysnmp nor the net-snmp command-line tools.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from commune_iot.localsvc import ServiceError, _need, _Server

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"


def free_udp_ports(n: int) -> list[int]:
    """``n`` UDP ports free on 127.0.0.1 now (held together while picking, so all distinct)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _ber_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _ber_len(len(body)) + body


def _ber_int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def _ber_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.split(".")]
    body = bytearray([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def snmp_answers(port: int, community: str, oid: str = SYS_UPTIME, timeout: float = 0.3) -> bool:
    """Whether a v2c GET of ``oid`` on 127.0.0.1:``port`` gets any response."""
    request_id = random.randrange(1, 2**31)
    varbind = _tlv(0x30, _ber_oid(oid) + b"\x05\x00")
    pdu = _tlv(0xA0, _ber_int(request_id) + _ber_int(0) + _ber_int(0) + _tlv(0x30, varbind))
    msg = _tlv(0x30, _ber_int(1) + _tlv(0x04, community.encode()) + pdu)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(msg, ("127.0.0.1", port))
            data, _ = s.recvfrom(65535)
        except OSError:
            return False
    return len(data) > 0


@dataclass
class Snmpd(_Server):
    """net-snmp's agent with our own config: v2c community, a v3 authPriv (SHA/AES) user, and
    ``extend`` scripts that report Wi-Fi clients the way firmware_config/snmp/openwrt does.

    ``ports`` beyond the first make one daemon look like many APs (``bench snmp``); snmpd
    listens on at most 128 addresses, so use several daemons for more.
    """

    community: str = "ciot-test"
    v3_user: str = "ciotv3"
    v3_auth: str = "auth-pass-123"
    v3_priv: str = "priv-pass-456"
    ports: list[int] = field(default_factory=list)
    sys_descr: str = "OpenWrt commune-iot lab (net-snmp)"
    clients_file: Path | None = None
    extra_config: str = ""

    @classmethod
    def create(cls, run_dir: Path, n_ports: int = 1, **kw: object) -> Snmpd:
        ports = free_udp_ports(n_ports)
        server = cls("snmpd", run_dir, ports[0], **kw)  # type: ignore[arg-type]
        server.ports = ports
        return server

    def config(self) -> str:
        clients = self.clients_file or (self.run_dir / "clients")
        if not clients.exists():
            clients.write_text("5\n")
        addresses = ",".join(f"udp:127.0.0.1:{p}" for p in (self.ports or [self.port]))
        return f"""\
# Written by commune-iot snmplab for a local run; production: firmware_config/snmp/openwrt/
agentaddress {addresses}
sysdescr {self.sys_descr}
syslocation commune-iot lab
syscontact nobody
dontLogTCPWrappersConnects yes
rocommunity {self.community} 127.0.0.1
createUser {self.v3_user} SHA "{self.v3_auth}" AES "{self.v3_priv}"
rouser {self.v3_user} priv
extend clients-wlan /bin/cat {clients}
extend clients-wlan0 /bin/echo 3
extend frequency-wlan0 /bin/echo 2437
extend ssid-wlan0 /bin/echo WiFi-Xa-Lab
extend clients-wlan1 /bin/echo 2
extend frequency-wlan1 /bin/echo 5180
extend ssid-wlan1 /bin/echo WiFi-Xa-Lab
{self.extra_config}"""

    def start(self) -> Snmpd:
        binary = _need("snmpd", "snmpd")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        conf = self.run_dir / "snmpd.conf"
        conf.write_text(self.config())
        persist = self.run_dir / "persist"
        persist.mkdir(exist_ok=True)
        os.environ.setdefault("MIBS", "")  # no MIB files needed: everything is numeric
        self._spawn_env(
            [
                binary,
                "-f",
                "-C",
                "-c",
                str(conf),
                "-Lo",
                "-p",
                str(self.run_dir / "snmpd.pid"),
                "-M",
                "/dev/null",
                "-m",
                "",
            ],
            {"SNMP_PERSISTENT_DIR": str(persist), "SNMPCONFPATH": str(self.run_dir)},
        )
        self.wait_ready(20)
        return self

    def _spawn_env(self, argv: list[str], env: dict[str, str]) -> None:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self._spawn(argv)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _ready(self) -> bool:
        return snmp_answers(self.port, self.community)


@dataclass
class SnmpSim(_Server):
    """snmpsim serving ``*.snmprec`` files of ``data_dir`` (community = file base name) on one
    or more UDP ports. ``ready_community`` must name one of the files."""

    data_dir: Path = Path()
    ready_community: str = ""
    ports: list[int] = field(default_factory=list)

    @classmethod
    def create(cls, run_dir: Path, data_dir: Path, ready_community: str, n_ports: int = 1) -> SnmpSim:
        ports = free_udp_ports(n_ports)
        server = cls("snmpsim", run_dir, ports[0], data_dir=data_dir, ready_community=ready_community)
        server.ports = ports
        return server

    def start(self) -> SnmpSim:
        binary = Path(sys.executable).with_name("snmpsim-command-responder")
        if not binary.exists():
            raise ServiceError("snmpsim not installed: pip install snmpsim pysmi (the dev extra)")
        argv: list[str] = [
            str(binary),
            f"--data-dir={self.data_dir}",
            f"--cache-dir={self.run_dir / 'cache'}",
            "--logging-method=null",
            *(f"--agent-udpv4-endpoint=127.0.0.1:{p}" for p in (self.ports or [self.port])),
        ]
        if os.geteuid() == 0:  # it refuses to run as root unless told which user to stay
            argv += ["--process-user=root", "--process-group=root"]
        self._spawn(argv)
        self.wait_ready(60)
        return self

    def _ready(self) -> bool:
        return snmp_answers(self.port, self.ready_community)


def stop_all(servers: Sequence[_Server]) -> None:
    for s in servers:
        s.stop(5)
