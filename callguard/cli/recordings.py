"""`callguard recordings list|reconcile|purge|capacity` (REC-FILE-2/3/4, REC-CAP-1, ADM-1)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from callguard import recordings
from callguard.cli import cluster, recording_options
from callguard.cli._admin import non_negative, positive, progress_bar, run
from callguard.cli._common import print_json
from callguard.config import Settings, load_settings
from callguard.db.models import Recording
from callguard.services import capacity
from callguard.services import recordings as rec_svc


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from exc
    return value if value.tzinfo else value.astimezone()


def _list(args: argparse.Namespace) -> int:
    """A page like every other listing (`--json`: items, limit, offset, next_offset,
    next_cursor); newest first, keyset paging with --cursor."""
    settings = load_settings()
    q = recordings.Search(args.contract, args.number, args.remote, args.direction, args.since,
                          args.until, args.limit, args.offset)
    rec_dir = settings.recordings_dir

    def render(row: Recording, code: str) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in recordings.to_json(row, code, rec_dir).items()}

    page = run(lambda s: rec_svc.search(s, q, render, args.cursor), settings)
    if args.json:
        print_json(page.to_json())
    else:
        for r in page.items:
            print(f"{r['id']:>6} {r['contract']:<6} {r['direction']:<3} {r['number']:<12} "
                  f"{r['remote']:<14} {r['started_at'][:19].replace('T', ' ')} "
                  f"{r['duration_s'] or 0:>7.1f}s {r['status']:<9} {r['path']}")
        if page.next_cursor is not None:
            print(f"(more: --cursor {page.next_cursor})", file=sys.stderr)
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
    with progress_bar("reconcile") as progress:
        # A cluster (make cluster): every node is asked about every call (CLU-3).
        nodes = cluster.node_settings()
        report = run(lambda s: rec_svc.reconcile(s, settings, adopt=not args.no_adopt,
                                                 progress=progress, nodes=nodes), settings)
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
    with progress_bar("purge") as progress:
        report = run(lambda s: rec_svc.purge(s, settings, datetime.now(UTC),
                                             dry_run=args.dry_run, progress=progress), settings)
    summary = dataclasses.asdict(report) | {"dry_run": args.dry_run}
    if args.json:
        print_json(summary)
    else:
        print(f"purge{' (dry run)' if args.dry_run else ''}: {report.rows} rows, "
              f"{report.files} files, {report.bytes} bytes, {report.errors} errors")
    return 1 if report.errors else 0


def _capacity(args: argparse.Namespace) -> int:
    """REC-CAP-1 knobs (`callguard.services.capacity`): both shells pick them up with the
    site snapshot (every 2 s); without a row, the process defaults apply."""
    settings = load_settings()
    defaults = settings.max_recordings, settings.at_capacity_policy
    if args.max is None and args.policy is None and not args.reset:
        data = run(lambda s: capacity.get_capacity(s, *defaults), settings)
    else:
        data = run(lambda s: capacity.set_capacity(s, *defaults, args.max, args.policy,
                                                   args.reset), settings)
    print_json(data)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("recordings", help="search, reconcile and purge recordings")
    rsub = p.add_subparsers(dest="recordings_command", required=True)
    ls = rsub.add_parser("list", help="search recordings (newest first)")
    ls.add_argument("--contract", help="only this contract's recordings")
    ls.add_argument("--number", help="our number on the call")
    ls.add_argument("--remote", help="the other party as presented")
    ls.add_argument("--direction", choices=("in", "out"), help="incoming or outgoing calls")
    ls.add_argument("--since", type=_when, help="started at or after (ISO date/time)")
    ls.add_argument("--until", type=_when, help="started before (ISO date/time)")
    ls.add_argument("--limit", type=positive, default=100, help="page size (default 100)")
    ls.add_argument("--offset", type=non_negative, default=0, help="skip this many first")
    ls.add_argument("--cursor", help="continue after the previous page (its next_cursor)")
    ls.add_argument("--json", action="store_true", help="machine-readable output (a page)")
    ls.set_defaults(handler=_list)
    rc = rsub.add_parser("reconcile", help="finish rows and files left by a crash")
    rc.add_argument("--json", action="store_true", help="machine-readable output")
    rc.add_argument("--no-adopt", action="store_true",
                    help="only report files without a row (default: create their rows)")
    rc.add_argument("-v", "--verbose", action="store_true", help="log each action to stderr")
    rc.set_defaults(handler=_reconcile)
    pg = rsub.add_parser("purge", help="delete recordings past their contract's retention")
    pg.add_argument("--dry-run", action="store_true", help="report only, delete nothing")
    pg.add_argument("--json", action="store_true", help="machine-readable output")
    pg.add_argument("-v", "--verbose", action="store_true", help="log each action to stderr")
    pg.set_defaults(handler=_purge)
    cap = rsub.add_parser("capacity", help="show/set the concurrent-recording maximum")
    cap.add_argument("--max", type=int, help="concurrent recordings allowed")
    cap.add_argument("--policy", choices=capacity.POLICIES,
                     help="what ordinary calls get at the maximum (priority calls always "
                          "connect unrecorded)")
    cap.add_argument("--reset", action="store_true", help="back to the process defaults")
    cap.set_defaults(handler=_capacity)
    recording_options.register(rsub)  # issue #14
