"""What every call-deciding process holds in memory (REL-5): the site snapshot, every active
nuisance list's caller keys (keyed hashes only, NCR-PRIV-1) and the number of recordings in
progress, so a call is decided without a database round trip.

`LocalState` is an immutable value; `StateKeeper` keeps the current one:
- at start, loaded from PostgreSQL, else from the last good snapshot on disk (0600, written
  after a change, at most every SAVE_EVERY_S), so a process started while the database is
  down still knows the site and still rejects listed callers;
- kept current by PostgreSQL LISTEN/NOTIFY (triggers of migrations `local_state`,
  `list_notify_per_statement`, `site_notify_per_contract` and `site_notify_settings`: a
  provisioning change reloads only the contract it names, a setting only the settings),
  never by polling; after the database comes back (a restart
  drops the listening connection) it reconnects, LISTENs again and reloads everything.

The keeper runs in its own thread with a sync connection, so neither the ARI app's event loop
nor the FastAGI handler threads ever wait on it: readers just take `keeper.current`.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from callguard.db.models import NuisanceEntry, NuisanceList, Recording
from callguard.db.site_repo import load_contracts, load_site_settings, load_snapshot
from callguard.domain.recording_options import RecordingOptions
from callguard.domain.site import (
    ContractInfo,
    EndpointInfo,
    ForwardingInfo,
    NumberInfo,
    SiteSnapshot,
    with_contracts_replaced,
    with_site_settings,
)
from callguard.journal import private_dir, write_private

log = logging.getLogger("callguard.state")

CHANNEL = "callguard_state"
RELOAD_ALL_LISTS_AT = 100  # more lists changed in one batch than this: reload them all
# What a statement that changed more lists than that sends instead of one payload per list
# (migration list_notify_per_statement, whose BULK_LISTS equals RELOAD_ALL_LISTS_AT).
ALL_LISTS = "lists"
# More contracts named in one batch than this: reload the whole site (migration
# site_notify_per_contract, whose BULK_CONTRACTS equals it).
RELOAD_SITE_AT = 100
# What the site-wide tables (priority lines, site settings) send (migration
# site_notify_settings): those two tables are reloaded, not the site.
SETTINGS = "settings"
RETRY_S = 0.5
UNEXPECTED_RETRY_S = 5.0  # after an error that is not the database's (a bug): no busy loop
RECOUNT_BATCH_S = 0.2
# The disk copy is rewritten at most this often: the first change after a quiet spell at once,
# a burst of changes (144 registrations) in one write. It holds every key (63 MB and ~0.13 s
# to encode at 10^5 contracts), and it is read only by a process that starts
# while PostgreSQL is down, so it may lag the memory by up to ~3 s (this plus the loop's 1 s
# turn). A site so large that a write takes longer than SAVE_EVERY_S / SAVE_COST_RATIO is
# written less often, so that the writes never take more than ~10 % of the process's time.
SAVE_EVERY_S = 2.0
SAVE_COST_RATIO = 10


@dataclass(frozen=True)
class LocalState:
    site: SiteSnapshot = field(default_factory=SiteSnapshot)
    lists: dict[int, frozenset[str]] = field(default_factory=dict)  # list id → caller keys
    active_recordings: int = 0
    source: str = "empty"  # "database" | "disk" | "empty"

    def is_blocked(self, list_id: int | None, caller_key: str | None) -> bool:
        """NCR-REJ-1 from memory: the caller's key is on the list."""
        if list_id is None or caller_key is None:
            return False
        return caller_key in self.lists.get(list_id, frozenset())


# ---- the snapshot on disk ---------------------------------------------------------------------
def _dates(d: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**d, **{n: date.fromisoformat(d[n]) if d.get(n) else None for n in names}}


def _as_list(value: object) -> list[str]:
    if isinstance(value, frozenset):
        return list(value)
    raise TypeError(f"not serializable: {type(value).__name__}")


