"""The nodes behind Kamailio (issue 12, CLU-1/2): what `callguard cluster list|drain` reads
and decides. Pure functions over Kamailio's `dispatcher.list` and Asterisk's channel count;
the I/O (kamcmd, asterisk -rx) is in callguard/cli/cluster.py."""

from __future__ import annotations

import re
from dataclasses import dataclass

# tools/cluster.sh: node n is SIP 127.0.0.(10+n):5060 (dispatcher set 1).
DISPATCHER_SET = 1


def node_ip(n: int) -> str:
    return f"127.0.0.{10 + n}"


def node_uri(n: int) -> str:
    return f"sip:{node_ip(n)}:5060"


def parse_node(name: str, nodes: list[int]) -> int:
    """`n2`, `2` or `127.0.0.12` → 2; a ValueError names the nodes there are."""
    raw = name.strip()
    for n in nodes:
        if raw in (f"n{n}", str(n), node_ip(n), node_uri(n)):
            return n
    known = ", ".join(f"n{n}" for n in nodes) or "none (no cluster runs: make cluster)"
    raise ValueError(f"unknown node {name!r}; nodes: {known}")


@dataclass(frozen=True)
class Destination:
    uri: str
    flags: str  # Kamailio's: A active, I inactive, D disabled, T trying; P probing

    @property
    def state(self) -> str:
        first = self.flags[:1]
        return {"A": "active", "I": "inactive (not answering)", "D": "drained",
                "T": "trying"}.get(first, f"unknown ({self.flags})")

    @property
    def takes_calls(self) -> bool:
        return self.flags.startswith("A")


_DEST = re.compile(r"URI:\s*(\S+)\s+FLAGS:\s*(\S+)")


def parse_dispatcher_list(out: str) -> dict[str, Destination]:
    """kamcmd `dispatcher.list` (its indented text form) → destinations by URI."""
    return {m.group(1): Destination(m.group(1), m.group(2)) for m in _DEST.finditer(out)}


_CHANNELS = re.compile(r"^(\d+) active channels?", re.MULTILINE)


def active_channels(out: str) -> int:
    """Asterisk `core show channels count` → the number of channels up on the node."""
    m = _CHANNELS.search(out)
    if m is None:
        raise ValueError(f"unexpected `core show channels count` output: {out.strip()[:80]!r}")
    return int(m.group(1))
