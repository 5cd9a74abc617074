"""Check that a board's extras install from wheels alone on 64-bit Raspberry Pi OS (aarch64).

A Pi has no compiler toolchain worth waiting for (building numpy or cryptography there takes
hours or fails on memory), so every dependency of the ``edge``, ``camera`` and ``labels`` (a
board that labels its own events) extras must come as a manylinux aarch64 (or pure-Python)
wheel for CPython 3.11. The requirement lists are read from pyproject.toml, so a new
dependency is checked the day it is added.

Usage: python .ci/aarch64_wheels.py [--dest DIR] [extra ...]   (default extras: edge camera labels)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = "manylinux2014_aarch64"
PYTHON = "3.11"


def requirements(extra: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs: list[str] = list(project["dependencies"])
    for req in project["optional-dependencies"][extra]:
        if req.startswith("commune-iot["):  # an extra that pulls other extras
            for inner in req[len("commune-iot[") : -1].split(","):
                reqs += requirements(inner.strip())
        else:
            reqs.append(req)
    return reqs


def check(extra: str, dest: Path) -> bool:
    reqs = requirements(extra)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--platform",
        PLATFORM,
        "--python-version",
        PYTHON,
        "--implementation",
        "cp",
        "--dest",
        str(dest / extra),
        *reqs,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        why = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln] or proc.stderr.splitlines()[-5:]
        print(f"FAIL [{extra}]: not every dependency has an aarch64 wheel for Python {PYTHON}:")
        for ln in why:
            print(f"    {ln}")
        return False
    wheels = sorted(p.name for p in (dest / extra).glob("*.whl"))
    native = [w for w in wheels if "aarch64" in w]
    print(f"ok   [{extra}]: {len(wheels)} wheels ({len(native)} built for aarch64): {', '.join(native)}")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("extras", nargs="*", default=["edge", "camera", "labels"])
    ap.add_argument("--dest", type=Path, help="keep the wheels here (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dest = args.dest or Path(tmp)
        ok = all([check(extra, dest) for extra in args.extras])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
