"""Issue #15, the CLI: help on every option, `--version`, `--quiet` for scripts, one page shape
for every `--json` listing (forwarding and recordings too), a progress bar on purge and
reconcile, and service dates on Tokyo's calendar."""

from __future__ import annotations

import argparse
import io
import json
import re
from datetime import UTC, date, datetime

from callguard.cli import build_parser
from callguard.cli._admin import progress_bar
from callguard.config import Settings
from callguard.services.base import tokyo_date
from tests.isolated_db import cli

PAGE = {"items", "limit", "offset", "next_offset"}


def _options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            out.append((path, action))
    return out


def test_every_option_has_help() -> None:
    missing = [(path, a.option_strings or a.dest)
               for path, a in _options(build_parser(), "callguard") if not a.help]
    assert not missing, missing


def test_version(iso: Settings) -> None:
    done = cli(iso, "--version")
    assert done.returncode == 0 and re.fullmatch(r"callguard \d+\.\d+\.\d+\S*\n", done.stdout)


def test_every_json_listing_is_a_page(iso: Settings) -> None:
    assert cli(iso, "contracts", "create", "PG1", "--kind", "fixed").returncode == 0
    for args in (("contracts", "list"), ("forwarding", "list"), ("recordings", "list"),
                 ("priority", "list"), ("tokens", "list")):
        done = cli(iso, *args, "--json")
        assert done.returncode == 0, (args, done.stderr)
        page = json.loads(done.stdout)
        assert isinstance(page, dict) and page.keys() >= PAGE, (args, page)
    recs = json.loads(cli(iso, "recordings", "list", "--json", "--limit", "5").stdout)
    assert (recs["limit"], recs["offset"]) == (5, 0)


def test_quiet_prints_nothing_but_errors(iso: Settings) -> None:
    loud = cli(iso, "contracts", "create", "QU1", "--kind", "fixed")
    assert loud.returncode == 0 and "QU1" in loud.stdout
    quiet = cli(iso, "--quiet", "contracts", "create", "QU2", "--kind", "fixed")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    shown = cli(iso, "-q", "contracts", "show", "QU2", "--json")
    assert json.loads(shown.stdout)["code"] == "QU2"  # --json data is still printed
    refused = cli(iso, "-q", "contracts", "create", "QU2", "--kind", "fixed")
    assert refused.returncode == 2 and "already exists" in refused.stderr
    purge = cli(iso, "-q", "recordings", "purge", "--dry-run")
    assert (purge.returncode, purge.stdout, purge.stderr) == (0, "", "")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_lines_elsewhere() -> None:
    tty = _Tty()
    with progress_bar("purge", stream=tty) as progress:
        for i in range(4):
            progress(i, 3)
    assert "purge" in tty.getvalue() and "3/3" in tty.getvalue()
    plain = io.StringIO()
    with progress_bar("purge", stream=plain) as progress:
        progress(3, 3)  # quick work: nothing (the plain Progress waits a second)
    assert plain.getvalue() == ""


def test_purge_and_reconcile_report(iso: Settings) -> None:
    for args in (("recordings", "purge", "--dry-run", "--json"),
                 ("recordings", "reconcile", "--no-adopt", "--json")):
        done = cli(iso, *args)
        assert done.returncode in (0, 1), (args, done.stderr)
        assert isinstance(json.loads(done.stdout), dict)


def test_service_dates_are_tokyo_days() -> None:
    # 23:30 UTC on 31 March is already 1 April in Tokyo (the billing month changes).
    assert tokyo_date(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)) == date(2026, 4, 1)
    assert tokyo_date(datetime(2026, 3, 31, 14, 59, tzinfo=UTC)) == date(2026, 3, 31)
