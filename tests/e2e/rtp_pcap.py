"""Write pcap files of G.711 RTP audio (a tone) for sipp's play_pcap_audio, so calls in tests
carry real audio of any length in both directions."""

from __future__ import annotations

import math
import struct
from pathlib import Path

_SEG_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _alaw(sample: int) -> int:
    """Linear 16-bit → G.711 A-law byte (the classic g711.c algorithm)."""
    pcm = sample >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = next((i for i, end in enumerate(_SEG_END) if pcm <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return aval ^ mask


def tone_pcap(path: Path, seconds: float, freq: float = 440.0, amplitude: int = 8000) -> Path:
    """20 ms PCMA (payload type 8) packets, 127.0.0.1:4000 → 127.0.0.1:6000 (sipp rewrites)."""
    if path.exists():
        return path
    packets = int(seconds * 50)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n in range(packets):
        payload = bytes(
            _alaw(int(amplitude * math.sin(2 * math.pi * freq * (n * 160 + i) / 8000)))
            for i in range(160)
        )
        rtp = struct.pack("!BBHII", 0x80, 8, n & 0xFFFF, (n * 160) & 0xFFFFFFFF, 0x1234) + payload
        udp = struct.pack("!HHHH", 4000, 6000, 8 + len(rtp), 0) + rtp
        ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17,
                                0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        frame = b"\x00" * 12 + b"\x08\x00" + ip_header + udp
        t = n * 0.02
        out += struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path
