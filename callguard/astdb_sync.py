"""Keep Asterisk's astdb route map (callguard.domain.astdb) equal to the site snapshot the
process holds (REL-1, REL-5).

The dialplan's last resort (both the ARI app and the FastAGI fallback down), its emergency
caller ID (REL-6) and its transfers read the map from astdb. It used to be written only by
`callguard site sync-asterisk` (`make run`), so a number added, moved or deleted through the
CLI or the API was routed by the stale map there until the next `make run`.

Now every process that keeps a StateKeeper (the ARI app and the FastAGI fallback) also runs an
`AstdbSync`: when its site snapshot changes it waits for a quiet spell (QUIET_S after the last
change, at most MAX_WAIT_S after the first: a burst of changes is one update) and writes only
the difference, in its own thread: never on a call's path, never in the event loop. It checks
at start and every RECONCILE_EVERY_S (an Asterisk restarted on another astdb, another writer's
map). An Asterisk it cannot reach costs one WARNING; it tries again every RETRY_S and says when
it could again.

Reading the families whole is rare (REL-7): `database show <family>` holds Asterisk's global
astdb lock while it writes every row to our socket, waiting up to 100 ms a line when the
socket's buffer is full, so a process slow or stopped mid-read with 10^5 numbers would hold
every `DB()` of the dialplan (the emergency caller ID, REL-6; the fail-open routes, REL-1)
for as long. Instead each sync first reads the marker `callguard_meta/map_hash`
(callguard.domain.astdb: the hash of the map astdb holds, deleted before the families are
changed, written last after): one line.
- it is the hash of the map wanted: nothing to write;
- it is the hash of the map this process last wrote or found (`_applied`): the difference
  between the two maps is written, without reading astdb;
- anything else (missing: a first run, a write cut short; another writer's older map; an
  Asterisk started on another astdb): the families are read whole (`database show`) and the
  difference written, as `callguard site sync-asterisk` always does (the manual repair, after
  an edit by hand: an edit that leaves the marker is not noticed otherwise).

Why both processes: either may be the one still up when the site changes (the other crashed
and restarting, deliberately stopped, hung: REL-7, REL-9), and the map matters most when one of
them is already gone. Two writers agree on the end state because only a process that follows
PostgreSQL writes (`StateKeeper.live`: connected and its state loaded from the database, not
the disk copy): one deciding from an older site (started while the database was down, or its
LISTEN connection lost) would undo the other's last change. It skips (a DEBUG line) and looks
again every QUIET_S (the keeper announces the reloaded site just before it marks itself
connected); once its keeper has reconnected and reloaded, that reload is synced as any other
change. Both follow the same notifications, a put or delete of the same value
twice is the same, and the one whose map is older than the marker reads astdb whole. The two
never write at once (`MapLock`: an flock on a file in the node's journal directory, which
`callguard site sync-asterisk` takes too): without it a writer could read the families while
the other was halfway through its changes, write its difference over them, and leave a mixed
map under the other's marker, which no later sync would notice (the marker names the map
wanted). At 10^5
numbers (PERF-3) a sync takes ~0.2 s of CPU in this thread (the map ~0.15 s, its hash ~0.05 s),
once per burst of changes. A change that leaves the map as it was (a setting, a recording
option) is compared with the map last written and costs no console call.

Cluster (issue 12): each node has its own Asterisk and astdb and its own ARI app and fallback,
whose settings name that node's asterisk.conf; the console they write through is that node's
(callguard.asterisk.console), so every node keeps its own map.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from callguard.asterisk.cli import AsteriskCliError
from callguard.asterisk.console import console_command
from callguard.config import Settings
from callguard.domain.astdb import (
    FAMILIES,
    MAP_HASH,
    META,
    AstdbMap,
    Changes,
    Delete,
    Put,
    UnreadableOutput,
    desired_map,
    diff,
    get_command,
    map_hash,
    parse_get,
    parse_show,
    put_failed,
    show_command,
)
from callguard.domain.site import SiteSnapshot
from callguard.localstate import StateKeeper

log = logging.getLogger("callguard.astdb")

Runner = Callable[[str], str]  # one Asterisk CLI command → its output (AsteriskCliError)

QUIET_S = 1.0  # after the last site change of a burst
MAX_WAIT_S = 10.0  # after the first one, however long the burst goes on
RETRY_S = 10.0  # after Asterisk could not be reached or answered what it should not
RECONCILE_EVERY_S = 300.0
CONSOLE_TIMEOUT_S = 10.0
# A service gives up its turn after this long (and tries again RETRY_S later, like an
# unreachable Asterisk): a sync holds the lock for all its console commands, one per change.
LOCK_TIMEOUT_S = 15.0
CLI_LOCK_TIMEOUT_S = 600.0  # `site sync-asterisk` (make run) waits out a bulk change's sync
LOCK_FILE = "astdb-map.lock"  # in Settings.journal_dir: the node's own, the services' own


class AstdbWriteFailed(RuntimeError):
    pass


class MapLocked(RuntimeError):
    """The other writer has held the map's lock for LOCK_TIMEOUT_S (stopped mid-write?)."""


