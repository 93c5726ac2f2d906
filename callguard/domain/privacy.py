"""Caller identity and its keyed hash (NCR-PRIV-1)."""

from __future__ import annotations

import hashlib
import hmac
import re

_DIGITS = re.compile(r"[0-9]{3,20}")


def caller_identity(number: str | None, pai_number: str | None,
                    presentation_restricted: bool) -> str | None:
    for candidate in (number, pai_number):
        if candidate and _DIGITS.fullmatch(candidate):
            return candidate
    return None


def caller_key(secret: bytes, number: str) -> str:
    return hmac.new(secret, number.encode(), hashlib.sha256).hexdigest()


def mask(number: str | None) -> str:
    return "<none>" if not number else f"<{len(number)} digits>"
