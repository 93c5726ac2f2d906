"""tools/build_asterisk_root.sh's release_target, run alone (tests/shell.py): what debootstrap
left mounted in the target is unmounted, whatever characters the checkout's path holds (RUN-1).
The mount table escapes a space as \\040, a tab \\011, a newline \\012, a backslash \\134."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.shell import PROJECT_ROOT, bash, functions

BUILD_ROOT_SH = PROJECT_ROOT / "tools" / "build_asterisk_root.sh"
RELEASE = functions("release_target", script=BUILD_ROOT_SH)


def escaped(path: str) -> str:
    """A path as the kernel writes it in /proc/self/mounts."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in path)


def test_escaped_mount_points_are_decoded_and_the_deepest_go_first(tmp_path: Path) -> None:
    target = tmp_path / "a dir\twith\\odd\nchars" / "root.partial"
    target.mkdir(parents=True)
    t = str(target)
    table = tmp_path / "mounts"
    table.write_text("".join(f"{kind} {escaped(m)} {kind} rw 0 0\n" for kind, m in [
        ("ext4", "/"), ("proc", f"{t}/proc"), ("tmpfs", f"{t}/sub dir"),
        ("proc", f"{t}/sub dir/proc"), ("proc", f"{t}2/proc"), ("proc", "/proc")]))
    r = bash(RELEASE + f'umount() {{ printf "%s\\0" "$*" >> "{tmp_path}/umounted"; }}\n'
             f'release_target {shlex.quote(t)} "{tmp_path}/mounts"\n')
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "umounted").read_text().split("\0")[:-1] == [
        f"{t}/sub dir/proc", f"{t}/sub dir", f"{t}/proc"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts /proc: root only")
def test_a_real_proc_mount_under_a_path_with_a_space_goes() -> None:
    base = Path(tempfile.mkdtemp(prefix="callguard release "))
    target = base / "root.partial"
    (target / "proc").mkdir(parents=True)
    table = Path("/proc/self/mounts")
    try:
        if subprocess.run(["mount", "-t", "proc", "proc", str(target / "proc")],
                          capture_output=True, check=False).returncode != 0:
            pytest.skip("mount -t proc not allowed here")
        assert escaped(str(target / "proc")) in table.read_text()
        r = bash(RELEASE + f'release_target {shlex.quote(str(target))}\n')
        assert r.returncode == 0, r.stderr
        assert escaped(str(base)) not in table.read_text()
    finally:
        while escaped(str(target / "proc")) in table.read_text():
            subprocess.run(["umount", "-l", str(target / "proc")], check=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=True)
