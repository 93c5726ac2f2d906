"""Routing decisions over a hand-built reference site (REC-*, NCR-REJ-*, SEC-1), no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from callguard.dialplan import audio_format_present, audio_is_wideband, native_formats, target_for
from callguard.domain.routing import (
    Capacity,
    Connect,
    InboundFacts,
    NuisanceMenu,
    OutboundFacts,
    Refuse,
    Reject,
    decide_inbound,
    decide_outbound,
    recording_path,
)
from callguard.domain.site import (
    ContractInfo,
    EndpointInfo,
    ForwardingInfo,
    NumberInfo,
    SiteSnapshot,
)

NOW = datetime(2026, 11, 22, 3, 4, 5, 678000, tzinfo=UTC)
ROOM = Capacity(0, 10)
FULL = Capacity(2, 2)
ON = date(2026, 1, 1)

SITE = SiteSnapshot(
    contracts={
        "F1": ContractInfo(1, "F1", "fixed", recording_from=ON, nuisance_unit="per-number"),
        "F2": ContractInfo(2, "F2", "fixed", nuisance_unit="per-contract", contract_list_id=3),
        "M1": ContractInfo(3, "M1", "mobile", recording_from=ON),
    },
    endpoints={
        "f1-a": EndpointInfo("f1-a", "F1", "2001", 2, own_number="0312345678"),
        "f1-b": EndpointInfo("f1-b", "F1", "2002", own_number="0312345679"),
        "f2-a": EndpointInfo("f2-a", "F2", "2001", own_number="0612345678"),
        "m1-a": EndpointInfo("m1-a", "M1", "2001", own_number="09011110001",
                             office_number="0311110001"),
        "m1-b": EndpointInfo("m1-b", "M1", "2002", own_number="09011110002",
                             office_number="05011110002"),
    },
    numbers={
        "0312345678": NumberInfo(1, "0312345678", "F1", "f1-a", "representative", 1, True),
        "0312345679": NumberInfo(2, "0312345679", "F1", "f1-b", "dial-in", 2),
        "0612345678": NumberInfo(3, "0612345678", "F2", "f2-a", "base", 3, True),
        "09011110001": NumberInfo(5, "09011110001", "M1", "m1-a", "native"),
        "0311110001": NumberInfo(6, "0311110001", "M1", "m1-a", "office"),
        "05011110002": NumberInfo(8, "05011110002", "M1", "m1-b", "office"),
    },
    forwardings={"0312345679": ForwardingInfo("no-answer", "0311119999", 5)},
    priority_lines=frozenset({"0312340119"}),
)


def inbound(called: str, caller: str | None = "0399990000", rp: bool = False) -> InboundFacts:
    return InboundFacts(called, caller, caller or "anonymous", rp, "1700000000.42", NOW)


def outbound(endpoint: str, dialed: str, roaming: bool = False) -> OutboundFacts:
    return OutboundFacts(endpoint, dialed, roaming, False, "1700000000.43", NOW)


def test_recording_path_has_no_caller_text() -> None:  # REC-FILE-1
    assert recording_path(NOW, "F1", "in", "1700000000.42") == (
        "2026/11/22/F1/20261122T030405678Z_in_1700000000.42.wav")
    assert "invalid" in recording_path(NOW, "F1", "in", "../../etc/passwd")


def test_inbound_to_recording_number_is_recorded() -> None:  # REC-IN-1
    d = decide_inbound(SITE, inbound("0312345678"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.record is not None and d.dial == "PJSIP/0312345678@f1-a"
    assert d.record.direction == "in" and d.record.remote == "0399990000"


def test_phone_is_called_by_its_line_number() -> None:  # issue 16
    # The Request-URI user is the endpoint's own number (a mobile's native one), whichever of
    # its numbers was called, so a desk phone that only takes calls to its account accepts it.
    d = decide_inbound(SITE, inbound("0311110001"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.dial == "PJSIP/09011110001@m1-a"
    d = decide_inbound(SITE, inbound("0312345679"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.dial == "PJSIP/0312345679@f1-b"
    bare = SiteSnapshot(SITE.contracts, {"x": EndpointInfo("x", "F1", "2009")},
                        {"0312340000": NumberInfo(9, "0312340000", "F1", "x", "dial-in")})
    d = decide_inbound(bare, inbound("0312340000"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.dial == "PJSIP/x"


def test_inbound_to_native_mobile_number_is_not_recorded() -> None:  # REC-IN-1
    d = decide_inbound(SITE, inbound("09011110001"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.record is None


def test_withheld_caller_recorded_as_anonymous() -> None:  # REC-IN-2
    facts = InboundFacts("0311110001", "0399990000", "anonymous", False, "1.1", NOW)
    d = decide_inbound(SITE, facts, blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.record and d.record.remote == "anonymous"


def test_blocked_caller_rejected_before_everything() -> None:  # NCR-REJ-1/2
    d = decide_inbound(SITE, inbound("0312345678"), blocked=True, capacity=FULL)
    assert d == Reject(1)


def test_no_answer_forwarding_is_recorded_and_forwarded() -> None:  # REC-IN-2
    d = decide_inbound(SITE, inbound("0312345679"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.forward_dial == "PJSIP/0311119999@carrier"
    assert d.timeout_s == 5 and d.record is not None


def test_capacity_priority_and_policy() -> None:  # REC-CAP-1
    d = decide_inbound(SITE, inbound("0312345678", "0312340119"), blocked=False, capacity=FULL)
    assert isinstance(d, Connect) and d.record is None
    d = decide_inbound(SITE, inbound("0312345678", rp=True), blocked=False, capacity=FULL)
    assert isinstance(d, Connect) and d.record is None
    d = decide_inbound(SITE, inbound("0312345678"), blocked=False, capacity=FULL)
    assert isinstance(d, Refuse) and d.prompt == "congestion"
    d = decide_inbound(SITE, inbound("0312345678"), blocked=False,
                       capacity=Capacity(2, 2, "unrecorded"))
    assert isinstance(d, Connect) and d.record is None


def test_unknown_number_is_404() -> None:
    d = decide_inbound(SITE, inbound("0399999999"), blocked=False, capacity=ROOM)
    assert isinstance(d, Refuse) and d.cause == 1
    # Carriers' convention: the announcement first, as early media (cg-refuse), then 404.
    assert d.prompt == "number_unknown"
    assert target_for(d, "/rec").context == "cg-refuse"


@pytest.mark.parametrize(
    ("endpoint", "dialed", "dial", "cid", "recorded"),
    [
        ("f1-a", "0077270612345678", "PJSIP/0612345678@carrier", "0312345678", True),
        ("m1-a", "00772609012345678", "PJSIP/09012345678@carrier", "0311110001", True),
        ("m1-a", "09012345678", "PJSIP/09012345678@carrier", "09011110001", False),
        ("f1-a", "110", "PJSIP/110@carrier", "0312345678", False),
        ("f1-a", "2002", "PJSIP/0312345679@f1-b", None, True),  # source 000: the receiving line
        ("m1-a", "2002", "PJSIP/09011110002@m1-b", None, False),
        ("m1-a", "0077260120123456", "PJSIP/0120123456@carrier", "0311110001", True),
    ],
)
def test_outbound_connects(endpoint: str, dialed: str, dial: str, cid: str | None,
                           recorded: bool) -> None:  # REC-OUT-1/3/4
    d = decide_outbound(SITE, outbound(endpoint, dialed), capacity=ROOM)
    assert isinstance(d, Connect), d
    assert (d.dial, d.caller_id, d.record is not None) == (dial, cid, recorded)


@pytest.mark.parametrize(
    ("endpoint", "dialed", "prompt"),
    [
        ("f1-a", "007727110", "rec_refused_destination"),
        ("f1-a", "007727104", "rec_refused_destination"),
        ("f1-a", "0077270033123456", "rec_refused_destination"),
        ("f1-a", "007727#8000", "rec_refused_destination"),
        ("f1-a", "00772712345678", "rec_refused_destination"),
        ("f1-a", "0077272002", "rec_refused_destination"),
        ("f1-a", "0077260612345678", "rec_wrong_prefix"),
        ("m1-a", "0077270612345678", "rec_wrong_prefix"),
        ("f2-a", "0077270312345678", "rec_not_subscribed"),
        ("m1-b", "0077260120123456", "rec_refused_destination"),
        ("m1-b", "0077260570123456", "rec_refused_destination"),
        ("m1-b", "00772608001234567", "rec_refused_destination"),
    ],
)
def test_outbound_refusals(endpoint: str, dialed: str, prompt: str) -> None:  # REC-OUT-2
    d = decide_outbound(SITE, outbound(endpoint, dialed), capacity=ROOM)
    assert isinstance(d, Refuse) and d.prompt == prompt, d
    assert target_for(d, "/rec").context == "cg-refuse"


@pytest.mark.parametrize(("endpoint", "dialed"), [
    ("f1-a", "007727031234567"),  # too few digits
    ("f1-a", "00772703123456789"),  # too many
    ("f1-a", "007727"),  # the prefix alone
    ("m1-a", "007726"),
    ("f1-a", "007727010"),  # 010 without a number
    ("f1-a", "00772709012345"),  # a mobile number too short
    ("f1-a", "0077270120123"),  # a freephone number too short
])
def test_misdial_after_the_prefix_is_an_unknown_number(endpoint: str, dialed: str) -> None:
    """REC-OUT-2, source 000: 「下記へ接続する場合はプレフィックスを付与せず…」 covers its listed
    classes only; a misdial is told what the same typo without the prefix gets (the carrier's
    「おかけになった電話番号は、現在使われておりません。」, 404 / cause 1), never to redial
    without the prefix. Never connected."""
    d = decide_outbound(SITE, outbound(endpoint, dialed), capacity=ROOM)
    assert d == Refuse(1, "number_unknown", note="misdialed number after the prefix"), d
    assert target_for(d, "/rec").context == "cg-refuse"


@pytest.mark.parametrize("dialed", ["00772751234567890", "0077279", "007727*123"])
def test_not_starting_with_0_after_the_prefix_is_a_listed_refusal(dialed: str) -> None:
    """Source 000's list ends with 「その他、「0」以外から始まる番号」: call it without the
    prefix."""
    d = decide_outbound(SITE, outbound("f1-a", dialed), capacity=ROOM)
    assert isinstance(d, Refuse) and (d.cause, d.prompt) == (21, "rec_refused_destination"), d


@pytest.mark.parametrize(("dialed", "withheld"), [
    ("110", False), ("118", False), ("119", False),
    ("184110", True), ("184118", True), ("184119", True),
    ("186110", False), ("186118", False), ("186119", False),
])
def test_emergency_behind_184_186_connects_as_the_dialplan_does(dialed: str,
                                                                withheld: bool) -> None:
    """REL-6, REC-OUT-3: the shells agree with [cg-emergency]: the carrier gets the emergency
    number itself, the line's own number, withheld after 184 (Privacy: id), unrecorded."""
    d = decide_outbound(SITE, outbound("f1-a", dialed), capacity=ROOM)
    assert isinstance(d, Connect), d
    assert (d.dial, d.caller_id, d.withhold_id, d.record) == (
        f"PJSIP/{dialed[-3:]}@carrier", "0312345678", withheld, None)
    assert d.note.startswith("emergency")


