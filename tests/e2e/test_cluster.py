"""More than one node (issue 12, CLU-1..3) over real SIP: Kamailio on 127.0.0.1:5060 in front of
two Asterisk nodes (127.0.0.11, 127.0.0.12), each with its own ARI app and FastAGI fallback, one
PostgreSQL. Every call below goes through Kamailio: calls of every kind give the same results as
one node, a 144 registration on one node rejects on the other, a forged X-Src-IP identifies
nobody, a SIGKILLed node costs only its own calls, a drained node costs none.

The module brings the cluster up itself (`tools/cluster.sh up 2`) and puts `make run`'s single
node back afterwards (`tools/cluster.sh restore-single`); `make test` runs it in its own phase
after the single-node tests (marker `cluster`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from callguard.config import PROJECT_ROOT, Settings, load_settings
from callguard.domain.privacy import caller_key
from tests.e2e.conftest import CALL_STATE_TABLES, AppLog
from tests.e2e.rec_helpers import (
    F1A,
    F1B,
    check_file,
    outbound,
    recordings,
    talk_time,
)
from tests.e2e.sipp import (
    CallResult,
    Load,
    LoadResult,
    Phone,
    SipMessage,
    UacSpec,
    audio,
    dtmf,
    parse_message_log,
    tone,
    uac,
)
from tests.e2e.test_nuisance import (
    CLI,
    dial_144,
    fill,
    keys,
    list_id,
    nuisance_call,
    rejected,
)

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

CLUSTER_SH = str(PROJECT_ROOT / "tools" / "cluster.sh")
RUN = PROJECT_ROOT / ".run"
NODE_IP = {1: "127.0.0.11", 2: "127.0.0.12"}


def node_settings(n: int) -> Settings:
    return load_settings(RUN / "nodes" / f"n{n}" / "callguard.env")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "cluster", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def dispatcher_flags() -> dict[int, str]:
    out = subprocess.run([CLUSTER_SH, "kamcmd", "dispatcher.list"], capture_output=True,
                         text=True, check=True).stdout
    flags: dict[int, str] = {}
    uri = ""
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("URI:"):
            uri = line.split()[1]
        elif line.startswith("FLAGS:"):
            for n, ip in NODE_IP.items():
                if uri == f"sip:{ip}:5060":
                    flags[n] = line.split()[1]
    return flags


def wait_active(timeout_s: float = 30) -> None:
    """Until Kamailio's probes see both nodes active again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(f.startswith("A") for f in dispatcher_flags().values()) and \
                len(dispatcher_flags()) == 2:
            return
        time.sleep(0.2)
    raise AssertionError(f"nodes not active: {dispatcher_flags()}")


@pytest.fixture(scope="module")
def cluster(engine: Engine) -> Iterator[None]:
    up = subprocess.run([CLUSTER_SH, "up", "2"], capture_output=True, text=True, timeout=300,
                        check=False)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        wait_active()
        yield
    finally:
        down = subprocess.run([CLUSTER_SH, "restore-single"], capture_output=True, text=True,
                              timeout=300, check=False)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture
def cclean(engine: Engine, cluster: None, settings: Settings) -> Iterator[Engine]:
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(CALL_STATE_TABLES)}"))
    for wav in settings.recordings_dir.rglob("*.wav"):
        wav.unlink()
    wait_active()
    yield engine
    for n in NODE_IP:  # a test that drained a node gives it back
        cli("undrain", f"n{n}")


def node_of(msg: SipMessage | None) -> int:
    """The node that sent this message (its Contact address)."""
    assert msg is not None
    contact = msg.header("Contact") or ""
    hits = [n for n, ip in NODE_IP.items() if f"@{ip}:" in contact or f"sip:{ip}:" in contact]
    assert len(hits) == 1, contact
    return hits[0]


# ---- calls of every kind through Kamailio ---------------------------------------------------

def test_inbound_screened_calls_reach_both_nodes(cclean: Engine, work: Path) -> None:
    """CLU-1, SITE: carrier → 0312345679 (f1-b) through Kamailio, four times: every call
    rings the phone and connects, and the calls are shared between the two nodes."""
    seen = []
    for i in range(4):
        with Phone(F1B, work / f"phone{i}", audio_s=0) as phone:
            call = uac(UacSpec(to="0312345679", from_user="0399990001", steps=[audio(1)]),
                       work / f"carrier{i}")
            phone.wait(10)
        assert call.final_status() == 200, call.statuses()
        invite = phone.result().first(method="INVITE", sent=False)
        seen.append(node_of(invite))
        # The phone sees the node, not the proxy's header.
        assert invite is not None and invite.header("X-Src-IP") is None
    assert sorted(set(seen)) == [1, 2], seen


