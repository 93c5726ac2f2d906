"""Helpers for the operator command groups (contracts, endpoints, numbers, subscriptions,
priority lines, tokens, billing, check): one transaction per command, one-line errors,
`--json` and pagination on every listing, progress on stderr for long work.

Exit codes: 0 done; 1 the operation failed (database or Asterisk unreachable, mismatches
found by `check`, contracts that could not be billed); 2 refused: bad input, unknown name,
or a conflict with what exists (nothing was written).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, TextIO, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callguard import cli
from callguard.cli import CliError
from callguard.cli._common import db_session, print_json
from callguard.config import Settings
from callguard.domain.audit import cli_actor
from callguard.services.base import AdminError, Page, tokyo_date

T = TypeVar("T")


def run(work: Callable[[Session], T], settings: Settings | None = None) -> T:
    """`work` in one transaction; a refusal rolls everything back and exits 2."""
    try:
        with db_session(settings) as session:
            return work(session)
    except AdminError as exc:
        raise CliError(str(exc), code=2) from exc
    except CliError as exc:
        # libpq's messages span lines ("…failed\n\tIs the server running…"): keep the first.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "failed"
        raise CliError(first, exc.code) from exc
    except IntegrityError as exc:
        # A concurrent writer got there first; the transaction was rolled back.
        raise CliError(f"conflicts with existing data: {exc.orig}", code=2) from exc


def today() -> date:
    """The CLI's clock: Tokyo's calendar day now (service dates, BILL-*)."""
    return tokyo_date(datetime.now(UTC))


def actor() -> str:
    """Who runs this command, for the audit of what it changes: `cli:<OS user name>`.
    getpass.getuser reads LOGNAME/USER/… then the password database and raises when neither
    names the user (a container's bare uid); the change still goes through, as the uid."""
    try:
        user: str | None = getpass.getuser()
    except (OSError, KeyError, ImportError):
        user = None
    uid = os.getuid() if hasattr(os, "getuid") else None
    return cli_actor(user, uid)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from exc


def add_listing_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=positive, help="at most this many (default: all)")
    p.add_argument("--offset", type=non_negative, default=0, help="skip this many first")


def positive(text: str) -> int:
    value = non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def emit_page(args: argparse.Namespace, page: Page,
              columns: Sequence[tuple[str, Callable[[dict[str, Any]], object]]]) -> int:
    """A listing: the page as JSON (`--json`), else an aligned table."""
    if args.json:
        print_json(page.to_json())
        return 0
    table = [[head for head, _ in columns]]
    table += [["-" if (v := get(item)) is None else str(v) for _, get in columns]
              for item in page.items]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if page.next_offset is not None:
        print(f"(more: --offset {page.next_offset})", file=sys.stderr)
    return 0


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> int:
    print_json(data) if args.json else print(text)
    return 0


@contextmanager
def progress_bar(label: str, stream: TextIO | None = None) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` for long work (purge, reconcile): a rich progress bar on a
    terminal's stderr, else the plain `Progress` lines; nothing with --quiet. stdout stays
    clean for --json."""
    out = stream or sys.stderr
    if cli.QUIET:
        yield lambda done, total: None
        return
    if not out.isatty():
        yield Progress(label, stream=out)
        return
    # Imported here: rich (and pygments with it) is ~90 ms of every other command's start.
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    console = Console(file=out)
    with RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class Progress:
    """`label: done/total` on stderr (stdout stays clean for --json) once work has run for a
    second: rewritten in place on a terminal, else a line every two seconds and a last one.
    Quick work prints nothing."""

    def __init__(self, label: str, clock: Callable[[], float] = time.monotonic,
                 stream: TextIO | None = None) -> None:
        self.label = label
        self.clock = clock
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = self.last = clock()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if cli.QUIET:
            return
        now = self.clock()
        final = done >= total
        if not self.shown and now - self.started < 1.0:
            return
        if self.tty:
            print(f"\r{self.label}: {done}/{total}", end="\n" if final else "",
                  file=self.stream, flush=True)
        elif final or not self.shown or now - self.last >= 2.0:
            print(f"{self.label}: {done}/{total}", file=self.stream, flush=True)
            self.last = now
        self.shown = True
