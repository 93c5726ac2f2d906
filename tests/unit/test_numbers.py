"""Dialed-number classification: every row of SPEC §2, length edges and garbage (NUM-1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callguard.domain.numbers import (
    MAX_DIALED_LENGTH,
    RECORDING_PREFIX_FIXED,
    RECORDING_PREFIX_MOBILE,
    NumberClass,
    allowed_with_prefix,
    classify,
    is_emergency,
    split_recording_prefix,
)

C = NumberClass
EXTENSIONS = frozenset({"2001", "2002"})  # reference site plan (SPEC §8)

# (dialed, expected class): one block per row of the SPEC §2 table, in table order.
CASES: list[tuple[str, NumberClass]] = [
    # 0ABJ geographic: 10 digits, 0[1-9], third and fourth digit not 0.
    ("0312345678", C.GEOGRAPHIC),
    ("0612345678", C.GEOGRAPHIC),
    ("0112345678", C.GEOGRAPHIC),  # 011 Sapporo
    ("0126721234", C.GEOGRAPHIC),  # 01267 (5-digit area code)
    ("0999999999", C.GEOGRAPHIC),
    ("031234567", C.INVALID),  # one digit short
    ("03123456789", C.INVALID),  # one digit long
    # international: 010 + country code + number, 10..18 digits in all.
    ("0101234567", C.INTERNATIONAL),  # shortest: 7 after 010
    ("01012025550123", C.INTERNATIONAL),  # US
    ("010442079460000", C.INTERNATIONAL),  # UK
    ("010123456789012345", C.INTERNATIONAL),  # longest: 18 digits
    ("010123456", C.INVALID),  # 6 after 010
    ("0101234567890123456", C.INVALID),  # 19 digits
    ("0100123456", C.INVALID),  # no country code starts with 0
    ("010", C.INVALID),
    # IP phone: 050 + 8 digits.
    ("05012345678", C.IP_PHONE),
    ("05011110002", C.IP_PHONE),
    ("0501234567", C.INVALID),
    ("050123456789", C.INVALID),
    # PHS / mobile: 070 / 080 / 090 + 8 digits.
    ("07012345678", C.MOBILE),
    ("08012345678", C.MOBILE),
    ("09011110001", C.MOBILE),
    ("0901111000", C.INVALID),
    ("090111100011", C.INVALID),
    ("0701234567", C.INVALID),
    ("080123456789", C.INVALID),
    # freephone: 0120 + 6 digits, 0800 + 7 digits (0800 wins over 080 mobile).
    ("0120123456", C.FREEPHONE),
    ("08001234567", C.FREEPHONE),
    ("012012345", C.INVALID),
    ("01201234567", C.INVALID),
    ("0800123456", C.INVALID),
    ("080012345678", C.INVALID),
    # navi-dial: 0570 + 6 digits.
    ("0570123456", C.NAVI_DIAL),
    ("057012345", C.INVALID),
    ("05701234567", C.INVALID),
    # other 0A0 / 0AB0: 10 or 11 digits.
    ("02012345678", C.OTHER_NON_GEOGRAPHIC),  # 020
    ("06012345678", C.OTHER_NON_GEOGRAPHIC),  # 060
    ("0180123456", C.OTHER_NON_GEOGRAPHIC),  # 0180
    ("0990123456", C.OTHER_NON_GEOGRAPHIC),  # 0990
    ("0170123456", C.OTHER_NON_GEOGRAPHIC),  # 0170
    ("0910123456", C.OTHER_NON_GEOGRAPHIC),  # another 0AB0
    ("0310123456", C.OTHER_NON_GEOGRAPHIC),  # fourth digit 0: not 0ABJ
    ("0201234567", C.OTHER_NON_GEOGRAPHIC),  # 10 digits
    ("018012345", C.INVALID),  # 9 digits
    ("020123456789", C.INVALID),  # 12 digits
    # emergency.
    ("110", C.EMERGENCY),
    ("118", C.EMERGENCY),
    ("119", C.EMERGENCY),
    ("1100", C.INVALID),
    ("11", C.INVALID),
    # 1XY service: 1 + 2 digits.
    ("104", C.SERVICE_1XY),
    ("115", C.SERVICE_1XY),
    ("116", C.SERVICE_1XY),
    ("117", C.SERVICE_1XY),
    ("177", C.SERVICE_1XY),
    ("144", C.SERVICE_1XY),
    ("10", C.INVALID),
    ("1041", C.INVALID),
    # carrier code: 00XY..., 4..22 digits.
    ("0077", C.CARRIER_CODE),
    ("00330312345678", C.CARRIER_CODE),
    (RECORDING_PREFIX_FIXED + "0312345678", C.CARRIER_CODE),  # a second prefix
    ("0033" + "1" * 18, C.CARRIER_CODE),
    ("007", C.INVALID),
    ("0033" + "1" * 19, C.INVALID),
    # '#' dialing.
    ("#8000", C.HASH_DIALING),
    ("#9110", C.HASH_DIALING),
    ("0312345678#", C.HASH_DIALING),
    ("#", C.HASH_DIALING),
    ("*#06#", C.HASH_DIALING),
    ("abc#", C.INVALID),  # not dial-pad characters
    # local short number (no area code): 5..8 digits, not starting with 0.
    ("12345678", C.LOCAL_SHORT),
    ("23456", C.LOCAL_SHORT),
    ("2345", C.INVALID),  # one digit short
    ("123456789", C.INVALID),  # one digit long
    # extension plan (2001, 2002 in EXTENSIONS); other 4-digit strings are nothing.
    ("2001", C.EXTENSION),
    ("2002", C.EXTENSION),
    ("2003", C.INVALID),
    ("200", C.INVALID),
    ("20011", C.LOCAL_SHORT),
    # anything else.
    ("", C.INVALID),
    ("0", C.INVALID),
    ("03", C.INVALID),
    ("031", C.INVALID),
    ("5", C.INVALID),
    ("999", C.INVALID),
    ("abc", C.INVALID),
    ("03-1234-5678", C.INVALID),
    ("0312345678a", C.INVALID),
    ("+81312345678", C.INVALID),
    ("+0312345678", C.INVALID),
    ("03 1234 5678", C.INVALID),
    (" 0312345678", C.INVALID),
    ("0312345678 ", C.INVALID),
    ("0312345678\n", C.INVALID),
    ("*67", C.INVALID),
    ("0" * 40, C.INVALID),
    ("0312345678" * 4, C.INVALID),
    ("1" * 40, C.INVALID),
    ("0" + "3" * (MAX_DIALED_LENGTH + 5) + "#", C.INVALID),  # too long even with '#'
    ("０３１２３４５６７８", C.INVALID),  # fullwidth digits
    ("٠٣١٢٣٤٥٦٧٨", C.INVALID),  # Arabic-Indic digits
    ("031234567٨", C.INVALID),
    ("１１０", C.INVALID),
]


@pytest.mark.parametrize(("dialed", "expected"), CASES)
def test_classify_table(dialed: str, expected: NumberClass) -> None:
    """NUM-1: every row of SPEC §2, both length edges and garbage."""
    assert classify(dialed, EXTENSIONS) is expected


def test_every_class_is_covered() -> None:
    """NUM-1: the table above exercises every class."""
    assert {cls for _, cls in CASES} == set(NumberClass)


def test_extension_needs_the_plan() -> None:
    """Without a plan, 2001 is no extension (and too short for a local number)."""
    assert classify("2001") is C.INVALID
    assert classify("2001", {"2001"}) is C.EXTENSION


def test_extension_plan_accepts_any_collection() -> None:
    assert classify("2001", ["2001"]) is C.EXTENSION
    assert classify("2001", {"2001": "f1-a"}) is C.EXTENSION  # dict keys, as routing passes


def test_extension_checked_before_short_numbers_but_after_emergency() -> None:
    """An extension plan may shadow 1XY and local numbers, never 110/118/119 (REC-OUT-3)."""
    plan = {"110", "104", "12345"}
    assert classify("110", plan) is C.EMERGENCY
    assert classify("104", plan) is C.EXTENSION
    assert classify("12345", plan) is C.EXTENSION


def test_extension_plan_with_garbage_never_matches_garbage() -> None:
    assert classify("20a1", {"20a1"}) is C.INVALID
    assert classify("", {""}) is C.INVALID


ALLOWED_ANYWHERE = [C.GEOGRAPHIC, C.INTERNATIONAL, C.IP_PHONE, C.MOBILE]
NOT_FROM_050 = [C.FREEPHONE, C.NAVI_DIAL]
REFUSED = [
    C.OTHER_NON_GEOGRAPHIC,
    C.EMERGENCY,
    C.SERVICE_1XY,
    C.CARRIER_CODE,
    C.HASH_DIALING,
    C.LOCAL_SHORT,
    C.EXTENSION,
    C.INVALID,
]


def test_prefix_column_partitions_all_classes() -> None:
    assert set(ALLOWED_ANYWHERE) | set(NOT_FROM_050) | set(REFUSED) == set(NumberClass)


@pytest.mark.parametrize("cls", ALLOWED_ANYWHERE)
@pytest.mark.parametrize("line_is_050", [False, True])
def test_allowed_with_prefix(cls: NumberClass, line_is_050: bool) -> None:
    """SPEC §2 "with prefix": allowed from any line."""
    assert allowed_with_prefix(cls, line_is_050=line_is_050)


@pytest.mark.parametrize("cls", NOT_FROM_050)
def test_freephone_and_navi_dial_refused_from_050_line(cls: NumberClass) -> None:
    """SPEC §2 / source note 2: 0120, 0800, 0570 unreachable from a 050 line."""
    assert allowed_with_prefix(cls, line_is_050=False)
    assert not allowed_with_prefix(cls, line_is_050=True)


@pytest.mark.parametrize("cls", REFUSED)
@pytest.mark.parametrize("line_is_050", [False, True])
def test_refused_with_prefix(cls: NumberClass, line_is_050: bool) -> None:
    assert not allowed_with_prefix(cls, line_is_050=line_is_050)


@pytest.mark.parametrize(
    ("dialed", "from_050", "allowed"),
    [
        ("0120123456", False, True),
        ("0120123456", True, False),
        ("08001234567", True, False),
        ("0570123456", True, False),
        ("0312345678", True, True),
        ("05012345678", True, True),
        ("09012345678", True, True),
        ("110", False, False),
        ("104", False, False),
    ],
)
def test_classify_then_allow(dialed: str, from_050: bool, allowed: bool) -> None:
    """The pipeline routing runs for a prefixed call (REC-OUT-1, REC-OUT-2)."""
    assert allowed_with_prefix(classify(dialed, EXTENSIONS), line_is_050=from_050) is allowed


@pytest.mark.parametrize(
    ("dialed", "expected"),
    [("110", True), ("118", True), ("119", True), ("117", False), ("1100", False),
     ("0110", False), ("", False), ("１１０", False), ("110#", False)],
)
def test_is_emergency(dialed: str, expected: bool) -> None:
    """REC-OUT-3: exactly 110 / 118 / 119."""
    assert is_emergency(dialed) is expected


@pytest.mark.parametrize(
    ("dialed", "expected"),
    [
        ("0077260312345678", (RECORDING_PREFIX_MOBILE, "0312345678")),
        ("0077270312345678", (RECORDING_PREFIX_FIXED, "0312345678")),
        ("007726", (RECORDING_PREFIX_MOBILE, "")),
        ("007727110", (RECORDING_PREFIX_FIXED, "110")),
        ("0312345678", (None, "0312345678")),
        ("00772", (None, "00772")),
        ("0077280312345678", (None, "0077280312345678")),
        ("", (None, "")),
        ("０07726", (None, "０07726")),
    ],
)
def test_split_recording_prefix(dialed: str, expected: tuple[str | None, str]) -> None:
    """REC-OUT-1: 0077-26 (mobile) and 0077-27 (fixed) are stripped; nothing else is."""
    assert split_recording_prefix(dialed) == expected


def test_prefix_values() -> None:
    assert RECORDING_PREFIX_MOBILE == "007726"
    assert RECORDING_PREFIX_FIXED == "007727"


def test_prefix_then_empty_destination_is_refused() -> None:
    _, rest = split_recording_prefix(RECORDING_PREFIX_FIXED)
    assert not allowed_with_prefix(classify(rest), line_is_050=False)


_DIALPAD_TEXT = st.text(alphabet="0123456789#*", max_size=45)
_ANY_TEXT = st.text(max_size=60)


@settings(max_examples=500)
@given(dialed=st.one_of(_ANY_TEXT, _DIALPAD_TEXT), extensions=st.frozensets(_DIALPAD_TEXT))
def test_classify_total_and_allowed_means_national_digits(
    dialed: str, extensions: frozenset[str]
) -> None:
    """NUM-1, REL-4: never raises; whatever is allowed with the prefix is ASCII digits from 0."""
    cls = classify(dialed, extensions)
    assert isinstance(cls, NumberClass)
    if allowed_with_prefix(cls, line_is_050=False):
        assert dialed.isascii()
        assert dialed.isdigit()
        assert dialed.startswith("0")
        assert 10 <= len(dialed) <= 18


@given(dialed=_ANY_TEXT)
def test_split_then_join_is_identity(dialed: str) -> None:
    prefix, rest = split_recording_prefix(dialed)
    assert (prefix or "") + rest == dialed


@given(digits=st.text(alphabet="0123456789", min_size=1, max_size=MAX_DIALED_LENGTH))
def test_extension_match_is_exact(digits: str) -> None:
    """An extension plan only ever changes the class of its own members (and never 11x)."""
    with_plan = classify(digits, {digits})
    expected = C.EMERGENCY if is_emergency(digits) else C.EXTENSION
    assert with_plan is expected
    assert classify(digits, {digits + "0"}) is classify(digits)
