"""The broker's password and ACL files, changed by the cloud, and the broker's reload.

The files are written exactly as ``commune-iot provision`` writes them (the same code,
``commune_iot.provision.broker``: replaced whole, keeping owner and mode, under a lock the
command line takes too). Mosquitto 2.0 rereads them on SIGHUP without dropping anyone but
the boards no longer in the password file. Two ways to send that SIGHUP:

* ``reload_command`` (no shell), when the cloud may signal the broker: ``kill -HUP <pid>``
  as the same user or root, ``systemctl reload mosquitto`` on a Debian host;
* the reload watcher, when it may not (compose: the cloud's container cannot signal the
  broker's): the cloud writes a token to ``reload_request_file``;
  ``firmware_config/mosquitto/reload-watcher.sh``, which starts the broker in its container
  and stays its parent, sends it SIGHUP and writes the token to ``reload_ack_file``. The
  cloud waits for that acknowledgement, so "the broker reloaded" is known, not hoped.

Tokens are nanosecond clock readings: a watcher that acknowledges a later token has also
applied an earlier one (the files were written before either request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path

from cloud.config import BrokerAdminConfig
from commune_iot.provision import broker, files
from commune_iot.provision.files import ProvisionError

__all__ = ["BrokerAdmin", "ProvisionError"]


class BrokerAdmin:
    def __init__(self, cfg: BrokerAdminConfig) -> None:
        self.cfg = cfg
        self._reload_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.cfg.dir is not None

    @property
    def dir(self) -> Path:
        if self.cfg.dir is None:
            raise ProvisionError("broker_admin.dir is not set: the cloud cannot issue board credentials")
        return self.cfg.dir

    def ca_pem(self) -> str:
        pem = files.read_text(self.dir / "ca.crt")
        if pem is None:
            raise ProvisionError(
                f"no CA in {self.dir}: run "
                f"`commune-iot provision --ca --host HOST --broker-dir {self.dir}` first"
            )
        return pem

    def add_board(self, node: str, communes: Mapping[str, str]) -> tuple[str, str | None]:
        """(a new password for board ``node``, why the broker was not reloaded or None).

        The files are changed or, with ProvisionError, nothing is. Once they are, the password
        is the board's (its old one stops working at the reload): the caller puts it in the
        bundle and forgets it, even when the reload failed (then it is in force at the next)."""
        password = broker.new_password()
        broker.add_board(self.dir, node, password, communes)
        return password, self._try_reload()

    def revoke(self, node: str, communes: Mapping[str, str]) -> tuple[bool, str | None]:
        """(the board had credentials and they are gone, why the broker was not reloaded or
        None). At the reload the broker drops the board if it is connected."""
        if not broker.revoke_board(self.dir, node, communes):
            return False, None
        return True, self._try_reload()

    def _try_reload(self) -> str | None:
        try:
            self.reload()
        except ProvisionError as exc:
            return str(exc)
        return None

    def reload(self) -> None:
        """Make the broker reread its files; ProvisionError (files already right) if it cannot."""
        cfg = self.cfg
        if cfg.reload_command:
            broker.command_reload(cfg.reload_command)()
            return
        if cfg.reload_request_file is None or cfg.reload_ack_file is None:
            raise ProvisionError(
                "the broker files are updated but no reload is configured (broker_admin.reload_command, "
                "or reload_request_file and reload_ack_file): reload the broker by hand"
            )
        with self._reload_lock:
            self._watcher_reload(cfg.reload_request_file, cfg.reload_ack_file, cfg.reload_timeout_s)

    @staticmethod
    def _watcher_reload(request: Path, ack: Path, timeout_s: float) -> None:
        token = time.time_ns()
        files.replace(request.parent, {request.name: f"{token}\n".encode()})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                done = int(ack.read_text(encoding="ascii").strip() or 0)
            except (OSError, ValueError):
                done = 0
            if done >= token:
                return
            time.sleep(0.05)
        raise ProvisionError(
            f"the broker files are updated but the broker's reload watcher did not acknowledge within "
            f"{timeout_s:g} s (no {ack} with the token written to {request}): is reload-watcher.sh "
            "running beside the broker (docs/onboarding.md)? Reload the broker by hand"
        )
