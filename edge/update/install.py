"""Install a verified release beside the running one and hand it to the launcher on trial.

Each version gets its own virtualenv at its final path (virtualenvs cannot be moved), made
by the base interpreter and filled by pip from the bundle's wheels and the dependency
wheels kept from earlier bundles, without an index unless ``update.index_url`` names one.
A version directory counts only once its ``manifest.json`` is written, last.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from edge.update.config import UpdateConfig
from edge.update.layout import Layout, now_iso
from wire.release import MANIFEST, SIGNATURE, Manifest

log = logging.getLogger(__name__)

PIP_TIMEOUT_S = 1800.0
#: Dependency wheels kept per distribution for later bundles that do not carry them.
KEEP_WHEELS = 2


class InstallError(RuntimeError):
    """The verified release could not be installed; the running version is untouched."""


def base_python() -> str:
    """The interpreter virtualenvs are made from (the one under the running venv)."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def is_installed(layout: Layout, version: str) -> bool:
    d = layout.version_dir(version)
    return (d / MANIFEST).is_file() and (d / "venv" / "bin" / "commune-iot").exists()


def _run(cmd: list[str], what: str, cwd: Path) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise InstallError(f"{what} took more than {PIP_TIMEOUT_S:.0f} s") from None
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-4:])
        raise InstallError(f"{what} failed (exit {res.returncode}): {tail}"[:480])
    return res.stdout


def prune(layout: Layout, keep: set[str]) -> None:
    """Remove installed versions and downloads other than ``keep`` (disk is small on a board)."""
    for parent in (layout.versions, layout.downloads):
        if not parent.is_dir():
            continue
        for d in parent.iterdir():
            if d.name not in keep:
                log.info("removing old %s %s", parent.name, d.name)
                shutil.rmtree(d, ignore_errors=True)


def install(
    layout: Layout, manifest: Manifest, files: Path, signed: tuple[bytes, bytes], cfg: UpdateConfig
) -> None:
    """Make ``versions/<version>`` from the verified files in ``files``."""
    version = manifest.version
    target = layout.version_dir(version)
    if target.exists():
        shutil.rmtree(target)  # an earlier, unfinished or rolled-back install of it
    target.mkdir(parents=True)
    try:
        _fill(layout, manifest, files, target, cfg)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # nothing half-installed stays behind
        raise
    (target / SIGNATURE).write_bytes(signed[1])
    (target / MANIFEST).write_bytes(signed[0])  # last: the version now counts as installed


def _fill(layout: Layout, manifest: Manifest, files: Path, target: Path, cfg: UpdateConfig) -> None:
    version = manifest.version
    venv = target / "venv"
    _run([base_python(), "-m", "venv", str(venv)], "creating the virtualenv", target)
    layout.wheels.mkdir(parents=True, exist_ok=True)
    # -I: isolated from the caller's working directory and PYTHON* variables (a checkout
    # there would shadow what was installed)
    pip = [str(venv / "bin" / "python"), "-I", "-m", "pip", "install", "-q", "--no-cache-dir"]
    pip += ["--disable-pip-version-check", "--no-input"]
    pip += ["--index-url", cfg.index_url] if cfg.index_url else ["--no-index"]
    pip += ["--find-links", str(files), "--find-links", str(layout.wheels)]
    wheel = files / manifest.project_file.name
    spec = f"{wheel}[{','.join(cfg.extras)}]" if cfg.extras else str(wheel)
    _run([*pip, spec], f"pip install {manifest.project_file.name}", target)
    probe = "import importlib.metadata as m; print(m.version('commune-iot'))"
    reported = _run(
        [str(venv / "bin" / "python"), "-I", "-c", probe], "reading the installed version", target
    )
    reported = reported.strip()
    if reported != version:
        raise InstallError(f"the installed package is {reported!r}, the manifest says {version}")
    for dep in manifest.files:
        if dep.kind == "dependency":
            shutil.copy2(files / dep.name, layout.wheels / dep.name)
    _prune_wheels(layout.wheels)


def _prune_wheels(wheels: Path) -> None:
    by_dist: dict[str, list[Path]] = defaultdict(list)
    for w in wheels.glob("*.whl"):
        by_dist[w.name.split("-")[0].lower()].append(w)
    for found in by_dist.values():
        found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in found[KEEP_WHEELS:]:
            old.unlink()


def start_trial(layout: Layout, state: dict[str, object], version: str, cfg: UpdateConfig) -> None:
    """Put ``version`` on trial: state first, then the link (the launcher finishes a switch
    that a power cut interrupted, because it follows the state)."""
    doc = dict(state)
    doc.update(
        status="trial",
        candidate=version,
        since=now_iso(),
        trial_s=cfg.trial_s,
        max_failures=cfg.max_start_failures,
        boots=0,
        last={"version": version, "state": "trial", "error": "", "ts": now_iso()},
    )
    layout.write_state(doc)
    layout.switch(version)


def make_stable(layout: Layout, version: str) -> None:
    """First installation: no previous version to go back to, so no trial."""
    layout.write_state(
        {"status": "stable", "version": version, "candidate": None, "last": None, "installed": now_iso()}
    )
    layout.switch(version)
