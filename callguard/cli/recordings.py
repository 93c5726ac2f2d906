"""`callguard recordings list|reconcile|purge|capacity` (REC-FILE-2/3/4, REC-CAP-1, ADM-1)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert

from callguard import recordings
from callguard.cli import CliError
from callguard.cli._common import db_session, print_json
from callguard.config import load_settings
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
        print_json(rows)
    else:
        for r in rows:
            print(f"{r['id']:>6} {r['contract']:<6} {r['direction']:<3} {r['number']:<12} "
                  f"{r['remote']:<14} {r['started_at']:%Y-%m-%d %H:%M:%S} "
                  f"{r['duration_s'] or 0:>7.1f}s {r['status']:<9} {r['path']}")
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    settings = load_settings()
    with db_session(settings) as session:
        report = recordings.reconcile(session, settings)
    print_json(dataclasses.asdict(report)) if args.json else print(
        "reconcile: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(report).items()))
    return 1 if report.asterisk_unreachable else 0


def _purge(args: argparse.Namespace) -> int:
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with db_session(settings) as session:
        report = recordings.purge(session, settings, dry_run=args.dry_run)
    print(f"purge{' (dry run)' if args.dry_run else ''}: {report.rows} rows, "
          f"{report.files} files, {report.bytes} bytes")
    return 0


def _capacity(args: argparse.Namespace) -> int:
    values: dict[str, str] = {}
    if args.max is not None:
        if args.max < 0:
            raise CliError("--max must be 0 or more", code=2)
        values["max_recordings"] = str(args.max)
    if args.policy:
        values["at_capacity_policy"] = args.policy
    with db_session() as session:
        for key, value in values.items():
            session.execute(pg_insert(SiteSetting).values(key=key, value=value)
                            .on_conflict_do_update(index_elements=[SiteSetting.key],
                                                   set_={"value": value}))
        current = {s.key: s.value for s in session.query(SiteSetting)}
    print_json({k: current.get(k) for k in ("max_recordings", "at_capacity_policy")})
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
    rc.set_defaults(handler=_reconcile)
    pg = rsub.add_parser("purge", help="delete recordings past their contract's retention")
    pg.add_argument("--dry-run", action="store_true")
    pg.set_defaults(handler=_purge)
    cap = rsub.add_parser("capacity", help="show/set the concurrent-recording maximum")
    cap.add_argument("--max", type=int)
    cap.add_argument("--policy", choices=("congestion", "unrecorded"))
    cap.set_defaults(handler=_capacity)
