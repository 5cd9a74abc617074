"""A camera's HTTP snapshot endpoint on loopback: JPEGs of the main stream behind digest auth.

Like Hikvision's ``/ISAPI/Streaming/channels/101/picture``: a request without credentials gets
``401`` with a Digest challenge (MD5, qop=auth); the picture is the main-stream frame of the
moment (the clock starts with :meth:`SnapshotServer.start_clock`, when the agent opens the
substream). ``/hang`` accepts and never answers, like a camera whose web server is stuck.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
from camera_helpers import FPS, substream_frame


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


class SnapshotServer:
    def __init__(self, user: str, password: str, realm: str = "IP Camera") -> None:
        self.user, self.password, self.realm = user, password, realm
        self.nonce = secrets.token_hex(16)
        self.challenges = 0
        self.served = 0
        self.indices: list[int] = []
        self.t0: float | None = None
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start_clock(self) -> None:
        self.t0 = time.monotonic()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _authorized(self, header: str | None, method: str, uri: str) -> bool:
        if not header or not header.lower().startswith("digest "):
            return False
        p = urllib.request.parse_keqv_list(urllib.request.parse_http_list(header[7:]))
        if p.get("username") != self.user or p.get("nonce") != self.nonce or p.get("uri") != uri:
            return False
        ha1 = _md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        want = _md5(f"{ha1}:{self.nonce}:{p.get('nc')}:{p.get('cnonce')}:{p.get('qop')}:{ha2}")
        return p.get("response") == want

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        if req.path.startswith("/hang"):
            self.release.wait(60)
            return
        if not self._authorized(req.headers.get("Authorization"), "GET", req.path):
            self.challenges += 1
            req.send_response(401)
            req.send_header(
                "WWW-Authenticate",
                f'Digest realm="{self.realm}", qop="auth", nonce="{self.nonce}", algorithm=MD5',
            )
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        i = 0 if self.t0 is None else int((time.monotonic() - self.t0) * FPS)
        _ok, buf = cv2.imencode(".jpg", substream_frame(i), [cv2.IMWRITE_JPEG_QUALITY, 85])
        body = buf.tobytes()
        self.served += 1
        self.indices.append(i)
        req.send_response(200)
        req.send_header("Content-Type", "image/jpeg")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)
