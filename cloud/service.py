"""Entry points of the cloud service, called by ``commune-iot cloud serve|ingest``.

``serve`` runs the HTTP API with ingest and the journal drainer inside its lifespan.
``ingest_only`` runs one more ingest worker (own client id, own journal, own drainer)
on the same shared subscription, to scale out without another HTTP endpoint.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path

from wire import logs

log = logging.getLogger(__name__)


def _drop_color_message(record: logging.LogRecord) -> bool:
    """uvicorn attaches an ANSI-coloured copy of each message; our formatters would print it."""
    record.__dict__.pop("color_message", None)
    return True


def _tune_gc() -> None:
    """Ingest allocates many short-lived objects per message; with the default gen-0
    threshold (700) the collector ran thousands of times a second and cost ~5-10 % of
    ingest CPU in the benchmark. Freeze the start-up objects and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(config_path: Path | str | None = None, *, host: str | None = None, port: int | None = None) -> int:
    import uvicorn

    from cloud.api.app import create_app
    from cloud.config import load_config
    from cloud.runtime import Runtime

    logs.setup()
    try:
        cfg = load_config(config_path)
        runtime = Runtime(cfg, role="serve")
    except (OSError, ValueError) as exc:
        log.error("cannot start the cloud service: %s", exc)
        return 2
    app = create_app(runtime)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).addFilter(_drop_color_message)
    _tune_gc()
    uvicorn.run(
        app,
        host=host or cfg.http.host,
        port=port if port is not None else cfg.http.port,
        log_config=None,  # keep our log format
        access_log=False,
    )
    return 0


def ingest_only(config_path: Path | str | None = None) -> int:
    from cloud.config import load_config
    from cloud.runtime import Runtime

    logs.setup()
    try:
        cfg = load_config(config_path)
        runtime = Runtime(cfg, role="ingest")
    except (OSError, ValueError) as exc:
        log.error("cannot start the ingest worker: %s", exc)
        return 2

    async def main() -> None:
        _tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runtime.start()
        try:
            await stop.wait()
        finally:
            log.info("stopping ingest worker %s", runtime.client_id)
            await runtime.stop()

    asyncio.run(main())
    return 0
