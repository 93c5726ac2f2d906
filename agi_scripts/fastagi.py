"""`callguard-fastagi`: a threaded FastAGI server on 127.0.0.1 (pyst2 on each connection).

The dialplan reaches it when Stasis() fails (the ARI app is down). It only does I/O: its
adapters turn the AGI channel into the call core's raw facts, callguard.callpath decides from
the process's local state (StateKeeper: site and lists in memory, REL-5) exactly as for the
ARI app, and the plan's rows are written (journaled while the database is away) and the call
handed to the same cg-* contexts via CG_NEXT. 144 runs the ARI app's menu over AGI
(agi_scripts/menu144_agi.py). Calls it routes are followed to their end by a hangup handler
that calls back here (`ended`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ipaddress
import logging
import os
import queue
import re
import signal
import socketserver
import threading
import time
from datetime import UTC, datetime
from typing import Any

from asterisk.agi import AGI, AGIException, AGISIGHUPHangup
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from agi_scripts.menu144_agi import run_agi_menu
from ari_app.logs import channel_var, setup_logging
from callguard import astdb_sync, metrics
from callguard.callflow import FOLLOW_RECORDING, capacity_for
from callguard.callpath import (
    CallPlan,
    Limits,
    RawInbound,
    RawOutbound,
    multi_channel,
    plan_ended,
    plan_inbound,
    plan_outbound,
)
from callguard.config import Settings, load_settings
from callguard.db import batch
from callguard.db.nuisance_repo import SyncLists
from callguard.db.session import make_sync_engine, sync_sessions
from callguard.dialplan import grouped_assignments
from callguard.domain.routing import NuisanceMenu
from callguard.journal import Journal, Op
from callguard.localstate import StateKeeper
from callguard.realtime import share_asterisk_priority
from callguard.recording_files import (
    FILE_CLOSE_WAIT_S,
    OutsideRecordings,
    confined,
    header_closed,
    prepare_dir,
    settled_row_values,
)

log = logging.getLogger("callguard.fastagi")
WRITE_BATCH_OPS = 500  # the most ops one transaction of the writer takes


class ResultLines:
    """The AGI environment has no escaping: a CR/LF inside a dialed number or a caller ID
    (`sip:007727%0D%0A@…` is valid SIP) ends it early with a blank line, and its remaining
    `agi_*:` lines would be read as the answers to our first commands (REL-4). Until the
    first real answer (`200 result=…`), lines that are not an answer are skipped.

    A caller who hangs up while the script runs: Asterisk writes `HANGUP` (FastAGI's
    SIGHUP) ahead of the next answer, or the connection closes. pyst2 reads either as an
    answer without a code and fails with a ValueError, which skipped the fallback's clean-up
    (the recording slot it had counted) and was logged as a failure of the fallback. Both
    are a hangup (an AGIException), and so is every read after it."""

    _ANSWER = re.compile(r"^(\d{3}[ -]|HANGUP)")

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self._synced = False
        self.hung_up = ""

    def readline(self) -> str:
        if self.hung_up:
            raise AGISIGHUPHangup(self.hung_up)
        line: str = self._rfile.readline()
        while not self._synced and line and not self._ANSWER.match(line):
            line = self._rfile.readline()
        self._synced = True
        if not line or line.startswith("HANGUP"):
            self.hung_up = ("the channel hung up (HANGUP)" if line
                            else "Asterisk closed the AGI connection")
            raise AGISIGHUPHangup(self.hung_up)
        return line


class QuietAGI(AGI):  # type: ignore[misc]
    """pyst2's AGI without its SIGHUP handler (not allowed off the main thread) and without
    echoing the AGI environment (it holds caller numbers) to stderr."""

    def __init__(self, rfile: Any, wfile: Any) -> None:
        self.stdin, self.stdout = rfile, wfile
        self.stderr = open(os.devnull, "w")  # noqa: SIM115 - closed in finish()
        self._got_sighup = False
        self.started = time.monotonic()  # decision latency is measured from here
        self.env: dict[str, str] = {}
        self._get_agi_env()
        self.stdin = ResultLines(rfile)

    def _get_agi_env(self) -> None:
        """pyst2's, without writing every line and a pformat of the whole environment to
        stderr (devnull here): a few per cent of the fallback's CPU per call."""
        while line := self.stdin.readline().strip():
            key, _, data = line.partition(":")
            if key.strip():
                self.env[key.strip()] = data.strip()

    def finish(self) -> None:
        self.stderr.close()


