"""`callguard recordings options CODE [...]` (per-contract recording options) and
`callguard recordings pause|resume ID` (issue #14)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from callguard import recording_options_admin as opts
from callguard import recording_pause
from callguard.cli._admin import emit, run
from callguard.config import load_settings


def _on_off(text: str) -> bool:
    if text in ("on", "yes", "true", "1"):
        return True
    if text in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, not {text!r}")


def _summary(d: dict[str, Any]) -> str:
    def word(v: bool) -> str:
        return "on" if v else "off"

    key = d["public_key"] or "none (recordings stored in clear)"
    codes = (f"{d['pause_code']} / {d['resume_code']}" if d["pause_code"] else "off")
    return (f"{d['contract']}: stereo {word(d['stereo'])}, announcement inbound "
            f"{word(d['announce_in'])} / outbound {word(d['announce_out'])}, "
            f"encryption key {key}, DTMF pause/resume {codes}")


def _options(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    for flag in opts.FLAGS:
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = value
    if args.public_key is not None:
        changes["public_key"] = args.public_key
    if args.no_public_key:
        changes["public_key"] = None
    if args.pause_codes is not None:
        pause, _, resume = args.pause_codes.partition(",")
        changes["pause_code"], changes["resume_code"] = pause or None, resume or None
    if args.no_pause_codes:
        changes["pause_code"] = changes["resume_code"] = None

    def work(s: Session) -> dict[str, Any]:
        if changes:
            return opts.set_options(s, args.code, changes)
        return opts.get_options(s, args.code)

    data = run(work)
    return emit(args, data, _summary(data))


def _pause(args: argparse.Namespace) -> int:
    pause = args.recordings_command == "pause"

    def work(s: Session) -> dict[str, Any]:
        return recording_pause.set_paused(s, load_settings(), args.id, pause, datetime.now(UTC))

    data = run(work)
    return emit(args, data, f"recording {data['id']} {'paused' if data['paused'] else 'resumed'}")


def register(rsub: Any) -> None:
    for name, what in (("pause", "pause a recording in progress (the call goes on)"),
                       ("resume", "resume a paused recording")):
        ps = rsub.add_parser(name, help=what)
        ps.add_argument("id", type=int, help="recording id")
        ps.add_argument("--json", action="store_true", help="machine-readable output")
        ps.set_defaults(handler=_pause)
    p = rsub.add_parser(
        "options", help="show/set a contract's recording options (all off by default)",
        description="Stereo (caller and called party on separate channels), the recording "
        "announcement per direction, and an age public key: recordings are then stored "
        "encrypted to it, and this server cannot decrypt them.")
    p.add_argument("code", help="contract code")
    p.add_argument("--stereo", type=_on_off, metavar="on|off")
    p.add_argument("--announce-in", type=_on_off, metavar="on|off",
                   help="inbound callers hear the announcement before the phone rings")
    p.add_argument("--announce-out", type=_on_off, metavar="on|off",
                   help="the called party of an outbound call hears it on answer")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--public-key", metavar="AGE1...", help="age X25519 recipient")
    key.add_argument("--no-public-key", action="store_true",
                     help="new recordings are stored in clear again")
    codes = p.add_mutually_exclusive_group()
    codes.add_argument("--pause-codes", metavar="PAUSE,RESUME",
                       help="DTMF codes from the customer's side, e.g. '*1,*2'")
    codes.add_argument("--no-pause-codes", action="store_true", help="no DTMF pause/resume")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_options)
