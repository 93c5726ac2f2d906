"""The interactive 144 menu (NCR-*). Replaced by the full implementation of issue 3."""

from __future__ import annotations

from typing import TYPE_CHECKING

from callguard.domain.routing import CAUSE_NORMAL, NuisanceMenu, Refuse

if TYPE_CHECKING:
    from ari_app.calls import CallEnv


async def run_menu(env: CallEnv, channel_id: str, decision: NuisanceMenu) -> None:
    from ari_app.calls import carry_out

    await carry_out(env, channel_id, Refuse(CAUSE_NORMAL, "register_failed"))
