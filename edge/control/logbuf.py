"""The agent's last log lines in memory, for the ``logs`` command.

Boards log to the journal (systemd) or a file the agent may not be able to read; a ring
buffer of formatted lines costs a few hundred KB and works everywhere.
"""

from __future__ import annotations

import collections
import logging

from wire.logs import TextFormatter


class LogBuffer(logging.Handler):
    def __init__(self, lines: int) -> None:
        super().__init__(logging.DEBUG)
        self.lines: collections.deque[str] = collections.deque(maxlen=max(1, lines))
        self.setFormatter(TextFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a log line must never break the agent
            self.handleError(record)

    def tail(self, n: int, max_bytes: int) -> tuple[list[str], bool]:
        """The last ``n`` lines, fewer if they exceed ``max_bytes`` (UTF-8); True when cut."""
        out: list[str] = []
        size = 0
        for line in reversed(list(self.lines)[-n:]):
            size += len(line.encode()) + 1
            if size > max_bytes:
                return out[::-1], True
            out.append(line)
        return out[::-1], len(self.lines) > n
