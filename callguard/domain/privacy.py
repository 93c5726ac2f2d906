"""Caller identity, its keyed hash and log masking (NCR-PRIV-1, NCR-REG-4, REL-4).

A registered number must never be learnable: not by phone, not from an API, not from the logs
(NCR-PRIV-1; the source: 「登録した相手の電話番号はわかりません。」). So lists store only
`caller_key()` (HMAC-SHA256 with a secret kept outside the DB) and logs only `mask()`.

Normalised identity: ASCII digits only, 3..20 of them, national format. Decided here:

- Visual separators of tel URIs (``-``, ``.``, ``(``, ``)``, space) are dropped, so
  ``03-1234-5678`` and ``0312345678`` are the same caller and get the same key.
- ``+81`` E.164 becomes the national ``0`` form and any other ``+<cc>`` the ``010<cc>`` form
  (NUM table), so one caller presented in two formats still matches its list entry.
- Anything else — ``anonymous``, ``unavailable``, empty, letters, full-width digits — is no
  identity (None): such a caller can be neither registered nor rejected (source:
  「発信電話番号を識別できない通話（一部の国際電話等）については登録および着信拒否できません。」).
"""

from __future__ import annotations

import hmac
import re

MIN_DIGITS = 3
MAX_DIGITS = 20
MIN_SECRET_BYTES = 16  # shorter keys make the ~10^10 national numbering space brute-forceable
_MAX_RAW = 64  # REL-4: longer input is garbage, refused before any parsing

_SEPARATORS = re.compile(r"[-.() ]")
_DIGITS = re.compile(rf"[0-9]{{{MIN_DIGITS},{MAX_DIGITS}}}")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_ANONYMOUS = frozenset({"anonymous", "unavailable", "unknown", "private", "restricted"})


def normalise(raw: str | None) -> str | None:
    """The normalised identity of one presented number, or None when it carries none."""
    if raw is None or len(raw) > _MAX_RAW:
        return None
    text = _SEPARATORS.sub("", raw.strip())
    if text.startswith("+"):
        rest = text[1:]
        if not _ASCII_DIGITS.fullmatch(rest):
            return None
        # +81 is Japan: national form is the trunk prefix 0 + the rest (NUM-* numbers).
        text = "0" + rest[2:] if rest.startswith("81") else "010" + rest
    return text if _DIGITS.fullmatch(text) else None


def caller_identity(number: str | None, pai_number: str | None,
                    presentation_restricted: bool) -> str | None:
    """The network identity used to register and screen a caller (NCR-REG-4), or None.

    Precedence: the P-Asserted-Identity number first, then the presented number (SIP From
    user / Asterisk ``CALLERID(num)``). PAI is what the carrier network asserts; From can
    differ (a displayed representative number), and screening must key on the network
    identity. `presentation_restricted` deliberately does not change the result: a withheld
    (非通知) caller is still registrable and rejectable (source:
    「発信電話番号が非通知の場合でも、登録および着信拒否可能です。」); its From is
    ``anonymous`` and its PAI — or Asterisk's trusted caller number — carries the identity.
    """
    del presentation_restricted  # kept in the signature so both call paths state it explicitly
    for candidate in (pai_number, number):
        identity = normalise(candidate)
        if identity is not None:
            return identity
    return None


def caller_key(secret: bytes, number: str) -> str:
    """HMAC-SHA256 (hex) of the normalised number: what lists store (NCR-PRIV-1).

    Raises ValueError for a number with no identity — keying ``anonymous`` would put every
    unidentifiable caller on a list at once — and for a missing or short secret, which would
    make the stored keys reversible by enumerating numbers.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the HMAC secret must be at least {MIN_SECRET_BYTES} bytes")
    identity = normalise(number)
    if identity is None:
        raise ValueError("not a caller identity")  # never echo the input (NCR-PRIV-1)
    # hmac.digest: OpenSSL's one-shot HMAC, without the Python HMAC object (PERF-1).
    return hmac.digest(secret, identity.encode("ascii"), "sha256").hex()


def mask(number: str | None) -> str:
    """A log-safe stand-in for a caller number (NCR-PRIV-1).

    Only the shape is kept — ``***(10 digits)`` — never a digit, a prefix or an unkeyed hash
    (a plain hash of a phone number is reversible by enumeration). Unusable input is shown
    as a fixed token, so attacker-controlled text never reaches the logs either (REL-4).
    """
    if number is None or not number.strip():
        return "<none>"
    if number.strip().lower() in _ANONYMOUS:
        return "<anonymous>"
    identity = normalise(number)
    if identity is None:
        return "<invalid>"
    return f"***({len(identity)} digits)"


def seal_key(secret: bytes, channel_id: str, key: str) -> str:
    """The caller key as the call log stores it (SEC-3): XOR-ed with a pad derived from the
    secret (outside the database) and the call's channel id. Every call's value differs, so
    no SQL over the database links a list entry (the plain key) to a call, a recording or
    the caller's number, nor two calls of one caller to each other; only a process holding
    the secret gets the key back (`unseal_key`, for 144 then 2)."""
    raw = bytes.fromhex(key)
    pad = hmac.digest(secret, b"callguard/inbound-call/" + channel_id.encode(), "sha256")
    if len(raw) != len(pad):
        raise ValueError("not a caller key")
    # XOR of the two 32-byte strings as integers: one operation instead of 32 (PERF-1).
    return (int.from_bytes(raw) ^ int.from_bytes(pad)).to_bytes(len(pad)).hex()


def unseal_key(secret: bytes, channel_id: str, sealed: str) -> str:
    """The plain caller key of a call-log row (the pad's XOR undoes itself)."""
    return seal_key(secret, channel_id, sealed)
