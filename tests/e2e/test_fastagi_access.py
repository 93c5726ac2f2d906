"""SEC-4: the FastAGI server answers only Asterisk (loopback + the secret generated at the
first run, agi://127.0.0.1:4573/<secret>/<script>) and confines every recording path it is
handed to the recordings root. Forged sessions get nothing: no decision, no row, no file
touched."""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from pathlib import Path

from sqlalchemy import Engine, text

from callguard.callflow import FOLLOW_RECORDING
from callguard.config import Settings
from tests.e2e.conftest import AppLog

EMPTY_HEADER = (b"RIFF" + (0).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                + bytes.fromhex("01000100401f0000803e00000200100064617461") + bytes(4))


def asterisk_answer(command: str, variables: dict[str, str]) -> str:
    """What Asterisk answers: a variable's value, or each `${BASE64_ENCODE(x${X})}` of a
    GET FULL VARIABLE, comma-joined (unset variables read empty)."""
    if command.startswith("GET VARIABLE "):
        value = variables.get(command.split(" ", 2)[2].strip('"'))
        return f"200 result=1 ({value})" if value is not None else "200 result=0"
    if command.startswith("GET FULL VARIABLE "):
        names = re.findall(r"\$\{BASE64_ENCODE\(x\$\{(\w+)\}\)\}", command)
        encoded = (base64.b64encode(f"x{variables.get(n, '')}".encode()).decode()
                   for n in names)
        return f"200 result=1 ({','.join(encoded)})"
    return "200 result=0"


def agi_session(settings: Settings, script: str, channel_id: str,
                variables: dict[str, str], extension: str = "s") -> list[str]:
    """Play Asterisk's side of a FastAGI session; return the commands the server sent."""
    env = {
        "agi_network": "yes", "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:{settings.fastagi_port}/{script}",
        "agi_channel": f"PJSIP/forged-{channel_id}", "agi_uniqueid": channel_id,
        "agi_callerid": "0399990077", "agi_calleridname": "forged", "agi_extension": extension,
        "agi_context": "from-carrier", "agi_priority": "1", "agi_language": "ja",
    }
    commands: list[str] = []
    with socket.create_connection(("127.0.0.1", settings.fastagi_port), timeout=10) as sock:
        sock.sendall("".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n")
        buf = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                cmd = line.decode().strip()
                commands.append(cmd)
                answer = asterisk_answer(cmd, variables)
                sock.sendall(answer.encode() + b"\n")
    return commands


def test_session_without_the_secret_is_refused(clean: Engine, settings: Settings) -> None:
    """A local process speaking FastAGI without the secret (or with a wrong one) gets no
    command and writes no row; the refusal is logged at WARNING."""
    log = AppLog(settings, "fastagi.log")
    for n, script in enumerate(("inbound", "wrong-secret/inbound", "/inbound")):
        sent = agi_session(settings, script, f"forged-in-{n}", {}, extension="0612345679")
        assert sent == [], (script, sent)
    with clean.connect() as conn:
        rows = conn.execute(text("SELECT channel_id FROM inbound_calls")).all()
    assert rows == []
    refused = [r for r in log.records() if "refused" in r["msg"]]
    assert len(refused) == 3 and all(r["level"] == "warning" for r in refused)


def test_recording_path_outside_the_root_is_refused(clean: Engine, settings: Settings,
                                                    work: Path) -> None:
    """With the secret, an `ended` session naming a recording outside the root (`../`, an
    absolute path) gets an error: the file is neither read nor header-repaired."""
    victim = work / "victim.wav"
    victim.write_bytes(EMPTY_HEADER + bytes(8000))  # an "unclosed" WAV the repair would fix
    before = (victim.read_bytes(), victim.stat().st_mtime_ns)
    root = settings.recordings_asterisk_dir.rstrip("/")
    escape = os.path.relpath(victim, settings.recordings_dir.resolve())
    assert escape.startswith("..")
    log = AppLog(settings, "fastagi.log")
    for n, rec_file in enumerate((f"{root}/{escape}", str(victim), f"{root}/2026/../../x")):
        sent = agi_session(settings, f"{settings.agi_secret}/ended", f"forged-rec-{n}",
                           {"CG_FOLLOW": FOLLOW_RECORDING, "CG_REC_FILE": rec_file})
        assert any("CG_REC_FILE" in c for c in sent)  # the secret was accepted
    time.sleep(1.0)  # a finishing thread would have repaired the header by now
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before
    refused = [r for r in log.records() if r["msg"].startswith("recording path refused")]
    assert len(refused) == 3 and all(r["level"] == "warning" for r in refused)