def test_no_extension_plan_shadows_an_emergency_number() -> None:
    """REL-6: as numbers.classify; an extension 110 never turns 110 into an extension call."""
    site = replace(SITE, endpoints={**SITE.endpoints, "f1-b": replace(
        SITE.endpoints["f1-b"], extension="110")})
    for dialed in ("110", "184110"):
        d = decide_outbound(site, outbound("f1-a", dialed), capacity=ROOM)
        assert isinstance(d, Connect) and d.dial == "PJSIP/110@carrier", (dialed, d)


def test_roaming_prefixed_call_not_recorded() -> None:  # REC-OUT-4
    d = decide_outbound(SITE, outbound("m1-a", "0077260312345678", roaming=True), capacity=ROOM)
    assert isinstance(d, Connect) and d.record is None and d.caller_id == "0311110001"


@pytest.mark.parametrize("dialed", ["144", "184144", "186144", "144#", "*144", "#144"])
def test_144_menu_only_for_subscribed_numbers(dialed: str) -> None:  # NCR-*
    """144 never reaches the carrier, behind 184/186 neither (the code was stripped and
    "144" dialed out as a normal call)."""
    assert decide_outbound(SITE, outbound("f1-a", dialed), capacity=ROOM) == NuisanceMenu(
        "0312345678", 1)
    d = decide_outbound(SITE, outbound("m1-a", dialed), capacity=ROOM)
    assert isinstance(d, Refuse) and d.prompt == "not_subscribed"


