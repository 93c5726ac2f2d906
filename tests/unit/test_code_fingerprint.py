"""callguard.code_fingerprint: what `make run` compares to restart services whose code changed
(tools/stack.sh apps_start)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from callguard.code_fingerprint import code_files, fingerprint, main
from callguard.config import PROJECT_ROOT


def checkout(tmp_path: Path) -> Path:
    top = tmp_path / "co"
    for rel, body in {"callguard/__init__.py": "", "callguard/a.py": "A = 1\n",
                      "ari_app/main.py": "x\n", "agi_scripts/fastagi.py": "y\n",
                      "pyproject.toml": "[project]\n", "requirements/service.lock": "p==1\n",
                      "tests/test_x.py": "t\n", "README.md": "r\n"}.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(body)
    return top


def test_same_code_same_fingerprint(tmp_path: Path) -> None:
    top = checkout(tmp_path)
    assert fingerprint(top) == fingerprint(top)
    assert len(fingerprint(top)) == 64


def test_bytecode_and_files_outside_the_services_code_do_not_count(tmp_path: Path) -> None:
    top = checkout(tmp_path)
    before = fingerprint(top)
    (top / "callguard/__pycache__").mkdir()
    (top / "callguard/__pycache__/a.cpython-311.pyc").write_bytes(b"\0")
    (top / "callguard/b.pyc").write_bytes(b"\0")
    (top / "tests/test_x.py").write_text("changed\n")
    (top / "README.md").write_text("changed\n")
    (top / ".git").mkdir()
    assert fingerprint(top) == before


def test_an_edit_a_new_file_a_rename_or_a_dependency_changes_it(tmp_path: Path) -> None:
    top = checkout(tmp_path)
    seen = {fingerprint(top)}
    (top / "callguard/a.py").write_text("A = 2\n")
    seen.add(fingerprint(top))
    (top / "ari_app/new.py").write_text("")
    seen.add(fingerprint(top))
    (top / "ari_app/new.py").rename(top / "ari_app/renamed.py")
    seen.add(fingerprint(top))
    (top / "requirements/service.lock").write_text("p==2\n")
    seen.add(fingerprint(top))
    (top / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    seen.add(fingerprint(top))
    assert len(seen) == 6


def test_content_moved_between_files_changes_it(tmp_path: Path) -> None:
    top = checkout(tmp_path)
    (top / "callguard/a.py").write_text("ab")
    (top / "callguard/c.py").write_text("")
    before = fingerprint(top)
    (top / "callguard/a.py").write_text("a")
    (top / "callguard/c.py").write_text("b")
    assert fingerprint(top) != before


def test_lists_the_services_code_and_dependency_files(tmp_path: Path) -> None:
    assert list(code_files(checkout(tmp_path))) == [
        "agi_scripts/fastagi.py", "ari_app/main.py", "callguard/__init__.py", "callguard/a.py",
        "pyproject.toml", "requirements/service.lock"]


def test_command_line_prints_the_digest(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    top = checkout(tmp_path)
    assert main([str(top)]) == 0
    assert capsys.readouterr().out == fingerprint(top) + "\n"
    run = subprocess.run([sys.executable, "-m", "callguard.code_fingerprint", str(top)],
                         capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert run.stdout.strip() == fingerprint(top)
