"""Issue 19, item 9 (and SEC-4): a checkout in a 0700 directory — as `git clone` into /root
gives — runs. tools/clone_check.sh clones this commit into a fresh 0700 temp dir, reuses the
built Asterisk root and virtualenvs (hard links; no network in a namespace), and in a network
namespace of its own runs `make run`, places the README's first call with sipp and runs
`make down`; the clone and its state dir are removed afterwards. On a stack that keeps the
PostgreSQL data dir (and the services' state) inside the checkout, `make run` fails there
(`initdb: could not access directory ".run/pg/data": Permission denied`).

The clone's callguard.local.env moves Asterisk's ports off their defaults (ARI 8188, AMI 5138,
FastAGI 4673), as on a host where another program holds 8088, 5038 or 4573 (RUN-4): its `make
run` (which waits for the ARI app's websocket) and its first call prove the installed Asterisk
configuration and the services' .run/callguard.env moved together.

It tests the committed HEAD (a clone), not uncommitted edits. ~2–3 min on the 2-core machine.
"""

from __future__ import annotations

import pwd
import subprocess

from callguard.config import PROJECT_ROOT


def test_make_run_and_first_call_from_a_0700_clone(figures: dict[str, object]) -> None:
    done = subprocess.run([str(PROJECT_ROOT / "tools" / "clone_check.sh")], capture_output=True,
                          text=True, timeout=900, check=False)
    out = dict(line.split("=", 1) for line in done.stdout.splitlines()
               if "=" in line and line.split("=", 1)[0].isupper())
    report = done.stdout[-3000:] + done.stderr[-2000:]
    assert out.get("CLONE", "").startswith("/tmp/cg-clone."), report
    assert out.get("STATE", "").startswith("/var/lib/callguard/callguard-"), report
    assert out.get("RUN") == "ok", report
    assert out.get("CALL") == "ok" and out.get("ANSWERED") == "ok", report
    assert out.get("DOWN") == "ok", report
    # The moved ports: Asterisk's HTTP/ARI and the FastAGI fallback there, on loopback only,
    # nothing on the defaults (the AMI stays off until a recording pause needs it); the
    # dialplan calls the fallback on its moved port.
    listen = out.get("LISTEN", "").split()
    assert "127.0.0.1:8188" in listen and "127.0.0.1:4673" in listen, report
    assert not [a for a in listen if a.rsplit(":", 1)[-1] in ("8088", "5038", "4573")], report
    assert out.get("AGI_PORT") == "ok", report
    assert done.returncode == 0, report
    # The clone's Asterisk and services ran as their own accounts, not root, not postgres.
    ast, svc = pwd.getpwnam("callguard-ast").pw_uid, pwd.getpwnam("callguard").pw_uid
    assert int(out["ASTERISK_UID"]) == ast
    assert [int(out[f"{n}_UID"]) for n in ("ARI", "FASTAGI", "API")] == [svc, svc, svc]
    assert 0 not in (ast, svc) and pwd.getpwnam("postgres").pw_uid not in (ast, svc)
    figures.update(prepare_s=round(float(out["PREPARE_S"]), 1),
                   make_run_s=round(float(out["RUN_S"]), 1),
                   total_s=round(float(out["TOTAL_S"]), 1))
