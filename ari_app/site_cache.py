"""The ARI app's view of its local state (REL-5): the site snapshot and the nuisance lists'
keys, held in memory by callguard.localstate.StateKeeper (loaded from PostgreSQL or the last
good snapshot on disk, kept current by LISTEN/NOTIFY)."""

from __future__ import annotations

from callguard.domain.site import SiteSnapshot
from callguard.localstate import LocalState, StateKeeper


class SiteCache:
    def __init__(self, keeper: StateKeeper) -> None:
        self.keeper = keeper

    @property
    def state(self) -> LocalState:
        return self.keeper.current

    @property
    def current(self) -> SiteSnapshot:
        return self.keeper.current.site
