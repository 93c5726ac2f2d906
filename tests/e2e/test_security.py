"""SEC-1 / SEC-2 / NCR-PRIV-1: loopback-only services (RTP during a call included), no
credentials in git, registered numbers never in clear in the database, its dumps or the logs."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings
from callguard.domain.privacy import caller_key, unseal_key
from tests.e2e.sipp import Phone, UacCall, UacSpec, audio, uac
from tests.e2e.test_reliability import rows
from tests.e2e.test_scheduling import asterisk_pid
from tests.waiting import wait_for

OUR_PROCESSES = ("asterisk", "callguard", "postgres")


def test_services_listen_on_loopback_only(stack: Settings) -> None:
    """SEC-2: ARI/HTTP, SIP, FastAGI and the API are bound to 127.0.0.0/8; PostgreSQL has
    no TCP listener at all (unix socket in .run/pg)."""
    out = subprocess.run(["ss", "-ltnupH"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in out.splitlines()
            if any(f'(("{p}' in line for p in OUR_PROCESSES)]
    listening = [line for line in ours if "LISTEN" in line or ":5060 " in line]
    ari_port = urlsplit(stack.ari_url).port or 8088  # CALLGUARD_ARI_PORT (callguard.local.env)
    assert any(f":{ari_port} " in line for line in listening), out
    assert any(":5060 " in line for line in listening), out
    for line in listening:
        local = line.split()[4]
        assert local.startswith("127."), f"not loopback: {line}"
    assert not any("postgres" in line for line in listening), "PostgreSQL listens on TCP"


def _proc_address(hex_addr: str) -> str:
    """/proc/net/udp{,6}'s local address (the kernel's words, each little-endian) as text."""
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    return socket.inet_ntop(socket.AF_INET6,
                            b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def udp_sockets(pid: int) -> dict[int, tuple[str, int]]:
    """Every UDP socket the process holds, IPv4 and IPv6: inode → (local address, port), read
    from /proc without touching them."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    out = {}
    for table in ("udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and int(fields[9]) in inodes:
                addr, port = fields[1].split(":")
                out[int(fields[9])] = (_proc_address(addr), int(port, 16))
    return out


def rtp_range(settings: Settings) -> range:
    conf = Path(f"{settings.asterisk_root}/etc/asterisk/rtp.conf").read_text()
    start = re.search(r"^rtpstart\s*=\s*(\d+)", conf, re.M)
    end = re.search(r"^rtpend\s*=\s*(\d+)", conf, re.M)
    assert start is not None and end is not None, conf
    return range(int(start.group(1)), int(end.group(1)) + 1)


def test_asterisk_udp_on_loopback_only_during_a_call(clean: Engine, stack: Settings,
                                                     work: Path) -> None:
    """SEC-2, SPEC §8 (loopback only): while a call is up, every UDP socket Asterisk holds,
    the call's RTP and RTCP included, is on 127.0.0.0/8. Without a `transport` on the endpoint
    Asterisk binds each call's RTP to 0.0.0.0 (res_pjsip_sdp_rtp.c create_rtp); pjsip.conf
    names transport-udp, whose bind address (127.0.0.1) the RTP then takes.

    Exempt, and only these: pjproject's DNS resolver, one IPv4 socket on 0.0.0.0 and one IPv6
    socket on [::] that res_pjsip opens at its start whenever resolv.conf names a nameserver
    (pjlib-util resolver.c init_sock binds "any address/port", hard-coded; res_pjsip
    config_system.c): no Asterisk or pjproject option moves them. Told apart by all of: held
    before the call, still the same sockets during it, a kernel-chosen port outside rtp.conf's
    range, at most one per address family."""
    pid = asterisk_pid(stack)
    rtp = rtp_range(stack)
    before = udp_sockets(pid)
    with Phone("127.0.1.3", work / "phone") as phone:
        # f2-a (0612345678) answers; the carrier talks for 4 s, then hangs up.
        call = UacCall(UacSpec(to="0612345678", from_user="0399995060", steps=[audio(4)]),
                       work / "carrier")
        try:
            # Both legs up: RTP and RTCP of the carrier's leg and of the phone's.
            assert wait_for(lambda: len(set(udp_sockets(pid)) - set(before)) >= 4, 15), (
                before, udp_sockets(pid))
            during = udp_sockets(pid)
        finally:
            result = call.result()
        phone.wait(10)
    assert result.final_status() == 200, result.statuses()
    assert phone.rang()
    new = {inode: at for inode, at in during.items() if inode not in before}
    assert len(new) >= 4, (before, during)
    resolver: dict[int, list[tuple[str, int]]] = {4: [], 6: []}
    for inode, (addr, port) in sorted(during.items()):
        ip = ipaddress.ip_address(addr)
        if ip.version == 4 and ip in ipaddress.ip_network("127.0.0.0/8"):
            continue
        exempt = (ip.is_unspecified and inode in before and before[inode] == (addr, port)
                  and port not in rtp)
        assert exempt, f"Asterisk holds UDP {addr}:{port}, not loopback: {sorted(during.values())}"
        resolver[ip.version].append((addr, port))
    assert len(resolver[4]) <= 1 and len(resolver[6]) <= 1, resolver
    # The call's own sockets are all on loopback, and in the RTP range.
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") and p in rtp
               for a, p in new.values()), new


