"""``commune-iot release build``: wheel(s) of this tree, a manifest, its signature.

The wheel is built from a clean copy of the source tree (the files git knows, or the tree
without virtualenvs and build output), with the release's version stamped into that copy's
``wire/version.py``: the single source of the version, which the agent reports.
A version that is not exactly a tagged, clean release gets a local label (``+g<commit>``,
``.dirty``), so a test build can never be mistaken for a release.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wire.release import (
    MANIFEST,
    SIGNATURE,
    VERSION_PATTERN,
    Manifest,
    ManifestFile,
    ReleaseError,
    dump_manifest,
    key_id,
    sign,
)

VERSION_FILE = Path("wire") / "version.py"
_VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.M)
#: Never copied into the build tree when it is not a git checkout.
_SKIP = {".git", ".venv", "venv", "build", "dist", "var", "run", "node_modules", "__pycache__"}
_SKIP_SUFFIX = (".egg-info", "_cache")


@dataclass(frozen=True)
class Built:
    bundle: Path
    manifest: Manifest
    key_ids: list[str]


def source_version(source: Path) -> str:
    m = _VERSION_LINE.search((source / VERSION_FILE).read_text(encoding="utf-8"))
    if m is None:
        raise ReleaseError(f"no __version__ line in {source / VERSION_FILE}")
    return m.group(1)


def _git(source: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout if res.returncode == 0 else None


def default_version(source: Path) -> str:
    """``__version__`` for a clean checkout of the tag ``v<version>``; otherwise with a local
    label naming the commit (and ``.dirty`` for uncommitted changes)."""
    base = source_version(source)
    head = _git(source, "rev-parse", "--short=8", "HEAD")
    if head is None:
        return f"{base}+local"
    dirty = bool((_git(source, "status", "--porcelain", "--untracked-files=no") or "").strip())
    tags = (_git(source, "tag", "--points-at", "HEAD") or "").split()
    if f"v{base}" in tags and not dirty:
        return base
    return f"{base}+g{head.strip()}" + (".dirty" if dirty else "")


def _files(source: Path) -> list[Path]:
    listed = _git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is not None:
        return [Path(p) for p in listed.split("\0") if p and (source / p).is_file()]
    out = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in _SKIP or part.endswith(_SKIP_SUFFIX) for part in rel.parts):
            continue
        if path.is_file():
            out.append(rel)
    return out


def _copy_tree(source: Path, dest: Path, version: str) -> None:
    for rel in _files(source):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target)
    init = dest / VERSION_FILE
    text, n = _VERSION_LINE.subn(f'__version__ = "{version}"', init.read_text(encoding="utf-8"))
    if n != 1:
        raise ReleaseError(f"cannot stamp the version into {VERSION_FILE}")
    init.write_text(text, encoding="utf-8")


def _wheel(tree: Path, out: Path) -> Path:
    """``pip wheel . --no-deps`` with this environment's setuptools (no download at build time)."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    res = subprocess.run([*cmd, str(tree)], capture_output=True, text=True)
    if res.returncode != 0:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-8:])
        raise ReleaseError(f"building the wheel failed (pip install 'commune-iot[release]' first?):\n{tail}")
    wheels = sorted(out.glob("commune_iot-*.whl"))
    if len(wheels) != 1:
        raise ReleaseError(f"expected one commune_iot wheel in {out}, found {len(wheels)}")
    return wheels[0]


def download_deps(wheel: Path, dest: Path, platform: str, extras: str, python: str) -> None:
    """The dependency wheels of ``wheel[extras]`` for a board's platform, from the package
    index (``pip download``): what a board without an index installs from."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--dest", str(dest)]
    cmd += [
        "--only-binary=:all:",
        "--platform",
        platform,
        "--python-version",
        python,
        "--implementation",
        "cp",
    ]
    res = subprocess.run([*cmd, f"{wheel}[{extras}]"], capture_output=True, text=True)
    if res.returncode != 0:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-6:])
        raise ReleaseError(f"downloading the dependencies for {platform} failed:\n{tail}")


def _wheel_meta(wheel: Path) -> tuple[list[str], str]:
    """(tags, Requires-Python) from the wheel's own metadata."""
    with zipfile.ZipFile(wheel) as z:
        info = next(n.split("/")[0] for n in z.namelist() if n.endswith(".dist-info/WHEEL"))
        tags = [
            line.split(":", 1)[1].strip()
            for line in z.read(f"{info}/WHEEL").decode().splitlines()
            if line.startswith("Tag:")
        ]
        meta = z.read(f"{info}/METADATA").decode()
    m = re.search(r"^Requires-Python: (.+)$", meta, re.M)
    return tags, (m.group(1).strip() if m else "")


def _entry(path: Path, kind: str) -> ManifestFile:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return ManifestFile(name=path.name, size=path.stat().st_size, sha256=h.hexdigest(), kind=kind)


def build(
    source: Path,
    out: Path,
    keys: Sequence[Ed25519PrivateKey],
    *,
    version: str | None = None,
    min_previous: str | None = None,
    deps_dir: Path | None = None,
    deps_platform: str | None = None,
    deps_extras: str = "edge",
    deps_python: str = f"{sys.version_info.major}.{sys.version_info.minor}",
    force: bool = False,
) -> Built:
    """Build, write ``out/<version>/`` (wheels, manifest.json, manifest.sig), return it."""
    if not keys:
        raise ReleaseError("give at least one release key (--key)")
    version = version or default_version(source)
    if not re.match(VERSION_PATTERN, version):
        raise ReleaseError(f"{version!r} is not a version this project writes (e.g. 0.2.0, 0.2.0+test.1)")
    bundle = out / version
    if bundle.exists():
        if not force:
            raise ReleaseError(f"{bundle} exists (--force replaces it)")
        shutil.rmtree(bundle)
    with tempfile.TemporaryDirectory(prefix="ciot-release-") as tmp:
        tree = Path(tmp) / "src"
        _copy_tree(source, tree, version)
        wheel = _wheel(tree, Path(tmp) / "wheels")
        staging = out / f".{version}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.copy2(wheel, staging / wheel.name)
        deps = sorted(deps_dir.glob("*.whl")) if deps_dir is not None else []
        if deps_platform is not None:
            fetched = Path(tmp) / "deps"
            download_deps(wheel, fetched, deps_platform, deps_extras, deps_python)
            deps += sorted(fetched.glob("*.whl"))
        files = [_entry(staging / wheel.name, "project")]
        for dep in deps:
            if dep.name.startswith("commune_iot-") or (staging / dep.name).exists():
                continue
            shutil.copy2(dep, staging / dep.name)
            files.append(_entry(staging / dep.name, "dependency"))
    tags, requires_python = _wheel_meta(staging / wheel.name)
    manifest = Manifest(
        version=version,
        created=datetime.now(UTC).replace(microsecond=0),
        min_previous_version=min_previous,
        requires_python=requires_python,
        tags=tags,
        files=files,
    )
    body = dump_manifest(manifest)
    (staging / MANIFEST).write_bytes(body)
    (staging / SIGNATURE).write_bytes(sign(body, keys))
    staging.rename(bundle)
    return Built(bundle, manifest, [key_id(k.public_key()) for k in keys])
