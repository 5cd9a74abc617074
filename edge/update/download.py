"""Resumable HTTPS downloads for a 3G uplink that drops in the middle of a file.

What arrived stays on disk as ``<file>.part``; the next attempt asks only for the rest
(``Range: bytes=<have>-``), after a jittered, growing pause. Attempts that bring no new byte
are counted, and only those give up. A file is accepted only at exactly the signed size and
SHA-256; a server that has fewer bytes than the manifest says (a truncated upload, a
corrupted disk) is found by its Content-Length or Content-Range before the rest is fetched.

Credentials go only to the configured server, never across a redirect (redirects are errors).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import os
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edge.backoff import backoff_delay

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(RuntimeError):
    """The file cannot be fetched as signed; retrying now would not help."""


class _Retry(Exception):
    """A failure worth another attempt (dropped connection, timeout, 5xx)."""


@dataclass
class Fetched:
    path: Path
    size: int
    #: Bytes that crossed the network for this file (a resumed file costs little more than its size).
    network_bytes: int = 0
    #: Requests that continued a partial file.
    resumes: int = 0
    #: Attempts that failed (dropped, timed out) and were retried.
    retries: int = 0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Fetcher:
    def __init__(
        self,
        *,
        auth: tuple[str, str] | None,
        ca_file: Path | None,
        read_timeout_s: float = 60.0,
        attempts: int = 8,
        retry_min_s: float = 1.0,
        retry_max_s: float = 60.0,
        cancel: threading.Event | None = None,
    ) -> None:
        self._auth = None
        if auth is not None:
            self._auth = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        self._ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.read_timeout_s = read_timeout_s
        self.attempts = attempts
        self.retry_min_s = retry_min_s
        self.retry_max_s = max(retry_max_s, retry_min_s)
        self._cancel = cancel or threading.Event()

    # -- one request -----------------------------------------------------------------------

    def _open(self, url: str, start: int) -> tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "https":
            raise DownloadError(f"not an https:// URL: {url!r}")
        conn = http.client.HTTPSConnection(host, parts.port, timeout=self.read_timeout_s, context=self._ctx)
        headers = {"Accept-Encoding": "identity", "User-Agent": "commune-iot-updater"}
        if self._auth:
            headers["Authorization"] = self._auth
        if start:
            headers["Range"] = f"bytes={start}-"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", path or "/", headers=headers)
            return conn, conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise DownloadError(
                f"TLS certificate of {host} rejected ({exc.verify_message}); check update.ca_file"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _Retry(f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def _check_status(url: str, resp: http.client.HTTPResponse) -> None:
        if resp.status in (200, 206):
            return
        why = f"HTTP {resp.status} {resp.reason} for {url}"
        if resp.status in (408, 429) or resp.status >= 500:
            raise _Retry(why)
        if resp.status in (401, 403):
            raise DownloadError(
                f"{why}: the cloud refused this board's credentials (broker username/password)"
            )
        if resp.status == 404:
            raise DownloadError(f"{why}: not published on the cloud")
        if 300 <= resp.status < 400:
            raise DownloadError(
                f"{why}: redirects are not followed (credentials stay with update.server_url)"
            )
        raise DownloadError(why)

    def get_small(self, url: str, limit: int) -> bytes:
        """A whole small file (manifest, signature), retried like the big ones."""
        failures = 0
        while True:
            try:
                conn, resp = self._open(url, 0)
                try:
                    self._check_status(url, resp)
                    body = resp.read(limit + 1)
                finally:
                    conn.close()
                if len(body) > limit:
                    raise DownloadError(f"{url}: larger than {limit} bytes")
                return body
            except (_Retry, OSError, http.client.HTTPException) as exc:
                failures += 1
                if failures >= self.attempts:
                    raise DownloadError(f"{url}: {failures} attempts failed, last: {exc}") from None
                self._pause(failures, f"{url}: {exc}")

    def _pause(self, failures: int, why: str) -> None:
        delay = backoff_delay(failures - 1, min_s=self.retry_min_s, max_s=self.retry_max_s)
        log.warning(
            "download interrupted (%s); retry in %.1f s", why, delay, extra={"retry_in_s": round(delay, 1)}
        )
        if self._cancel.wait(delay):
            raise DownloadError("cancelled")

    # -- a resumable file --------------------------------------------------------------------

    def fetch(self, url: str, dest: Path, size: int, sha256: str) -> Fetched:
        """``dest`` complete at exactly ``size`` bytes and ``sha256``, resuming a ``.part``."""
        out = Fetched(dest, size)
        if dest.exists():
            if dest.stat().st_size == size and sha256_file(dest) == sha256:
                return out  # fetched by an earlier attempt of this update
            dest.unlink()
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        stalled = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            if have > size:
                part.unlink()
                have = 0
            if have == size:
                break
            try:
                self._fetch_once(url, part, have, size, out)
            except _Retry as exc:
                now = part.stat().st_size if part.exists() else 0
                stalled = 0 if now > have else stalled + 1
                out.retries += 1
                if stalled >= self.attempts:
                    raise DownloadError(
                        f"{dest.name}: {now} of {size} bytes after {self.attempts} attempts "
                        f"without progress; last: {exc}"
                    ) from None
                self._pause(max(stalled, 1), f"{dest.name} at {now} of {size} bytes: {exc}")
        got = sha256_file(part)
        if got != sha256:
            part.unlink()
            raise DownloadError(
                f"{dest.name}: SHA-256 {got[:16]}... differs from the signed {sha256[:16]}..."
            )
        os.replace(part, dest)
        return out

    def _fetch_once(self, url: str, part: Path, have: int, size: int, out: Fetched) -> None:
        conn, resp = self._open(url, have)
        try:
            if resp.status == 416:
                raise DownloadError(
                    f"{part.stem}: the server has fewer bytes than the {size} signed (truncated?)"
                )
            self._check_status(url, resp)
            start = 0
            if resp.status == 206:
                m = _CONTENT_RANGE.match(resp.getheader("Content-Range", ""))
                if m is None:
                    raise _Retry(f"unusable Content-Range {resp.getheader('Content-Range')!r}")
                start = int(m.group(1))
                if m.group(3) != "*" and int(m.group(3)) != size:
                    raise DownloadError(
                        f"{part.stem}: the server's file has {m.group(3)} bytes, signed: {size}"
                    )
                if start != have:
                    raise _Retry(f"asked for bytes from {have}, got from {start}")
                out.resumes += 1
            else:
                length = resp.getheader("Content-Length")
                if length is not None and int(length) != size:
                    raise DownloadError(f"{part.stem}: the server's file has {length} bytes, signed: {size}")
            with part.open("r+b" if start else "wb") as f:
                f.seek(start)
                f.truncate()
                try:
                    while True:
                        if self._cancel.is_set():
                            raise DownloadError("cancelled")
                        chunk = resp.read(CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        out.network_bytes += len(chunk)
                        if f.tell() > size:
                            raise DownloadError(
                                f"{part.stem}: the server sends more than the {size} signed bytes"
                            )
                except (OSError, http.client.HTTPException) as exc:
                    raise _Retry(f"{type(exc).__name__}: {exc}") from None
                finally:
                    f.flush()
                    os.fsync(f.fileno())
                if f.tell() < size:
                    raise _Retry(f"connection ended at {f.tell()} of {size} bytes")
        finally:
            conn.close()
