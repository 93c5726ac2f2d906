"""The fallback's engines (REL-2, NCR-REG-7): the 144 menu's own pool waits for a connection at
most as long as the menu waits for its answer, and the default engine keeps its sizes. No
connection is made (an engine connects on first use)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.pool import QueuePool

from agi_scripts.fastagi import MENU_DB_TIMEOUT_S
from callguard.config import load_settings
from callguard.db.session import make_sync_engine

ENV = ("CALLGUARD_DATABASE_URL=postgresql://callguard@/callguard?host=/nonexistent&port=1\n"
       "CALLGUARD_ARI_PASSWORD=x\nCALLGUARD_HMAC_KEY=00\nCALLGUARD_API_TOKEN=x\n"
       "CALLGUARD_AMI_PASSWORD=x\nCALLGUARD_AGI_SECRET=x\nCALLGUARD_RECORDINGS_DIR=/tmp\n")


def test_menu_pool_bounded_by_the_menu_timeout(tmp_path: Path) -> None:
    env = tmp_path / "callguard.env"
    env.write_text(ENV)
    settings = load_settings(env)
    menu = make_sync_engine(settings, pool_size=2, max_overflow=8, pool_timeout=MENU_DB_TIMEOUT_S)
    default = make_sync_engine(settings)
    try:
        assert isinstance(menu.pool, QueuePool) and isinstance(default.pool, QueuePool)
        assert menu.pool.size() == 2 and menu.pool._max_overflow == 8
        assert menu.pool.timeout() == MENU_DB_TIMEOUT_S == 3.0
        assert default.pool.size() == 5 and default.pool._max_overflow == 10
    finally:
        menu.dispose()
        default.dispose()
