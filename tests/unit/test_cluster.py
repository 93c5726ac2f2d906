"""Issue 12 (CLU-2): reading Kamailio's dispatcher list and a node's channel count."""

from __future__ import annotations

from typing import cast

import pytest

from callguard.cluster import active_channels, node_uri, parse_dispatcher_list, parse_node
from callguard.recordings import AnyNodeProbe, ChannelProbe

KAMCMD_LIST = """{
\tNRSETS: 1
\tRECORDS: {
\t\tSET: {
\t\t\tID: 1
\t\t\tTARGETS: {
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.12:5060
\t\t\t\t\tFLAGS: DX
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:127.0.0.11:5060
\t\t\t\t\tFLAGS: AP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
"""


def test_dispatcher_list_states() -> None:
    dests = parse_dispatcher_list(KAMCMD_LIST)
    assert dests[node_uri(1)].state == "active" and dests[node_uri(1)].takes_calls
    assert dests[node_uri(2)].state == "drained" and not dests[node_uri(2)].takes_calls


def test_inactive_and_unknown_flags() -> None:
    out = "URI: sip:127.0.0.11:5060\nFLAGS: IP\nURI: sip:127.0.0.12:5060\nFLAGS: ZZ\n"
    dests = parse_dispatcher_list(out)
    assert dests[node_uri(1)].state == "inactive (not answering)"
    assert dests[node_uri(2)].state == "unknown (ZZ)"
    assert parse_dispatcher_list("") == {}


def test_active_channels() -> None:
    assert active_channels("0 active channels\n0 active calls\n12 calls processed\n") == 0
    assert active_channels("1 active channel\n1 active call\n") == 1
    with pytest.raises(ValueError):
        active_channels("Unable to connect to remote asterisk")


def test_parse_node() -> None:
    assert parse_node("n2", [1, 2]) == 2
    assert parse_node("1", [1, 2]) == 1
    assert parse_node("127.0.0.12", [1, 2]) == 2
    with pytest.raises(ValueError, match="nodes: n1, n2"):
        parse_node("n3", [1, 2])
    with pytest.raises(ValueError, match="no cluster runs"):
        parse_node("n1", [])


class _Probe:
    """A node's answer about every channel: True, False or None (node unreachable)."""

    def __init__(self, answer: bool | None) -> None:
        self.answer = answer

    def exists(self, channel_id: str) -> bool | None:
        return self.answer


@pytest.mark.parametrize(("answers", "expected"), [
    ((False, False), False),  # gone everywhere: the reconciler may finish the row
    ((False, True), True),  # live on the other node: left alone
    ((None, True), True),
    ((None, False), None),  # a node that cannot be asked may hold it: undecided
    ((True, None), True),
])
def test_any_node_probe(answers: tuple[bool | None, ...], expected: bool | None) -> None:
    """CLU-3, REC-FILE-2: a call may live on any node; reconcile finishes a row only when
    every node answered that its channel is gone."""
    probe = AnyNodeProbe([cast(ChannelProbe, _Probe(a)) for a in answers])
    assert probe.exists("1700000000.1") is expected


def test_any_node_probe_needs_a_node() -> None:
    with pytest.raises(ValueError):
        AnyNodeProbe([])