def test_forged_source_header_identifies_nobody(cclean: Engine, work: Path) -> None:
    """CLU-1, SEC-1: an unknown address claiming to be the carrier with its own X-Src-IP is
    still unknown (Kamailio replaces the header): refused, nothing reaches the phone."""
    with Phone(F1B, work / "phone", timeout_s=8) as phone:
        call = uac(UacSpec(to="0312345679", extra_headers=["X-Src-IP: 127.0.0.2"]),
                   work / "intruder", local_ip="127.0.9.9", timeout_s=10)
    assert call.final_status() in (401, 403, 404), call.statuses()
    assert not phone.rang()


def test_prefix_recorded_outbound_call(cclean: Engine, settings: Settings, work: Path) -> None:
    """CLU-1, REC-OUT-1, REC-FILE-1: f1-a dials 0077-27 + 0612345678 through Kamailio: the
    carrier (127.0.0.3, reached by the node directly) gets 0612345678 from 0312345678; one
    complete recording in the shared store."""
    call, carrier = outbound(work, F1A, "0077270612345678")
    assert call.final_status() == 200, call.statuses()
    invite = carrier.result().first(method="INVITE", sent=False)
    assert invite is not None
    assert invite.first_line.startswith("INVITE sip:0612345678@127.0.0.3")
    assert "<sip:0312345678@" in (invite.header("From") or "")
    assert node_of(invite) in (1, 2)
    [row] = recordings(cclean)
    assert (row["contract"], row["direction"], row["remote"]) == ("F1", "out", "0612345678")
    check_file(settings, row, talk_time(call))


def api_get(settings: Settings, path: str) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://{settings.api_host}:{settings.api_port}/api/v1{path}",
        headers={"Authorization": f"Bearer {settings.api_token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return int(resp.status), bytes(resp.read())


def test_recordings_of_either_node_played_by_every_node(cclean: Engine, settings: Settings,
                                                        work: Path) -> None:
    """CLU-1/3, REC-FILE-1: two inbound recorded calls through Kamailio (round robin: one per
    node), both files complete in the shared store, and each node's API gives both
    recordings' metadata and audio."""
    nodes = []
    for i in range(2):
        with Phone(F1B, work / f"phone{i}", audio_s=4, audio_hz=1000.0) as phone:
            call = uac(UacSpec(to="0312345679", from_user="0399990001",
                               steps=[tone(3, 440.0)]), work / f"carrier{i}")
            phone.wait(10)
        assert call.final_status() == 200, call.statuses()
        nodes.append(node_of(phone.result().first(method="INVITE", sent=False)))
        rows = recordings(cclean)  # ordered by id: this call's is the last
        assert len(rows) == i + 1
        check_file(settings, rows[-1], talk_time(call))
    assert sorted(nodes) == [1, 2], nodes
    rows = recordings(cclean)
    assert len(rows) == 2
    for n in NODE_IP:
        for row in rows:
            status, body = api_get(node_settings(n), f"/recordings/{row['id']}")
            assert status == 200 and json.loads(body)["id"] == row["id"]
            status, audio_bytes = api_get(node_settings(n), f"/recordings/{row['id']}/audio")
            assert status == 200
            assert audio_bytes == (settings.recordings_dir / str(row["path"])).read_bytes()


def test_extension_call(cclean: Engine, work: Path) -> None:
    """CLU-1, REC-OUT-4: f1-a dials 2002 through Kamailio → f1-b rings and connects."""
    with Phone(F1B, work / "callee", audio_s=0) as callee:
        call = uac(UacSpec(to="2002", steps=[audio(1)]), work / "caller", local_ip=F1A)
        callee.wait(10)
    assert call.final_status() == 200, call.statuses()
    assert callee.rang()


# ---- cross-node state (CLU-3) ---------------------------------------------------------------

def only_node(n: int) -> None:
    """Calls go to node n only (the other drained; no call is up, so the drain is instant)."""
    other = 3 - n
    assert cli("undrain", f"n{n}").returncode == 0
    done = cli("drain", f"n{other}", "--timeout", "30")
    assert done.returncode == 0, done.stdout + done.stderr


def test_144_on_node_a_rejects_on_node_b(cclean: Engine, settings: Settings,
                                         work: Path) -> None:
    """CLU-3, NCR-REG-1, NCR-REJ-1: the caller of f1-b's last call is registered by 144 → 2 on
    n1; that caller's next call, taken by n2, is rejected (the phone never rings)."""
    only_node(1)
    nuisance_call(work / "a", "0312345679", F1B)
    log1 = AppLog(node_settings(1))
    menu = dial_144(work / "b", F1B, dtmf("2"))
    assert menu.final_status() == 200 and menu.bye_from_far_end(), menu.statuses()
    assert node_of(menu.first(status=200)) == 1
    assert log1.prompts() == ["menu", "registered"]
    lid = list_id(cclean, "0312345679")
    assert keys(cclean, lid) == [caller_key(settings.hmac_key, "0399997777")]
    only_node(2)
    rejected(work / "c", "0312345679", F1B)
    answer = parse_message_log(work / "c" / "call" / "messages.log")
    ok = CallResult(0, answer, work / "c").first(status=200)
    assert node_of(ok) == 2


def test_concurrent_144_on_both_nodes_keep_the_bound(cclean: Engine, settings: Settings,
                                                      work: Path) -> None:
    """CLU-3, REL-3: four 144 sessions (round robin: both nodes take some) press 2 at once on
    a list of 29: all hear 「…登録が完了しました。」, the list holds exactly 30, the caller once,
    as the newest."""
    old = [f"old{i:02d}" for i in range(29)]
    lid = list_id(cclean, "0312345679")
    fill(cclean, lid, old)
    nuisance_call(work / "a", "0312345679", F1B)
    logs = [AppLog(node_settings(n)) for n in NODE_IP]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: dial_144(work / f"m{i}", F1B, dtmf("2")), range(4)))
    assert all(r.bye_from_far_end() for r in results)
    assert sorted({node_of(r.first(status=200)) for r in results}) == [1, 2]
    prompts = [p for log in logs for p in log.prompts()]
    assert sorted(prompts) == sorted(["menu"] * 4 + ["registered"] * 4)
    assert keys(cclean, lid) == [*old, caller_key(settings.hmac_key, "0399997777")]


