"""`callguard-fastagi`: a threaded FastAGI server on 127.0.0.1 (pyst2 on each connection).

The dialplan reaches it when Stasis() fails (the ARI app is down). It gathers the same facts,
calls the same domain functions (callguard.domain.routing), writes the same rows
(callguard.callflow) and hands the call to the same cg-* contexts via CG_NEXT. Calls it routes
are followed to their end by a hangup handler that calls back here (`ended`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import signal
import socketserver
import threading
import time
from datetime import UTC, datetime
from typing import Any

from asterisk.agi import AGI, AGIException
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ari_app.logs import channel_var, setup_logging
from callguard import dialplan
from callguard.callflow import (
    FOLLOW_RECORDING,
    Bookkeeping,
    answered_at,
    capacity_for,
    ended_ops,
    inbound_bookkeeping,
    outbound_bookkeeping,
)
from callguard.config import Settings, load_settings
from callguard.db import queries
from callguard.db.queries import write_statement
from callguard.db.session import make_sync_engine
from callguard.db.site_repo import load_snapshot
from callguard.dialplan import audio_format_present
from callguard.domain import privacy
from callguard.domain.routing import (
    Capacity,
    Decision,
    InboundFacts,
    NuisanceMenu,
    OutboundFacts,
    Refuse,
    decide_inbound,
    decide_outbound,
)
from callguard.domain.site import SiteSnapshot
from callguard.journal import Journal, Op
from callguard.recording_files import (
    FILE_CLOSE_WAIT_S,
    OutsideRecordings,
    confined,
    header_closed,
    settled_row_values,
)

log = logging.getLogger("callguard.fastagi")
SITE_TTL_S = 2.0


class QuietAGI(AGI):  # type: ignore[misc]
    """pyst2's AGI without its SIGHUP handler (not allowed off the main thread) and without
    echoing the AGI environment (it holds caller numbers) to stderr."""

    def __init__(self, rfile: Any, wfile: Any) -> None:
        self.stdin, self.stdout = rfile, wfile
        self.stderr = open(os.devnull, "w")  # noqa: SIM115 - closed in finish()
        self._got_sighup = False
        self.env: dict[str, str] = {}
        self._get_agi_env()

    def finish(self) -> None:
        self.stderr.close()


def header_present(agi: QuietAGI, header: str) -> bool:
    """The same flag the dialplan passes to Stasis(). GET VARIABLE would hand EXISTS() the
    literal text `${PJSIP_HEADER(...)}` (always non-empty: every call looked roaming and
    disaster-priority); GET FULL VARIABLE expands it (REC-OUT-4, REC-CAP-1)."""
    value = agi.get_full_variable(f"${{EXISTS(${{PJSIP_HEADER(read,{header})}})}}")
    return str(value) == "1"


class Fallback:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._site = SiteSnapshot()
        self._site_at = 0.0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.journal = Journal(settings.journal_dir / "fastagi.jsonl")

    def site(self) -> SiteSnapshot:
        with self._lock:
            if time.monotonic() - self._site_at > SITE_TTL_S:
                try:
                    with Session(self.engine) as session:
                        self._site = load_snapshot(session)
                    self._site_at = time.monotonic()
                except SQLAlchemyError as exc:
                    log.warning("site reload failed, using last snapshot: %s", exc)
            return self._site

    def scalar(self, stmt: Any, default: Any) -> Any:
        try:
            with self.engine.begin() as conn:
                return conn.execute(stmt).scalar()
        except SQLAlchemyError as exc:
            log.warning("database unavailable: %s", exc)
            return default

    def write(self, ops: list[Op]) -> None:
        """Apply call-path writes, or journal them when the database is away (REL-2)."""
        if not ops:
            return
        with self._write_lock:
            try:
                with self.engine.begin() as conn:
                    self.journal.replay_sync(lambda pending: self._apply(conn, pending))
                    self._apply(conn, ops)
            except SQLAlchemyError as exc:
                log.warning("database unavailable, journaling %d write(s): %s", len(ops), exc)
                self.journal.append(ops)

    @staticmethod
    def _apply(conn: Any, ops: list[Op]) -> None:
        for op in ops:
            conn.execute(write_statement(op.name, op.args))

    def capacity(self, needed: bool) -> Capacity:
        active = self.scalar(queries.active_recordings(), 0) if needed else 0
        return capacity_for(self.site(), int(active or 0), self.settings.max_recordings,
                            self.settings.at_capacity_policy)

    # ---- the three scripts -----------------------------------------------------------------
    def inbound(self, agi: QuietAGI) -> None:
        now = datetime.now(UTC)
        site = self.site()
        channel_id = agi.env.get("agi_uniqueid", "")
        called = agi.env.get("agi_extension", "")
        withheld = agi.get_variable("CALLERID(pres)").startswith("prohib")
        identity = privacy.caller_identity(agi.env.get("agi_callerid", ""), None, withheld)
        rp = header_present(agi, "Resource-Priority")
        facts = InboundFacts(called, identity, "anonymous" if withheld or not identity
                             else identity, rp, channel_id, now)
        number = site.numbers.get(called)
        key = privacy.caller_key(self.settings.hmac_key, identity) if identity else None
        blocked = bool(
            number and number.list_id is not None and key
            and self.scalar(queries.is_blocked(number.list_id, key), False)
        )
        contract = site.contracts.get(number.contract) if number else None
        has_audio = not blocked or audio_format_present(
            agi.get_variable("CHANNEL(audionativeformat)"))
        decision = decide_inbound(
            site, facts, blocked=blocked, has_audio=has_audio,
            capacity=self.capacity(bool(contract and contract.recording_active(now.date()))),
            ring_timeout_s=site.setting_int("ring_timeout_s", self.settings.ring_timeout_s),
        )
        sealed = privacy.seal_key(self.settings.hmac_key, channel_id, key) if key else None
        book = inbound_bookkeeping(decision, number, contract, sealed, channel_id, now)  # SEC-3
        self.carry_out(agi, decision, book, "inbound")

    def outbound(self, agi: QuietAGI) -> None:
        now = datetime.now(UTC)
        site = self.site()
        channel_id = agi.env.get("agi_uniqueid", "")
        endpoint = agi.get_variable("CHANNEL(endpoint)")
        dialed = agi.env.get("agi_extension", "")
        dialed = dialed[2:] if dialed.startswith("s-") else dialed
        # Carrier headers from customer equipment are never trusted (SEC-4).
        facts = OutboundFacts(endpoint, dialed, False, False, channel_id, now)
        ep = site.endpoints.get(endpoint)
        contract = site.contracts.get(ep.contract) if ep else None
        decision: Decision = decide_outbound(
            site, facts,
            capacity=self.capacity(bool(contract and contract.recording_active(now.date()))),
        )
        if isinstance(decision, NuisanceMenu):
            # The interactive menu needs the ARI app; say so rather than pretend (REL-1).
            decision = Refuse(16, "register_failed", note="144 while the ARI app is down")
        self.carry_out(agi, decision, outbound_bookkeeping(decision, contract, channel_id, now),
                       "outbound")

    def ended(self, agi: QuietAGI) -> None:
        channel_id = agi.env.get("agi_uniqueid", "")
        follow = agi.get_variable("CG_FOLLOW")
        now = datetime.now(UTC)
        ops = ended_ops(channel_id, follow, now)
        if follow == FOLLOW_RECORDING:
            # No ChannelStateChange here: Dial's ANSWEREDTIME_MS gives the answer time.
            answered = answered_at(now, agi.get_variable("ANSWEREDTIME_MS"))
            if answered is not None:
                ops.insert(0, Op("recording_answered",
                                 {"channel_id": channel_id, "answered_at": answered}))
        self.write(ops)
        if follow == FOLLOW_RECORDING:
            root = self.settings.recordings_asterisk_dir.rstrip("/") + "/"
            rec_file = agi.get_variable("CG_REC_FILE")
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

    def carry_out(self, agi: QuietAGI, decision: Decision, book: Bookkeeping, kind: str) -> None:
        self.write(book.ops)
        target = dialplan.target_for(decision, self.settings.recordings_asterisk_dir)
        for name, value in target.variables.items():
            agi.set_variable(name, value)
        if book.follow:
            agi.set_variable("CG_FOLLOW", book.follow)
            agi.set_variable("CHANNEL(hangup_handler_push)", "cg-agi-ended,s,1")
        agi.set_variable("CG_NEXT", target.context)
        log.info("%s decision (fallback)", kind, extra={
            "decision": type(decision).__name__, "note": getattr(decision, "note", ""),
        })


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
    engine = make_sync_engine(settings)
    Handler.fallback = Fallback(settings, engine)
    server = Server((settings.fastagi_host, settings.fastagi_port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log.info("FastAGI fallback listening", extra={"port": settings.fastagi_port})
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.dispose()


if __name__ == "__main__":
    main()
