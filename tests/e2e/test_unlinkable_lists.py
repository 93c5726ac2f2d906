"""SEC-3: on a contract with both services (F1: recording and nuisance rejection), a number
put on the list by 144 then 2 cannot be recovered by joining tables: the call log holds each
call's caller key sealed with a secret outside the database (a different value per call), so
no SQL over a full dump links a list entry to a call, its recording or the caller's number.
The call log is purged with the recording retention."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sqlalchemy import Engine, text

from callguard.config import Settings
from callguard.domain.privacy import caller_key
from tests.e2e.conftest import AppLog
from tests.e2e.rec_helpers import CLI, F1A, inbound, recordings
from tests.e2e.sipp import dtmf
from tests.e2e.test_nuisance import dial_144, keys, list_id

NUMBER = "0399996666"


def test_list_entry_not_linkable_to_recording(clean: Engine, settings: Settings,
                                              work: Path) -> None:
    call = inbound(work / "call", "0312345678", F1A, caller=NUMBER, seconds=1)
    assert call.final_status() == 200
    [rec] = recordings(clean)
    assert rec["remote"] == NUMBER  # recordings show the other party (REC-FILE-1)
    log = AppLog(settings)
    dial_144(work / "144", F1A, dtmf("2"))
    assert log.prompts()[-1] == "registered", log.prompts()
    lid = list_id(clean, "0312345678")
    [entry] = keys(clean, lid)
    assert entry == caller_key(settings.hmac_key, NUMBER)  # the right caller was listed

    with clean.connect() as c:
        linked = c.execute(text(
            "SELECT r.remote FROM nuisance_entries e"
            " JOIN inbound_calls i ON i.caller_key = e.caller_key"
            " JOIN recordings r ON r.channel_id = i.channel_id")).all()
        call_keys = c.execute(text("SELECT caller_key FROM inbound_calls")).scalars().all()
    assert linked == []
    assert call_keys and entry not in call_keys
    # Nothing anywhere in a full dump equals the entry's key but the entry itself.
    dump = subprocess.run(["pg_dump", "--data-only", settings.database_url],
                          capture_output=True, text=True, check=True).stdout
    assert dump.count(entry) == 1
    for sealed in call_keys:
        assert dump.count(sealed) == 1


def test_call_log_purged_with_recording_retention(clean: Engine, settings: Settings) -> None:
    with clean.begin() as c:
        c.execute(text(
            "INSERT INTO inbound_calls (channel_id, list_id, number_id, caller_key, rejected,"
            " started_at, ended_at) SELECT 'old-call', :l, id, NULL, false,"
            " now() - interval '20 years', now() - interval '20 years' FROM numbers"
            " WHERE number = '0312345678'"), {"l": list_id(clean, "0312345678")})
        c.execute(text(
            "INSERT INTO inbound_calls (channel_id, list_id, number_id, caller_key, rejected,"
            " started_at, ended_at) SELECT 'new-call', :l, id, NULL, false, now(), now()"
            " FROM numbers WHERE number = '0312345678'"), {"l": list_id(clean, "0312345678")})
    subprocess.run([CLI, "recordings", "purge"], check=True, capture_output=True)
    with clean.connect() as c:
        left = c.execute(text("SELECT channel_id FROM inbound_calls")).scalars().all()
    assert left == ["new-call"]
