"""What the bench changes on the shared stack, and how it is put back.

Everything changed is saved first to `bench/results/.restore.json` (mode 0600; keyed hashes only,
never numbers in clear), so a run that dies half-way is repaired by the next one before it starts.
Restore is idempotent and also removes what the calls left: recording rows and files, inbound-call
rows, the lookup contract with its lists, astdb keys, the baseline's recordings directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, text

from callguard.asterisk.cli import AsteriskCliError, run_cli
from callguard.config import PROJECT_ROOT, Settings
from callguard.domain.privacy import caller_key

log = logging.getLogger("bench.state")

# The shared-stack lock of tests/e2e/conftest.py (a second stack passes its own path).
LOCK = Path(os.environ.get("CALLGUARD_E2E_LOCK", "/tmp/callguard-e2e.lock"))  # noqa: S108
RESULTS = PROJECT_ROOT / "bench" / "results"
RESTORE_FILE = RESULTS / ".restore.json"
STACK = PROJECT_ROOT / "tools" / "stack.sh"

SCREENED_NUMBER = "0312345678"  # f1-a, recorded contract F1, NCR per number (SPEC §8)
# Synthetic caller numbers: 30 put on the list, 30 not.
LISTED = [f"03991{i:05d}" for i in range(30)]
UNLISTED = [f"03992{i:05d}" for i in range(30)]
RECORDING_DEST = "0398880000"  # PERF-2: f1-a dials 007727 + this, recorded, to the carrier
RECORDING_PREFIX = "007727"
LOOKUP_CONTRACT = "BENCH-PERF3"
BASELINE_REC_DIR = "var/spool/asterisk/callguard-bench"  # inside the Asterisk root
# Sequences the bench advances; put back so ids continue as if it never ran.
SEQUENCES = {
    "contracts_id_seq": "contracts", "nuisance_lists_id_seq": "nuisance_lists",
    "nuisance_entries_id_seq": "nuisance_entries", "inbound_calls_id_seq": "inbound_calls",
    "recordings_id_seq": "recordings",
}
ENTRY_SEQ = "nuisance_entry_seq"
ASTDB_FAMILIES = ("callguard_bench", "callguard_bench_block")


@contextmanager
def stack_lock(wait_s: float) -> Iterator[TextIO]:
    """The shared-stack lock (tests/e2e/conftest.py), held for the whole run."""
    with LOCK.open("a") as handle:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{LOCK} still held after {wait_s:.0f}s") from None
                if not told:
                    print(f"bench: waiting for {LOCK} (an e2e run or restart holds it)",
                          flush=True)
                    told = True
                time.sleep(1)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


CLI_TIMEOUT_S = 20.0
# PERF-4: how long Asterisk may stay too busy to answer its CLI before the run is cut short.
# After a step far past every path's ceiling (2,200 calls at 275/s on the baseline, 6 Dec) a
# live Asterisk once took more than 20 s to answer `channel request hangup all`, and the run
# lost its recording and lookup parts although nothing had crashed.
CLI_PATIENCE_S = 180.0


def cli(settings: Settings, command: str) -> str:
    """`asterisk -rx command`. A command that times out is sent again until Asterisk answers
    or CLI_PATIENCE_S has passed (every command the bench sends is idempotent: reads, astdb
    puts and deletes, hang-up requests); a refused one (Asterisk gone) fails at once."""
    deadline = time.monotonic() + CLI_PATIENCE_S
    while True:
        try:
            return run_cli(settings, command, timeout=CLI_TIMEOUT_S)
        except AsteriskCliError as exc:
            if not isinstance(exc.__cause__, subprocess.TimeoutExpired) \
                    or time.monotonic() >= deadline:
                raise
            print(f"bench: Asterisk did not answer `{command}` within {CLI_TIMEOUT_S:g} s "
                  "(busy after the step); asking again", flush=True)


def astdb_put(settings: Settings, family: str, key: str, value: str) -> None:
    cli(settings, f"database put {family} {key} {value}")


def active_channels(settings: Settings) -> int:
    out = cli(settings, "core show channels count")
    for line in out.splitlines():
        if "active channel" in line:
            return int(line.split()[0])
    return -1


def _wait_no_channels(settings: Settings, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and active_channels(settings) > 0:
        time.sleep(0.2)


def drain_channels(settings: Settings, wait_s: float = 20) -> int:
    """After a step: wait (bounded) until every channel is gone, then hang up those still up
    and return how many there were.

    Calls the load generator gave up on can stay in a Stasis app that fell behind (the floor
    app at 300 calls/s left ~1,800, still there minutes later): they loaded every later step
    and the recording part (Asterisk at 95 % with 100 recorded calls instead of 150). The
    step's result keeps the count, and the targets name the step.
    """
    _wait_no_channels(settings, wait_s)
    left = active_channels(settings)
    if left <= 0:
        return 0
    cli(settings, "channel request hangup all")
    _wait_no_channels(settings, 10)
    return left


def app_connected() -> bool:
    return subprocess.run([str(STACK), "app-connected"], check=False,
                          capture_output=True).returncode == 0


def ensure_bench_config(settings: Settings) -> None:
    """The baseline's endpoint and context must be loaded; if not, install bench/asterisk_conf/
    and reload (what `make bench` does; we hold the lock). `make run` removes them again."""
    def loaded() -> bool:
        try:
            ep = cli(settings, "pjsip show endpoint bench-carrier")
            ctx = cli(settings, "dialplan show bench-baseline")
            floor = cli(settings, "pjsip show endpoint bench-floor-carrier") + cli(
                settings, "dialplan show bench-floor")
        except Exception:
            return False
        return ("bench-baseline" in ep and "bench-baseline" in ctx and "Unable to find" not in ep
                and "Stasis(callguard-floor)" in floor and "Unable to find" not in floor)
    if not loaded():
        print("bench: loading bench/asterisk_conf/ (bench endpoint or context missing)",
              flush=True)
        subprocess.run([str(STACK), "bench-install"], check=True)
        if not loaded():
            raise RuntimeError("bench-carrier endpoint / bench-baseline context not loaded")
    deadline = time.monotonic() + 20
    while not app_connected():
        if time.monotonic() > deadline:
            raise RuntimeError("the ARI app is not connected (tools/stack.sh apps-start)")
        time.sleep(0.2)


def f1a_list_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT l.id FROM nuisance_lists l JOIN numbers n ON n.id = l.number_id "
            "WHERE n.number = :n AND l.active"), {"n": SCREENED_NUMBER}).scalar_one())


def bench_keys(settings: Settings) -> list[str]:
    return [caller_key(settings.hmac_key, n) for n in LISTED + UNLISTED]


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
            for r in rows]


class BenchState:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.rec_root = Path(settings.recordings_dir)
        self.ast_root = Path(settings.asterisk_root or "/")

    # ---- save --------------------------------------------------------------------------
    def save(self) -> dict[str, Any]:
        """Record what will be changed, before changing anything."""
        list_id = f1a_list_id(self.engine)
        with self.engine.connect() as conn:
            setting = conn.execute(text(
                "SELECT value FROM site_settings WHERE key = 'max_recordings'")).scalar()
            entries = [dict(r._mapping) for r in conn.execute(text(
                "SELECT id, list_id, caller_key, seq, added_at FROM nuisance_entries "
                "WHERE list_id = :l ORDER BY seq"), {"l": list_id})]
            counters = [dict(r._mapping) for r in conn.execute(text(
                "SELECT list_id, month, count FROM nuisance_counters WHERE list_id = :l"),
                {"l": list_id})]
            sequences = {}
            for seq in [*SEQUENCES, ENTRY_SEQ]:
                row = conn.execute(text(f"SELECT last_value, is_called FROM {seq}")).one()  # noqa: S608 - fixed names
                sequences[seq] = [int(row[0]), bool(row[1])]
        saved = {
            "started_at": datetime.now(UTC).isoformat(),
            "max_recordings": setting,
            "f1a_list_id": list_id,
            "entries": _jsonable(entries),
            "counters": counters,
            "sequences": sequences,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        fd = os.open(RESTORE_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(saved, f)
        return saved

    # ---- changes -------------------------------------------------------------------------
    def set_max_recordings(self, value: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO site_settings (key, value) VALUES ('max_recordings', :v) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"), {"v": str(value)})

    def fill_list(self, list_id: int) -> None:
        """The f1-a list holds exactly the 30 bench callers (keyed hashes, NCR-PRIV-1)."""
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM nuisance_entries WHERE list_id = :l"), {"l": list_id})
            for number in LISTED:
                conn.execute(text(
                    "INSERT INTO nuisance_entries (list_id, caller_key) VALUES (:l, :k)"),
                    {"l": list_id, "k": caller_key(self.settings.hmac_key, number)})

    def baseline_on(self) -> None:
        """The baseline's astdb: switched on, and the same 30 callers listed for the number."""
        astdb_put(self.settings, "callguard_bench", "active", "1")
        route = cli(self.settings, f"database get callguard_route {SCREENED_NUMBER}")
        if "f1-a" not in route:
            raise RuntimeError("astdb route map lacks 0312345678 (callguard site sync-asterisk)")
        for number in LISTED:
            astdb_put(self.settings, "callguard_bench_block", f"{SCREENED_NUMBER}/{number}", "1")

    # ---- restore -------------------------------------------------------------------------
    def wait_recordings_finished(self, since: datetime, timeout_s: float = 30.0) -> int:
        """Until the shells have closed every recording row of the bench (bounded)."""
        deadline = time.monotonic() + timeout_s
        left = -1
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                left = int(conn.execute(text(
                    "SELECT count(*) FROM recordings WHERE status = 'recording' "
                    "AND started_at >= :t"), {"t": since}).scalar_one())
            if left == 0:
                break
            time.sleep(0.25)
        return left

    def delete_call_rows(self, since: datetime) -> dict[str, int]:
        """Recording rows and files, inbound-call rows the bench's calls made."""
        remotes = [*UNLISTED, *LISTED, RECORDING_DEST]
        keys = bench_keys(self.settings)
        with self.engine.begin() as conn:
            paths = [str(p) for (p,) in conn.execute(text(
                "DELETE FROM recordings WHERE started_at >= :t AND remote = ANY(:r) "
                "RETURNING path"), {"t": since, "r": remotes})]
            calls = conn.execute(text(
                "DELETE FROM inbound_calls WHERE started_at >= :t AND caller_key = ANY(:k)"),
                {"t": since, "k": keys}).rowcount
        removed = 0
        dirs: set[Path] = set()
        for rel in paths:
            path = self.rec_root / rel
            if path.is_file():
                path.unlink()
                removed += 1
                dirs.add(path.parent)
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            # Only directories the bench's files made and left empty (never the root).
            while d != self.rec_root and d.is_relative_to(self.rec_root):
                try:
                    d.rmdir()
                except OSError:
                    break
                d = d.parent
        baseline = self.ast_root / BASELINE_REC_DIR
        for _ in range(40):  # a run cut off mid-step: its last calls may still be writing here
            shutil.rmtree(baseline, ignore_errors=True)
            if not baseline.exists():
                break
            time.sleep(0.25)
        else:
            log.warning("left %s: Asterisk still writes into it", baseline)
        return {"recording_rows": len(paths), "recording_files": removed, "inbound_rows": calls}

    def drop_lookup_contract(self) -> None:
        """PERF-3's contract, lists and entries (entries first: no per-row cascade)."""
        with self.engine.begin() as conn:
            cid = conn.execute(text("SELECT id FROM contracts WHERE code = :c"),
                               {"c": LOOKUP_CONTRACT}).scalar()
            if cid is None:
                return
            conn.execute(text(
                "DELETE FROM nuisance_entries e USING nuisance_lists l "
                "WHERE e.list_id = l.id AND l.contract_id = :c"), {"c": cid})
            conn.execute(text("DELETE FROM nuisance_lists WHERE contract_id = :c"), {"c": cid})
            conn.execute(text("DELETE FROM contracts WHERE id = :c"), {"c": cid})

    def restore(self, saved: dict[str, Any]) -> dict[str, int]:
        since = datetime.fromisoformat(saved["started_at"])
        self.wait_recordings_finished(since, timeout_s=20)
        cleaned = self.delete_call_rows(since)
        self.drop_lookup_contract()
        list_id = int(saved["f1a_list_id"])
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM nuisance_entries WHERE list_id = :l"), {"l": list_id})
            for e in saved["entries"]:
                conn.execute(text(
                    "INSERT INTO nuisance_entries (id, list_id, caller_key, seq, added_at) "
                    "VALUES (:id, :list_id, :caller_key, :seq, :added_at)"),
                    {**e, "added_at": datetime.fromisoformat(e["added_at"])})
            conn.execute(text("DELETE FROM nuisance_counters WHERE list_id = :l"), {"l": list_id})
            for c in saved["counters"]:
                conn.execute(text(
                    "INSERT INTO nuisance_counters (list_id, month, count) "
                    "VALUES (:list_id, :month, :count)"), c)
            if saved["max_recordings"] is None:
                conn.execute(text("DELETE FROM site_settings WHERE key = 'max_recordings'"))
            else:
                conn.execute(text("UPDATE site_settings SET value = :v WHERE key = "
                                  "'max_recordings'"), {"v": saved["max_recordings"]})
            for seq, (last, called) in saved["sequences"].items():
                table = SEQUENCES.get(seq)
                col = "id" if table else "seq"
                table = table or "nuisance_entries"
                top = int(conn.execute(text(
                    f"SELECT COALESCE(max({col}), 0) FROM {table}")).scalar_one())  # noqa: S608
                # Never below a row someone else may have added meanwhile.
                if top > last:
                    last, called = top, True
                conn.execute(text("SELECT setval(:s, :v, :c)"),
                             {"s": seq, "v": last, "c": called})
        for family in ASTDB_FAMILIES:
            cli(self.settings, f"database deltree {family}")
        RESTORE_FILE.unlink(missing_ok=True)
        return cleaned

    def vacuum(self) -> None:
        """Give back the space of the bulk rows (PERF-3), so the tables are as small as before."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (FULL, ANALYZE) nuisance_entries, nuisance_lists"))


def pending_restore() -> dict[str, Any] | None:
    if not RESTORE_FILE.exists():
        return None
    data: dict[str, Any] = json.loads(RESTORE_FILE.read_text())
    return data
