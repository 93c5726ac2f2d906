"""REL-7: what a failed ARI request in a call's handler means, so that a lost race with the
dialplan's 1 s deadline or a hung-up caller is not logged as a bug (no traceback)."""

from __future__ import annotations

import pytest

from ari_app.client import AriError, call_failure


@pytest.mark.parametrize(("exc", "kind"), [
    (AriError(409, "Channel not in Stasis application"), "left-stasis"),
    (AriError(400, "Failed to execute function"), "left-stasis"),
    (AriError(404, "Channel not found"), "gone"),
    (AriError(0, "TimeoutError: "), "unreachable"),
    (AriError(400, "Variable name is required"), "bug"),
    (AriError(500, "Internal Server Error"), "bug"),
    (KeyError("dialplan"), "bug"),
])
def test_call_failure(exc: BaseException, kind: str) -> None:
    assert call_failure(exc) == kind
