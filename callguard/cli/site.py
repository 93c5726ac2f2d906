"""`callguard site provision|sync-asterisk`: the reference site (SPEC §8)."""

from __future__ import annotations

import argparse
from typing import Any

from callguard.asterisk.cli import AsteriskCliError, run_cli
from callguard.cli import CliError
from callguard.cli._admin import today
from callguard.cli._common import db_session
from callguard.config import load_settings
from callguard.db.provision import provision_once
from callguard.db.site_repo import load_snapshot
from callguard.domain.routing import endpoint_dial


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
    """Copy the route map into astdb: the dialplan's last-resort path when both the ARI app
    and the FastAGI fallback are down (REL-1) and the bench baseline read it."""
    settings = load_settings()
    with db_session(settings) as session:
        site = load_snapshot(session)
    try:
        run_cli(settings, "database deltree callguard_route")
        run_cli(settings, "database deltree callguard_cid")
        for number, info in site.numbers.items():
            # `<line number>@<endpoint>`: the dialplan dials PJSIP/${CG_EP}, so the phone is
            # called by its number as the routed calls are (endpoint_dial).
            target = endpoint_dial(site, info.endpoint).removeprefix("PJSIP/")
            run_cli(settings, f"database put callguard_route {number} {target}")
        for name, ep in site.endpoints.items():
            if ep.own_number:
                run_cli(settings, f"database put callguard_cid {name} {ep.own_number}")
    except AsteriskCliError as exc:
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
