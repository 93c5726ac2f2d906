"""SPEC §8 (loopback only): every PJSIP endpoint asterisk_conf/ and the bench define names a
transport, so Asterisk binds its calls' RTP to that transport's address, not to 0.0.0.0
(res_pjsip_sdp_rtp.c create_rtp); the transport is the one tools/cluster.sh re-addresses per
node. tests/e2e/test_security.py checks the sockets of a live call."""

from __future__ import annotations

import re

from callguard.config import PROJECT_ROOT

FILES = [PROJECT_ROOT / "asterisk_conf" / "pjsip.conf",
         PROJECT_ROOT / "asterisk_conf" / "pjsip_site.conf",
         PROJECT_ROOT / "bench" / "asterisk_conf" / "pjsip_bench.conf"]
SECTION = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?")


def sections() -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, templates, keys) of every section, in file order; `!` marks a template."""
    out: list[tuple[str, list[str], dict[str, str]]] = []
    for path in FILES:
        for raw in path.read_text().splitlines():
            line = raw.split(";", 1)[0].strip()
            head = SECTION.match(line)
            if head is not None:
                parents = [p.strip() for p in (head.group(2) or "").split(",") if p.strip()]
                out.append((head.group(1), parents, {}))
            elif "=" in line and out:
                key, _, value = line.partition("=")
                out[-1][2][key.strip()] = value.strip()
    return out


def test_every_endpoint_names_the_loopback_transport() -> None:
    all_sections = sections()
    templates = {name: (parents, keys) for name, parents, keys in all_sections
                 if "!" in parents}

    def resolved(parents: list[str], keys: dict[str, str]) -> dict[str, str]:
        merged: dict[str, str] = {}
        for parent in parents:
            if parent != "!":
                merged.update(resolved(*templates[parent]))
        merged.update(keys)
        return merged

    transports = {name: keys for name, parents, keys in all_sections
                  if resolved(parents, keys).get("type") == "transport"}
    # The line tools/cluster.sh rewrites to the node's own address (its sed, exactly).
    assert transports == {"transport-udp": {"type": "transport", "protocol": "udp",
                                            "bind": "127.0.0.1:5060"}}
    assert re.search(r"^bind = 127\.0\.0\.1:5060$",
                     (PROJECT_ROOT / "asterisk_conf" / "pjsip.conf").read_text(), re.M)
    assert "s/^bind = 127.0.0.1:5060/" in (PROJECT_ROOT / "tools" / "cluster.sh").read_text()
    endpoints = [(name, resolved(parents, keys)) for name, parents, keys in all_sections
                 if "!" not in parents and resolved(parents, keys).get("type") == "endpoint"]
    assert {name for name, _ in endpoints} >= {"carrier", "f1-a", "m1-b", "bench-carrier"}
    for name, keys in endpoints:
        assert keys.get("transport") == "transport-udp", name
        # a media_address bound instead would need cluster.sh to re-address it per node too
        assert keys.get("bind_rtp_to_media_address", "no") == "no", name
