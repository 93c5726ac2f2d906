"""Classification of dialed strings, and the recording prefixes (NUM-1, REC-OUT-1..3).

Pure functions over national-format digit strings (`0312345678`). The classifier is strict:
only ASCII digits count as digits (`str.isdigit()` would accept '０' or '٣', which a carrier
would never route), and every input, however malformed, gets a class instead of an exception
(REL-4).

Length rules beyond the SPEC §2 table, decided here and pinned by tests/unit/test_numbers.py:

- A prefix owned by one class (010, 050, 070/080/090, 0120, 0800, 0570) with the wrong length is
  INVALID, not "other 0A0/0AB0": it is a misdial of that class, not a different service.
- Other 0A0 / 0AB0 numbers (020, 060, 0170, 0180, 0990, ...) are OTHER_NON_GEOGRAPHIC at the two
  national lengths, 10 or 11 digits; any other length is INVALID.
- International: the first digit after 010 must be 1-9 (no country code starts with 0).
- Carrier code: `00XY` plus at most 18 more digits (room for an international number), so
  4..22 digits.
- Local short number (市外局番を省略した番号): 5..8 digits, first digit 1-9. Japanese national
  numbers are `0` + 9 digits and area codes are 1..4 digits after the `0`, so the local part is
  5..8 digits long.
- `#` dialing: dial-pad characters only (`0-9`, `*`, `#`) with at least one `#`; anything with
  letters or other characters is INVALID. `*` codes without `#` are INVALID (no row covers them).
- Anything longer than MAX_DIALED_LENGTH characters is INVALID before any other check.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

# REC-OUT-1: 0077-26 for mobile contracts, 0077-27 for fixed contracts.
RECORDING_PREFIX_MOBILE = "007726"
RECORDING_PREFIX_FIXED = "007727"
_RECORDING_PREFIXES = (RECORDING_PREFIX_MOBILE, RECORDING_PREFIX_FIXED)

# Same bound as the routing layer's dialable-string check (REL-4); longer is garbage.
MAX_DIALED_LENGTH = 32

_ASCII_DIGITS = frozenset("0123456789")
_DIALPAD = frozenset("0123456789*#")
_EMERGENCY = frozenset({"110", "118", "119"})

_INTERNATIONAL_MIN = 10  # 010 + at least 7 digits (NUM-1 table)
_INTERNATIONAL_MAX = 18
_CARRIER_CODE_MIN = 4  # 00XY
_CARRIER_CODE_MAX = 22  # 00XY + an international number at most 18 digits long
_LOCAL_SHORT_MIN = 5
_LOCAL_SHORT_MAX = 8


class NumberClass(StrEnum):
    """The rows of SPEC §2."""

    GEOGRAPHIC = "0abj"
    INTERNATIONAL = "international"
    IP_PHONE = "ip-phone"
    MOBILE = "mobile"  # 070 (PHS in the source) / 080 / 090
    FREEPHONE = "freephone"
    NAVI_DIAL = "navi-dial"
    OTHER_NON_GEOGRAPHIC = "other-0a0-0ab0"
    EMERGENCY = "emergency"
    SERVICE_1XY = "service-1xy"
    CARRIER_CODE = "carrier-code"
    HASH_DIALING = "hash-dialing"
    LOCAL_SHORT = "local-short"
    EXTENSION = "extension"
    INVALID = "invalid"


# "with prefix" column of SPEC §2: the only classes a prefixed call may reach.
_ALLOWED_WITH_PREFIX = frozenset({
    NumberClass.GEOGRAPHIC,
    NumberClass.INTERNATIONAL,
    NumberClass.IP_PHONE,
    NumberClass.MOBILE,
    NumberClass.FREEPHONE,
    NumberClass.NAVI_DIAL,
})
# Source note 2: lines using a 050 number cannot reach 0120/0800/0570.
_REFUSED_FROM_050 = frozenset({NumberClass.FREEPHONE, NumberClass.NAVI_DIAL})

# 0AB0 service codes outside area 01 and not owned by a class below (情報料代理徴収).
_SERVICE_0AB0 = frozenset({"0990"})

# Prefixes owned by exactly one class, with that class's only valid length (NUM-1).
# Longest prefixes first: 0800 (freephone) must win over 080 (mobile).
_FIXED_LENGTH_PREFIXES: tuple[tuple[str, int, NumberClass], ...] = (
    ("0120", 10, NumberClass.FREEPHONE),
    ("0800", 11, NumberClass.FREEPHONE),
    ("0570", 10, NumberClass.NAVI_DIAL),
    ("050", 11, NumberClass.IP_PHONE),
    ("070", 11, NumberClass.MOBILE),
    ("080", 11, NumberClass.MOBILE),
    ("090", 11, NumberClass.MOBILE),
)


def _is_ascii_digits(text: str) -> bool:
    return bool(text) and all(ch in _ASCII_DIGITS for ch in text)


def is_emergency(dialed: str) -> bool:
    """110 / 118 / 119, exactly (REC-OUT-3: always connected without the prefix)."""
    return dialed in _EMERGENCY


def classify(dialed: str, extensions: Collection[str] = ()) -> NumberClass:
    """The SPEC §2 class of `dialed` (a destination after any recording prefix is stripped).

    `extensions` is the contract's extension plan; an exact match is EXTENSION (REC-OUT-4),
    checked after EMERGENCY so an odd plan can never shadow 110/118/119.
    """
    if not dialed or len(dialed) > MAX_DIALED_LENGTH:
        return NumberClass.INVALID
    if not all(ch in _DIALPAD for ch in dialed):
        return NumberClass.INVALID  # letters, '+', spaces, non-ASCII digits
    if "#" in dialed:
        return NumberClass.HASH_DIALING
    if not _is_ascii_digits(dialed):
        return NumberClass.INVALID  # '*' codes: no row of the table
    if is_emergency(dialed):
        return NumberClass.EMERGENCY
    if dialed in extensions:
        return NumberClass.EXTENSION
    if dialed[0] != "0":
        return _classify_without_zero(dialed)
    return _classify_national(dialed)


def _classify_without_zero(dialed: str) -> NumberClass:
    if len(dialed) == 3 and dialed[0] == "1":
        return NumberClass.SERVICE_1XY
    if _LOCAL_SHORT_MIN <= len(dialed) <= _LOCAL_SHORT_MAX:
        return NumberClass.LOCAL_SHORT
    return NumberClass.INVALID  # "その他、「0」以外から始まる番号"


def _classify_national(dialed: str) -> NumberClass:
    """Digit strings starting with 0."""
    n = len(dialed)
    if dialed.startswith("00"):
        ok = _CARRIER_CODE_MIN <= n <= _CARRIER_CODE_MAX
        return NumberClass.CARRIER_CODE if ok else NumberClass.INVALID
    if dialed.startswith("010"):
        ok = _INTERNATIONAL_MIN <= n <= _INTERNATIONAL_MAX and dialed[3] != "0"
        return NumberClass.INTERNATIONAL if ok else NumberClass.INVALID
    for prefix, length, cls in _FIXED_LENGTH_PREFIXES:
        if dialed.startswith(prefix):
            return cls if n == length else NumberClass.INVALID
    if n < 10 or n > 11:
        return NumberClass.INVALID
    # "上記以外の0A0番号、0AB0番号" (refused with the prefix).
    if _non_geographic(dialed):
        return NumberClass.OTHER_NON_GEOGRAPHIC
    return NumberClass.GEOGRAPHIC if n == 10 else NumberClass.INVALID


def _non_geographic(dialed: str) -> bool:
    """0A0 (020, 060, ...) or an 0AB0 service code (0170, 0180, 0990, ...).

    A fourth digit 0 alone does not make a number non-geographic: 04-70xx (Kashiwa),
    04-20xx (Tokorozawa), 0470 (Tateyama), 0270 (Isesaki) are 0ABJ. It does where no area code
    or local number can have that shape: 01x0 (no area code of area 01 ends in 0) and 0X10
    (a local number never starts with 1, and no area code is 0X10)."""
    if dialed[2] == "0":
        return True
    if dialed[3] != "0":
        return False
    return dialed[1] == "1" or dialed[2] == "1" or dialed[:4] in _SERVICE_0AB0


def allowed_with_prefix(cls: NumberClass, *, line_is_050: bool) -> bool:
    """SPEC §2 "with prefix" column; `line_is_050`: the calling line's own number is 050."""
    if line_is_050 and cls in _REFUSED_FROM_050:
        return False
    return cls in _ALLOWED_WITH_PREFIX


def split_recording_prefix(dialed: str) -> tuple[str | None, str]:
    """(recording prefix, destination), or (None, dialed) when no prefix leads (REC-OUT-1/3).

    Whether the prefix fits the line's contract kind is the caller's decision (REC-OUT-2).
    """
    for prefix in _RECORDING_PREFIXES:
        if dialed.startswith(prefix):
            return prefix, dialed[len(prefix):]
    return None, dialed


# Per-call caller-ID presentation (発信者番号通知): 184 withholds the number for this call,
# 186 shows it, whatever the line's default.
PRIVACY_WITHHOLD = "184"
PRIVACY_SHOW = "186"
_PRIVACY_CODES = (PRIVACY_WITHHOLD, PRIVACY_SHOW)


def split_privacy_prefix(dialed: str) -> tuple[str | None, str]:
    """(184 | 186, the number after it), or (None, dialed) when neither leads. 184 or 186
    alone is not a prefix (nothing follows): it is dialed as it is."""
    for code in _PRIVACY_CODES:
        if dialed.startswith(code) and len(dialed) > len(code):
            return code, dialed[len(code):]
    return None, dialed
