"""The site snapshot, refreshed in the background; the last good copy survives DB outages."""

from __future__ import annotations

import asyncio
import logging

from ari_app.store import Store, StoreUnavailable
from callguard.domain.site import SiteSnapshot

log = logging.getLogger("callguard.site")


class SiteCache:
    def __init__(self, store: Store, refresh_s: float = 2.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.current = SiteSnapshot()

    async def load(self) -> None:
        self.current = await self.store.snapshot()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.load()
            except StoreUnavailable as exc:
                log.warning("site refresh failed, keeping last snapshot: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), self.refresh_s)
            except TimeoutError:
                pass
