"""Release keys and update bundles, built once per test session (building and installing
real wheels is the slow part: about 3 s per bundle, 5-8 s per virtualenv on 2 cores)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from update_helpers import REPO, Bundles, pack_installed

from commune_iot.release import keys
from commune_iot.release.build import build
from wire.release import public_key_text
from wire.version import __version__


def _broken_tree(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (f.decode() for f in files)):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    runtime = dest / "edge" / "runtime.py"
    text = runtime.read_text()
    runtime.write_text(
        text.replace("import asyncio\n", "import asyncio\nimport ciot_module_that_is_not_there\n", 1)
    )
    return dest


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    d = tmp_path_factory.mktemp("release")
    key, other = d / "release.key", d / "other.key"
    signer = keys.generate(key)
    keys.generate(other)
    deps = d / "wheelhouse"
    pack_installed("commune-iot[edge]", deps)
    out = d / "dist"
    a = build(REPO, out, [signer], version=f"{__version__}+test.a", deps_dir=deps).bundle
    b = build(REPO, out, [signer], version=f"{__version__}+test.b").bundle
    broken = build(_broken_tree(d / "broken-src"), out, [signer], version=f"{__version__}+test.broken").bundle
    return Bundles(key, public_key_text(signer.public_key()), other, a, b, broken)
