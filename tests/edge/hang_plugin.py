"""A collector plug-in (``type: tests.edge.hang_plugin:Hang``) that blocks the agent's event loop
after ``after_s``: what a wedged call (a dying SD card under SQLite, a blocking library call)
does to a real agent. Used by tests/edge/test_edge_watchdog.py."""

from __future__ import annotations

import asyncio
import time

from pydantic import Field

from edge.collectors.base import Collector, CollectorOptions, Sink


class HangOptions(CollectorOptions):
    after_s: float = Field(default=2.0, ge=0, description="Seconds before the loop is blocked.")


class Hang(Collector):
    Options = HangOptions

    async def run(self, sink: Sink) -> None:
        assert isinstance(self.options, HangOptions)
        await asyncio.sleep(self.options.after_s)
        time.sleep(3600)  # noqa: ASYNC251  # blocks the whole loop (keepalive included): the point