def exact(agi: QuietAGI, *expressions: str) -> list[str]:
    """Channel values byte for byte, whatever they hold (CR/LF, quotes, commas): each read
    base64-encoded, so the fallback decides on the same strings as the ARI app (never the
    AGI environment's), all in ONE `GET FULL VARIABLE` (a round trip with the channel's
    thread each; base64 has no comma, so the comma-joined answer splits back exactly).
    Each value is encoded with a leading "x", dropped here: BASE64_ENCODE of an empty value
    logs a WARNING in Asterisk ("missing argument"), and empty values are common (no video,
    an anonymous caller, a call not recorded)."""
    answer = agi.get_full_variable(",".join(f"${{BASE64_ENCODE(x{e})}}" for e in expressions))
    fields = str(answer or "").split(",")
    if len(fields) != len(expressions):  # no answer (result=0): every value empty
        return [""] * len(expressions)
    return [base64.b64decode(f).decode("utf-8", errors="replace")[1:] for f in fields]


def header_present(header: str) -> str:
    """The expression for the flag the dialplan passes to Stasis(): 1 when the request
    carried the header. (GET VARIABLE would hand EXISTS() the literal text
    `${PJSIP_HEADER(...)}`, always non-empty; GET FULL VARIABLE expands it: REC-OUT-4,
    REC-CAP-1.)"""
    return f"${{EXISTS(${{PJSIP_HEADER(read,{header})}})}}"


MENU_DB_TIMEOUT_S = 3.0  # SyncLists' own bound, AsyncLists' 3 s (NCR-REG-7)


