"""Call routing decisions: pure functions from (site snapshot, call facts) to a Decision.

The ARI app and the FastAGI fallback both gather the facts, call these functions, and carry
out the Decision through the same dialplan execution contexts (extensions_callguard.conf).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from callguard.domain.nuisance import tokyo_date
from callguard.domain.numbers import (
    PRIVACY_WITHHOLD,
    RECORDING_PREFIX_FIXED,
    RECORDING_PREFIX_MOBILE,
    NumberClass,
    allowed_with_prefix,
    classify,
    is_emergency,
    split_privacy_prefix,
    split_recording_prefix,
)
from callguard.domain.site import EndpointInfo, NumberInfo, SiteSnapshot

# Q.850 causes the refusals release with (chan_pjsip maps them to SIP responses).
CAUSE_UNALLOCATED = 1  # 404
CAUSE_NORMAL = 16
CAUSE_CALL_REJECTED = 21  # 603
CAUSE_CONGESTION = 34  # 503
CAUSE_BEARER_NOT_AVAILABLE = 58  # 488 Not Acceptable Here: offer again with other media

# Prompts a caller hears when something is wrong (sounds/manifest.tsv has the texts).
PROMPT_UNALLOCATED = "number_unknown"  # 「おかけになった電話番号は、現在使われておりません。」
PROMPT_PRIVACY_WITH_PREFIX = "rec_privacy_prefix"

NCR_SERVICE_CODE = "144"
_DIALABLE = re.compile(r"[0-9*#]{1,32}")
# 144, also behind 184/186, on the digits alone (* and # dropped): what the dialplan's fail-open
# guard ([cg-fallback-outbound]) reads, so `144#` or `*144` is the menu in every path.
_SERVICE_CODE_DIALED = re.compile(r"(18[46])?" + NCR_SERVICE_CODE)
_UNIQUEID = re.compile(r"[A-Za-z0-9.\-]{1,64}")


@dataclass(frozen=True)
class RecordPlan:
    """What MixMonitor records and the metadata row says (REC-FILE-1)."""

    contract: str
    number: str  # our customer's number on this call
    direction: str  # "in" | "out"
    remote: str  # the other party as presented ("anonymous" when withheld)
    rel_path: str  # under the recordings root; no caller-controlled text
    stereo: bool = False  # caller and called party on separate channels (issue #14)
    announce: bool = False  # the far end hears the recording announcement first (issue #14)


@dataclass(frozen=True)
class Connect:
    dial: str  # Asterisk dial string
    timeout_s: int
    caller_id: str | None = None  # number to present; None = leave as is
    record: RecordPlan | None = None
    forward_dial: str | None = None  # tried on no answer / unreachable
    note: str = ""
    withhold_id: bool = False  # 184: Privacy: id towards the carrier for this call
    # Spoken (early media) when the far end says the number is unallocated (404), before the
    # release; None: released with the cause alone.
    unallocated_prompt: str | None = None


@dataclass(frozen=True)
class Refuse:
    """Released without being connected; with a spoken prompt (early media) when set."""

    cause: int
    prompt: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Reject:
    """Nuisance-call rejection: answer, the message twice, release (NCR-REJ-1)."""

    list_id: int
    audio: bool = True  # False: no audio stream, declined without guidance (NCR-REJ-2)

    @property
    def counted(self) -> bool:
        """Whether the list's month counter goes up. The 144 menu's 4 reads 「メッセージ応答
        した回数」 (NCR-CNT-1, source 004): only a call that heard the message counts, not a
        data call declined without it."""
        return self.audio


@dataclass(frozen=True)
class NuisanceMenu:
    """The 144 menu for the scope of the calling line's own number."""

    number: str
    list_id: int


Decision = Connect | Refuse | Reject | NuisanceMenu


@dataclass(frozen=True)
class InboundFacts:
    called: str  # Request-URI user
    caller: str | None  # network identity (digits) or None when unavailable
    presented: str  # caller as presented to us: digits, or "anonymous" when withheld
    resource_priority: bool  # INVITE carried Resource-Priority (RFC 4412)
    channel_id: str
    now: datetime


@dataclass(frozen=True)
class OutboundFacts:
    endpoint: str
    dialed: str
    visited_network: bool  # P-Visited-Network-ID present: international roaming (REC-OUT-4)
    resource_priority: bool
    channel_id: str
    now: datetime


