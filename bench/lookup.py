"""PERF-3: blocklist lookup latency with 10, 10^4 and 10^6 lists in PostgreSQL.

The lists are created in bulk (generate_series) under a bench contract, inactive so the shells'
site snapshot never loads them, each with `entries_per_list` keyed hashes (the screened number's
list and the other real lists keep theirs). Measured: the real `queries.is_blocked` statement
through the app's own async engine and `Store.is_blocked` (session, timeout, one round trip),
one lookup at a time, half of them hits; plus EXPLAIN ANALYZE of the statement.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from ari_app.store import Store
from bench.report import summary_ms
from bench.state import LOOKUP_CONTRACT, BenchState
from callguard.config import PROJECT_ROOT
from callguard.db import queries
from callguard.db.session import make_async_engine
from callguard.journal import Journal

SCALES = (10, 10_000, 1_000_000)


def _key(list_id: int, n: int) -> str:
    """Mirrors the SQL that fills the entries (64 hex chars, like an HMAC-SHA256)."""
    return hashlib.sha256(f"bench:{list_id}:{n}".encode()).hexdigest()


class Lookup:
    def __init__(self, state: BenchState, work: Path, lookups: int = 5000,
                 entries_per_list: int = 3, scales: tuple[int, ...] = SCALES,
                 deadline: float = float("inf")) -> None:
        self.deadline = deadline
        self.state = state
        self.work = work
        self.lookups = lookups
        self.per_list = entries_per_list
        self.scales = scales
        self.rng = random.Random(7)  # noqa: S311 - sampling, not security

    def _grow(self, contract_id: int, target: int) -> tuple[int, float]:
        """Add inactive bench lists until the table holds `target` lists; (added, seconds)."""
        started = time.monotonic()
        with self.state.engine.begin() as conn:
            have = int(conn.execute(text("SELECT count(*) FROM nuisance_lists")).scalar_one())
            bench = int(conn.execute(text(
                "SELECT count(*) FROM nuisance_lists WHERE contract_id = :c"),
                {"c": contract_id}).scalar_one())
            # At least one bench list to look up, even if the site alone has `target` lists.
            add = max(0 if bench else 1, target - have)
            if add:
                top = int(conn.execute(text(
                    "SELECT COALESCE(max(id), 0) FROM nuisance_lists")).scalar_one())
                conn.execute(text(
                    "INSERT INTO nuisance_lists (contract_id, number_id, unit, capacity, active) "
                    "SELECT :c, NULL, 'per-contract', 30, false FROM generate_series(1, :n)"),
                    {"c": contract_id, "n": add})
                conn.execute(text(
                    "INSERT INTO nuisance_entries (list_id, caller_key) "
                    "SELECT l.id, encode(sha256(convert_to('bench:' || l.id || ':' || g, "
                    "'UTF8')), 'hex') FROM nuisance_lists l, generate_series(1, :k) g "
                    "WHERE l.contract_id = :c AND l.id > :top"),
                    {"c": contract_id, "k": self.per_list, "top": top})
        with self.state.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT") as conn:
            # Visibility map and statistics as a live table would have them.
            conn.execute(text("VACUUM ANALYZE nuisance_lists, nuisance_entries"))
        # Write the bulk build's dirty pages out now: otherwise the lookups measured next
        # share the disk with the checkpoint it triggers (seen as `written=1` in the plan).
        done = subprocess.run([str(PROJECT_ROOT / "tools" / "stack.sh"), "pg-checkpoint"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"bench: CHECKPOINT failed (lookups may share the disk): {done.stderr}",
                  flush=True)
        return add, time.monotonic() - started

    def _list_ids(self, contract_id: int) -> list[int]:
        with self.state.engine.connect() as conn:
            lo, hi = conn.execute(text(
                "SELECT min(id), max(id) FROM nuisance_lists WHERE contract_id = :c"),
                {"c": contract_id}).one()
        return [int(lo), int(hi)]

    async def _measure(self, id_range: list[int]) -> dict[str, Any]:
        engine = make_async_engine(self.state.settings)
        store = Store(engine, Journal(self.work / "journal.jsonl"))
        lo, hi = id_range
        samples: list[float] = []
        hits = 0
        # The collector's pauses belong to the caller's process, not to the lookup.
        gc.collect()
        gc.disable()
        try:
            for i in range(self.lookups + 200):
                list_id = self.rng.randint(lo, hi)
                hit = i % 2 == 0
                key = _key(list_id, self.rng.randint(1, self.per_list)) if hit \
                    else _key(-list_id, 0)
                t = time.perf_counter()
                blocked = await store.is_blocked(list_id, key)
                elapsed = time.perf_counter() - t
                if blocked != hit:
                    raise RuntimeError(f"lookup of list {list_id} gave {blocked}, wanted {hit}")
                if i >= 200:  # the first ones warm the pool and the statement cache
                    samples.append(elapsed)
                    hits += blocked
        finally:
            gc.enable()
            await engine.dispose()
        return {**summary_ms(samples), "hits": hits}

    def _explain(self, list_id: int) -> list[str]:
        stmt = queries.is_blocked(list_id, _key(list_id, 1)).compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True})
        with self.state.engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(text(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {stmt}"))]

    def run(self) -> dict[str, Any]:
        with self.state.engine.begin() as conn:
            contract_id = int(conn.execute(text(
                "INSERT INTO contracts (code, kind, name, extension_digits) VALUES "
                "(:c, 'fixed', 'bench: PERF-3 lookup scaling (deleted after the run)', 4) "
                "RETURNING id"), {"c": LOOKUP_CONTRACT}).scalar_one())
        scales: list[dict[str, Any]] = []
        plan: list[str] = []
        try:
            for target in self.scales:
                # Building and dropping a million lists takes ~2-3 minutes on 2 cores.
                if time.monotonic() + 60 + target * 200e-6 > self.deadline:
                    print(f"bench: lookup skips {target:,} lists (time budget)", flush=True)
                    break
                print(f"bench: lookup with {target:,} lists", flush=True)
                added, build_s = self._grow(contract_id, target)
                with self.state.engine.connect() as conn:
                    lists = int(conn.execute(text(
                        "SELECT count(*) FROM nuisance_lists")).scalar_one())
                    entries = int(conn.execute(text(
                        "SELECT count(*) FROM nuisance_entries")).scalar_one())
                ids = self._list_ids(contract_id)
                stats = asyncio.run(self._measure(ids))
                plan = self._explain(ids[1])
                scales.append({"lists": lists, "entries": entries, "added": added,
                               "build_s": round(build_s, 1), **stats,
                               "index_only": any("Index Only Scan using uq_nuisance_entries"
                                                 in line for line in plan),
                               "scan": next((line.strip(" ->").split(" on ")[0] for line in plan
                                             if " on nuisance_entries" in line), None),
                               "execution_ms": next((line.split(":")[1].strip()
                                                     for line in plan
                                                     if line.startswith("Execution Time")),
                                                    None)})
        finally:
            started = time.monotonic()
            self.state.drop_lookup_contract()
            self.state.vacuum()
            cleanup_s = time.monotonic() - started
        first, last = scales[0], scales[-1]
        return {"scales": scales, "explain": plan, "cleanup_s": round(cleanup_s, 1),
                "p99_ratio_last_vs_first": round(last["p99"] / first["p99"], 2)
                if first.get("p99") and last.get("p99") else None}
