"""The console lab: a real broker, InfluxDB and ``cloud serve`` process with the pilot's inventory
(59 devices), users of every role, and real edge agents started per test (simulated ones, or a
camera agent reading a real clip over RTSP) that a test can freeze, stop and start again.

Alerting is tuned for tests (a board silent for 2 s is down, alerts open after 1 s more), so a
frozen board shows on the fleet page within seconds; everything else is the shipped defaults.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from support import wait_until
from web_helpers import Api

from cloud.auth.roles import Role
from cloud.auth.users import UserStore
from cloud.storage.sql import SqlStore
from commune_iot.fleet import AgentProcess, CloudProcess, cloud_config, edge_config, load_devices
from commune_iot.localsvc import InfluxDB, Mosquitto, free_port

REPO = Path(__file__).resolve().parents[2]
for _sub in ("camera", "alerting"):  # RtspServer; the webhook stand-in
    if str(REPO / "tests" / _sub) not in sys.path:
        sys.path.append(str(REPO / "tests" / _sub))

from local_http import LocalHttp, local_http  # noqa: E402

DEVICES = {d["id"]: d for d in load_devices()}
USERS: dict[str, tuple[set[Role], set[str]]] = {
    "admin": ({Role.ADMIN}, set()),
    "kythuat": ({Role.TECHNICIAN}, set()),
    "kythuat-tutra": ({Role.TECHNICIAN}, {"tu-tra"}),
    "ca-daron": ({Role.POLICE}, {"da-ron"}),
    "mic": ({Role.MIC}, set()),
}
NAMES = {"kythuat": "Kỹ thuật viên Tùng", "ca-daron": "Công an xã Đạ Ròn"}
WIDTHS = {"desktop": 1366, "phone": 390}
#: Where the screenshots go: the artifacts directory, or docs/screenshots to refresh the guides'.
SHOTS = Path(os.environ.get("CIOT_SCREENSHOTS") or os.environ.get("CIOT_ARTIFACTS", "var/artifacts"))


def password(user: str) -> str:
    return f"{user}-mat-khau-2026!"


@dataclass
class ConsoleLab:
    run_dir: Path
    broker: Mosquitto
    cloud: CloudProcess
    tokens: dict[str, str]
    webhook: LocalHttp  # where the cloud sends its alert notices (a local stand-in)
    stack: contextlib.ExitStack
    agents: dict[str, AgentProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.cloud.url

    def api(self, user: str = "kythuat") -> Api:
        return Api(self.url, self.tokens[user])

    def get(self, path: str, user: str = "kythuat") -> Any:
        status, body = self.api(user).get(path)
        assert status == 200, f"GET {path}: {status} {body!r:.300}"
        return body

    # -- agents ------------------------------------------------------------------------------

    def start_sim(self, device: str) -> AgentProcess:
        """A simulated agent of an inventory device (as the demo runs them), heartbeat every second."""
        cfg = edge_config(
            DEVICES[device],
            self.broker.url,
            self.run_dir / "agents" / device,
            health_interval_s=1.0,
            sim_interval_s=2.0,
            keepalive_s=5,
            reconnect_max_s=1.0,
        )
        return self._start(cfg)

    def start_camera(self, device: str, rtsp_url: str) -> AgentProcess:
        """A real camera agent (OpenCV, motion detection) on a clip served over RTSP."""
        d = DEVICES[device]
        cfg = edge_config(d, self.broker.url, self.run_dir / "agents" / device, health_interval_s=1.0)
        cfg["collectors"] = [
            {
                "type": "camera",
                "device": device,
                "url": rtsp_url,
                "interval_s": 1.0,
                "open_timeout_s": 3.0,
                "read_timeout_s": 3.0,
                "reconnect_min_s": 0.5,
                "reconnect_max_s": 2.0,
                "events": {"min_duration_s": 0.5, "quiet_s": 1.5, "snapshot_width": 480},
            }
        ]
        cfg["control"] = {"revert_after_s": 60}
        return self._start(cfg)

    def _start(self, cfg: dict[str, Any]) -> AgentProcess:
        node = cfg["node"]
        old = self.agents.pop(node, None)
        if old is not None:
            old.kill()
        agent = AgentProcess.write(self.run_dir, cfg).start()
        self.agents[node] = agent
        return agent

    def freeze(self, node: str) -> None:
        """SIGSTOP: a hung board (no Will until the broker's keepalive runs out)."""
        proc = self.agents[node].proc
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)

    def thaw(self, node: str) -> None:
        proc = self.agents[node].proc
        assert proc is not None
        proc.send_signal(signal.SIGCONT)

    def device(self, device: str) -> dict[str, Any]:
        (row,) = [d for d in self.get("/api/v1/devices") if d["id"] == device]
        return dict(row)

    def wait_state(self, device: str, board: str, timeout: float = 30) -> dict[str, Any]:
        return dict(
            wait_until(
                f"{device} board {board}", lambda: (d := self.device(device))["board"] == board and d, timeout
            )
        )

    # -- browser -----------------------------------------------------------------------------

    def login(self, page: Any, user: str, then: str = "/fleet") -> None:
        page.goto(self.url + "/login?next=" + then)
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password(user))
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**" + then.split("?")[0] + "*")

    def close(self) -> None:
        for a in self.agents.values():
            proc = a.proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                a.kill()
        self.stack.close()

    def notices(self, alert_id: int) -> list[dict[str, Any]]:
        """The webhook notices about one alert, as the cloud sent them."""
        return [r.json() for r in self.webhook.requests if r.json()["notice"]["alert_id"] == alert_id]


