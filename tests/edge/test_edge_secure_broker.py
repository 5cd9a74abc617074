"""A production-like broker: passwords and TLS. The agent connects with the password from
the environment over mqtts://, and says what to fix when credentials or the CA are wrong."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_helpers import AgentProcess, Recorder, agent_config, has_status

from commune_iot.localsvc import Mosquitto, free_port

USER, PASSWORD = "dr-cam-01", "correct horse battery staple"


class SecureMosquitto(Mosquitto):
    """Mosquitto with a password file on a plain listener and a TLS listener."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.tls_port = free_port()

    def start(self) -> SecureMosquitto:
        d = self.run_dir
        d.mkdir(parents=True, exist_ok=True)
        ssl = ["openssl"]
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def run(*args: str) -> None:
            subprocess.run(args, check=True, capture_output=True, cwd=d)

        run(
            *ssl,
            "req",
            "-x509",
            *ec,
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=t-ca",
        )
        run(*ssl, "req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        run(
            *ssl,
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        )
        run("mosquitto_passwd", "-c", "-b", "passwd", USER, PASSWORD)
        user_line = "user root\n" if os.geteuid() == 0 else ""
        self.conf_path.write_text(
            f"{user_line}allow_anonymous false\npassword_file {d}/passwd\n"
            f"listener {self.port} 127.0.0.1\n"
            f"listener {self.tls_port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\n"
            f"keyfile {d}/server.key\nlog_dest stdout\n"
        )
        self._spawn([self.binary, "-c", str(self.conf_path)])
        self.wait_ready()
        return self


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureMosquitto]:
    broker = SecureMosquitto(tmp_path / "mqtt").start()
    yield broker
    broker.kill()


def _config(tmp_path: Path, url: str, name: str, **broker: object) -> Path:
    """The usual test config in its own directory, with extra ``broker`` settings."""
    home = tmp_path / name
    home.mkdir()
    cfg = agent_config(home, url)
    extra = "".join(f"  {k}: {v}\n" for k, v in broker.items())
    cfg.write_text(cfg.read_text().replace("broker:\n", "broker:\n" + extra, 1))
    return cfg


def test_wrong_password_is_reported_then_tls_with_env_password_works(
    secure_broker: SecureMosquitto, tmp_path: Path
) -> None:
    ca = secure_broker.run_dir / "ca.crt"
    refused = AgentProcess(
        _config(tmp_path, secure_broker.url, "a", username=USER),
        tmp_path / "a.log",
        env={"CIOT_EDGE_BROKER__PASSWORD": "wrong"},
    )
    try:
        refused.wait_log("refused the connection", 15)
        assert "check broker.username and the password" in refused.log()
        assert refused.terminate() == 0
    finally:
        refused.close()

    untrusted = AgentProcess(
        _config(tmp_path, f"mqtts://127.0.0.1:{secure_broker.tls_port}", "b", username=USER),
        tmp_path / "b.log",
    )
    try:
        untrusted.wait_log("TLS certificate rejected", 15)
        assert untrusted.terminate() == 0
    finally:
        untrusted.close()

    rec = Recorder(secure_broker.port, auth=(USER, PASSWORD))
    good = AgentProcess(
        _config(tmp_path, f"mqtts://127.0.0.1:{secure_broker.tls_port}", "c", username=USER, ca_file=str(ca)),
        tmp_path / "c.log",
        env={"CIOT_EDGE_BROKER__PASSWORD": PASSWORD},
    )
    try:
        rec.wait_for(has_status("online", "birth"), 15, "birth over TLS")
        rec.wait_for(lambda ms: sum(m.channel == "health" for m in ms) >= 5, 15, "health over TLS")
        assert good.terminate() == 0
        rec.wait_for(has_status("offline", "shutdown"), 10, "offline(shutdown) over TLS")
    finally:
        good.close()
        rec.close()
    assert PASSWORD not in good.log()
