"""The event loop: StasisStart → a handler task per call; call-end bookkeeping; takeover of
channels left in Stasis after a reconnect (they continue into the FastAGI fallback)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ari_app.calls import CallEnv, Followed, start_inbound, start_outbound
from ari_app.client import AriClient, AriError, call_failure
from ari_app.coalesce import Coalesced
from ari_app.logs import channel_var
from ari_app.overload import event_age_s, handed_on, should_shed
from ari_app.site_cache import SiteCache
from ari_app.store import Store, StoreUnavailable
from callguard import astdb_sync, metrics
from callguard.callflow import (
    FOLLOW_RECORDING,
    attended_transfer_handovers,
    blind_transfer_handover,
    capacity_for,
    in_transfer_context,
    leaves_on_transfer,
    transferred_by,
)
from callguard.callpath import plan_ended
from callguard.config import Settings
from callguard.db import queries
from callguard.db.session import make_async_engine
from callguard.domain.pause import PAUSE_TONE_ROLE, tone_action, tone_media, tone_ms
from callguard.journal import Journal, Op
from callguard.localstate import StateKeeper
from callguard.recording_files import (
    FILE_CLOSE_WAIT_S,
    OutsideRecordings,
    append_wav,
    confined,
    header_closed,
    settled_row_values,
)
from callguard.recording_stereo import is_stereo_pending

log = logging.getLogger("callguard.app")

# The only events Asterisk sends the app (an allow-list, PERF-1): a call's arrival, and what
# the interactive 144 menu waits for (its caller's hangup included). Everything else (~45
# events of a recorded call: Set, Dial, dialplan steps, RTCP...) never reaches the websocket.
# StasisEnd is left out too: every decided call leaves Stasis by its continue, and so does a
# recorded call's end ([cg-ari-ended]), so it was half of all the events the app parsed, and
# no handler needs it (a call's end comes through its hangup handler, the menu's through
# ChannelHangupRequest/ChannelDestroyed). A handler that starts using another event type
# must add it here.
ALLOWED_EVENTS = ("StasisStart", "ChannelDestroyed", "ChannelHangupRequest",
                  "ChannelDtmfReceived", "PlaybackStarted", "PlaybackFinished",
                  # outbound recorded calls, followed by subscription (issue #14 transfers)
                  "ChannelStateChange", "ChannelEnteredBridge", "BridgeBlindTransfer",
                  "BridgeAttendedTransfer")
TRANSFER_GRACE_S = 0.5  # how long a recorded channel's end waits for a late transfer event
# At most one transfer lookup listing of all channels per this long (a call's end waits for
# the next one; ari_app/coalesce.py).
LISTING_EVERY_S = 0.25
XFER_SNOOP = "xfer-snoop"  # StasisStart args of the snoop channel recording a transferred call
# Issue #14: a snoop channel whispering the pause/resume tone to the customer is hung up this
# long after its tone's own length (a `tone:` playback never ends by itself), and at the
# latest after PAUSE_TONE_MAX_S whatever happens to the playback request.
PAUSE_TONE_TAIL_S = 0.25
PAUSE_TONE_MAX_S = 5.0


async def _raise(exc: Exception) -> None:
    """A handler's synchronous part failed: its task raises it (spawn logs it)."""
    raise exc


class CallguardApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.shed = 0  # calls handed to the fallback because their StasisStart came late
        self.stale = 0  # StasisStarts that came after the dialplan's 1 s deadline (REL-7)
        # Issue #14: a followed recording's channel that transferred its call away -> the
        # channel that stays, which the recording (and the call's end) follows.
        self.handover: dict[str, str] = {}
        self.finishing: set[str] = set()  # calls whose end is being written
        # Issue #14, attended transfer of a call recorded on the leg that left: the row's
        # channel -> the rest of the call, recorded by a snoop on the channel that stays
        # (ARI recording file), appended to the row's file when the call ends.
        self.segments: dict[str, Path] = {}
        # Recorded channels just destroyed, for TRANSFER_GRACE_S: ARI may deliver a transfer
        # event after the transferring leg's ChannelDestroyed (different Asterisk topics).
        self.ending: dict[str, Followed] = {}
        # The transfer lookup's channel listing, shared by the calls that end together, and
        # no more than one every LISTING_EVERY_S while calls keep ending (PERF-2).
        self.channel_listing = Coalesced(lambda: self.env.ari.request("GET", "channels"),
                                         every_s=LISTING_EVERY_S)

    def spawn(self, coro: Any, channel_id: str = "-") -> None:
        async def run() -> None:
            channel_var.set(channel_id)
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = call_failure(exc)
                if kind == "left-stasis":
                    # Too slow for the dialplan's 1 s deadline (REL-7): the channel has left
                    # Stasis for the FastAGI fallback, which decides the call.
                    log.warning("channel left Stasis before the app was done: %s", exc)
                    return
                if kind == "gone" and channel_id != "-":
                    # The caller hung up while the app was still at work: nothing to strand.
                    log.info("channel gone before the app was done: %s", exc)
                    return
                if kind == "unreachable":
                    # Asterisk's HTTP side did not answer in time (overload, restart): no bug
                    # of ours to trace; the continue below covers a channel still in Stasis.
                    log.warning("ARI request failed for this call: %s", exc)
                else:
                    log.exception("call handler failed")
                # Never strand a caller: let the dialplan continue into the fallback.
                if channel_id != "-":
                    try:
                        await self.env.ari.continue_in_dialplan(channel_id)
                    except AriError:
                        pass

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def started_now(self, start: Callable[[CallEnv, dict[str, Any], list[str]],
                                          Coroutine[Any, Any, None]],
                    channel: dict[str, Any], args: list[str], channel_id: str,
                    ) -> Coroutine[Any, Any, None]:
        """The call's decision and, mostly, its continue, here in the StasisStart handler
        (PERF-1: not one pass of the event loop later); a failure goes to the task, which
        logs it and lets the call continue into the fallback, like any handler's."""
        token = channel_var.set(channel_id)  # lines logged meanwhile name the call
        try:
            return start(self.env, channel, args)
        except Exception as exc:  # re-raised in the task (spawn logs it)
            return _raise(exc)
        finally:
            channel_var.reset(token)

    async def deciding(self, handler: Awaitable[None], channel_id: str) -> None:
        """A call's handler; its StasisStart time goes with it, sent or not (a handler that
        failed before its continue leaves no entry behind)."""
        try:
            await handler
        finally:
            self.env.started.pop(channel_id, None)

    async def run(self) -> None:
        engine = make_async_engine(self.settings)
        store = Store(engine, Journal(self.settings.journal_dir / "ari.jsonl"))
        await store.start()
        metrics.watch_journal(store.journal.pending)
        keeper = StateKeeper(self.settings.sync_database_url, self.settings.journal_dir, "ari")
        await asyncio.to_thread(keeper.start)
        # The fail-open route map follows the site, in a thread of its own (REL-1; the
        # FastAGI fallback keeps it too: callguard/astdb_sync.py says why both).
        astdb = astdb_sync.follow(keeper, self.settings)
        site = SiteCache(keeper)
        try:
            async with AriClient(self.settings.ari_url, self.settings.ari_user,
                                 self.settings.ari_password, self.settings.ari_app) as ari:
                self.env = CallEnv(self.settings, ari, store, site, {}, self.queues,
                                   rec_root_set=False)
                refresher = asyncio.create_task(self.background(site))
                try:
                    async for event in ari.events(self.stop):
                        self.dispatch(event)
                finally:
                    refresher.cancel()
                    for task in list(self.tasks):
                        task.cancel()
                    await asyncio.gather(refresher, *self.tasks, return_exceptions=True)
        finally:
            await store.close()
            await asyncio.to_thread(astdb.stop)
            await asyncio.to_thread(keeper.stop)
            await engine.dispose()
            log.info("stopped")

    async def background(self, site: SiteCache) -> None:
        """Every 2 s: replay journaled writes once the database answers (REL-2). The site and
        the lists need no refresh here: the StateKeeper follows PostgreSQL's notifications."""
        while not self.stop.is_set():
            try:
                if self.env.store.journal_backlog:
                    metrics.journal_replayed(await self.env.store.replay_journal())
            except StoreUnavailable as exc:
                log.warning("database unavailable (writes journaled): %s", exc)
            state = site.state
            metrics.database(site.keeper.connected.is_set())
            metrics.recordings(state.active_recordings, capacity_for(
                state.site, state.active_recordings, self.settings.max_recordings,
                self.settings.at_capacity_policy).max_recordings)
            try:
                await asyncio.wait_for(self.stop.wait(), 2.0)
            except TimeoutError:
                pass

    def dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        channel = event.get("channel") or {}
        channel_id = str(channel.get("id", ""))
        if kind == "StasisStart":
            args = [str(a) for a in event.get("args", [])]
            role = args[0] if args else ""
            exten = str(channel.get("dialplan", {}).get("exten", ""))
            age = event_age_s(event.get("timestamp"), datetime.now(UTC))
            if handed_on(role, age):
                self.stale += 1
                token = channel_var.set(channel_id)
                try:
                    log.warning("behind by %.2f s: call already handed to the FastAGI fallback "
                                "by the dialplan's 1 s deadline; left alone", age,
                                extra={"stale_total": self.stale})
                finally:
                    channel_var.reset(token)
                return
            if should_shed(role, exten, age):
                self.shed += 1
                metrics.call_shed("out" if role == "outbound" else "in")
                token = channel_var.set(channel_id)  # this line names the call it sheds
                try:
                    log.warning("behind by %.2f s: call handed to the FastAGI fallback", age,
                                extra={"shed_total": self.shed})
                finally:
                    channel_var.reset(token)
                self.spawn(self.env.ari.continue_in_dialplan(channel_id), channel_id)
                return
            if role in ("inbound", "outbound"):
                self.env.started[channel_id] = (time.monotonic() - max(age or 0.0, 0.0),
                                                "in" if role == "inbound" else "out")
            if role in ("inbound", "outbound"):
                start = start_inbound if role == "inbound" else start_outbound
                self.spawn(self.deciding(self.started_now(start, channel, args, channel_id),
                                         channel_id), channel_id)
            elif role == "ended":
                # [cg-ari-ended]: a followed call hung up; Stasis returns by itself.
                self.spawn(self.hangup_reported(channel_id, args), channel_id)
            elif role == "resumed":
                pass  # a channel coming back from a dialplan step; its handler waits for it
            elif role == XFER_SNOOP:
                pass  # issue #14: records a transferred call; ends with the snooped channel
            elif role == PAUSE_TONE_ROLE:
                # issue #14: a DTMF pause/resume confirmed to the customer (API process)
                self.spawn(self.pause_tone(channel_id, args))
            else:
                log.warning("StasisStart with unknown args %r", args)
                self.spawn(self.env.ari.continue_in_dialplan(channel_id), channel_id)
            return
        if kind == "_Connected":
            self.env.rec_root_set = False  # a restarted Asterisk has no globals
            self.spawn(self.filter_events())
            self.spawn(self.set_globals())
            self.spawn(self.take_over())
            self.spawn(self.resume_followed())
            return
        # Outbound recorded calls are followed by subscription (the customer's phone may
        # transfer the call away, issue #14); everything else ends through [cg-ari-ended].
        if kind in ("BridgeBlindTransfer", "BridgeAttendedTransfer"):
            who = channel_id or str((event.get("transferer_first_leg") or {}).get("id", ""))
            log.info("transfer event", extra={"transfer": kind, "result": event.get("result"),
                                              "followed": who in self.env.tracked
                                              or who in self.ending})
        if kind == "BridgeBlindTransfer":
            pair = blind_transfer_handover(event)
            if pair is not None:
                followed = self.env.tracked.get(pair[0]) or self.ending.get(pair[0])
                if followed and followed.why == FOLLOW_RECORDING \
                        and pair[1] not in self.env.tracked:
                    self.handover[pair[0]] = pair[1]
            return
        if kind == "BridgeAttendedTransfer":
            for leaves, kept in attended_transfer_handovers(event):
                rec = self.env.tracked.get(leaves) or self.ending.get(leaves)
                if rec and rec.why == FOLLOW_RECORDING \
                        and kept not in self.env.tracked and leaves not in self.handover:
                    self.handover[leaves] = kept
                    self.spawn(self.record_rest(leaves, kept, rec), leaves)
            return
        if kind == "ChannelDestroyed":
            followed = self.env.tracked.pop(channel_id, None)
            if followed and metrics.call_released(event.get("cause"),
                                                  channel.get("state") == "Up"):
                log.warning("dead call released by Asterisk (REL-8)",
                            extra={"cause": event.get("cause")})
            stays = self.handover.pop(channel_id, None)
            if followed and stays:
                self.spawn(self.follow_transfer(channel_id, stays, followed), channel_id)
            elif followed and followed.why == FOLLOW_RECORDING:
                # The transfer event may come just after the transferring leg is gone.
                self.ending[channel_id] = followed
                self.spawn(self.end_after_grace(channel_id, followed, datetime.now(UTC),
                                                str(channel.get("name", ""))), channel_id)
            elif followed:
                self.spawn(self.call_ended(followed.row or channel_id, followed), channel_id)
        elif kind == "ChannelEnteredBridge":
            followed = self.env.tracked.get(channel_id)
            bridge_id = str((event.get("bridge") or {}).get("id", ""))
            if followed and bridge_id and leaves_on_transfer(followed.rel_path):
                # Issue #14: the transfer events reach the app through the bridge too; by
                # the channel alone they are lost when it is destroyed before they are sent.
                self.spawn(self.env.ari.subscribe(f"bridge:{bridge_id}"), "-")
        elif kind == "ChannelStateChange" and channel.get("state") == "Up":
            followed = self.env.tracked.get(channel_id)
            if followed and followed.why == FOLLOW_RECORDING:
                self.spawn(self.env.store.write([Op("recording_answered", {
                    "channel_id": channel_id, "answered_at": datetime.now(UTC)})]), channel_id)
        target = channel_id
        if kind and kind.startswith("Playback"):
            uri = str(event.get("playback", {}).get("target_uri", ""))
            target = uri.partition(":")[2]
        queue = self.queues.get(target)
        if queue is not None:
            queue.put_nowait(event)

    async def pause_tone(self, snoop_id: str, args: list[str]) -> None:
        """Issue #14: the snoop channel `snoop_id` whispers into the customer's channel only
        (created by the API process, callguard.recording_pause.play_pause_tone): play the
        tone of its action on it, then hang it up; it is hung up whatever happens, within
        PAUSE_TONE_MAX_S (no snoop channel is left behind)."""
        action = tone_action(args)
        try:
            if action is None:
                log.warning("pause-tone snoop channel with args %r", args,
                            extra={"snoop": snoop_id})
                return
            async with asyncio.timeout(PAUSE_TONE_MAX_S):
                await self.env.ari.play(snoop_id, [tone_media(action)], f"{snoop_id}-tone")
                await asyncio.sleep(tone_ms(action) / 1000 + PAUSE_TONE_TAIL_S)
                # Stopped before the hangup: a playback its channel leaves is a WARNING of
                # Asterisk's ("Playback failed for tone:…") for every tone played.
                await self.env.ari.stop_playback(f"{snoop_id}-tone")
        except (AriError, TimeoutError) as exc:
            log.info("%s tone not played: %s", action, exc, extra={"snoop": snoop_id})
        finally:
            try:
                await self.env.ari.hangup(snoop_id)
            except AriError as exc:  # 404: gone with the call already
                if exc.status != 404:
                    log.info("pause-tone snoop channel not hung up: %s", exc,
                             extra={"snoop": snoop_id})

    async def filter_events(self) -> None:
        try:
            await self.env.ari.allow_events(ALLOWED_EVENTS)
        except AriError as exc:
            log.warning("event filter not set (all events still arrive): %s", exc)

    async def set_globals(self) -> None:
        """CG_REC_ROOT: where [cg-connect] puts a recording whose parts came in the continue
        extension (callguard.dialplan.ari_extension)."""
        try:
            await self.env.ari.set_global(
                "CG_REC_ROOT", self.settings.recordings_asterisk_dir.rstrip("/"))
            self.env.rec_root_set = True
        except AriError as exc:
            log.warning("CG_REC_ROOT not set (recordings take two requests): %s", exc)

    async def take_over(self) -> None:
        """Channels left in our app by a previous connection: send them on to the next dialplan
        priority, which is the FastAGI fallback, so nobody waits in silence (REL-1)."""
        try:
            for channel_id in await self.env.ari.channels_in_app():
                if channel_id not in self.queues:
                    log.info("taking over orphaned channel", extra={"orphan": channel_id})
                    await self.env.ari.continue_in_dialplan(channel_id)
        except AriError as exc:
            log.warning("take-over failed: %s", exc)

    async def resume_followed(self) -> None:
        """After a (re)start: calls that ended while we were away (and whose end the FastAGI
        server did not record either) are finished now; calls still up report their end
        through their hangup handler as usual (REC-FILE-2, REL-1)."""
        try:
            async with self.env.store.sessions() as session:
                pending = (await session.execute(queries.unfinished_calls())).all()
        except (StoreUnavailable, SQLAlchemyError, OSError) as exc:
            log.warning("cannot resume followed calls now: %s", exc)
            return
        gone = 0
        for channel_id, why, rel_path in pending:
            if channel_id in self.env.tracked:
                continue
            try:
                await self.env.ari.request("GET", f"channels/{channel_id}")
            except AriError as exc:
                if exc.status == 404:
                    gone += 1
                    self.spawn(self.call_ended(channel_id, Followed(why, rel_path)),
                               channel_id)
                continue
            if why == FOLLOW_RECORDING and leaves_on_transfer(rel_path):  # by subscription
                self.env.tracked[channel_id] = Followed(why, rel_path)
                try:
                    await self.env.ari.subscribe_channel(channel_id)
                except AriError:
                    self.env.tracked.pop(channel_id, None)
        if gone:
            log.info("finished %d call(s) that ended while the app was away", gone)

    async def hangup_reported(self, channel_id: str, args: list[str]) -> None:
        """StasisStart(ended, follow, ANSWEREDTIME_MS, recording file, HANGUPCAUSE) from
        [cg-ari-ended]."""
        follow = args[1] if len(args) > 1 else ""
        answered_ms = args[2] if len(args) > 2 and args[2] else None
        cause = args[4] if len(args) > 4 else ""
        if follow and metrics.call_released(cause, answered_ms not in (None, "0")):
            log.warning("dead call released by Asterisk (REL-8)", extra={"cause": cause})
        root = self.settings.recordings_asterisk_dir.rstrip("/") + "/"
        rel_path = args[3].removeprefix(root) if len(args) > 3 else ""
        if rel_path.endswith(".rec.raw"):  # stereo (issue #14): the row names the .wav
            rel_path = rel_path.removesuffix(".rec.raw") + ".wav"
        if rel_path:
            try:  # every path handed in is confined to the recordings root (SEC-4)
                confined(self.settings.recordings_dir, rel_path)
            except OutsideRecordings as exc:
                log.warning("recording path refused: %s", exc, extra={"path": rel_path[:200]})
                return
        if follow:
            await self.call_ended(channel_id, Followed(follow, rel_path), answered_ms=answered_ms)

    async def follow_transfer(self, left: str, stays: str, followed: Followed) -> None:
        """Issue #14: the recording goes on on the channel that stays (cg-transfer appends to
        the same file); its row ends when that channel ends, not when the transferring one left."""
        moved = Followed(followed.why, followed.rel_path, followed.row or left)
        self.env.tracked[stays] = moved
        try:
            await self.env.ari.subscribe_channel(stays)
            await self.env.ari.request("GET", f"channels/{stays}")
        except AriError:
            # Already gone: the conversation is over.
            if self.env.tracked.pop(stays, None) is not None:
                await self.call_ended(moved.row, moved)
            return
        log.info("recording follows the transferred call", extra={"transferee": stays})

    async def end_after_grace(self, channel_id: str, followed: Followed,
                              at: datetime, name: str = "") -> None:
        """A recorded channel is gone: its call ended (at `at`), unless a transfer event for
        it arrives within TRANSFER_GRACE_S; then the recording follows the channel that
        stays (issue #14). A leg that leaves on a transfer (outbound) whose event never came
        is looked up in the dialplan's transfer context instead."""
        await asyncio.sleep(TRANSFER_GRACE_S)
        self.ending.pop(channel_id, None)
        stays = self.handover.pop(channel_id, None)
        if not stays and leaves_on_transfer(followed.rel_path):
            stays = await self.transferee_of(name)
        if stays:
            await self.follow_transfer(channel_id, stays, followed)
        else:
            await self.call_ended(followed.row or channel_id, followed, at)

    async def transferee_of(self, name: str) -> str | None:
        """The channel a blind transfer by the channel named `name` left in cg-transfer, when
        BridgeBlindTransfer did not reach the app: ARI publishes it on the bridge's and the
        transferring channel's topics, and Asterisk may drop both subscriptions first (#14)."""
        if not name:
            return None
        try:
            listed = await self.channel_listing.get()
            for candidate in in_transfer_context(listed if isinstance(listed, list) else []):
                if candidate in self.env.tracked:
                    continue
                by = await self.env.ari.get_variable(candidate, "BLINDTRANSFER")
                if transferred_by(by, name):
                    log.info("blind transfer found without its event",
                             extra={"transfer": "BridgeBlindTransfer", "stays": candidate})
                    return candidate
        except AriError as exc:
            log.info("transfer lookup failed", extra={"error": str(exc)})
        return None

    async def record_rest(self, left: str, stays: str, followed: Followed) -> None:
        """Issue #14, attended transfer: the recording ran on the leg that left (MixMonitor on
        the phone's own leg, an outbound call), and no dialplan runs on the channel that stays
        (it is moved between bridges). Record the rest of the call there with a snoop; the
        segment is appended to the row's file when the call ends (finish_recording)."""
        row = followed.row or left
        path = Path(self.settings.recordings_dir) / followed.rel_path
        if await asyncio.to_thread(is_stereo_pending, path):
            log.info("stereo recording ends with the transferring leg (mono segment only)")
            return
        name = f"callguard-transfer/{row}"
        try:
            await self.env.ari.record_snoop(stays, name, XFER_SNOOP)
        except AriError as exc:
            log.warning("the rest of the transferred call is not recorded: %s", exc,
                        extra={"transferee": stays})
            return
        ari_dir = Path(self.settings.recordings_dir).parent / "recording"
        self.segments[row] = ari_dir / f"{name}.wav"
        log.info("recording the rest of the attended-transferred call",
                 extra={"transferee": stays})

    async def call_ended(self, channel_id: str, followed: Followed, at: datetime | None = None,
                         answered_ms: str | None = None) -> None:
        if channel_id in self.finishing:
            return  # already being finished
        self.finishing.add(channel_id)
        try:
            queued = self.env.queuing.get(channel_id)
            if queued is not None:  # its start rows are not queued yet (carry_out)
                await queued.wait()
            await self.env.store.write(plan_ended(
                channel_id, followed.why, at or datetime.now(UTC),
                answered_ms if followed.why == FOLLOW_RECORDING else None))
            if followed.why == FOLLOW_RECORDING:
                self.env.site.keeper.adjust_recordings(-1)
                await self.finish_recording(channel_id, followed.rel_path)
        finally:
            self.finishing.discard(channel_id)

    async def append_segment(self, path: Path, segment: Path) -> None:
        """Issue #14: the rest of an attended-transferred call into the row's own file, once
        the ARI recording is closed (its channel ended with the call)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FILE_CLOSE_WAIT_S
        while loop.time() < deadline:
            if await asyncio.to_thread(header_closed, segment):
                break
            await asyncio.sleep(0.1)
        problem = await asyncio.to_thread(append_wav, path, segment)
        if problem is None:
            # The segment is Asterisk's file in Asterisk's directory (SEC-4): Asterisk deletes it.
            try:
                await self.env.ari.delete_stored_recording(f"{segment.parent.name}/{segment.stem}")
            except AriError as exc:
                log.warning("transfer segment left at %s: %s", segment, exc)
            log.info("transferred call's rest appended to its recording")
        else:
            log.warning("transferred call's rest not appended (kept at %s): %s", segment,
                        problem)

    async def finish_recording(self, channel_id: str, rel_path: str) -> None:
        """Wait for MixMonitor to close the file, then complete or fail the row (REC-FILE-2)."""
        path = Path(self.settings.recordings_dir) / rel_path
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FILE_CLOSE_WAIT_S
        # Poll the header only (no hash) until MixMonitor has written the sizes.
        while loop.time() < deadline:
            if header_closed(path):  # 44 bytes read: cheaper than a thread hop
                break
            await asyncio.sleep(0.1)
        segment = self.segments.pop(channel_id, None)
        if segment is not None:
            await self.append_segment(path, segment)
        # Still open after the wait: the writer is gone (crash); the header is repaired.
        values = await asyncio.to_thread(settled_row_values, path)
        await self.env.store.write([Op("recording_finished",
                                       {"channel_id": channel_id, "values": values})])
        log.info("recording finished", extra={"status": values["status"],
                                              "duration_s": values.get("duration_s")})