def test_no_credentials_in_git(stack: Settings) -> None:
    """SEC-2: the generated secrets, and anything shaped like a password, are not tracked."""
    files = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    secrets = [s.read_text().strip() for s in (PROJECT_ROOT / ".run" / "secrets").iterdir()]
    assert all(len(s) >= 32 for s in secrets)
    assigned = re.compile(r"^\s*(password|secret|token)\s*[=:]\s*\S{6,}", re.I | re.M)
    for name in files:
        path = PROJECT_ROOT / name
        if not path.is_file() or path.suffix in (".wav", ".pcap"):
            continue
        body = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in body, f"a generated secret is committed in {name}"
        if name.startswith("asterisk_conf/"):
            assert not assigned.search(body), f"a credential is set in {name}"
    ignored = subprocess.run(["git", "check-ignore", ".run/secrets/ari.password",
                              "asterisk_conf/ari_users.conf"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, check=False).stdout
    assert ".run/secrets/ari.password" in ignored and "ari_users.conf" in ignored


def test_registered_number_never_in_clear(clean: Engine, settings: Settings,
                                          work: Path) -> None:
    """NCR-PRIV-1: after a caller has called in and been put on a list, and then been
    rejected, its number appears nowhere: not in a full database dump, not in any log."""
    number = "0399994321"
    with Phone("127.0.1.3", work / "f2a", mode="busy"):
        first = uac(UacSpec(to="0612345678", from_user=number), work / "first")
    assert first.final_status() == 486
    # The call's row is written by the app just after the caller's 486.
    assert wait_for(lambda: rows(clean, "SELECT 1 FROM inbound_calls"), 10)
    with clean.begin() as conn:
        list_id = conn.execute(text(
            "SELECT list_id FROM inbound_calls ORDER BY id DESC LIMIT 1")).scalar_one()
        sealed, channel = conn.execute(text(
            "SELECT caller_key, channel_id FROM inbound_calls ORDER BY id DESC LIMIT 1")).one()
        key = unseal_key(settings.hmac_key, channel, sealed)  # the call log seals it (SEC-3)
        assert key == caller_key(settings.hmac_key, number)
        conn.execute(text("INSERT INTO nuisance_entries (list_id, caller_key) VALUES (:l, :k)"),
                     {"l": list_id, "k": key})
    # Calls are decided from memory (REL-5): the entry reaches it by the list's NOTIFY.
    time.sleep(1.0)
    rejected = uac(UacSpec(to="0612345679", from_user=number, hangup=False), work / "again")
    assert rejected.final_status() == 200 and rejected.bye_from_far_end()
    url = settings.database_url
    dump = subprocess.run(["pg_dump", "--data-only", url], capture_output=True, text=True,
                          check=True).stdout
    assert "nuisance_entries" in dump and key in dump
    assert number not in dump
    logs = [settings.log_dir / "ari.log", settings.log_dir / "fastagi.log",
            Path(settings.asterisk_root) / "var/log/asterisk/messages.log"]
    for log in logs:
        if log.exists():
            assert number not in log.read_text(errors="replace"), f"number in {log}"
