"""ICMP echo as a second opinion when SNMP does not answer.

"SNMP silent, ping answers" means the AP is up but its agent is off or the community is
wrong (a configuration fix); "both silent" means the AP or its link is down (a site visit).

The system ``ping`` (iputils) is used rather than a raw socket so that the agent needs no
privilege of its own: as root it works anyway, and as an unprivileged user iputils uses an
ICMP datagram socket (allowed by ``net.ipv4.ping_group_range``, the default on Debian and
Raspberry Pi OS) or its file capability ``cap_net_raw``. Without a usable ``ping`` the
result is None (unknown) and the ``ping`` field is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil

log = logging.getLogger(__name__)

_warned: set[str] = set()


async def ping(host: str, timeout_s: float = 1.0, binary: str = "ping") -> bool | None:
    """True if ``host`` answered one echo request within ``timeout_s``, False if not, None when
    ``ping`` cannot be run here."""
    path = shutil.which(binary)
    if path is None:
        if binary not in _warned:
            _warned.add(binary)
            log.warning(
                "no %r program on this board: AP reachability has no ICMP second opinion "
                "(install iputils-ping)",
                binary,
            )
        return None
    wait = max(1, math.ceil(timeout_s))  # older iputils take whole seconds only
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            "-n",
            "-q",
            "-c",
            "1",
            "-W",
            str(wait),
            host,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        log.warning("cannot run %s: %s", path, exc)
        return None
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout_s + 0.2)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return False
    if proc.returncode == 0:
        return True
    if proc.returncode == 1:  # no reply
        return False
    text = err.decode(errors="replace").strip().splitlines()
    message = text[-1] if text else f"exit status {proc.returncode}"
    if "permission" in message.lower() or "operation not permitted" in message.lower():
        if "perm" not in _warned:
            _warned.add("perm")
            log.warning(
                "ping is not permitted for this user (%s): allow ICMP sockets with "
                "sysctl net.ipv4.ping_group_range or give ping cap_net_raw",
                message,
            )
        return None
    return False  # exit 2: unknown host, network unreachable: the AP is not reachable
