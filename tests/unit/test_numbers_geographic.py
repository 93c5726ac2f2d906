"""NUM-1, 0ABJ row: a fourth digit 0 does not make a number non-geographic.

Real area codes have that shape: 04-70xx / 04-71xx (Kashiwa, after the 04 change), 04-20xx
(Tokorozawa), 0470 (Tateyama), 0270 (Isesaki), 0280 (Koga), 0550 (Gotemba), 0980 (Nago).
Refusing them would refuse ordinary prefixed calls (REC-OUT-1)."""

from __future__ import annotations

import pytest

from callguard.domain.numbers import NumberClass, allowed_with_prefix, classify


@pytest.mark.parametrize("dialed", ["0470123456", "0471234567", "0420123456", "0470221234",
                                    "0270123456", "0280123456", "0550123456", "0980123456"])
def test_fourth_digit_zero_area_codes_are_geographic(dialed: str) -> None:
    assert classify(dialed) is NumberClass.GEOGRAPHIC
    assert allowed_with_prefix(classify(dialed), line_is_050=True)


@pytest.mark.parametrize("dialed", ["0170123456", "0180123456", "0990123456", "0130123456",
                                    "0310123456", "0610123456", "0910123456", "0201234567"])
def test_0a0_and_0ab0_service_codes_stay_refused(dialed: str) -> None:
    assert classify(dialed) is NumberClass.OTHER_NON_GEOGRAPHIC
    assert not allowed_with_prefix(classify(dialed), line_is_050=False)


def test_eleven_digit_geographic_shape_is_invalid() -> None:
    assert classify("04701234567") is NumberClass.INVALID