# ---- a node lost, a node drained (CLU-2) ----------------------------------------------------

def invites_by_call(log: Path) -> dict[str, tuple[datetime, int | None]]:
    """Call-ID → (when the caller sent the INVITE, the INVITE's final status)."""
    sent: dict[str, datetime] = {}
    final: dict[str, int] = {}
    for m in parse_message_log(log):
        cid = m.header("Call-ID") or ""
        if m.sent and m.method == "INVITE":
            sent.setdefault(cid, m.at)
        elif not m.sent and m.status is not None and m.status >= 200 \
                and "INVITE" in (m.header("CSeq") or ""):
            final.setdefault(cid, m.status)
    return {cid: (at, final.get(cid)) for cid, at in sent.items()}


def kamailio_cpu_s() -> float:
    """CPU seconds used so far by Kamailio (its main process and children)."""
    main = int((RUN / "cluster" / "kamailio.pid").read_text().strip())
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == main or int(fields[1]) == main:  # fields[1]: the parent's PID
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def test_node_killed_under_load(cclean: Engine, work: Path, figures: dict[str, object]) -> None:
    """CLU-2: n1's Asterisk SIGKILLed at 10 calls/s: only calls live on it are lost; every call
    started 2 s or more after the kill succeeds (Kamailio retries an unanswered INVITE on n2
    after 1 s and its probes mark n1 down)."""
    pidfile = PROJECT_ROOT / ".build" / "asterisk-root" / "run" / "asterisk-n1" / "asterisk.pid"
    try:
        with Phone("127.0.1.4", work / "f2b", audio_s=0, calls=200, timeout_s=90):
            load = Load(UacSpec(to="0612345679", steps=[audio(1)]), work / "load", 10, 200,
                        timeout_s=80)
            time.sleep(6)
            killed_at = datetime.now()
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
            result: LoadResult = load.wait()
        calls = invites_by_call(work / "load" / "messages.log")
        late = {c: v for c, v in calls.items() if v[0] >= killed_at + timedelta(seconds=2)}
        late_failed = [v for v in late.values() if v[1] != 200]
        lost = [v for v in calls.values() if v[1] != 200]
        figures.update(calls=len(calls), lost=len(lost), started_2s_after_kill=len(late),
                       answered=result.answered)
        assert len(calls) >= 150, result
        assert len(late) >= 80, (len(late), result)
        assert late_failed == [], late_failed[:5]
        assert len(lost) <= 40, result  # about the calls up on n1 and those in its last second
        assert dispatcher_flags()[1].startswith("I"), dispatcher_flags()
    finally:
        # n1 back (the cluster is brought up again; the running parts are kept).
        up = subprocess.run([CLUSTER_SH, "up", "2"], capture_output=True, text=True,
                            timeout=300, check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        wait_active()


def test_node_drained_under_load_loses_no_call(cclean: Engine, work: Path,
                                               figures: dict[str, object]) -> None:
    """CLU-2: `callguard cluster drain n2` at 10 calls/s: n2 gets no new call, its calls end,
    the command says it is empty; not one call fails."""
    with Phone("127.0.1.4", work / "f2b", audio_s=0, calls=150, timeout_s=90):
        load = Load(UacSpec(to="0612345679", steps=[audio(1)]), work / "load", 10, 150,
                    timeout_s=80)
        cpu_before = kamailio_cpu_s()
        time.sleep(4)
        started = time.monotonic()
        drained = cli("drain", "n2", "--timeout", "60")
        figures.update(drain_s=round(time.monotonic() - started, 2))
        result = load.wait()
        cpu = kamailio_cpu_s() - cpu_before
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert "n2: empty" in drained.stdout
    assert dispatcher_flags()[2].startswith("D")
    listing = cli("list")
    assert "drained" in listing.stdout, listing.stdout
    figures.update(calls=result.attempted, failed=result.failed,
                   kamailio_cpu_ms_per_call=round(1000 * cpu / max(result.attempted, 1), 2))
    assert result.attempted == 150, result
    assert result.failed == 0, result
