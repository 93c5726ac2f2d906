"""Per-contract recording options (issue #14): read and change them, for the CLI and the API.
One transaction per call (the caller's session); refusals are admin.Invalid / NotFound."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from callguard.db.models import RecordingOptions
from callguard.domain.recording_options import InvalidOption, check_codes, check_public_key
from callguard.services.base import Invalid, get_contract

FLAGS = ("stereo", "announce_in", "announce_out")


def options_json(code: str, row: RecordingOptions | None) -> dict[str, Any]:
    return {
        "contract": code,
        "stereo": bool(row and row.stereo),
        "announce_in": bool(row and row.announce_in),
        "announce_out": bool(row and row.announce_out),
        "public_key": row.public_key if row else None,
        "pause_code": row.pause_code if row else None,
        "resume_code": row.resume_code if row else None,
        "encrypted": bool(row and row.public_key),
    }


def get_options(session: Session, code: str) -> dict[str, Any]:
    c = get_contract(session, code)
    return options_json(c.code, session.get(RecordingOptions, c.id))


def set_options(session: Session, code: str, changes: dict[str, Any]) -> dict[str, Any]:
    """changes: any of stereo/announce_in/announce_out (bool) and public_key (str, or None
    to stop encrypting new recordings). Unknown keys are refused."""
    unknown = set(changes) - {*FLAGS, "public_key", "pause_code", "resume_code"}
    if unknown:
        raise Invalid(f"unknown recording option(s): {', '.join(sorted(unknown))}")
    c = get_contract(session, code, lock=True)
    row = session.get(RecordingOptions, c.id)
    if row is None:
        row = RecordingOptions(contract_id=c.id, stereo=False, announce_in=False,
                               announce_out=False, public_key=None)
        session.add(row)
    for flag in FLAGS:
        if flag in changes:
            value = changes[flag]
            if not isinstance(value, bool):
                raise Invalid(f"{flag} must be true or false")
            setattr(row, flag, value)
    if "public_key" in changes:
        key = changes["public_key"]
        if key is None or key == "":
            row.public_key = None
        elif not isinstance(key, str):
            raise Invalid("public_key must be a string or null")
        else:
            try:
                row.public_key = _parsed_recipient(check_public_key(key))
            except InvalidOption as exc:
                raise Invalid(str(exc)) from exc
    if "pause_code" in changes or "resume_code" in changes:
        pause = changes.get("pause_code", row.pause_code) or None
        resume = changes.get("resume_code", row.resume_code) or None
        if not all(v is None or isinstance(v, str) for v in (pause, resume)):
            raise Invalid("pause_code and resume_code must be strings or null")
        try:
            row.pause_code, row.resume_code = check_codes(pause, resume)
        except InvalidOption as exc:
            raise Invalid(str(exc)) from exc
    session.flush()
    return options_json(c.code, row)


def _parsed_recipient(key: str) -> str:
    """The key once the age library accepts it (checksum included)."""
    import pyrage
    from pyrage import x25519

    try:
        x25519.Recipient.from_str(key)
    except (pyrage.RecipientError, ValueError) as exc:
        raise InvalidOption(f"not a valid age X25519 public key: {exc}") from exc
    return key
