"""`callguard site provision|sync-asterisk`: the reference site (SPEC §8)."""

from __future__ import annotations

import argparse
from typing import Any

from callguard.astdb_sync import (
    CLI_LOCK_TIMEOUT_S,
    AstdbWriteFailed,
    MapLocked,
    map_lock,
    sync_once,
)
from callguard.asterisk.cli import AsteriskCliError, run_cli
from callguard.cli import CliError
from callguard.cli._admin import today
from callguard.cli._common import db_session
from callguard.config import load_settings
from callguard.db.provision import provision_once
from callguard.db.site_repo import load_snapshot
from callguard.domain.astdb import UnreadableOutput


def _provision(args: argparse.Namespace) -> int:
    with db_session() as session:
        # Tokyo's day, not the host's
        first = provision_once(session, today(), again=getattr(args, "again", False))
    if first is not None:
        print(f"reference site provisioned on {first.isoformat()}; not again (what was "
              "deleted since stays deleted; `callguard site provision --again` re-adds it)")
    else:
        print("reference site provisioned (contracts F1, F2, M1; endpoints f1-a … m1-b)")
    return 0


def _sync(args: argparse.Namespace) -> int:
    """Make the route map in astdb the database's (callguard.domain.astdb): the dialplan's
    last-resort path when both the ARI app and the FastAGI fallback are down (REL-1), its
    emergency caller ID (REL-6), transfers and the bench baseline read it. The services keep
    it current by themselves (callguard.astdb_sync); this writes it at once, e.g. at `make
    run` before they start, and only what differs from what astdb holds. Unlike the
    services it always reads the families whole, whatever the marker `callguard_meta/map_hash`
    says (the manual repair, after an edit by hand), and writes the marker last."""
    settings = load_settings()
    with db_session(settings) as session:
        site = load_snapshot(session)
    try:
        # The services' turns (callguard.astdb_sync.MapLock); theirs may be a long one.
        with map_lock(settings, CLI_LOCK_TIMEOUT_S).held():
            sync_once(lambda command: run_cli(settings, command), site)
    except (AsteriskCliError, UnreadableOutput, AstdbWriteFailed, MapLocked) as exc:
        raise CliError(f"cannot update Asterisk: {exc}") from exc
    print(f"astdb route map: {len(site.numbers)} numbers, {len(site.endpoints)} endpoints")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("site", help="the provisioned site")
    ssub = p.add_subparsers(dest="site_command", required=True)
    prov = ssub.add_parser("provision", help="provision the reference site, the first time only")
    prov.add_argument("--again", action="store_true",
                      help="re-add whatever part of the reference site is missing")
    prov.set_defaults(handler=_provision)
    ssub.add_parser(
        "sync-asterisk", help="copy the route map into Asterisk's astdb (fail-open path)"
    ).set_defaults(handler=_sync)