class Fallback:
    def __init__(self, settings: Settings, engine: Engine, keeper: StateKeeper,
                 menu_engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.keeper = keeper  # the site and the lists' keys in memory (REL-5)
        self.limits = Limits(settings.hmac_key, settings.max_recordings,
                             settings.at_capacity_policy, settings.ring_timeout_s,
                             settings.recordings_asterisk_dir)
        # The 144 menu's own pool (menu_engine): a transaction it gave up on (a hung server)
        # keeps its connection until the server answers, and must not starve the writer's.
        self.lists = SyncLists(sync_sessions(menu_engine or engine), secret=settings.hmac_key,
                               timeout_s=MENU_DB_TIMEOUT_S)  # SEC-3
        self._write_lock = threading.Lock()
        self.journal = Journal(settings.journal_dir / "fastagi.jsonl")
        # Call-path writes go through one writer thread, in order: a call never waits on the
        # database (a hung server included), as in the ARI app (REL-2, REL-5).
        self._queue: queue.SimpleQueue[list[Op] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="writer", daemon=True)
        self._writer.start()

    def write(self, ops: list[Op]) -> None:
        if ops:
            self._queue.put(ops)

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (journaled if the database is away), then stop the writer."""
        self._queue.put(None)
        self._writer.join(timeout_s)

    def _write_loop(self) -> None:
        """One transaction for the calls of a 100 ms window (and whatever queued while the
        previous transaction ran), as the ARI app's writer: the pool checkout, the ping, the
        SQL and the commit are paid per window, not per call. One commit per call was most
        of the fallback's CPU and all of PostgreSQL's, ~1 ms a call, at 75 calls/s."""
        stopping = False
        while not stopping and (ops := self._queue.get()) is not None:
            time.sleep(batch.COALESCE_S)  # the calls of the next 100 ms share the commit
            pending = list(ops)
            while len(pending) < WRITE_BATCH_OPS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                pending.extend(more)
            try:
                self.write_now(pending)
            except Exception:
                log.exception("call-path write failed; journaling it")
                self.journal.append(pending)

    def write_now(self, ops: list[Op]) -> None:
        """Apply call-path writes, or journal them when the database is away (REL-2)."""
        with self._write_lock:
            try:
                # Journaled writes first, then these, in one transaction; the journal lines
                # leave the file only once that transaction has committed.
                metrics.journal_replayed(self.journal.replay_sync(
                    lambda pending: self._commit([*pending, *ops])))
                metrics.database(True)
            except SQLAlchemyError as exc:
                metrics.database(False)
                if ops:
                    log.warning("database unavailable, journaling %d write(s): %s",
                                len(ops), exc)
                    self.journal.append(ops)

    def replay(self) -> None:
        """Apply journaled writes once the database answers again (background, REL-2)."""
        if self.journal.pending():
            self.write_now([])

    def probe(self) -> None:
        """Gauges for Prometheus: database reachable, recordings live and their limit."""
        state = self.keeper.current
        metrics.database(self.keeper.connected.is_set())
        metrics.recordings(state.active_recordings, capacity_for(
            state.site, state.active_recordings, self.settings.max_recordings,
            self.settings.at_capacity_policy).max_recordings)

    @staticmethod
    def outcome(plan: CallPlan) -> Op:
        """The call_outcomes row (overview page, issue 18) and the decision counter."""
        metrics.call_decided(metrics.VIA_FALLBACK, plan.direction, plan.decision)
        return metrics.outcome_op(plan.direction, plan.decision, metrics.VIA_FALLBACK,
                                  plan.contract_id, datetime.now(UTC))

    def _commit(self, ops: list[Op]) -> None:
        """All of `ops` in one transaction, in the ARI app's batch statements (one per layer,
        callguard.db.batch): no SQL compiled per op, one round trip for many calls. A batch
        PostgreSQL refuses (a constraint, a value that does not fit) goes op by op."""
        if not ops:
            return
        try:
            with self.engine.begin() as conn:
                for sql, params in batch.transaction_statements(ops):
                    conn.exec_driver_sql(sql, params)
        except (IntegrityError, DataError) as exc:
            log.warning("batch refused (%s); writing %d op(s) one by one", exc.orig, len(ops))
            self._commit_each(ops)

    def _commit_each(self, ops: list[Op]) -> None:
        """`ops` in one transaction, each under a savepoint: an op PostgreSQL will never take
        (say, the outcome of a contract deleted meanwhile) is logged whole at ERROR (it can be
        put in by hand) and dropped, as in the ARI app's writer, instead of holding back the
        journal and every write after it for ever. A connection lost on the way rolls all of
        them back (the caller journals them: none is applied twice)."""
        sync = batch.needs_sync_commit(ops)
        with self.engine.begin() as conn:
            for op in ops:
                try:
                    with conn.begin_nested():
                        for sql, params in batch.transaction_statements([op], sync):
                            conn.exec_driver_sql(sql, params)
                except (IntegrityError, DataError) as exc:
                    log.error("write refused, dropped: %s %r: %s", op.name, op.args, exc.orig)

    # ---- the adapters: AGI's view of a channel → the call core's raw facts ----------------
    @staticmethod
    def inbound_facts(agi: QuietAGI, now: datetime) -> RawInbound:
        called, caller, pres, rp, audio, video = exact(
            agi, "${EXTEN}", "${CALLERID(num)}", "${CALLERID(pres)}",
            header_present("Resource-Priority"), "${CHANNEL(audionativeformat)}",
            "${CHANNEL(videonativeformat)}")
        return RawInbound(
            called=called,
            caller_number=caller,
            withheld=pres.startswith("prohib"),
            resource_priority=rp == "1",
            audio_format=audio,
            video_format=video,
            channel_id=agi.env.get("agi_uniqueid", ""),
            now=now,
        )

    @staticmethod
    def outbound_facts(agi: QuietAGI, now: datetime) -> RawOutbound:
        endpoint, dialed = exact(agi, "${CHANNEL(endpoint)}", "${EXTEN}")
        return RawOutbound(
            endpoint=endpoint,
            dialed=dialed[2:] if dialed.startswith("s-") else dialed,
            # Carrier headers from customer equipment are never trusted (SEC-4): a handset's
            # priority is its line on the priority list, its roaming the endpoint's flag.
            visited_network=False,
            resource_priority=False,
            channel_id=agi.env.get("agi_uniqueid", ""),
            now=now,
        )

    # ---- the three scripts -----------------------------------------------------------------
    def inbound(self, agi: QuietAGI) -> None:
        """Decided from memory (REL-5): no database read on the call's path."""
        plan = plan_inbound(self.inbound_facts(agi, datetime.now(UTC)), self.keeper.current,
                            self.limits)
        self.carry_out(agi, plan, "inbound")

    def outbound(self, agi: QuietAGI) -> None:
        plan = plan_outbound(self.outbound_facts(agi, datetime.now(UTC)), self.keeper.current,
                             self.limits)
        if isinstance(plan.decision, NuisanceMenu):
            # The same 144 menu as the ARI app's, over AGI (REL-7).
            log.info("outbound decision (fallback)", extra=plan.log)
            self.write([self.outcome(plan)])
            try:
                asyncio.run(run_agi_menu(agi, self.lists, plan.channel_id, plan.decision,
                                         multi_channel(self.keeper.current, plan.decision)))
            finally:
                # Whatever happened in the menu, the call ends here (never to the carrier).
                with contextlib.suppress(AGIException):
                    agi.set_variable("CG_CAUSE", "16")
                    agi.set_variable("CG_NEXT", "cg-release-cause")
            return
        self.carry_out(agi, plan, "outbound")

    def ended(self, agi: QuietAGI) -> None:
        channel_id = agi.env.get("agi_uniqueid", "")
        # No ChannelStateChange here: Dial's ANSWEREDTIME_MS gives the answer time.
        follow, answered_ms, cause, rec_file = exact(
            agi, "${CG_FOLLOW}", "${ANSWEREDTIME_MS}", "${HANGUPCAUSE}", "${CG_REC_FILE}")
        if metrics.call_released(cause, answered_ms not in ("", "0")):
            log.warning("dead call released by Asterisk (REL-8)")
        self.write(plan_ended(channel_id, follow, datetime.now(UTC),
                              answered_ms if follow == FOLLOW_RECORDING else None))
        if follow == FOLLOW_RECORDING:
            self.keeper.adjust_recordings(-1)
            root = self.settings.recordings_asterisk_dir.rstrip("/") + "/"
            rel_path = rec_file.removeprefix(root)
            try:  # every path handed in is confined to the recordings root (SEC-4)
                confined(self.settings.recordings_dir, rel_path)
            except OutsideRecordings as exc:
                log.warning("recording path refused: %s", exc, extra={"path": rec_file[:200]})
                return
            # The file is closed after the channel is gone: finish it off this call's thread.
            threading.Thread(target=self.finish_recording, args=(channel_id, rel_path),
                             daemon=True).start()

    def finish_recording(self, channel_id: str, rel_path: str) -> None:
        path = confined(self.settings.recordings_dir, rel_path)
        deadline = time.monotonic() + FILE_CLOSE_WAIT_S
        while not header_closed(path) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Still open after the wait: the writer is gone (crash); the header is repaired.
        values = settled_row_values(path)
        self.write([Op("recording_finished", {"channel_id": channel_id, "values": values})])

    def carry_out(self, agi: QuietAGI, plan: CallPlan, kind: str) -> None:
        """Set the decision's variables, then write the call's rows: a caller who hung up
        before the call could go on leaves none (as in the ARI app's carry_out). The call's
        end (the cg-agi-ended hangup handler) runs only after this AGI returns."""
        if plan.recordings_delta:
            self.keeper.adjust_recordings(plan.recordings_delta)
        if plan.book.rel_path:  # the services own the recordings tree (SEC-4)
            prepare_dir(self.settings.recordings_dir, plan.book.rel_path)
        assert plan.target is not None
        values = dict(plan.target.variables)
        if plan.book.follow:
            values["CG_FOLLOW"] = plan.book.follow
            values["CHANNEL(hangup_handler_push)"] = "cg-agi-ended,s,1"
        values["CG_NEXT"] = plan.target.context
        try:
            for name, value in grouped_assignments(values):  # one SET VARIABLE for most
                agi.set_variable(name, value)
        except AGIException:
            if plan.recordings_delta:  # the recording slot is free again (REC-CAP-1)
                self.keeper.adjust_recordings(-plan.recordings_delta)
            raise
        self.write([*plan.book.ops, self.outcome(plan)])
        metrics.decision_latency(metrics.VIA_FALLBACK, plan.direction,
                                 time.monotonic() - agi.started)
        log.info("%s decision (fallback)", kind, extra=plan.log)