@pytest.mark.parametrize("dialed", ["03-1234", "abc", "", "0" * 40, "+81312345678"])
def test_garbage_dialed_strings_refused(dialed: str) -> None:  # REL-4
    d = decide_outbound(SITE, outbound("f1-a", dialed), capacity=ROOM)
    assert isinstance(d, Refuse)


def test_unknown_endpoint_refused() -> None:  # SEC-1
    assert isinstance(decide_outbound(SITE, outbound("ghost", "0312345678"), capacity=ROOM),
                      Refuse)


def test_dialplan_target_for_recorded_connect() -> None:
    d = decide_inbound(SITE, inbound("0312345678"), blocked=False, capacity=ROOM)
    t = target_for(d, "/var/spool/asterisk/callguard")
    assert t.context == "cg-connect"
    assert t.variables["CG_REC_FILE"].startswith("/var/spool/asterisk/callguard/2026/11/22/F1/")
    assert t.variables["CG_DIAL"] == "PJSIP/0312345678@f1-a"


# ---- issue 13: where main differed from the sources / what callers hear ---------------------
def test_fixed_extension_call_records_the_receiving_line_only() -> None:  # REC-OUT-4
    d = decide_outbound(SITE, outbound("f1-a", "2002"), capacity=ROOM)
    assert isinstance(d, Connect) and d.record is not None
    assert (d.record.direction, d.record.number, d.record.remote) == ("in", "0312345679",
                                                                      "2001")
    assert d.caller_id is None
    d = decide_outbound(SITE, outbound("f1-a", "2002"), capacity=FULL)
    assert isinstance(d, Refuse) and d.prompt == "congestion"  # REC-CAP-1 applies too