@dataclass(frozen=True)
class Capacity:
    active_recordings: int
    max_recordings: int
    at_capacity_policy: str = "congestion"  # or "unrecorded"

    @property
    def full(self) -> bool:
        return self.active_recordings >= self.max_recordings


def recording_path(now: datetime, contract: str, direction: str, channel_id: str) -> str:
    """`YYYY/MM/DD/<contract>/<utc-stamp>_<dir>_<uniqueid>.wav` (REC-FILE-1)."""
    utc = now.astimezone(UTC)
    uid = channel_id if _UNIQUEID.fullmatch(channel_id) else "invalid"
    code = re.sub(r"[^A-Za-z0-9_-]", "_", contract)
    stamp = utc.strftime("%Y%m%dT%H%M%S") + f"{utc.microsecond // 1000:03d}Z"
    return f"{utc:%Y/%m/%d}/{code}/{stamp}_{direction}_{uid}.wav"


def carrier_dial(number: str) -> str:
    return f"PJSIP/{number}@carrier"


def endpoint_dial(site: SiteSnapshot, name: str) -> str:
    """Customer equipment is called as `sip:<its number>@<its address>`: the line's number
    (a fixed line's number, a mobile's native number) as the Request-URI user, so a desk phone
    or softphone that only takes calls to its own account accepts them (`PJSIP/<user>@<endpoint>`
    puts the user into the endpoint's AOR contact)."""
    endpoint = site.endpoints.get(name)
    if endpoint is not None and endpoint.own_number:
        return f"PJSIP/{endpoint.own_number}@{name}"
    return f"PJSIP/{name}"


def line_has_priority(site: SiteSnapshot, endpoint: EndpointInfo) -> bool:
    """A call from customer equipment is a disaster-priority call when its line is listed: its
    own number (a mobile's native 080/090) or its office number. The shells never read its
    headers (SEC-4: Resource-Priority is False), so this is what makes one (REC-CAP-1)."""
    return any(n is not None and n in site.priority_lines
               for n in (endpoint.own_number, endpoint.office_number))


def _apply_capacity(
    connect: Connect, capacity: Capacity, priority: bool
) -> Connect | Refuse:
    """REC-CAP-1: at the maximum, priority callers go through unrecorded; others per policy."""
    if connect.record is None or not capacity.full:
        return connect
    if priority or capacity.at_capacity_policy == "unrecorded":
        return replace(connect, record=None,
                       note="recording capacity reached: connected unrecorded")
    return Refuse(CAUSE_CONGESTION, "congestion", note="recording capacity reached")


def decide_inbound(
    site: SiteSnapshot,
    facts: InboundFacts,
    *,
    blocked: bool,
    capacity: Capacity,
    ring_timeout_s: int = 30,
    has_audio: bool = True,
    has_video: bool = False,
    wideband: bool = False,
) -> Decision:
    """An inbound call from the carrier. `blocked`: the caller is on the number's list;
    `has_audio`: the offer has an audio stream (a data call has none); `has_video`: it has a
    video stream (a videophone call, with or without audio); `wideband`: its audio format is
    not standard (8 kHz) quality, e.g. G.722 (a high-quality call)."""
    number = site.numbers.get(facts.called)
    if number is None:
        # Carriers' convention: 「おかけになった電話番号は現在使われておりません。」 then 404.
        return Refuse(CAUSE_UNALLOCATED, PROMPT_UNALLOCATED, note="called number not provisioned")
    # NCR-REJ-2: rejection comes before forwarding, recording and ringing; a call without
    # an audio stream is declined without guidance (and not counted: it heard no message).
    if blocked and number.list_id is not None:
        if has_video or wideband:
            # Source 004 (■テレビ電話 ■高音質電話): the network asks the calling terminal to
            # call again as a standard-quality voice call; only that retry hears the guidance
            # (and pays, and is counted); without a retry, no guidance. SIP: 488, the offer is
            # not acceptable here; nothing is answered, rung or counted.
            return Refuse(CAUSE_BEARER_NOT_AVAILABLE,
                          note="listed caller offered video or wideband audio: asked to call"
                               " again in standard quality")
        return Reject(number.list_id, audio=has_audio)

    contract = site.contracts[number.contract]
    record: RecordPlan | None = None
    # REC-IN-1: geographic/050 numbers of a recording contract; never a mobile's native number.
    if contract.recording_active(tokyo_date(facts.now)) and number.role != "native":
        record = RecordPlan(
            contract=contract.code,
            number=number.number,
            direction="in",
            remote=facts.presented,
            rel_path=recording_path(facts.now, contract.code, "in", facts.channel_id),
            stereo=contract.rec_options.stereo,
            announce=contract.rec_options.announce("in"),
        )

    fwd = site.forwardings.get(number.number)
    if fwd is not None and fwd.mode == "unconditional":
        # REC-IN-2: forwarded calls are recorded too; the caller's identity goes along.
        connect = Connect(carrier_dial(fwd.target), ring_timeout_s, None, record,
                          note="unconditional forwarding")
    else:
        forward = carrier_dial(fwd.target) if fwd is not None else None
        timeout = fwd.after_s if fwd is not None and fwd.mode == "no-answer" else ring_timeout_s
        connect = Connect(endpoint_dial(site, number.endpoint), timeout, None, record, forward)
    priority = facts.resource_priority or (facts.caller or "") in site.priority_lines
    return _apply_capacity(connect, capacity, priority)


