"""`callguard status`: what runs where, and whether each part answers (RUN-3)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text

from callguard.asterisk.ari import AriReader, AsteriskUnavailable
from callguard.cli._common import db_session, print_json
from callguard.config import PROJECT_ROOT, Settings, load_settings
from callguard.failopen import count_since_start


def _pid_alive(name: str) -> int | None:
    path = PROJECT_ROOT / ".run" / f"{name}.pid"
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _ari_info(settings: Settings) -> dict[str, Any] | None:
    try:
        return AriReader(settings, timeout_s=2).info()
    except AsteriskUnavailable:
        return None


def _status(args: argparse.Namespace) -> int:
    s = load_settings()
    info = _ari_info(s)
    try:
        with db_session(s) as session:
            db_ok = session.execute(text("SELECT 1")).scalar() == 1
    except Exception:
        db_ok = False
    report: dict[str, Any] = {
        "asterisk": {
            "version": (info or {}).get("system", {}).get("version"),
            "sip": "udp 127.0.0.1:5060",
            "ari": f"{s.ari_url}/ari (user {s.ari_user}, password in .run/secrets/ari.password)",
            "root": s.asterisk_root or "(system Asterisk)",
            "log": f"{s.asterisk_root}/var/log/asterisk/messages.log",
        },
        "database": {"url": s.database_url, "reachable": db_ok},
        "ari_app": {"pid": _pid_alive("ari"), "log": str(s.log_dir / "ari.log")},
        "fastagi": {
            "pid": _pid_alive("fastagi"),
            "listen": f"{s.fastagi_host}:{s.fastagi_port}",
            "log": str(s.log_dir / "fastagi.log"),
        },
        "api": {"pid": _pid_alive("api"), "url": f"http://{s.api_host}:{s.api_port}",
                "token": ".run/secrets/api.token", "log": str(s.log_dir / "api.log")},
        "recordings": str(s.recordings_dir),
        # Calls that took a fallback or fail-open branch since Asterisk started (WARNINGs).
        "fail_open": count_since_start(
            Path(f"{s.asterisk_root}/var/log/asterisk/messages.log")),
    }
    if args.json:
        print_json(report)
    else:
        a = report["asterisk"]
        print(f"Asterisk   {a['version'] or 'NOT ANSWERING'}  SIP {a['sip']}  ARI {s.ari_url}")
        print(f"Database   {s.database_url}  {'up' if db_ok else 'DOWN'}")
        print(f"ARI app    pid {report['ari_app']['pid'] or '-'}  log {s.log_dir / 'ari.log'}")
        fastagi = report["fastagi"]
        print(f"FastAGI    pid {fastagi['pid'] or '-'}  {fastagi['listen']}")
        print(f"HTTP API   pid {report['api']['pid'] or '-'}  http://{s.api_host}:{s.api_port}"
              "  (token in .run/secrets/api.token; recordings page /ui)")
        print(f"Recordings {s.recordings_dir}")
        print(f"Logs       {a['log']}  {s.log_dir}/")
        fo = report["fail_open"]
        if fo is not None:
            print(f"Fail-open  {fo['fallback']} call(s) to the FastAGI fallback, "
                  f"{fo['failed_open']} failed open unscreened, since Asterisk started "
                  "(WARNING lines in messages.log)")
        print()
        print("First call: the carrier (127.0.0.2) calls 0312345678, ringing f1-a at 127.0.1.1:")
        print("  sipp -sn uas -i 127.0.1.1 -p 5060 -m 1 &")
        print("  sipp -sn uac -i 127.0.0.2 -p 5060 -s 0312345678 -m 1 127.0.0.1:5060")
    healthy = info is not None and db_ok and report["ari_app"]["pid"] is not None
    return 0 if healthy else 1


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="state of Asterisk, the database and the services")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_status)