class Handler(socketserver.StreamRequestHandler):
    fallback: Fallback

    def handle(self) -> None:
        rfile = self.connection.makefile("r", encoding="utf-8", errors="replace", newline="\n")
        wfile = self.connection.makefile("w", encoding="utf-8", newline="\n")
        agi = QuietAGI(rfile, wfile)
        channel_var.set(agi.env.get("agi_uniqueid", "-"))
        secret, _, script = agi.env.get("agi_network_script", "").strip("/").partition("/")
        if not self.from_asterisk(secret):
            return  # closed without a single AGI command: nothing decided, nothing written
        try:
            action = {"inbound": self.fallback.inbound, "outbound": self.fallback.outbound,
                      "ended": self.fallback.ended}.get(script)
            if action is None:
                log.warning("unknown FastAGI script %r", script)
                return
            action(agi)
        except AGIException as exc:
            log.info("channel went away during AGI: %s", exc)
        except Exception:
            log.exception("fallback failed; the dialplan fails open")
        finally:
            agi.finish()


    def from_asterisk(self, secret: str) -> bool:
        """Only Asterisk may ask (SEC-4): a loopback peer naming the secret generated at the
        first run (agi://127.0.0.1:4573/<secret>/<script>, .run/secrets/agi.secret)."""
        expected = self.fallback.settings.agi_secret
        peer = str(self.client_address[0])
        if not ipaddress.ip_address(peer).is_loopback:
            log.warning("FastAGI request refused: peer %s is not loopback", peer)
            return False
        if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
            log.warning("FastAGI request refused: wrong secret", extra={"peer": peer})
            return False
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main() -> None:
    setup_logging()
    settings = load_settings()
    # Before the keeper's and the server's threads exist: they inherit it.
    refused = share_asterisk_priority(settings.rt_priority)
    if refused:
        log.warning("normal scheduling, not Asterisk's real-time class: %s", refused)
    engine = make_sync_engine(settings)
    # The menu waits at most MENU_DB_TIMEOUT_S for a connection too, as for its statements.
    menu_engine = make_sync_engine(settings, pool_size=2, max_overflow=8,
                                   pool_timeout=MENU_DB_TIMEOUT_S)
    keeper = StateKeeper(settings.sync_database_url, settings.journal_dir, "fastagi")
    keeper.start()
    # The fail-open route map follows the site (REL-1), as in the ARI app: whichever of the
    # two is still up keeps it (callguard/astdb_sync.py).
    astdb = astdb_sync.follow(keeper, settings)
    Handler.fallback = fallback = Fallback(settings, engine, keeper, menu_engine)
    metrics.init_process(metrics.VIA_FALLBACK)
    metrics.watch_journal(fallback.journal.pending)
    metrics.serve(settings.metrics_fastagi_port)
    server = Server((settings.fastagi_host, settings.fastagi_port), Handler)
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown).start()

    def replayer() -> None:
        """Every 2 s: journaled writes go to the database once it answers (REL-2)."""
        while not stop.wait(2.0):
            try:
                fallback.replay()
                fallback.probe()
            except Exception:
                log.exception("journal replay failed")

    signal.signal(signal.SIGTERM, shutdown)
    threading.Thread(target=replayer, name="replay", daemon=True).start()
    log.info("FastAGI fallback listening", extra={"port": settings.fastagi_port})
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        fallback.close()
        astdb.stop()
        keeper.stop()
        menu_engine.dispose()
        engine.dispose()


if __name__ == "__main__":
    main()
