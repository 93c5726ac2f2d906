"""Polling a condition until it holds or a deadline passes, for tests of what other threads
or processes do."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[..., object], timeout_s: float, every_s: float = 0.2) -> bool:
    """True as soon as `predicate()` is truthy, False once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return False
