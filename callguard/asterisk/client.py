"""The call path's async ARI client, re-exported as it is (`ari_app.client` is tuned there)."""

from __future__ import annotations

from ari_app.client import AriClient, AriError

__all__ = ["AriClient", "AriError"]
