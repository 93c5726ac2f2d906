"""Caller identity, keyed hash and log masking (NCR-PRIV-1, NCR-REG-4, REL-4)."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callguard.domain import privacy as p

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
MASKED = re.compile(r"\*\*\*\([0-9]{1,2} digits\)")
FIXED_TOKENS = {"<none>", "<anonymous>", "<invalid>"}
numbers = st.text(alphabet="0123456789", min_size=3, max_size=20)


# ---- caller_identity (NCR-REG-4) -------------------------------------------------------------
def test_presented_number_is_the_identity() -> None:
    assert p.caller_identity("0312345678", None, False) == "0312345678"


def test_withheld_caller_identified_by_pai() -> None:  # NCR-REG-4
    assert p.caller_identity("anonymous", "0399997777", True) == "0399997777"


def test_withheld_without_pai_has_no_identity() -> None:  # NCR-REG-3: "unavailable"
    assert p.caller_identity("anonymous", None, True) is None
    assert p.caller_identity("", "", True) is None
    assert p.caller_identity(None, None, False) is None


def test_withheld_caller_number_from_trusted_callerid_still_counts() -> None:  # NCR-REG-4
    # Asterisk with trust_id_inbound puts the PAI number in CALLERID(num), pres "prohib".
    assert p.caller_identity("0399997777", None, True) == "0399997777"


def test_pai_takes_precedence_over_from() -> None:  # NCR-REG-4: network identity
    assert p.caller_identity("0312345678", "0399997777", False) == "0399997777"
    # an unusable PAI falls back to the presented number
    assert p.caller_identity("0312345678", "anonymous", False) == "0312345678"


@pytest.mark.parametrize("raw", [
    "anonymous", "Anonymous", "unavailable", "abc", "03123x5678", "12", "1" * 21,
    "０３１２３４５６７８",  # full-width digits are not ASCII digits
    "٠٣١٢٣٤٥٦٧٨", "+", "+abc", "03\n12345678", "0" * 100,
])
def test_garbage_is_no_identity(raw: str) -> None:  # REL-4, NCR-REG-3
    assert p.caller_identity(raw, None, False) is None
    assert p.caller_identity("anonymous", raw, True) is None


def test_length_bounds() -> None:
    assert p.caller_identity("110", None, False) == "110"
    assert p.caller_identity("1" * 20, None, False) == "1" * 20


def test_normalisation() -> None:
    assert p.normalise("03-1234-5678") == "0312345678"
    assert p.normalise(" (03) 1234.5678 ") == "0312345678"
    assert p.normalise("+81312345678") == "0312345678"
    assert p.normalise("+12025550123") == "01012025550123"  # NUM: 010 + country code


@given(st.one_of(st.none(), st.text(max_size=80)), st.one_of(st.none(), st.text(max_size=80)),
       st.booleans())
def test_identity_is_none_or_ascii_digits(number: str | None, pai: str | None,
                                          restricted: bool) -> None:  # REL-4
    identity = p.caller_identity(number, pai, restricted)
    assert identity is None or re.fullmatch(r"[0-9]{3,20}", identity)


@given(numbers, st.booleans())
def test_identity_of_a_plain_number_is_itself(number: str, restricted: bool) -> None:
    assert p.caller_identity(number, None, restricted) == number
    assert p.caller_identity("anonymous", number, restricted) == number


# ---- caller_key (NCR-PRIV-1) -----------------------------------------------------------------
def test_key_is_hmac_sha256_hex_of_the_normalised_number() -> None:
    expected = hmac.new(SECRET, b"0312345678", hashlib.sha256).hexdigest()
    assert p.caller_key(SECRET, "0312345678") == expected
    assert p.caller_key(SECRET, "03-1234-5678") == expected
    assert p.caller_key(SECRET, "+81312345678") == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)


def test_key_depends_on_the_secret() -> None:  # NCR-PRIV-1: not a plain hash
    assert p.caller_key(SECRET, "0312345678") != p.caller_key(OTHER_SECRET, "0312345678")
    assert p.caller_key(SECRET, "0312345678") != hashlib.sha256(b"0312345678").hexdigest()


def test_key_refuses_no_identity_and_weak_secret() -> None:
    with pytest.raises(ValueError) as exc:
        p.caller_key(SECRET, "anonymous")
    assert "anonymous" not in str(exc.value)
    with pytest.raises(ValueError):
        p.caller_key(b"", "0312345678")
    with pytest.raises(ValueError):
        p.caller_key(b"short", "0312345678")


@given(numbers, numbers)
def test_keys_distinct_for_distinct_numbers(a: str, b: str) -> None:
    assert (p.caller_key(SECRET, a) == p.caller_key(SECRET, b)) == (a == b)


# ---- mask (NCR-PRIV-1) -----------------------------------------------------------------------
def test_mask_shapes() -> None:
    assert p.mask(None) == "<none>"
    assert p.mask("") == "<none>"
    assert p.mask("anonymous") == "<anonymous>"
    assert p.mask("0312345678") == "***(10 digits)"
    assert p.mask("090-1234-5678") == "***(11 digits)"
    assert p.mask("evil\nlog line 0312345678") == "<invalid>"


@given(st.one_of(st.none(), st.text(max_size=80), numbers))
def test_mask_reveals_nothing(raw: str | None) -> None:  # NCR-PRIV-1, REL-4
    masked = p.mask(raw)
    assert masked in FIXED_TOKENS or MASKED.fullmatch(masked)
    # the only digits are the length: no prefix, no suffix, no hash of the number
    assert re.sub(r"[^0-9]", "", masked) in ("", *(str(n) for n in range(3, 21)))


@given(numbers, numbers)
def test_mask_same_for_same_length(a: str, b: str) -> None:  # NCR-PRIV-1
    if len(a) == len(b):
        assert p.mask(a) == p.mask(b)


def test_sealed_call_keys_differ_per_call_and_unseal() -> None:
    """SEC-3: the call log's sealed key equals neither the list key nor another call's."""
    from callguard.domain.privacy import caller_key, seal_key, unseal_key

    secret = bytes(range(32))
    key = caller_key(secret, "0399996666")
    a, b = seal_key(secret, "1700000000.1", key), seal_key(secret, "1700000000.2", key)
    assert len({key, a, b}) == 3 and len(a) == len(key)
    assert unseal_key(secret, "1700000000.1", a) == key
    assert unseal_key(secret, "1700000000.2", b) == key
    assert unseal_key(bytes(32), "1700000000.1", a) != key  # another secret gets nothing


def test_keys_and_seals_keep_their_stored_values() -> None:
    """NCR-PRIV-1, SEC-3: list keys and call-log seals already in a database stay valid when
    the code computing them changes (known answers of the first implementation, HMAC-SHA256
    and a byte-wise XOR)."""
    from callguard.domain.privacy import caller_key, seal_key

    secret = bytes(range(32))
    key = caller_key(secret, "09012345678")
    assert key == "7e7c0927ea587795ff3026d7caa0ce07f73c7e12c16ec136896abdf007c8c3c6"
    assert seal_key(secret, "1733350000.42", key) == (
        "ea739b3ea2ea256e0e4414929086104dd52df026da1d348feeaa6de35f67b882")
    # a key with leading zero bytes keeps its length (the integer XOR pads it back)
    zeros = "00" * 8 + key[16:]
    assert len(seal_key(secret, "1733350000.42", zeros)) == 64
