"""SEC-4 / SEC-1: the bench's trusted carrier endpoint (`bench-carrier`, trust_id_inbound=yes)
and its baseline dialplan are not part of the production configuration: `make run` installs
neither; `make bench` adds them (tools/stack.sh bench-install)."""

from __future__ import annotations

import subprocess

from callguard.config import PROJECT_ROOT, Settings

STACK = str(PROJECT_ROOT / "tools" / "stack.sh")


def ast(cmd: str) -> str:
    return subprocess.run([STACK, "ast", "-rx", cmd], capture_output=True, text=True,
                          check=False).stdout


def test_bench_endpoint_only_after_make_bench(stack: Settings) -> None:
    try:
        subprocess.run([STACK, "asterisk-install"], check=True)  # what `make run` installs
        ast("module reload res_pjsip.so")
        ast("dialplan reload")
        assert "Unable to find" in ast("pjsip show endpoint bench-carrier")
        assert "There is no existence" in ast("dialplan show bench-baseline")
        subprocess.run([STACK, "bench-install"], check=True)
        assert "Unable to find" not in ast("pjsip show endpoint bench-carrier")
        assert "There is no existence" not in ast("dialplan show bench-baseline")
    finally:
        subprocess.run([STACK, "asterisk-install"], check=True)
        ast("module reload res_pjsip.so")
        ast("dialplan reload")
    assert "Unable to find" in ast("pjsip show endpoint bench-carrier")
