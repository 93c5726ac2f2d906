"""Nuisance-list rules (NCR-*)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")


def month_of(ts: datetime) -> str:
    return ts.astimezone(TOKYO).strftime("%Y-%m")
