"""The fingerprint of the code the services run (REL-9, upgrades): `make run` restarts the
running services when it differs from the one they started with (tools/stack.sh apps_start).

It hashes every file's path and content under the directories the services import from
(the same ones `tools/stack.sh code-sync` copies for a checkout out of others' reach) and the
files that decide their dependencies. Bytecode caches are left out: the services write them
as they run. It reads the files, not git, so a tarball without `.git` works the same, and an
uncommitted edit counts like a commit.

    python -m callguard.code_fingerprint [CHECKOUT]   # prints the hex digest
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

CODE_DIRS = ("callguard", "ari_app", "agi_scripts")
DEPENDENCY_FILES = ("pyproject.toml", "requirements/service.lock")
SKIPPED_DIRS = frozenset({"__pycache__"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def code_files(top: Path) -> Iterator[str]:
    """The files that make up the services' code, as sorted paths relative to `top`."""
    found: list[str] = []
    for d in CODE_DIRS:
        for dirpath, dirnames, filenames in os.walk(top / d):
            dirnames[:] = [n for n in dirnames if n not in SKIPPED_DIRS]
            for name in filenames:
                if not name.endswith(SKIPPED_SUFFIXES):
                    found.append((Path(dirpath) / name).relative_to(top).as_posix())
    found.extend(f for f in DEPENDENCY_FILES if (top / f).is_file())
    yield from sorted(found)


def fingerprint(top: Path) -> str:
    """SHA-256 over each code file's path and content (a rename or a removal changes it)."""
    h = hashlib.sha256()
    for rel in code_files(top):
        data = (top / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(fingerprint(Path(args[0] if args else ".")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
