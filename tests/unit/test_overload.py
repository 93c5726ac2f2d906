"""Load shedding rule of the ARI app (REL-1, PERF-1): pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ari_app.overload import SHED_AFTER_S, event_age_s, should_shed

NOW = datetime(2026, 11, 22, 8, 15, 1, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(("stamp", "age"), [
    ("2026-11-22T08:15:01.000+0000", 0.5),
    ("2026-11-22T17:15:00.500+0900", 1.0),  # another offset, same instant arithmetic
    ("2026-11-22T08:15:02.000+0000", -0.5),  # a stamp ahead of us: not late
])
def test_age_from_asterisk_timestamps(stamp: str, age: float) -> None:
    assert event_age_s(stamp, NOW) == pytest.approx(age)


@pytest.mark.parametrize("stamp", [None, "", 12, "yesterday", "2026-11-22T08:15:01",
                                   "2026-13-40T99:00:00+0000"])
def test_unreadable_or_naive_stamps_never_shed(stamp: object) -> None:
    assert event_age_s(stamp, NOW) is None
    assert not should_shed("inbound", "0312345678", event_age_s(stamp, NOW))


def test_only_late_new_calls_the_fallback_can_finish_are_shed() -> None:
    late, fresh = SHED_AFTER_S + 0.01, SHED_AFTER_S
    assert should_shed("inbound", "0312345678", late)
    assert should_shed("outbound", "0077270612345678", late)
    assert not should_shed("inbound", "0312345678", fresh)
    assert not should_shed("outbound", "144", late)  # the menu needs the app
    assert not should_shed("resumed", "0312345678", late)
    assert not should_shed("", "0312345678", late)
    assert not should_shed("inbound", "0312345678", -(timedelta(seconds=3).total_seconds()))


def test_a_start_after_the_stasis_deadline_is_left_to_the_fallback() -> None:
    """REL-7: past the dialplan's 1 s TIMEOUT(absolute) the PBX has handed the call on."""
    from ari_app.overload import HANDED_ON_AFTER_S, STASIS_DEADLINE_S, handed_on

    assert HANDED_ON_AFTER_S < STASIS_DEADLINE_S
    assert handed_on("inbound", 10.0)
    assert handed_on("outbound", 1.2)  # 144 too: the fallback runs it
    assert not handed_on("inbound", 0.7)  # still in Stasis: shed or screened
    assert not handed_on("resumed", 10.0)
    assert not handed_on("inbound", None)


def test_the_deadline_matches_the_dialplan() -> None:
    from ari_app.overload import STASIS_DEADLINE_S
    from callguard.config import PROJECT_ROOT

    conf = (PROJECT_ROOT / "asterisk_conf" / "extensions_callguard.conf").read_text()
    # Every call's entry into Stasis has the deadline; [cg-ari-ended] (a hangup handler on a
    # channel already gone) needs none.
    stasis_lines = [line for line in conf.splitlines() if "Stasis(${CG_APP}" in line
                    and "Stasis(${CG_APP},ended," not in line]
    deadline = f"Set(TIMEOUT(absolute)={STASIS_DEADLINE_S:g})"
    assert stasis_lines and conf.count(deadline) == len(stasis_lines)


def _extensions(conf: str) -> dict[str, dict[str, list[str]]]:
    """{context: {extension: [application of each priority]}} of a dialplan file."""
    found: dict[str, dict[str, list[str]]] = {}
    context = exten = ""
    for raw in conf.splitlines():
        line = raw.split(";", 1)[0].strip()  # no escaped `\;` in our dialplan
        if line.startswith("[") and line.endswith("]"):
            context = line[1:-1]
            found[context] = {}
        elif line.startswith("exten =>"):
            exten, _, rest = line.removeprefix("exten =>").strip().partition(",")
            found[context][exten] = [rest.partition(",")[2]]
        elif line.startswith("same =>"):
            found[context][exten].append(line.removeprefix("same =>").strip().partition(",")[2])
    return found


def test_every_continue_target_takes_a_late_continue() -> None:
    """REL-7: each context the app continues into has an `e` extension for a continue that
    lands after the deadline (else Asterisk hangs up with no cause: 603 Decline), and a `v`
    extension's fields are assigned there exactly as its priority 1 does."""
    from callguard.config import PROJECT_ROOT
    from callguard.dialplan import ARI_FIELDS

    conf = _extensions((PROJECT_ROOT / "asterisk_conf" / "extensions_callguard.conf").read_text())
    assert conf["cg-late"]["s"][0].startswith(
        'GotoIf($["${EXCEPTION(reason)}" != "ABSOLUTETIMEOUT"]')
    for context, names in ARI_FIELDS.items():
        assert conf[context].get("e") == ["Goto(cg-late,s,1)"], f"[{context}] has no late e"
        if not names:
            continue
        first = conf[context]["_v."][0]
        target = f"ARRAY({','.join(names)})" if len(names) > 1 else names[0]
        assert first == f"Set({target}=${{EXTEN:1}})", context  # the fields, in ARI_FIELDS order
        assert conf[context]["late"] == [f"Set({target}=${{EXCEPTION(extension):1}})",
                                          "Goto(vx,2)"], context