class SiteUnknown(RuntimeError):
    """The process knows no site yet (started with the database down and no snapshot on
    disk): an empty map written now would delete every route the dialplan still has."""


class NotLive(RuntimeError):
    """The process's keeper does not follow PostgreSQL now (its state is the disk copy, or
    its connection is lost): its site may be older than the other writer's; not written."""


class MapLock:
    """The writers of one Asterisk's map take turns (the ARI app, the FastAGI fallback and
    `callguard site sync-asterisk` on the same node): an exclusive flock on `path`, opened
    read-only, the services' file (0600) whoever made it. No path (a test, a caller without
    one), or one that cannot be opened (a journal directory not made yet): no lock, with one
    WARNING; the map is still written, as before there was a lock."""

    def __init__(self, path: Path | None, timeout_s: float = LOCK_TIMEOUT_S,
                 poll_s: float = 0.05) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._warned = False

    @contextmanager
    def held(self) -> Iterator[None]:
        fd = self._open()
        if fd is None:
            yield
            return
        try:
            deadline = time.monotonic() + self.timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise MapLocked(f"{self.path} held by another writer for "
                                        f"{self.timeout_s:.0f} s") from None
                    time.sleep(self.poll_s)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _open(self) -> int | None:
        if self.path is None:
            return None
        try:
            fd = _open_lock_file(self.path)
        except OSError as exc:
            if not self._warned:
                log.warning("astdb route map written without its lock: %s: %s", self.path,
                            exc.strerror or exc)
            self._warned = True
            return None
        self._warned = False
        return fd


