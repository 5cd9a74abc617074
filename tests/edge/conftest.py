"""Make ``import edge`` mean the package, not this test directory.

pytest (prepend import mode) puts ``tests/`` on ``sys.path`` for the root conftest, and the
editable install's finder runs after the path finder, so ``tests/edge`` would otherwise be
merged into a namespace package ``edge`` whose ``__init__`` never runs. Putting the repo
first makes the real package win. (A ``pythonpath = ["."]`` in pyproject would do the same.)
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [REPO]:
    sys.path.insert(0, REPO)
_edge = sys.modules.get("edge")
if _edge is not None and getattr(_edge, "__file__", None) is None:  # the namespace impostor
    for name in [n for n in sys.modules if n == "edge" or n.startswith("edge.")]:
        del sys.modules[name]
