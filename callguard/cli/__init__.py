"""`callguard`: the sysadmin's and operator's command line (ADM-1).

Each module in this package adds its commands through `register(subparsers)`; modules are
discovered, so a feature adds a file rather than editing a shared list. Exit codes: 0 ok,
1 the operation failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import os
import pkgutil
import sys
from collections.abc import Callable, Iterator, Sequence

from callguard.config import ConfigError

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A one-line error for the user; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# Help for the arguments every command group shares, by their dest (one wording everywhere);
# an option's own help, where given, wins.
GLOSSARY = {
    "code": "contract code, e.g. F1",
    "contract": "contract code, e.g. F1",
    "kind": "fixed lines or mobile handsets",
    "name": "endpoint name (a PJSIP section name), or a contract's display name",
    "extension_digits": "digits of the contract's extensions (2-6)",
    "address": "the endpoint's IPv4 or IPv6 source address",
    "extension": "the endpoint's extension",
    "channels": "concurrent calls of the endpoint (1-100)",
    "roaming": "a mobile handset that may call from other addresses",
    "endpoint": "endpoint name",
    "number": "our number, national format, e.g. 0312345678",
    "role": "the number's role on its line or handset",
    "nuisance": "screen this number's calls (nuisance-call rejection)",
    "description": "free text shown in listings",
    "revision": "Alembic revision (default head)",
    "id": "the token's id (from tokens list)",
    "stereo": "record each party on its own channel",
}


def _version() -> str:
    try:
        return importlib.metadata.version("callguard")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _fill_help(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fill_help(sub)
        elif not action.help and action.dest in GLOSSARY:
            action.help = GLOSSARY[action.dest]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callguard", description="callguard: call recording and nuisance-call rejection"
    )
    parser.add_argument("--version", action="version", version=f"callguard {_version()}",
                        help="print the version and exit")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="for scripts: no progress and no text output on success (--json "
                        "output and errors are still printed)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    _fill_help(parser)
    return parser


QUIET = False  # set by --quiet; read by the progress displays


@contextlib.contextmanager
def _quieted(args: argparse.Namespace) -> Iterator[None]:
    global QUIET
    QUIET = bool(args.quiet)
    if not QUIET or getattr(args, "json", False):
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        with _quieted(args):
            return handler(args)
    except CliError as exc:
        print(f"callguard: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        print(f"callguard: configuration: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