def encode(state: LocalState) -> bytes:
    """The state as compact UTF-8 JSON. orjson writes the dataclasses (and their dates) itself:
    at 10^5 contracts this takes ~0.2 s where asdict() and sorting took 3.2 s, in the keeper
    thread every SAVE_EVERY_S while anything changes, holding the interpreter (PERF-3)."""
    site = state.site
    data = {
        "version": 1,
        "contracts": site.contracts,
        "endpoints": site.endpoints,
        "numbers": site.numbers,
        "forwardings": site.forwardings,
        "priority_lines": site.priority_lines,
        "settings": site.settings,
        "lists": state.lists,  # keys made str as json does
        "active_recordings": state.active_recordings,
    }
    return orjson.dumps(data, default=_as_list, option=orjson.OPT_NON_STR_KEYS)


def _contract(d: dict[str, Any]) -> ContractInfo:
    values = _dates(d, "recording_from", "recording_until")
    values["rec_options"] = RecordingOptions(**(d.get("rec_options") or {}))
    return ContractInfo(**values)


def decode(raw: bytes) -> LocalState:
    data = orjson.loads(raw)
    site = SiteSnapshot(
        contracts={k: _contract(v) for k, v in data["contracts"].items()},
        endpoints={k: EndpointInfo(**v) for k, v in data["endpoints"].items()},
        numbers={k: NumberInfo(**v) for k, v in data["numbers"].items()},
        forwardings={k: ForwardingInfo(**v) for k, v in data["forwardings"].items()},
        priority_lines=frozenset(data["priority_lines"]),
        settings=dict(data["settings"]),
    )
    lists = {int(k): frozenset(v) for k, v in data["lists"].items()}
    return LocalState(site, lists, int(data.get("active_recordings", 0)), "disk")


def load_from_disk(directory: Path) -> LocalState | None:
    """The newest readable snapshot any process of this host wrote (state-*.json)."""
    try:
        files = sorted(directory.glob("state-*.json"), key=lambda p: p.stat().st_mtime,
                       reverse=True)
    except OSError:
        return None
    for path in files:
        try:
            with collector_paused():
                return decode(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable state snapshot %s: %s", path.name, exc)
    return None


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a load builds the state. A load makes millions of
    objects that all live on, and the collector's passes over them while they were being built
    took a third of the site's load at 10^5 contracts (3.8 s, 2.4 s without; PERF-3's scale).
    Process-wide, hence only around loads; whatever cycles the other threads make meanwhile
    are collected afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---- loading from PostgreSQL ------------------------------------------------------------------
def load_lists(conn: Connection, list_id: int | None = None) -> dict[int, frozenset[str]]:
    stmt = select(NuisanceEntry.list_id, NuisanceEntry.caller_key).join(
        NuisanceList, NuisanceList.id == NuisanceEntry.list_id).where(
        NuisanceList.active.is_(True))
    if list_id is not None:
        stmt = stmt.where(NuisanceEntry.list_id == list_id)
    keys: dict[int, set[str]] = {}
    for lid, key in conn.execute(stmt):
        keys.setdefault(int(lid), set()).add(str(key))
    return {k: frozenset(v) for k, v in keys.items()}


_COUNT_RECORDINGS = str(select(func.count()).select_from(Recording).where(
    Recording.status == "recording").compile(compile_kwargs={"literal_binds": True}))


def count_recordings(conn: Connection) -> int:
    # Compiled once (this runs on every recordings notification: PERF-1 profile).
    return int(conn.exec_driver_sql(_COUNT_RECORDINGS).scalar() or 0)


@contextmanager
def one_snapshot(conn: Connection) -> Iterator[Session]:
    """A session whose queries all read one snapshot of the database. On the keeper's
    autocommit connection (it LISTENs) each query would otherwise see what had committed by
    then: a contract provisioned between the contracts query and the numbers query gave a
    number whose contract was not loaded (a KeyError that ended the keeper thread, and the
    process went on deciding from a state that no longer followed the database). A caller in
    its own transaction (a test) chooses its isolation itself."""
    driver = conn.connection.driver_connection
    own_transaction = driver is not None and getattr(driver, "autocommit", False)
    if own_transaction:
        conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        with Session(bind=conn) as session:
            yield session
    finally:
        if own_transaction:
            conn.exec_driver_sql("COMMIT")


