"""tools/stack.sh's functions run alone, in bash, against temporary directories: their
definitions are taken from the script as written (a one-line `name() { ...; }`, or `name() {`
up to the first `}` at the start of a line), without the script's top level (which would move
the checkout's state, start nothing here but touch .run). What they call and read besides is
the test's to define: stubs and variables that point into tmp_path."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STACK_SH = PROJECT_ROOT / "tools" / "stack.sh"
CLUSTER_SH = PROJECT_ROOT / "tools" / "cluster.sh"


def functions(*names: str, script: Path = STACK_SH, text: str | None = None) -> str:
    """The definitions of `names` in `script` (or in `text`, another version of it)."""
    lines = (script.read_text() if text is None else text).splitlines()
    out: list[str] = []
    for name in names:
        start = re.compile(rf"^{re.escape(name)}\(\) \{{")
        for i, line in enumerate(lines):
            if not start.match(line):
                continue
            if line.rstrip().endswith("}") and not line.rstrip().endswith("{"):
                out.append(line)
            else:
                end = next(j for j in range(i + 1, len(lines)) if lines[j] == "}")
                out.extend(lines[i:end + 1])
            break
        else:
            raise LookupError(f"no function {name}() in {script}")
    return "\n".join(out) + "\n"


def bash(code: str, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`code` in `bash -euo pipefail` (as the script runs), its output captured."""
    return subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=60)
