"""SEC-4: recording paths handed in from outside stay inside the recordings root."""

from __future__ import annotations

from pathlib import Path

import pytest

from callguard.recording_files import OutsideRecordings, confined


def test_paths_inside_the_root_are_kept(tmp_path: Path) -> None:
    assert confined(tmp_path, "2026/12/02/F1/a.wav") == tmp_path.resolve() / "2026/12/02/F1/a.wav"
    assert confined(tmp_path, "2026/../2027/a.wav") == tmp_path.resolve() / "2027/a.wav"


@pytest.mark.parametrize("rel", ["../x.wav", "../../etc/passwd", "/etc/passwd", "/tmp/a.wav",
                                 "", ".", "a/../../b.wav", "a.wav\0.txt", "2026/a.txt"])
def test_escapes_are_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(OutsideRecordings):
        confined(tmp_path / "rec", rel)


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(OutsideRecordings):
        confined(root, "link/x.wav")
