"""`callguard check`: compare Asterisk's live PJSIP endpoints (over ARI) with the database and
report every mismatch (ADM-1), and warn of provisioning that agrees but will surprise (a mobile
handset without an office number). Exit 0 when they agree (warnings or not), 1 on any mismatch or
when Asterisk cannot be asked."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from callguard import asterisk_check
from callguard.cli import CliError
from callguard.cli._admin import Progress, run
from callguard.cli._common import print_json
from callguard.config import load_settings


def _check(args: argparse.Namespace) -> int:
    settings = load_settings()
    progress = Progress("check: Asterisk endpoints")

    def work(s: Session) -> asterisk_check.CheckReport:
        return asterisk_check.run_check(s, settings, progress)

    try:
        report = run(work, settings)
    except asterisk_check.AsteriskUnavailable as exc:
        raise CliError(f"cannot check: {exc}") from exc
    if args.json:
        print_json(report.to_json())
    else:
        for m in report.mismatches:
            print(f"MISMATCH {m.endpoint}: {m.problem}: {m.detail}")
        for w in report.warnings:
            print(f"WARNING {w.endpoint}: {w.problem}: {w.detail}")
        verdict = "agree" if report.ok else f"{len(report.mismatches)} mismatch(es)"
        print(f"{report.checked} database endpoint(s) checked against Asterisk: {verdict}"
              + (f" (not customer equipment: {', '.join(report.ignored)})"
                 if report.ignored else ""))
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="does Asterisk's endpoint configuration match the "
                       "database?", description=__doc__)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_check)
