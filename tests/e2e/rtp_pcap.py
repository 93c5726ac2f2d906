"""Write pcap files of G.711 RTP audio (a tone) for sipp's play_pcap_audio, and the same tone
as bare A-law for its rtp_stream, so calls in tests carry real audio of any length in both
directions."""

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


def _tone_packet(n: int, freq: float, amplitude: int) -> bytes:
    """The n-th 20 ms of the tone: 160 A-law samples."""
    return bytes(_alaw(int(amplitude * math.sin(2 * math.pi * freq * (n * 160 + i) / 8000)))
                 for i in range(160))


def tone_alaw(path: Path, seconds: float, freq: float = 440.0, amplitude: int = 8000) -> Path:
    """The same tone as bare A-law samples, for sipp's rtp_stream (it sends the file's bytes
    as they are, 160 per 20 ms packet, from its ordinary media socket)."""
    if path.exists():
        return path
    path.write_bytes(b"".join(_tone_packet(n, freq, amplitude) for n in range(int(seconds * 50))))
    return path


def tone_pcap(path: Path, seconds: float, freq: float = 440.0, amplitude: int = 8000) -> Path:
    """20 ms PCMA (payload type 8) packets, 127.0.0.1:4000 → 127.0.0.1:6000 (sipp rewrites)."""
    if path.exists():
        return path
    packets = int(seconds * 50)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for n in range(packets):
        payload = _tone_packet(n, freq, amplitude)
        rtp = struct.pack("!BBHII", 0x80, 8, n & 0xFFFF, (n * 160) & 0xFFFFFFFF, 0x1234) + payload
        udp = struct.pack("!HHHH", 4000, 6000, 8 + len(rtp), 0) + rtp
        ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17,
                                0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        frame = b"\x00" * 12 + b"\x08\x00" + ip_header + udp
        t = n * 0.02
        out += struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path


_DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def dtmf_pcap(path: Path, digit: str, timestamp: int, seq: int, ssrc: int = 0x1234) -> Path:
    """One RFC 4733 telephone-event (payload type 101) as a phone sends it: 160 ms of updates
    every 20 ms, then the end packet three times.

    Each digit of a call needs its own, increasing RTP timestamp: Asterisk treats an event
    whose timestamp is not after the last one's as a repeat and drops it. sipp's own
    dtmf_2833_*.pcap files each carry a fixed timestamp (digit 0 lower than digit 2, a repeated
    digit the same), so a second digit in one call can vanish."""
    event = _DTMF_EVENTS[digit]
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    packets: list[tuple[bool, bool, int]] = [(n == 0, False, n * 160) for n in range(8)]
    packets += [(False, True, 8 * 160)] * 3
    for n, (marker, end, duration) in enumerate(packets):
        payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        rtp = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 101, (seq + n) & 0xFFFF,
                          timestamp & 0xFFFFFFFF, ssrc) + payload
        udp = struct.pack("!HHHH", 4000, 6000, 8 + len(rtp), 0) + rtp
        ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17,
                                0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        frame = b"\x00" * 12 + b"\x08\x00" + ip_header + udp
        t = min(n, 8) * 0.02
        out += struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path
