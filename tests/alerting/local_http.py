"""A real HTTP server on loopback that records requests and answers as a test tells it.

It stands in for the Telegram Bot API and Zalo OA servers, which cannot be reached from
here: it checks what we send (path, headers, JSON) and answers the way those services
document, so the notifiers' HTTP code runs for real against a socket.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Request, int], tuple[int, dict[str, Any]]]


@dataclass
class LocalHttp:
    url: str
    requests: list[Request] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Request]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= n, timeout)
            return list(self.requests)


@contextmanager
def local_http(respond: Responder) -> Iterator[LocalHttp]:
    """``respond(request, index)`` -> (status, JSON body)."""
    state: list[LocalHttp] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            server = state[0]
            with server.arrived:
                index = len(server.requests)
                server.requests.append(req)
                server.arrived.notify_all()
            status, answer = respond(req, index)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(LocalHttp(f"http://127.0.0.1:{httpd.server_address[1]}"))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        httpd.shutdown()
        httpd.server_close()
