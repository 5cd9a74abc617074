"""Structured logging for every role: plain text for a terminal, JSON lines for collectors.

Code logs with stdlib ``logging`` and passes context as ``extra={...}``; those keys
become JSON fields (or ``key=value`` pairs in text mode), so a technician can grep
``node=tt-ap-03`` or filter ``.node == "tt-ap-03"`` in a log pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Final

_STD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys() | {"message", "asctime"}
)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = _extras(record)
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return base


def setup(level: str | int = "INFO", *, json_lines: bool | None = None) -> None:
    """Configure the root logger once. ``json_lines=None`` reads ``CIOT_LOG_JSON`` (1/true)."""
    if json_lines is None:
        json_lines = os.environ.get("CIOT_LOG_JSON", "").lower() in {"1", "true", "yes"}
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("CIOT_LOG_LEVEL", level) if isinstance(level, str) else level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic tells its context at every start; cloud.storage.schema logs what was upgraded.
    logging.getLogger("alembic").setLevel(logging.WARNING)
