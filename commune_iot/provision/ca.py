"""The project's small CA and the broker's certificate, with the openssl command line.

ECDSA P-256 keys (fast on a Raspberry Pi's TLS handshake over 3G); the CA signs the
broker certificate with the host names and addresses boards will dial (subjectAltName),
which is what TLS clients check. openssl works in a private temporary directory; the results
are moved into the broker directory the way ``files`` replaces any file there: the server's
key readable by the broker's user (through the owner or group of the file it replaces, or of
the directory) and by nobody else; the CA's key, which the broker never reads, by the user who
ran the command only. Mosquitto 2.0 reads the certificate and key again on SIGHUP.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
from pathlib import Path

from commune_iot.provision import files

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
    directory.mkdir(mode=0o750, parents=True, exist_ok=True)
    with files.locked(directory), tempfile.TemporaryDirectory(prefix="ciot-ca-") as tmp:
        d = Path(tmp)
        made = ["server.crt", "server.key"]
        ca = [files.read_text(directory / "ca.crt"), files.read_text(directory / "ca.key")]
        if ca[0] is None:
            _openssl(d, "req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days),
                     "-subj", "/CN=commune-iot CA")  # fmt: skip
            made = ["ca.crt", "ca.key", *made]
        elif ca[1] is None:
            raise CaError(f"{directory / 'ca.crt'} exists without its ca.key: put ca.key back beside it")
        else:
            (d / "ca.crt").write_text(ca[0], encoding="utf-8")
            (d / "ca.key").write_text(ca[1], encoding="utf-8")
        _openssl(d, "req", *EC, "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hosts[0]}")
        (d / "san.ext").write_text(_san(hosts) + "\n", encoding="utf-8")
        _openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.crt", "-days", str(min(days, 825)),
                 "-extfile", "san.ext")  # fmt: skip
        files.replace(directory, {n: (d / n).read_bytes() for n in made}, owner_only={"ca.key"})
    return [directory / "ca.crt", directory / "server.crt", directory / "server.key"]