def _open_lock_file(path: Path) -> int:
    """The lock file, opened read-only. The directory is the services' account's, and root's
    CLI opens it too (`make run`), so nothing the account may have put there is followed
    (SEC-4): no symbolic link (O_NOFOLLOW; O_EXCL for the creation), only a regular file
    with one name (a hard link to another file is refused). A file root has just made is
    given to the directory's owner, like every file of the journal directory (0600: SEC-2);
    one that was there already is never chowned."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd, created = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600), True
    except FileExistsError:
        fd, created = os.open(path, flags), False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise OSError(f"not a regular file of its own ({stat.filemode(st.st_mode)}, "
                          f"{st.st_nlink} links)")
        if created and os.geteuid() == 0:
            parent = os.stat(path.parent)
            if (st.st_uid, st.st_gid) != (parent.st_uid, parent.st_gid):
                os.fchown(fd, parent.st_uid, parent.st_gid)
    except BaseException:
        os.close(fd)
        raise
    return fd


def map_lock(settings: Settings, timeout_s: float = LOCK_TIMEOUT_S) -> MapLock:
    return MapLock(settings.journal_dir / LOCK_FILE, timeout_s)


def read_map(run: Runner, families: Iterable[str] = FAMILIES) -> AstdbMap:
    return {family: parse_show(run(show_command(family)), family) for family in families}


def read_marker(run: Runner) -> str | None:
    """`callguard_meta/map_hash`: the hash of the map astdb holds, None when missing."""
    return parse_get(run(get_command(META, MAP_HASH)))


def _run_checked(run: Runner, command: str) -> None:
    out = run(command)
    if command.startswith("database put ") and put_failed(out):
        raise AstdbWriteFailed(f"`{command}`: {out.strip()[:120]}")
    if command.startswith("database del ") and "removed" not in out \
            and "does not exist" not in out:  # either way the key is gone; else who knows
        raise AstdbWriteFailed(f"`{command}`: {out.strip()[:120]}")


def apply_changes(run: Runner, changes: Changes) -> None:
    for command in changes.commands():
        _run_checked(run, command)


def write_changes(run: Runner, changes: Changes, want: str, marker: str | None) -> None:
    """Apply `changes` between deleting the marker (`marker`: what it holds now) and writing
    `want` as the new one: a write cut short leaves no marker, and the next sync reads astdb
    whole instead of trusting a map it no longer holds."""
    if changes:
        if marker is not None:
            _run_checked(run, Delete(META, MAP_HASH).command)
        apply_changes(run, changes)
        marker = None
    if marker != want:
        _run_checked(run, Put(META, MAP_HASH, want).command)


def reconcile(run: Runner, desired: AstdbMap, marker: str | None) -> Changes:
    """The full reconcile: read the families whole (`database show`), write the difference,
    the marker last."""
    changes = diff(desired, read_map(run))
    write_changes(run, changes, map_hash(desired), marker)
    return changes


def sync_once(run: Runner, site: SiteSnapshot) -> Changes:
    """Make astdb's families hold `desired_map(site)` whatever the marker says (`callguard
    site sync-asterisk`, the manual repair): read them, write the difference, then the
    marker."""
    return reconcile(run, desired_map(site), read_marker(run))


@dataclass
class Debounce:
    """When to act on changes: `quiet_s` after the last one, but no later than `max_wait_s`
    after the first one not yet acted on."""

    quiet_s: float = QUIET_S
    max_wait_s: float = MAX_WAIT_S
    first: float | None = None
    last: float | None = None

    def change(self, now: float) -> None:
        if self.first is None:
            self.first = now
        self.last = now

    def due_in(self, now: float) -> float | None:
        """Seconds until the changes are due (0: now); None when nothing is pending."""
        if self.first is None or self.last is None:
            return None
        due = min(self.last + self.quiet_s, self.first + self.max_wait_s)
        return max(0.0, due - now)

    def clear(self) -> None:
        self.first = self.last = None


SYNC_ERRORS = (AsteriskCliError, UnreadableOutput, AstdbWriteFailed, SiteUnknown, MapLocked)
# (NotLive is no error: the process waits for its keeper, quietly)


class AstdbSync:
    """The debounced astdb writer of one process (see the module docstring)."""

    def __init__(self, run: Runner, site: Callable[[], SiteSnapshot | None], *,
                 quiet_s: float = QUIET_S, max_wait_s: float = MAX_WAIT_S,
                 retry_s: float = RETRY_S, reconcile_every_s: float = RECONCILE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic,
                 lock: MapLock | None = None) -> None:
        self.run = run
        self.site = site
        self.lock = lock or MapLock(None)
        self.retry_s = retry_s
        self.reconcile_every_s = reconcile_every_s
        self.clock = clock
        self._debounce = Debounce(quiet_s, max_wait_s)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._applied: AstdbMap | None = None  # what the last successful sync left in astdb
        self._applied_hash: str | None = None  # its map_hash
        self._waiting_live = False  # skipping while the keeper does not follow PostgreSQL
        self._reconcile_at = clock()  # a check first (the marker, else a full read)
        self.failing = False  # Asterisk unreachable since the last WARNING
        self.syncs = 0  # successful syncs that asked Asterisk (tests, logs)
        self.full_reads = 0  # of which read the families whole (`database show`)

    # ---- called from other threads -------------------------------------------------------------
    def site_changed(self) -> None:
        """The process's site snapshot changed (StateKeeper, its keeper thread): cheap."""
        with self._lock:
            self._debounce.change(self.clock())
        self._wake.set()

    def start(self) -> AstdbSync:
        self._thread = threading.Thread(target=self._loop, name="astdb-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ---- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before step(): a change during it wakes the wait below
            try:
                wait = self.step()
            except Exception:  # a bug must not end the thread (nor the process)
                log.exception("astdb sync failed; trying again in %.0f s", self.retry_s)
                self._forget()
                wait = self.retry_s
            self._wake.wait(wait)

    def _forget(self) -> None:
        """After a failure: the next turn, RETRY_S from now (or sooner, when the site changes
        meanwhile), trusts astdb only if the marker names the map wanted, else reads it whole
        (a write cut short has deleted the marker)."""
        with self._lock:
            self._applied = self._applied_hash = None
            self._reconcile_at = self.clock() + self.retry_s

    def step(self) -> float:
        """One turn: sync if changes are due or a reconcile is; the seconds until the next
        turn is due (a change wakes the thread earlier)."""
        now = self.clock()
        with self._lock:
            due = self._debounce.due_in(now)
            reconcile = now >= self._reconcile_at
            if not reconcile and (due is None or due > 0):
                until_reconcile = self._reconcile_at - now
                return until_reconcile if due is None else min(due, until_reconcile)
            self._debounce.clear()  # a change from here on is after the snapshot read below
        try:
            self.sync(force=reconcile)
        except NotLive as exc:
            quiet_s = self._debounce.quiet_s
            if not self._waiting_live:
                log.debug("astdb route map not written: %s; looking again every %.0f s",
                          exc, quiet_s)
            self._waiting_live = True
            with self._lock:  # a forced check once live: what was due is not lost
                again = self.clock() + quiet_s
                self._reconcile_at = again if reconcile else min(self._reconcile_at, again)
            return quiet_s
        except SYNC_ERRORS as exc:
            if not self.failing:
                log.warning("astdb route map not updated: %s; trying again every %.0f s",
                            exc, self.retry_s)
            self.failing = True
            self._forget()
            return self.retry_s
        if self.failing:
            log.info("astdb route map reachable again and up to date")
            self.failing = False
        self._waiting_live = False
        with self._lock:
            if reconcile:
                self._reconcile_at = self.clock() + self.reconcile_every_s
            due = self._debounce.due_in(self.clock())
            return min(self._reconcile_at - self.clock(),
                       self.reconcile_every_s if due is None else due)

    def sync(self, force: bool = False) -> Changes:
        """Write what astdb lacks of the map, unless the map is the one last written and this
        is no reconcile (a site change that does not touch the map: a setting, a list). The
        marker says what astdb holds; the families are read whole only when it names a map
        this process does not know (see the module docstring). The site is read once the
        lock is held: the newest this process knows when its turn comes."""
        with self.lock.held():
            return self._sync(force)

    def _sync(self, force: bool) -> Changes:
        site = self.site()
        if site is None:
            raise SiteUnknown("no site known yet (database down and no snapshot on disk)")
        desired = desired_map(site)
        if not force and desired == self._applied:
            return Changes()
        want = map_hash(desired)
        marker = read_marker(self.run)
        if marker == want:
            changes = Changes()
        elif self._applied is not None and marker == self._applied_hash:
            changes = diff(desired, self._applied)
            write_changes(self.run, changes, want, marker)
        else:
            changes = reconcile(self.run, desired, marker)
            self.full_reads += 1
        self._applied, self._applied_hash = desired, want
        self.syncs += 1
        if changes:
            log.info("astdb route map updated", extra={
                "puts": len(changes.puts), "deletes": len(changes.deletes)})
        return changes


def console_runner(settings: Settings) -> Runner:
    """The process's own Asterisk (a cluster node's through its asterisk.conf)."""
    def run(command: str) -> str:
        return console_command(settings, command, timeout=CONSOLE_TIMEOUT_S)
    return run


def keeper_site(keeper: StateKeeper) -> Callable[[], SiteSnapshot | None]:
    """The site the syncer writes: `keeper`'s, None while it knows none, NotLive while it
    does not follow PostgreSQL (REL-5: its state is the disk copy, or its connection lost)."""
    def site() -> SiteSnapshot | None:
        state = keeper.current
        if state.source == "empty":
            return None
        if not keeper.live:
            raise NotLive(f"the site is the {state.source} copy, not followed from the database"
                          if state.source != "database" else "database connection lost")
        return state.site
    return site


def follow(keeper: StateKeeper, settings: Settings, run: Runner | None = None, *,
           quiet_s: float = QUIET_S, max_wait_s: float = MAX_WAIT_S,
           retry_s: float = RETRY_S, lock: MapLock | None = None) -> AstdbSync:
    """Started: astdb follows `keeper`'s site from now on, through this process's console
    (or `run`). Not while the keeper knows no site at all (SiteUnknown: a WARNING), nor while
    it does not follow PostgreSQL (NotLive: skipped quietly until it does)."""
    sync = AstdbSync(run or console_runner(settings), keeper_site(keeper), quiet_s=quiet_s,
                     max_wait_s=max_wait_s, retry_s=retry_s,
                     lock=lock or map_lock(settings))
    keeper.on_site_change(sync.site_changed)
    return sync.start()
