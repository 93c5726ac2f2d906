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
    Every append is fsynced before it returns; the file is 0600 in a 0700 directory (it holds
    caller keys and recording metadata).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        private_dir(path.parent)

    def append(self, ops: Sequence[Op]) -> None:
        if not ops:
            return
        data = "".join(dumps(op) + "\n" for op in ops).encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

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
            write_private(self.path, "".join(line + "\n" for line in lines[count:]).encode())

    def replay_sync(self, commit: Callable[[list[Op]], None]) -> int:
        """Hand the pending ops to `commit`, which must apply them AND commit its transaction
        before it returns; only then do they leave the file. If `commit` raises, every line
        stays (nothing is lost when a write after the replay fails and rolls it back)."""
        ops = self.take()
        commit(ops)
        if ops:
            self.done(len(ops))
        return len(ops)


def private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, mode 0600, fsynced (file and directory)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
