"""A local write-ahead journal for call bookkeeping while the database is away (REL-2).

Writes of the call path are plain data (`Op`: a name from `queries.WRITES` and its arguments),
so a shell that cannot reach PostgreSQL appends them to a JSON-lines file and replays them, in
order, once the database answers again. Calls never wait for this.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Op:
    name: str
    args: dict[str, Any]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        return {k: _decode(v) for k, v in value.items()}
    return value


def dumps(op: Op) -> str:
    return json.dumps({"op": op.name, "args": _encode(op.args)}, separators=(",", ":"))


def loads(line: str) -> Op:
    data = json.loads(line)
    return Op(str(data["op"]), _decode(data["args"]))


class Journal:
    """Append-only file of pending Ops; `replay` applies them in order and truncates.

    Thread-safe (the FastAGI fallback is threaded); the file survives a process restart, so
    nothing journaled is lost when the app is restarted while the database is still down.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Journal lines hold caller numbers of recorded calls: owner-only (SEC-4).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)

    def append(self, ops: Sequence[Op]) -> None:
        if not ops:
            return
        with self._lock:
            _write_private(self.path, "".join(dumps(op) + "\n" for op in ops), append=True)

    def pending(self) -> int:
        with self._lock:
            if not self.path.exists():
                return 0
            with self.path.open() as f:
                return sum(1 for line in f if line.strip())

    def take(self) -> list[Op]:
        """All pending ops, oldest first (they stay in the file until `done`)."""
        with self._lock:
            if not self.path.exists():
                return []
            lines = self.path.read_text().splitlines()
        return [loads(line) for line in lines if line.strip()]

    def done(self, count: int) -> None:
        """Drop the first `count` ops (applied); later appends are kept."""
        with self._lock:
            if not self.path.exists():
                return
            lines = [line for line in self.path.read_text().splitlines() if line.strip()]
            rest = lines[count:]
            tmp = self.path.with_suffix(".tmp")
            _write_private(tmp, "".join(line + "\n" for line in rest), append=False)
            tmp.replace(self.path)

    def replay_sync(self, apply: Callable[[list[Op]], None]) -> int:
        ops = self.take()
        if ops:
            apply(ops)
            self.done(len(ops))
        return len(ops)


def _write_private(path: Path, data: str, *, append: bool) -> None:
    """Write mode 0600 and fsync before returning: a journaled write survives a crash."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