def shot(page: Any, name: str, *, full: bool = False) -> Path:
    """A screenshot for the guides (docs/screenshots when CIOT_SCREENSHOTS says so), in 256
    colours: a third of the bytes, and the pages still read."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    raw = Image.open(io.BytesIO(page.screenshot(full_page=full))).convert("RGB")
    raw.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def fits(page: Any) -> bool:
    """No sideways scrolling: the page fits the viewport's width (a phone's 390 px)."""
    width = page.viewport_size["width"]
    return bool(page.evaluate("document.scrollingElement.scrollWidth") <= width + 2)


def start_lab(run_dir: Path, influx: InfluxDB) -> ConsoleLab:
    stack = contextlib.ExitStack()  # unwound last to first: cloud, broker, webhook stand-in
    try:
        webhook = stack.enter_context(local_http(lambda _request, _index: (200, {"ok": True})))
        broker = Mosquitto(run_dir / "broker").start()
        stack.callback(broker.stop)
        pw_file = run_dir / "influx.pw"
        pw_file.write_text(influx.password or "")
        port = free_port()
        cfg = cloud_config(
            mqtt_url=broker.url,
            influx_url=influx.url,
            influx_db=f"console_{os.getpid()}_{run_dir.name}".replace("-", "_"),
            influx_user=influx.username or "",
            influx_password_file=pw_file,
            state_dir=run_dir / "state",
            http_port=port,
            client_id=f"console-{run_dir.name}",
        )
        cfg["alerting"] = {
            "silence_floor_s": 2.0,
            "default_health_interval_s": 1.0,
            "grace_s": 1.0,
            "recovery_s": 2.0,
            "settle_s": 1.0,
            "commune_window_s": 0.0,
            "states_s": 0,
            "notify": {"webhooks": [{"name": "technicians", "url": webhook.url}]},
        }
        cfg["web"] = {
            "public_url": f"http://127.0.0.1:{port}",
            "grafana_url": "http://grafana.invalid:3000",  # links only; no Grafana runs here
            "refusal_max_rows": 1000,
        }
        cfg["events"] = {"exports_dir": str(run_dir / "state" / "exports")}
        cloud = CloudProcess.write(run_dir, cfg)
        tokens = _users(cfg["sql"]["url"])
        cloud.start(wait=60)
        stack.callback(cloud.stop)
        wait_until("the cloud ready", lambda: cloud.get_status("/readyz") == 200, 30)
        return ConsoleLab(run_dir, broker, cloud, tokens, webhook, stack)
    except BaseException:
        stack.close()
        raise


def _users(sql_url: str) -> dict[str, str]:
    sql = SqlStore(sql_url)
    try:
        users = UserStore(sql.engine)
        tokens = {}
        for name, (roles, communes) in USERS.items():
            users.add(
                name,
                password(name),
                frozenset(roles),
                communes=frozenset(communes),
                display_name=NAMES.get(name, ""),
            )
            tokens[name] = users.create_token(name, "tests")
        return tokens
    finally:
        sql.dispose()
