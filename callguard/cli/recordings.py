"""`callguard recordings list|reconcile|purge|capacity` (REC-FILE-2/3/4, REC-CAP-1, ADM-1)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from callguard import recordings
from callguard.cli import CliError, recording_options
from callguard.cli._common import db_session, print_json
from callguard.config import Settings, load_settings
from callguard.db import queries
from callguard.db.models import SiteSetting


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from exc
    return value if value.tzinfo else value.astimezone()


def _list(args: argparse.Namespace) -> int:
    settings = load_settings()
    q = recordings.Search(args.contract, args.number, args.remote, args.direction, args.since,
                          args.until, args.limit, args.offset)
    with db_session(settings) as session:
        rows = [recordings.to_json(r, c, settings.recordings_dir)
                for r, c in recordings.search(session, q)]
    if args.json:
        print_json([{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                    for r in rows])
    else:
        for r in rows:
            print(f"{r['id']:>6} {r['contract']:<6} {r['direction']:<3} {r['number']:<12} "
                  f"{r['remote']:<14} {r['started_at']:%Y-%m-%d %H:%M:%S} "
                  f"{r['duration_s'] or 0:>7.1f}s {r['status']:<9} {r['path']}")
    return 0


def _log_to(settings: Settings, verbose: bool) -> None:
    """Housekeeping is logged for the record (REC-FILE-3): always to
    <log dir>/recordings.log, and to stderr with --verbose."""
    logger = logging.getLogger("callguard.recordings")
    logger.setLevel(logging.INFO)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(settings.log_dir / "recordings.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    if verbose:
        logger.addHandler(logging.StreamHandler())


def _reconcile(args: argparse.Namespace) -> int:
    settings = load_settings()
    _log_to(settings, args.verbose)
    with db_session(settings) as session:
        report = recordings.reconcile(session, settings, adopt=not args.no_adopt)
    data = dataclasses.asdict(report)
    if args.json:
        print_json(data)
    else:
        print("reconcile: " + ", ".join(f"{k}={v}" for k, v in data.items() if k != "orphans"))
        for rel in report.orphans:
            print(f"  no row: {settings.recordings_dir / rel}")
    # 1: some calls could not be checked (Asterisk not reachable); run again later.
    return 1 if report.asterisk_unreachable else 0


def _purge(args: argparse.Namespace) -> int:
    settings = load_settings()
    _log_to(settings, args.verbose)
    with db_session(settings) as session:
        report = recordings.purge(session, settings, dry_run=args.dry_run)
    summary = dataclasses.asdict(report) | {"dry_run": args.dry_run}
    if args.json:
        print_json(summary)
    else:
        print(f"purge{' (dry run)' if args.dry_run else ''}: {report.rows} rows, "
              f"{report.files} files, {report.bytes} bytes, {report.errors} errors")
    return 1 if report.errors else 0


CAPACITY_KEYS = ("max_recordings", "at_capacity_policy")


def _capacity(args: argparse.Namespace) -> int:
    """REC-CAP-1 knobs as site_settings rows: both shells pick them up with the site
    snapshot (every 2 s); without a row, the process defaults apply."""
    settings = load_settings()
    values: dict[str, str] = {}
    if args.max is not None:
        if args.max < 0:
            raise CliError("--max must be 0 or more", code=2)
        values["max_recordings"] = str(args.max)
    if args.policy:
        values["at_capacity_policy"] = args.policy
    if args.reset and values:
        raise CliError("--reset cannot be combined with --max/--policy", code=2)
    with db_session(settings) as session:
        if args.reset:
            session.execute(delete(SiteSetting).where(SiteSetting.key.in_(CAPACITY_KEYS)))
        for key, value in values.items():
            session.execute(pg_insert(SiteSetting).values(key=key, value=value)
                            .on_conflict_do_update(index_elements=[SiteSetting.key],
                                                   set_={"value": value}))
        current = {s.key: s.value for s in session.scalars(
            select(SiteSetting).where(SiteSetting.key.in_(CAPACITY_KEYS)))}
        active = session.scalar(queries.active_recordings()) or 0
    print_json({
        "max_recordings": int(current.get("max_recordings", settings.max_recordings)),
        "at_capacity_policy": current.get("at_capacity_policy", settings.at_capacity_policy),
        "source": {k: "site_settings" if k in current else "default" for k in CAPACITY_KEYS},
        "active_recordings": active,
    })
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("recordings", help="search, reconcile and purge recordings")
    rsub = p.add_subparsers(dest="recordings_command", required=True)
    ls = rsub.add_parser("list", help="search recordings (newest first)")
    ls.add_argument("--contract")
    ls.add_argument("--number", help="our number on the call")
    ls.add_argument("--remote", help="the other party as presented")
    ls.add_argument("--direction", choices=("in", "out"))
    ls.add_argument("--since", type=_when)
    ls.add_argument("--until", type=_when)
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--offset", type=int, default=0)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)
    rc = rsub.add_parser("reconcile", help="finish rows and files left by a crash")
    rc.add_argument("--json", action="store_true")
    rc.add_argument("--no-adopt", action="store_true",
                    help="only report files without a row (default: create their rows)")
    rc.add_argument("-v", "--verbose", action="store_true", help="log each action to stderr")
    rc.set_defaults(handler=_reconcile)
    pg = rsub.add_parser("purge", help="delete recordings past their contract's retention")
    pg.add_argument("--dry-run", action="store_true")
    pg.add_argument("--json", action="store_true")
    pg.add_argument("-v", "--verbose", action="store_true", help="log each action to stderr")
    pg.set_defaults(handler=_purge)
    cap = rsub.add_parser("capacity", help="show/set the concurrent-recording maximum")
    cap.add_argument("--max", type=int, help="concurrent recordings allowed")
    cap.add_argument("--policy", choices=("congestion", "unrecorded"),
                     help="what ordinary calls get at the maximum (priority calls always "
                          "connect unrecorded)")
    cap.add_argument("--reset", action="store_true", help="back to the process defaults")
    cap.set_defaults(handler=_capacity)
    recording_options.register(rsub)  # issue #14