def _presented_numbers(endpoint: EndpointInfo, kind: str) -> tuple[str | None, str | None]:
    """(number shown on normal calls, number shown on prefixed recorded calls). A mobile's
    prefixed call presents its office number only, never the native 080/090 (source 000:
    「通話相手に固定電話番号を通知する通話」); None when it has none."""
    return endpoint.own_number, endpoint.office_number if kind == "mobile" else endpoint.own_number


def decide_outbound(
    site: SiteSnapshot,
    facts: OutboundFacts,
    *,
    capacity: Capacity,
    ring_timeout_s: int = 120,
) -> Decision:
    """A call from customer equipment (already identified by source address: SEC-1)."""
    endpoint = site.endpoints.get(facts.endpoint)
    if endpoint is None:
        return Refuse(CAUSE_CALL_REJECTED, note="endpoint not provisioned")
    dialed = facts.dialed
    if not _DIALABLE.fullmatch(dialed):
        return Refuse(CAUSE_UNALLOCATED, "number_unknown", note="not a dialable string")
    contract = site.contracts[endpoint.contract]
    normal_cid, office_cid = _presented_numbers(endpoint, contract.kind)

    if _SERVICE_CODE_DIALED.fullmatch(re.sub(r"[*#]", "", dialed)):
        # 144 is the menu's, never the carrier's: behind 184/186 too (they only say how a
        # call shows its number to the far end; the menu has none), and with a * or # a
        # phone sends along (`144#`). As the dialplan's fail-open guard refuses them all.
        return _nuisance_menu(site, endpoint)
    # 184 / 186 before the number: this call's caller-ID presentation, prefix stripped.
    privacy, dialed = split_privacy_prefix(dialed)
    prefix, rest = split_recording_prefix(dialed)
    if prefix is not None and (privacy is not None or split_privacy_prefix(rest)[0]):
        # Source 000: a prefixed call reaches only the listed destinations (all starting with
        # 0) and says nothing of 184/186 with the prefix; refused with guidance, never guessed.
        return Refuse(CAUSE_CALL_REJECTED, PROMPT_PRIVACY_WITH_PREFIX,
                      note="184/186 with the recording prefix")
    if prefix is None:
        extensions = site.extensions_of(contract.code)
        # REC-OUT-3: emergency numbers always connect, behind 184/186 too, and no extension
        # plan shadows them (numbers.classify's order); the dialplan sends all of these to
        # the carrier before any app sees them ([cg-emergency], REL-6) with this same result.
        if dialed in extensions and not is_emergency(dialed):
            return _extension_call(site, facts, endpoint, extensions[dialed], capacity)
        # REC-OUT-3: a normal, unrecorded call.
        note = "emergency" if is_emergency(dialed) else "normal call"
        if privacy is not None:
            note += f" ({privacy})"
        return Connect(carrier_dial(dialed), ring_timeout_s, normal_cid, note=note,
                       withhold_id=privacy == PRIVACY_WITHHOLD,
                       unallocated_prompt=PROMPT_UNALLOCATED)

    # REC-OUT-2: the prefix must match the contract kind, and the add-on must be active.
    expected = RECORDING_PREFIX_MOBILE if contract.kind == "mobile" else RECORDING_PREFIX_FIXED
    if prefix != expected:
        return Refuse(CAUSE_CALL_REJECTED, "rec_wrong_prefix", note="prefix of the other kind")
    if not contract.recording_active(tokyo_date(facts.now)):
        return Refuse(CAUSE_CALL_REJECTED, "rec_not_subscribed", note="no recording add-on")
    if office_cid is None and contract.kind == "mobile":
        # Source 000: only handsets with an office number (オフィスケータイパック / au
        # オフィスナンバー) are recorded; without one the service is not theirs to use.
        return Refuse(CAUSE_CALL_REJECTED, "rec_not_subscribed",
                      note="handset without an office number")
    cls = classify(rest, frozenset(site.extensions_of(contract.code)))
    if cls is NumberClass.INVALID and (rest == "" or rest.startswith("0")):
        # A misdial after the prefix (too few or too many digits, the prefix alone, `010`):
        # no number of source 000's refused list, so not 「…プレフィックスを付けずに、
        # おかけ直しください。」 (a redial without the prefix would misdial again), but what
        # the same typo gets without the prefix (the carrier's 404, cause 1). INVALID not
        # starting with 0 is the list's 「その他、「0」以外から始まる番号」 (below).
        return Refuse(CAUSE_UNALLOCATED, PROMPT_UNALLOCATED,
                      note="misdialed number after the prefix")
    line_is_050 = (office_cid or "").startswith("050")
    if not allowed_with_prefix(cls, line_is_050=line_is_050):
        return Refuse(CAUSE_CALL_REJECTED, "rec_refused_destination",
                      note=f"destination class {cls.value} refused with prefix")
    record: RecordPlan | None = RecordPlan(
        contract=contract.code,
        number=office_cid or "",
        direction="out",
        remote=rest,
        rel_path=recording_path(facts.now, contract.code, "out", facts.channel_id),
        stereo=contract.rec_options.stereo,
        announce=contract.rec_options.announce("out"),
    )
    if facts.visited_network or endpoint.roaming:
        record = None  # REC-OUT-4: calls made while roaming abroad are not recorded.
    connect = Connect(carrier_dial(rest), ring_timeout_s, office_cid, record,
                      note=f"prefixed call to {cls.value}",
                      unallocated_prompt=PROMPT_UNALLOCATED)
    priority = facts.resource_priority or line_has_priority(site, endpoint)
    return _apply_capacity(connect, capacity, priority)