def test_freephone_number_on_a_fixed_line_is_recorded() -> None:  # REC-IN-1
    numbers = dict(SITE.numbers)
    numbers["0120123456"] = NumberInfo(9, "0120123456", "F1", "f1-b", "freephone")
    site = SiteSnapshot(SITE.contracts, SITE.endpoints, numbers, SITE.forwardings)
    d = decide_inbound(site, inbound("0120123456"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect) and d.dial == "PJSIP/0312345679@f1-b"
    assert d.record is not None and d.record.number == "0120123456"


@pytest.mark.parametrize(("dialed", "dial", "withheld"), [
    ("1840612345678", "PJSIP/0612345678@carrier", True),
    ("1860612345678", "PJSIP/0612345678@carrier", False),
    ("0612345678", "PJSIP/0612345678@carrier", False),
    ("184", "PJSIP/184@carrier", False),  # nothing after it: dialed as it is
])
def test_184_186_on_unprefixed_calls(dialed: str, dial: str, withheld: bool) -> None:
    d = decide_outbound(SITE, outbound("f2-a", dialed), capacity=ROOM)
    assert isinstance(d, Connect) and d.record is None
    assert (d.dial, d.withhold_id, d.caller_id) == (dial, withheld, "0612345678")
    t = target_for(d, "/rec")
    assert t.variables["CG_PRIVACY"] == ("1" if withheld else "")


@pytest.mark.parametrize("dialed", ["1840077270612345678", "0077271840612345678",
                                    "1860077270612345678", "0077271860612345678"])
def test_184_186_with_recording_prefix_refused_with_guidance(dialed: str) -> None:
    d = decide_outbound(SITE, outbound("f1-a", dialed), capacity=ROOM)
    assert isinstance(d, Refuse) and d.prompt == "rec_privacy_prefix"
    assert target_for(d, "/rec").context == "cg-refuse"


def test_carrier_calls_announce_unallocated() -> None:
    for dialed in ("0612345678", "0077270612345678"):
        d = decide_outbound(SITE, outbound("f1-a", dialed), capacity=ROOM)
        assert isinstance(d, Connect) and d.unallocated_prompt == "number_unknown"
        assert target_for(d, "/rec").variables["CG_UNALLOC_PROMPT"] == "number_unknown"
    d = decide_outbound(SITE, outbound("f1-a", "0077270612345678"), capacity=FULL)
    assert isinstance(d, Refuse)
    capped = decide_outbound(SITE, outbound("f1-a", "0077270612345678"),
                             capacity=Capacity(2, 2, "unrecorded"))
    assert isinstance(capped, Connect) and capped.unallocated_prompt == "number_unknown"


# The offer's media: (has_audio, has_video, wideband) as the call core derives them.
MEDIA = {
    "audio-narrowband": (True, False, False),
    "audio-wideband": (True, False, True),
    "audio+video": (True, True, False),
    "video-only": (False, True, False),
    "no-audio": (False, False, False),
}
LISTED_DECISIONS = {
    "audio-narrowband": Reject(1),
    "audio-wideband": Refuse(58),
    "audio+video": Refuse(58),
    "video-only": Refuse(58),
    "no-audio": Reject(1, audio=False),
}


@pytest.mark.parametrize("media", MEDIA)
def test_listed_caller_by_media(media: str) -> None:
    """Source 004 ■テレビ電話 ■高音質電話: a videophone call (any video stream, with or
    without audio) or a wideband one gets 488 (cause 58): the terminal is asked to call again
    as a standard-quality voice call, and only that call is answered with the message
    (NCR-REJ-1) and counted (NCR-CNT-1). No audio stream: declined without guidance
    (NCR-REJ-2), not counted (no message heard)."""
    has_audio, has_video, wideband = MEDIA[media]
    d = decide_inbound(SITE, inbound("0312345678"), blocked=True, capacity=ROOM,
                       has_audio=has_audio, has_video=has_video, wideband=wideband)
    expected = LISTED_DECISIONS[media]
    if isinstance(expected, Refuse):
        assert isinstance(d, Refuse) and (d.cause, d.prompt) == (58, None)
        assert target_for(d, "/rec").context == "cg-release-cause"
    else:
        assert d == expected
        assert isinstance(d, Reject) and d.counted is (media == "audio-narrowband")
        assert target_for(d, "/rec").context == ("cg-reject" if d.audio else "cg-decline")


@pytest.mark.parametrize(("value", "names", "wideband"), [
    ("(ulaw)", ["ulaw"], False),
    ("(alaw)", ["alaw"], False),
    ("(ulaw|g722)", ["ulaw", "g722"], False),  # the first is the format the call uses
    ("(g722)", ["g722"], True),
    ("(g722|ulaw)", ["g722", "ulaw"], True),
    ("(slin16)", ["slin16"], True),
    ("(opus)", ["opus"], True),  # any format that is not 8 kHz
    ("(slin)", ["slin"], False),
    ("(nothing)", [], False),
    ("", [], False),
    (" (G722) ", ["g722"], True),
])
def test_native_format_strings(value: str, names: list[str], wideband: bool) -> None:
    """CHANNEL(audionativeformat) as Asterisk writes it (ast_format_cap_get_names)."""
    assert native_formats(value) == names
    assert audio_is_wideband(value) is wideband
    assert audio_format_present(value) is bool(names)


@pytest.mark.parametrize("media", MEDIA)
def test_unlisted_caller_media_does_not_matter(media: str) -> None:
    has_audio, has_video, wideband = MEDIA[media]
    d = decide_inbound(SITE, inbound("0312345678"), blocked=False, capacity=ROOM,
                       has_audio=has_audio, has_video=has_video, wideband=wideband)
    assert d == decide_inbound(SITE, inbound("0312345678"), blocked=False, capacity=ROOM)
    assert isinstance(d, Connect)


# ---- service days are Tokyo calendar days (REC-OUT-2, REC-IN-1) -----------------------------
DEC_1 = date(2026, 12, 1)
EARLY_DEC_1 = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # 05:00 JST on 1 Dec (UTC: 30 Nov)
LATE_NOV_30 = datetime(2026, 11, 30, 14, 59, tzinfo=UTC)  # 23:59 JST on 30 Nov


def _dated_site(start: date, until: date | None = None) -> SiteSnapshot:
    """SITE with its recording contracts (F1, M1) subscribed from `start` to `until`."""
    contracts = {code: replace(c, recording_from=start, recording_until=until)
                 if c.recording_from else c for code, c in SITE.contracts.items()}
    return SiteSnapshot(contracts, SITE.endpoints, SITE.numbers, SITE.forwardings)


def _recorded(site: SiteSnapshot, at: datetime) -> list[bool]:
    """Recorded or not: inbound to F1, prefixed from f1-a and m1-a, extension call on F1."""
    d_in = decide_inbound(site, replace(inbound("0312345678"), now=at), blocked=False,
                          capacity=ROOM)
    out = [decide_outbound(site, replace(outbound(ep, dialed), now=at), capacity=ROOM)
           for ep, dialed in (("f1-a", "0077270612345678"), ("m1-a", "0077260612345678"),
                              ("f1-a", "2002"))]
    return [isinstance(d, Connect) and d.record is not None for d in (d_in, *out)]


def test_activation_starts_at_tokyo_midnight() -> None:  # REC-OUT-1, REC-IN-1
    site = _dated_site(DEC_1)
    assert _recorded(site, EARLY_DEC_1) == [True, True, True, True]
    assert _recorded(site, LATE_NOV_30) == [False, False, False, False]
    d = decide_outbound(site, replace(outbound("m1-a", "0077260612345678"), now=LATE_NOV_30),
                        capacity=ROOM)
    assert isinstance(d, Refuse) and d.prompt == "rec_not_subscribed"  # REC-OUT-2


def test_cancellation_day_is_the_first_day_without_recording() -> None:  # REC-OUT-2, REC-IN-1
    # cancelled_on is exclusive (ContractInfo.recording_active): on the day itself, from
    # 00:00 JST, nothing is recorded; the day before, to 23:59 JST, everything still is.
    site = _dated_site(ON, DEC_1)
    assert _recorded(site, EARLY_DEC_1) == [False, False, False, False]
    d = decide_outbound(site, replace(outbound("f1-a", "0077270612345678"), now=EARLY_DEC_1),
                        capacity=ROOM)
    assert isinstance(d, Refuse) and d.prompt == "rec_not_subscribed"
    assert _recorded(site, LATE_NOV_30) == [True, True, True, True]


# ---- disaster priority from customer equipment (REC-CAP-1, source 000 災害時優先電話) ---------
def _priority_site(*lines: str) -> SiteSnapshot:
    return SiteSnapshot(SITE.contracts, SITE.endpoints, SITE.numbers, SITE.forwardings,
                        frozenset(lines))


@pytest.mark.parametrize("listed", ["09011110001", "0311110001"])  # native or office number
def test_priority_handset_prefixed_call_connects_unrecorded_at_capacity(listed: str) -> None:
    site = _priority_site(listed)
    d = decide_outbound(site, outbound("m1-a", "0077260612345678"), capacity=FULL)
    assert isinstance(d, Connect) and d.record is None
    assert (d.dial, d.caller_id) == ("PJSIP/0612345678@carrier", "0311110001")
    # Not listed: refused as before; below the maximum the listed line is recorded.
    d = decide_outbound(site, outbound("m1-b", "0077260612345678"), capacity=FULL)
    assert isinstance(d, Refuse) and d.prompt == "congestion"
    d = decide_outbound(site, outbound("m1-a", "0077260612345678"), capacity=ROOM)
    assert isinstance(d, Connect) and d.record is not None


def test_priority_line_extension_call_connects_unrecorded_at_capacity() -> None:
    # Fixed contract with recording: the receiving line would be recorded (REC-OUT-4); from a
    # listed line at the maximum it is connected without that recording.
    site = _priority_site("0312345679")
    d = decide_outbound(site, outbound("f1-b", "2001"), capacity=FULL)
    assert isinstance(d, Connect) and d.record is None and d.dial == "PJSIP/0312345678@f1-a"
    d = decide_outbound(site, outbound("f1-a", "2002"), capacity=FULL)  # not listed
    assert isinstance(d, Refuse) and d.prompt == "congestion"
    d = decide_outbound(site, outbound("f1-b", "2001"), capacity=ROOM)
    assert isinstance(d, Connect) and d.record is not None


# ---- a handset without an office number (REC-OUT-2, source 000 オフィスケータイパック) ---------
NO_OFFICE = SiteSnapshot(
    SITE.contracts,
    {**SITE.endpoints, "m1-c": EndpointInfo("m1-c", "M1", "2003", own_number="09011110003")},
    {**SITE.numbers, "09011110003": NumberInfo(9, "09011110003", "M1", "m1-c", "native")},
)


@pytest.mark.parametrize("dialed", [
    "0077260612345678",
    "0077260120123456",  # the 050 rule read the native number: a freephone call went through
    "0077260570123456",
    "00772609012345678",
])
def test_prefixed_call_without_office_number_refused(dialed: str) -> None:  # REC-OUT-2
    # A prefixed call presents the office number; a handset without one is refused with the
    # spoken refusal, never connected presenting its native 080/090, never recorded.
    for roaming, capacity in ((False, ROOM), (True, ROOM), (False, FULL)):
        d = decide_outbound(NO_OFFICE, outbound("m1-c", dialed, roaming), capacity=capacity)
        assert isinstance(d, Refuse) and (d.cause, d.prompt) == (21, "rec_not_subscribed"), d
        assert target_for(d, "/rec").context == "cg-refuse"


def test_handset_without_office_number_calls_normally() -> None:  # REC-OUT-3
    d = decide_outbound(NO_OFFICE, outbound("m1-c", "0612345678"), capacity=ROOM)
    assert isinstance(d, Connect) and d.record is None and d.caller_id == "09011110003"
    d = decide_outbound(NO_OFFICE, outbound("m1-a", "0077260612345678"), capacity=ROOM)
    assert isinstance(d, Connect) and d.record is not None and d.caller_id == "0311110001"
