"""PERF-4: the bench's callers send their audio with sipp's rtp_stream (ordinary UDP socket),
not play_pcap_audio (a raw socket per call that the kernel feeds every packet to the caller's
address, on the sending CPU: the stack's core). The bare A-law file must be the same tone the
pcap carries, 160 bytes per 20 ms."""

from __future__ import annotations

import struct
from pathlib import Path

from bench import sipp
from tests.e2e.rtp_pcap import tone_alaw, tone_pcap


def _pcap_payloads(path: Path) -> bytes:
    data = path.read_bytes()[24:]
    out = bytearray()
    while data:
        _s, _us, incl, _orig = struct.unpack("<IIII", data[:16])
        frame, data = data[16:16 + incl], data[16 + incl:]
        out += frame[14 + 20 + 8 + 12:]  # ethernet, IPv4, UDP, RTP headers
    return bytes(out)


def test_alaw_file_is_the_pcap_tone(tmp_path: Path) -> None:
    raw = tone_alaw(tmp_path / "t.al", 1.5).read_bytes()
    assert len(raw) == 75 * 160
    assert raw == _pcap_payloads(tone_pcap(tmp_path / "t.pcap", 1.5))
    assert len(set(raw)) > 20  # a tone, not silence


def test_uac_streams_audio_without_raw_sockets(tmp_path: Path) -> None:
    audio = tone_alaw(tmp_path / "hold.al", 0.5)
    xml = sipp.uac_xml(500, audio)
    assert xml.count(f'rtp_stream="{audio},1,8"') == 1  # from the 200 on, PCMA (type 8)
    assert "play_pcap" not in xml
    assert "rtp_stream" not in sipp.uac_xml(500)