def load_site(conn: Connection) -> SiteSnapshot:
    with one_snapshot(conn) as session:
        return load_snapshot(session)


def reload_contracts(conn: Connection, site: SiteSnapshot, ids: set[int]) -> SiteSnapshot:
    """`site` with the contracts `ids` loaded anew (a `contract:<id>` notice), or the whole
    site loaded if their endpoints and numbers are shared with other contracts."""
    with one_snapshot(conn) as session:
        part = load_contracts(session, ids)
    return load_site(conn) if part is None else with_contracts_replaced(site, ids, part)


def reload_site_settings(conn: Connection, site: SiteSnapshot) -> SiteSnapshot:
    """`site` with its priority lines and settings loaded anew (a `settings` notice)."""
    with one_snapshot(conn) as session:
        return with_site_settings(site, *load_site_settings(session))


def load_from_database(conn: Connection) -> LocalState:
    with collector_paused():
        return LocalState(load_site(conn), load_lists(conn), count_recordings(conn), "database")


def apply_notices(conn: Connection, state: LocalState, payloads: set[str]) -> LocalState:
    """The new state after a batch of notifications (each reloads only what it names): `site`
    the site snapshot, `contract:<id>` that contract's part of it, `settings` its priority
    lines and site settings, `list:<id>` that list, `lists` every list, `recordings` the
    count."""
    with collector_paused():  # a site or bulk list load builds the state anew
        named = [p.partition(":") for p in payloads]
        contracts = {int(arg) for kind, _, arg in named if kind == "contract" and arg.isdigit()}
        if "site" in payloads or len(contracts) > RELOAD_SITE_AT:
            site = load_site(conn)
        else:
            site = reload_contracts(conn, state.site, contracts) if contracts else state.site
            if SETTINGS in payloads:
                site = reload_site_settings(conn, site)
        changed = {int(arg) for kind, _, arg in named if kind == "list" and arg.isdigit()}
        if ALL_LISTS in payloads or len(changed) > RELOAD_ALL_LISTS_AT:
            # A bulk change (an import, a unit change, a bench fill): one query for every list
            # instead of one per list.
            lists = load_lists(conn)
        else:
            lists = dict(state.lists)
            for list_id in changed:
                lists.pop(list_id, None)
                lists.update(load_lists(conn, list_id))
        active = count_recordings(conn) if payloads & {"recordings", "site"} \
            else state.active_recordings
        return LocalState(site, lists, active, "database")


