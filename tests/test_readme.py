"""The README's commands work as printed: a newcomer pastes them into a shell where the
virtualenv is not on ``PATH`` and commune-iot is on no public package index.
(The demo's own banner is run as printed by ``tests/test_demo.py``.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
#: How ``commune-iot`` can be started where nobody put it on PATH.
RUNNABLE = re.compile(
    r"(\.venv/bin/|/opt/commune-iot/venv/bin/|docker compose exec (-it )?cloud )commune-iot"
)
#: ``commune-iot`` where a shell looks it up on PATH: at the start of a command.
BARE = re.compile(r"(^|[;&|(]\s*|\$\()commune-iot ")


def _commands() -> list[str]:
    """Every line of a fenced shell block and every inline code span, without comments."""
    fenced = re.compile(r"^```(?:sh)?\n(.*?)^```", flags=re.M | re.S)
    lines = [line.strip() for block in fenced.findall(README) for line in block.splitlines()]
    spans = [re.sub(r"\s*\n\s*", " ", c) for c in re.findall(r"`([^`]+)`", fenced.sub("", README))]
    return [c.split(" # ")[0] for c in lines + spans]


def test_no_bare_commune_iot_command() -> None:
    bare = [c for c in _commands() if BARE.search(RUNNABLE.sub("", c))]
    assert not bare, f"'command not found' for a newcomer: {bare}"


def test_board_wheel_is_the_one_the_build_makes() -> None:
    from wire.version import __version__

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wheel = f"commune_iot-{__version__}-py3-none-any.whl"
    named = set(re.findall(r"commune_iot-[^ '/]+\.whl", README))
    assert named <= {wheel}, f"the README names {named}; the build makes {wheel}"
    for extra in [*re.findall(r"\.whl\[(\w+)\]", README), "camera"]:
        assert extra in project["optional-dependencies"], extra
