"""``commune-iot grafana push`` against a local HTTP server that stands in for Grafana's HTTP
API (no Grafana can run here): it answers the folder, data source and dashboard endpoints
the way Grafana documents them and keeps what it was sent, so idempotency is checked on
what a real Grafana would have stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from commune_iot.cli import main as cli


@dataclass
class FakeGrafana:
    url: str = ""
    token: str = "glsa_test"
    calls: list[tuple[str, str]] = field(default_factory=list)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    state = FakeGrafana()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            doc = json.loads(body) if body else None
            with lock:
                state.calls.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {state.token}":
                    return self._answer(401, {"message": "invalid API key"})
                path = self.path
                if method == "GET" and path.startswith("/api/folders/"):
                    f = state.folders.get(path.rsplit("/", 1)[1])
                    return self._answer(200, f) if f else self._answer(404, {"message": "folder not found"})
                if method == "POST" and path == "/api/folders":
                    state.folders[doc["uid"]] = doc
                    return self._answer(200, doc)
                if method == "GET" and path.startswith("/api/datasources/uid/"):
                    d = state.datasources.get(path.rsplit("/", 1)[1])
                    return self._answer(200, d) if d else self._answer(404, {"message": "not found"})
                if method in ("POST", "PUT") and path.startswith("/api/datasources"):
                    state.datasources[doc["uid"]] = doc
                    return self._answer(200, {"message": "Datasource saved", "datasource": doc})
                if method == "POST" and path == "/api/dashboards/db":
                    uid = doc["dashboard"]["uid"]
                    if uid in state.dashboards and not doc.get("overwrite"):
                        return self._answer(412, {"message": "changed by someone else"})
                    state.dashboards[uid] = doc
                    state.versions[uid] = state.versions.get(uid, 0) + 1
                    version = state.versions[uid]
                    return self._answer(200, {"uid": uid, "status": "success", "version": version})
                return self._answer(404, {"message": "Not found"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def _push(g: FakeGrafana, *extra: str) -> int:
    argv = ["grafana", "push", "--url", g.url, "--token", g.token, "--influx-url", "http://influxdb:8086"]
    return cli([*argv, *extra])


def test_push_creates_then_updates_without_duplicates(
    grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _push(grafana) == 0
    first = list(grafana.calls)
    assert ("POST", "/api/folders") in first and ("POST", "/api/datasources") in first
    uids = ["ciot-aps", "ciot-boards", "ciot-cameras", "ciot-cloud", "ciot-fleet"]
    assert sorted(grafana.dashboards) == uids
    assert all(d["folderUid"] == "commune-iot" and d["overwrite"] for d in grafana.dashboards.values())
    ds = grafana.datasources["ciot-influx"]
    assert ds["url"] == "http://influxdb:8086" and ds["jsonData"]["dbName"] == "ciot"

    grafana.calls.clear()
    assert _push(grafana) == 0
    second = grafana.calls
    assert ("POST", "/api/folders") not in second and ("POST", "/api/datasources") not in second
    assert ("PUT", "/api/datasources/uid/ciot-influx") in second
    assert len(grafana.dashboards) == 5 and set(grafana.versions.values()) == {2}  # updated, not duplicated
    assert "dashboard 'ciot-fleet' (Tổng quan thiết bị): saved" in capsys.readouterr().out


def test_wrong_token_is_one_clear_line_and_a_failure(
    grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]
) -> None:
    grafana.token = "the-right-one"
    assert cli(["grafana", "push", "--url", grafana.url, "--token", "wrong"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HTTP 401" in err[0] and "check the token" in err[0]


def test_no_token_at_all_is_refused_before_any_call(
    grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert cli(["grafana", "push", "--url", grafana.url]) == 2
    assert grafana.calls == [] and "no token" in capsys.readouterr().err