def _extension_call(site: SiteSnapshot, facts: OutboundFacts, caller: EndpointInfo,
                    callee_name: str, capacity: Capacity) -> Connect | Refuse:
    """REC-OUT-4: an extension call inside the contract. The calling side is never recorded;
    on a fixed contract with recording the *receiving* line is, as an inbound call (source
    000: 「KDDI ビジネスコールダイレクト」による内線着信通話も録音対象); on a mobile contract
    neither side is."""
    contract = site.contracts[caller.contract]
    callee = site.endpoints.get(callee_name)
    record: RecordPlan | None = None
    if (contract.kind == "fixed" and contract.recording_active(tokyo_date(facts.now))
            and callee is not None and callee.own_number):
        record = RecordPlan(
            contract=contract.code,
            number=callee.own_number,
            direction="in",
            remote=caller.extension,  # presented inside the contract as its extension
            rel_path=recording_path(facts.now, contract.code, "in", facts.channel_id),
        )
    connect = Connect(endpoint_dial(site, callee_name), 60, None, record, note="extension")
    # Source 000: a disaster-priority caller bypasses the congested recording equipment, here
    # the receiving line's recording, as on a call from the carrier (REC-CAP-1).
    priority = facts.resource_priority or line_has_priority(site, caller)
    return _apply_capacity(connect, capacity, priority)


def _nuisance_menu(site: SiteSnapshot, endpoint: EndpointInfo) -> Decision:
    """144 from a phone whose outgoing caller ID is a subscribed number (NCR-*)."""
    own = endpoint.own_number
    info: NumberInfo | None = site.numbers.get(own) if own else None
    if info is None or info.list_id is None:
        return Refuse(CAUSE_NORMAL, "not_subscribed", note="144 from a number not subscribed")
    return NuisanceMenu(number=info.number, list_id=info.list_id)
