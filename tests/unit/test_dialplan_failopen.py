"""The dialplan's own decisions (asterisk_conf/extensions_callguard.conf) read and walked here,
for what it sends to the carrier when no service decides: [cg-fallback-outbound] with the
FastAGI fallback unreachable (CG_NEXT unset; the real thing is
tests/e2e/test_failopen_logged.py), and the emergency shortcut [cg-emergency] (REL-6; the real
thing is tests/e2e/test_failsafe.py).

The walker knows only the applications those priorities use; anything else fails the test,
so a change to the context is looked at again here."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from callguard.config import PROJECT_ROOT

CONF = PROJECT_ROOT / "asterisk_conf" / "extensions_callguard.conf"
_PRIORITY = re.compile(r"^(?:exten => ([^,]+),1|same => n(?:\(([A-Za-z0-9_-]+)\))?),(.*)$")


def context(name: str) -> dict[str, list[tuple[str | None, str]]]:
    """{extension: [(label, application(args)), ...]} of one context."""
    found: dict[str, list[tuple[str | None, str]]] = {}
    current: str | None = None
    exten = ""
    for raw in CONF.read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        if current != name or not line:
            continue
        m = _PRIORITY.match(line)
        assert m is not None, line
        if m.group(1) is not None:
            exten = m.group(1)
            found[exten] = []
        found[exten].append((m.group(2), m.group(3)))
    return found


@dataclass
class Outcome:
    dialed: str | None = None  # what Dial() sent to the carrier
    refused: tuple[str, str] | None = None  # cg-refuse's (prompt, cause)
    hangup: str | None = None
    warnings: tuple[str, ...] = ()


def fail_open(exten: str) -> Outcome:
    """Walk [cg-fallback-outbound] for a dialed `exten` with the FastAGI server down."""
    steps = context("cg-fallback-outbound")["_s-."]
    labels = {label: i for i, (label, _) in enumerate(steps) if label}
    variables = {"EXTEN": f"s-{exten}", "CG_NEXT": ""}
    warnings: list[str] = []
    i = 0
    while i < len(steps):
        app = steps[i][1]
        i += 1
        if app.startswith(("Set(TIMEOUT(absolute)", "AGI(", "Set(CALLERID(all)")):
            continue
        if app.startswith("Log(WARNING,"):
            warnings.append(app)
            continue
        if app == 'GotoIf($["${CG_NEXT}" != ""]?${CG_NEXT},s,1)':
            assert variables["CG_NEXT"] == ""
            continue
        if app == "Set(CG_DIGITS=${FILTER(0123456789,${EXTEN:2})})":
            variables["CG_DIGITS"] = re.sub(r"[^0-9]", "", variables["EXTEN"][2:])
            continue
        if m := re.fullmatch(r'GotoIf\(\$\{REGEX\("([^"]+)" \$\{CG_DIGITS\}\)\}\?(\w+)\)', app):
            if re.search(m.group(1), variables["CG_DIGITS"]):
                i = labels[m.group(2)]
            continue
        if app.startswith("Set(CG_CID=${DB(callguard_cid/"):
            variables["CG_CID"] = "0312345678"
            continue
        if app == 'GotoIf($["${CG_CID}" = ""]?unknown)':
            continue
        if m := re.fullmatch(r"Set\((CG_PROMPT|CG_CAUSE)=(\w+)\)", app):
            variables[m.group(1)] = m.group(2)
            continue
        if app == "Dial(PJSIP/${CG_DIGITS}@carrier,120)":
            return Outcome(dialed=variables["CG_DIGITS"], warnings=tuple(warnings))
        if app == "Goto(cg-refuse,s,1)":
            return Outcome(refused=(variables["CG_PROMPT"], variables["CG_CAUSE"]),
                           warnings=tuple(warnings))
        if m := re.fullmatch(r"Hangup\((\d+)\)", app):
            return Outcome(hangup=m.group(1), warnings=tuple(warnings))
        raise AssertionError(f"the walker does not know {app!r}: look at this test again")
    raise AssertionError("fell off the end of the context")


def test_an_ordinary_call_fails_open() -> None:
    """REL-1: unscreened and unrecorded but never dropped (the digits Dial can send)."""
    out = fail_open("0612345678")
    assert out.dialed == "0612345678"
    assert any("- failing open" in w for w in out.warnings)


@pytest.mark.parametrize("dialed", ["0077270612345678", "1840077270612345678",
                                    "#0077270612345678"])
def test_a_prefixed_call_never_fails_open(dialed: str) -> None:  # REC-OUT-1/2
    assert fail_open(dialed).refused == ("congestion", "34")


@pytest.mark.parametrize("dialed", ["144", "*144", "144#", "#144", "*144#", "184144",
                                    "186144"])
def test_144_never_reaches_the_carrier(dialed: str) -> None:
    """NCR-*, REL-7: 144 is the menu's; with the menu out of reach (both apps down, the
    FastAGI connection lost mid-menu) the caller hears the congestion prompt (cause 34), and
    the carrier never gets the service code. Not counted as failing open (callguard.failopen)."""
    out = fail_open(dialed)
    assert out.dialed is None
    assert out.refused == ("congestion", "34")
    assert not any("- failing open" in w for w in out.warnings)
    assert any("144 refused" in w for w in out.warnings)


@pytest.mark.parametrize("dialed", ["1440", "0144", "14", "1144", "0312341440"])
def test_numbers_that_only_contain_144_still_fail_open(dialed: str) -> None:
    assert fail_open(dialed).dialed == dialed


def pattern(exten: str) -> re.Pattern[str]:
    """An Asterisk extension pattern (`_11[089]`) as a regex; an exact name as itself."""
    if not exten.startswith("_"):
        return re.compile(re.escape(exten))
    table = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}
    out, rest = "", exten[1:]
    while rest:
        if rest[0] == "[":
            end = rest.index("]")
            out, rest = out + rest[: end + 1], rest[end + 1:]
        else:
            out, rest = out + table.get(rest[0], re.escape(rest[0])), rest[1:]
    return re.compile(out)


@dataclass
class Emergency:
    dialed: str  # what Dial() sent to the carrier
    withheld: bool  # CALLERID(pres)=prohib before the Dial
    notice: str


def emergency(exten: str) -> Emergency:
    """[from-customer] for `exten`: it must be an exact extension (before every pattern, so
    before Stasis) going to [cg-emergency]; that context walked to its Dial."""
    entry = context("from-customer").get(exten)
    assert entry == [(None, "Goto(cg-emergency,${EXTEN},1)")], (exten, entry)
    ctx = context("cg-emergency")
    variables = {"EXTEN": exten, "CG_PRIVACY_CODE": ""}
    withheld, notice = False, ""
    steps = [app for name, steps in ctx.items() if pattern(name).fullmatch(exten)
             for _, app in steps]
    for _ in range(20):
        app = steps.pop(0)
        if app == "Set(CG_PRIVACY_CODE=${EXTEN:0:3})":
            variables["CG_PRIVACY_CODE"] = variables["EXTEN"][:3]
        elif app == "Goto(${EXTEN:3},1)":
            variables["EXTEN"] = variables["EXTEN"][3:]
            steps = [app for name, steps in ctx.items()
                     if pattern(name).fullmatch(variables["EXTEN"]) for _, app in steps]
        elif app.startswith("Log(NOTICE,"):
            notice = app.replace("${CG_PRIVACY_CODE}", variables["CG_PRIVACY_CODE"]).replace(
                "${EXTEN}", variables["EXTEN"])
        elif app.startswith(("Set(CG_CID=", 'ExecIf($["${CG_CID}" = ""]',
                             "Set(CALLERID(all)=<${CG_CID}>)")):
            continue
        elif app == 'ExecIf($["${CG_PRIVACY_CODE}" = "184"]?Set(CALLERID(pres)=prohib))':
            withheld = variables["CG_PRIVACY_CODE"] == "184"
        elif app == "Dial(PJSIP/${EXTEN}@carrier,120)":
            return Emergency(variables["EXTEN"], withheld, notice)
        else:
            raise AssertionError(f"the walker does not know {app!r}: look at this test again")
    raise AssertionError("no Dial")


@pytest.mark.parametrize(("dialed", "number", "withheld"), [
    ("110", "110", False), ("118", "118", False), ("119", "119", False),
    ("184110", "110", True), ("184118", "118", True), ("184119", "119", True),
    ("186110", "110", False), ("186118", "118", False), ("186119", "119", False),
])
def test_emergency_calls_go_straight_to_the_carrier(dialed: str, number: str,
                                                    withheld: bool) -> None:
    """REL-6: 110/118/119, also behind 184/186, never enter Stasis: the carrier gets the
    emergency number itself, withheld after 184 as the apps present any 184 call
    (test_routing.py::test_emergency_behind_184_186_connects_as_the_dialplan_does)."""
    out = emergency(dialed)
    assert (out.dialed, out.withheld) == (number, withheld)
    assert f"emergency call {dialed} from" in out.notice