class StateKeeper:
    """Holds the current LocalState of one process (see the module docstring)."""

    def __init__(self, database_url: str, directory: Path, name: str) -> None:
        self.engine = create_engine(database_url, poolclass=NullPool,
                                    connect_args={"connect_timeout": 2})
        self.directory = directory
        self.path = directory / f"state-{name}.json"
        self.current = LocalState()
        self.connected = threading.Event()
        self._tried = threading.Event()  # the first connection attempt has ended
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # adjust_recordings vs reloads
        self._unsaved = False  # the disk copy is older than `current`
        self._saved_at = float("-inf")
        self._save_every = SAVE_EVERY_S
        self.clock = time.monotonic
        self._site_listeners: list[Callable[[], None]] = []
        private_dir(directory)

    @property
    def live(self) -> bool:
        """Following PostgreSQL now: connected (LISTENing) and `current` loaded from it, not
        the disk copy. A process that is not may hold an older site than another process
        that is, and must not write what they share (callguard.astdb_sync)."""
        return self.connected.is_set() and self.current.source == "database"

    def on_site_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` in the keeper thread whenever the site snapshot is replaced (a
        provisioning change or a reload; not a list or a recordings count): it must return at
        once (set a flag), the keeper's next notification waits for it (callguard.astdb_sync)."""
        self._site_listeners.append(listener)

    def start(self, wait_s: float = 3.0) -> LocalState:
        """Load from the disk snapshot at once, then from PostgreSQL in the keeper thread;
        wait up to `wait_s` for the first attempt (a database that is down fails at once: the
        process goes on with the disk copy; calls decided meanwhile use it too)."""
        disk = load_from_disk(self.directory)
        if disk is not None:
            self.current = disk
        self._thread = threading.Thread(target=self._run, name="state-keeper", daemon=True)
        self._thread.start()
        self._tried.wait(wait_s)
        if not self.connected.is_set():
            log.warning("database unavailable at start: deciding from the %s copy",
                        self.current.source,
                        extra={"numbers": len(self.current.site.numbers),
                               "lists": len(self.current.lists)})
        return self.current

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        if self._thread is None or not self._thread.is_alive():  # else it may be writing
            self._save_if_due(force=True)
        self.engine.dispose()

    def adjust_recordings(self, delta: int) -> None:
        """This process started (+1) or finished (-1) a recording: counted at once, before
        the database's notification (or while the database is away) (REC-CAP-1)."""
        with self._lock:
            state = self.current
            self.current = replace(
                state, active_recordings=max(0, state.active_recordings + delta))

    # ---- the keeper thread -------------------------------------------------------------------
    def _set(self, state: LocalState, save: bool, recount: bool = True) -> None:
        with self._lock:
            site_before = self.current.site
            if not recount:  # keep a local adjustment made while this batch was loading
                state = replace(state, active_recordings=self.current.active_recordings)
            self.current = state
        if save:
            self._unsaved = True
        if state.site is not site_before:
            self._site_changed()
        self._save_if_due()

    def _site_changed(self) -> None:
        for listener in self._site_listeners:
            try:
                listener()
            except Exception:  # not the keeper's business: it goes on following PostgreSQL
                log.exception("site change listener failed")

    def _save_if_due(self, force: bool = False) -> None:
        """Write the disk copy if it is older than `current` and the last write was at least
        SAVE_EVERY_S ago, or SAVE_COST_RATIO times the last write's duration if that is longer
        (or `force`); a failed write is tried again at the next turn."""
        if not self._unsaved or (not force and self.clock() - self._saved_at < self._save_every):
            return
        started = self._saved_at = self.clock()
        try:
            write_private(self.path, encode(self.current))
            self._unsaved = False
        except OSError as exc:
            log.warning("state snapshot not written: %s", exc)
        self._save_every = max(SAVE_EVERY_S, SAVE_COST_RATIO * (self.clock() - started))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._save_if_due()
            try:
                self._listen()
            except (SQLAlchemyError, OSError) as exc:
                self._tried.set()
                if self.connected.is_set():
                    log.warning("state: database connection lost, deciding from memory: %s",
                                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                self.connected.clear()
            except Exception:  # a bug must not end the thread that keeps the state current
                self._tried.set()
                self.connected.clear()
                log.exception("state: reload failed; reconnecting and loading everything anew "
                              "in %.0f s, deciding from memory meanwhile", UNEXPECTED_RETRY_S)
                self._stop.wait(UNEXPECTED_RETRY_S)
            self._stop.wait(RETRY_S)

    def _listen(self) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # LISTEN before loading: a change committed meanwhile is not missed.
            conn.exec_driver_sql(f"LISTEN {CHANNEL}")
            state = load_from_database(conn)
            self._set(state, save=True)
            self.connected.set()
            self._tried.set()
            log.info("state loaded from the database", extra={
                "numbers": len(state.site.numbers), "lists": len(state.lists),
                "active_recordings": state.active_recordings})
            driver = conn.connection.driver_connection
            assert driver is not None
            while not self._stop.is_set():
                self._save_if_due()
                payloads = {n.payload for n in driver.notifies(timeout=1.0, stop_after=1)}
                if not payloads:
                    conn.exec_driver_sql("SELECT 1")  # notices a dead server within ~1 s
                    continue
                # Whatever else is already waiting joins this batch (one reload for many);
                # a recount alone waits RECOUNT_BATCH_S for more (every recordings row change
                # notifies: under load, one count for many changes; PERF-1). This process's
                # own recordings are counted at once anyway (adjust_recordings).
                wait = RECOUNT_BATCH_S if payloads == {"recordings"} else 0.0
                payloads |= {n.payload for n in driver.notifies(timeout=wait)}
                before = self.current
                after = apply_notices(conn, before, payloads)
                self._set(after, save=payloads != {"recordings"},
                          recount="recordings" in payloads or "site" in payloads)
