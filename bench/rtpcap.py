"""When the first RTP packet of a call reached the carrier: a kernel-filtered capture on `lo`
(dumpcap, headers only) of the packets sent to the carrier's media port, indexed by the source
port, which Asterisk allocates per call and announces in its 200's SDP."""

from __future__ import annotations

import bisect
import shutil
import struct
import time
from collections import defaultdict
from pathlib import Path

from bench.procs import Child

_PCAP_MAGIC = {0xA1B2C3D4: ("<", 1e-6), 0xD4C3B2A1: (">", 1e-6),
               0xA1B23C4D: ("<", 1e-9), 0x4D3CB2A1: (">", 1e-9)}


class RtpCapture:
    """Packets to `dst_port` on any of `dst_ips`; start before the calls, `stop()` after."""

    def __init__(self, work: Path, dst_ips: list[str], dst_port: int) -> None:
        dumpcap = shutil.which("dumpcap")
        if dumpcap is None:
            raise RuntimeError("dumpcap is missing (Debian package tshark; `make deps`)")
        work.mkdir(parents=True, exist_ok=True)
        self.path = work / "rtp.pcap"
        hosts = " or ".join(f"dst host {ip}" for ip in dst_ips)
        self.child = Child([dumpcap, "-i", "lo", "-P", "-q", "-s", "64", "-B", "32",
                            "-f", f"udp and dst port {dst_port} and ({hosts})",
                            "-w", str(self.path)], work, work / "dumpcap.out")
        # dumpcap writes the file header once its filter is installed.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.child.alive() and (
                not self.path.exists() or self.path.stat().st_size < 24):
            time.sleep(0.05)
        time.sleep(0.2)

    def stop(self) -> FirstPackets:
        time.sleep(0.2)  # let the last packets be written
        self.child.stop()
        return FirstPackets(self.path)


class FirstPackets:
    """Arrival times of captured packets, per (destination IP, source port)."""

    def __init__(self, path: Path | None) -> None:
        self.times: dict[tuple[str, int], list[float]] = defaultdict(list)
        self.packets = 0
        if path is not None and path.exists():
            self._read(path.read_bytes())
        for stamps in self.times.values():
            stamps.sort()

    def _read(self, data: bytes) -> None:
        if len(data) < 24:
            return
        magic = struct.unpack_from("<I", data, 0)[0]
        if magic not in _PCAP_MAGIC:
            raise ValueError("not a pcap file")
        endian, unit = _PCAP_MAGIC[magic]
        linktype = struct.unpack_from(endian + "I", data, 20)[0]
        link_len = {1: 14, 113: 16, 276: 20}.get(linktype, 14)  # Ethernet (lo), SLL, SLL2
        off = 24
        while off + 16 <= len(data):
            sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
            pkt = data[off + 16: off + 16 + incl]
            off += 16 + incl
            ip = pkt[link_len:]
            if len(ip) < 28 or ip[0] >> 4 != 4:
                continue
            ihl = (ip[0] & 0x0F) * 4
            dst = ".".join(str(b) for b in ip[16:20])
            src_port = struct.unpack_from("!H", ip, ihl)[0]
            self.times[(dst, src_port)].append(sec + frac * unit)
            self.packets += 1

    def first_after(self, dst: str, src_port: int, after: float, within_s: float) -> float | None:
        """The first packet from `src_port` to `dst` in [after, after + within_s]."""
        stamps = self.times.get((dst, src_port))
        if not stamps:
            return None
        i = bisect.bisect_left(stamps, after)
        if i < len(stamps) and stamps[i] <= after + within_s:
            return stamps[i]
        return None
