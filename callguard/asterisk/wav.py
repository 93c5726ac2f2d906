"""Recording files: WAV header inspection and repair, row values of a settled file."""

from __future__ import annotations

from callguard.recording_files import (
    NotAWav,
    WavInfo,
    header_closed,
    inspect_wav,
    repair_header,
    settled_row_values,
)

__all__ = ["NotAWav", "WavInfo", "header_closed", "inspect_wav", "repair_header",
           "settled_row_values"]
