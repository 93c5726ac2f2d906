"""`callguard`: the sysadmin's and operator's command line (ADM-1).

Each module in this package adds its commands through `register(subparsers)`; modules are
discovered, so a feature adds a file rather than editing a shared list. Exit codes: 0 ok,
1 the operation failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence

from callguard.config import ConfigError

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A one-line error for the user; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callguard", description="callguard: call recording and nuisance-call rejection"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
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
