"""`callguard-ari`: run the ARI application until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop

from ari_app.app import CallguardApp
from ari_app.logs import setup_logging
from callguard import metrics
from callguard.config import Settings, load_settings
from callguard.realtime import share_asterisk_priority

log = logging.getLogger("callguard.main")


async def _main(settings: Settings) -> None:
    metrics.init_process(metrics.VIA_ARI)
    metrics.serve(settings.metrics_ari_port)
    app = CallguardApp(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stop.set)
    runner = asyncio.create_task(app.run())
    await app.stop.wait()
    log.info("shutting down")
    runner.cancel()
    try:
        await runner
    except asyncio.CancelledError:
        pass


def main() -> None:
    setup_logging()
    settings = load_settings()
    # Before the loop and any thread exist: they inherit it.
    refused = share_asterisk_priority(settings.rt_priority)
    if refused:
        log.warning("normal scheduling, not Asterisk's real-time class: %s", refused)
    uvloop.run(_main(settings))  # libuv's loop: less CPU per event and per request (PERF-1)


if __name__ == "__main__":
    main()
