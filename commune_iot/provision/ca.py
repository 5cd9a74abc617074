"""The project's small CA and the broker's certificate, with the openssl command line.

ECDSA P-256 keys (fast on a Raspberry Pi's TLS handshake over 3G); the CA signs the
broker certificate with the host names and addresses boards will dial (subjectAltName),
which is what TLS clients check. Keys are written mode 0600.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class CaError(RuntimeError):
    pass


def _openssl(cwd: Path, *args: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise CaError("openssl not found: install it (Debian: apt-get install openssl)")
    res = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise CaError(f"openssl {args[0]} failed: {res.stderr.strip().splitlines()[-1:]}")


def _san(hosts: list[str]) -> str:
    out = []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            out.append(f"IP:{h}")
        except ValueError:
            out.append(f"DNS:{h}")
    return "subjectAltName=" + ",".join(out)


def create(directory: Path, hosts: list[str], days: int = 3650) -> list[Path]:
    """``ca.key``/``ca.crt`` (kept when present) and ``server.key``/``server.crt`` for ``hosts``."""
    if not hosts:
        raise CaError("give at least one --host the boards will connect to (DNS name or IP)")
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    if not (d / "ca.crt").exists():
        _openssl(d, "req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days),
                 "-subj", "/CN=commune-iot CA")  # fmt: skip
    _openssl(d, "req", *EC, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hosts[0]}")
    (d / "san.ext").write_text(_san(hosts) + "\n", encoding="utf-8")
    _openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", str(min(days, 825)), "-extfile", "san.ext")  # fmt: skip
    for key in ("ca.key", "server.key"):
        os.chmod(d / key, 0o600)
    (d / "server.csr").unlink()
    return [d / "ca.crt", d / "server.crt", d / "server.key"]
