"""The site snapshot, refreshed in the background (CallguardApp.background); the last good
copy survives database outages (REL-2)."""

from __future__ import annotations

import logging

from ari_app.store import Store
from callguard.domain.site import SiteSnapshot

log = logging.getLogger("callguard.site")


class SiteCache:
    def __init__(self, store: Store, refresh_s: float = 2.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.current = SiteSnapshot()

    async def load(self) -> None:
        self.current = await self.store.snapshot()
