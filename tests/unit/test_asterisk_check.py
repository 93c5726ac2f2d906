"""`callguard check` (ADM-1): the pure comparison of Asterisk's PJSIP endpoints with the
database, one case per kind of mismatch."""

from __future__ import annotations

from dataclasses import replace

from callguard.asterisk_check import AstEndpoint, DbEndpoint, compare

DB = DbEndpoint("f1-a", "F1", "127.0.1.1", ("0312345678",))
AST = AstEndpoint("f1-a", "online", "from-customer", "0312345678", ("sip:127.0.1.1:5060",),
                  ("127.0.1.1/255.255.255.255",))
CARRIER = AstEndpoint("carrier", "online", "from-carrier", "", ("sip:127.0.0.3:5060",),
                      ("127.0.0.2/255.255.255.255",))


def problems(db: list[DbEndpoint], ast: list[AstEndpoint]) -> list[tuple[str, str]]:
    report = compare(db, {a.name: a for a in ast})
    assert report.ok == (not report.mismatches)
    return [(m.endpoint, m.problem) for m in report.mismatches]


def test_agreement_and_infrastructure_ignored() -> None:
    report = compare([DB], {"f1-a": AST, "carrier": CARRIER})
    assert report.ok and report.checked == 1 and report.ignored == ["carrier"]
    assert report.to_json() == {"ok": True, "checked": 1, "mismatches": [],
                                "ignored": ["carrier"], "warnings": []}


def test_missing_on_either_side() -> None:
    assert problems([DB], [CARRIER]) == [("f1-a", "missing-in-asterisk")]
    assert problems([], [AST]) == [("f1-a", "missing-in-database")]


def test_each_attribute() -> None:
    assert problems([DB], [replace(AST, context="default")]) == [("f1-a", "context")]
    assert problems([DB], [replace(AST, matches=("127.0.1.9/32",))]) == [("f1-a", "address")]
    assert problems([DB], [replace(AST, matches=None)]) == [("f1-a", "address")]
    assert problems([DB], [replace(AST, matches=("127.0.1.1", "127.0.1.9"))]) == [
        ("f1-a", "address")]  # a second address would let another box call as f1-a
    assert problems([DB], [replace(AST, contacts=("sip:127.0.1.1:5070",))]) == [
        ("f1-a", "contact")]
    assert problems([DB], [replace(AST, callerid="0312345679")]) == [("f1-a", "callerid")]
    assert problems([replace(DB, numbers=())], [replace(AST, callerid="")]) == []


def test_every_mismatch_is_reported() -> None:
    moved = replace(DB, address="127.0.1.7")
    other = DbEndpoint("f9-a", "F9", "127.0.1.9", ())
    stray = replace(AST, name="m9-z")
    assert problems([moved, other], [AST, stray, CARRIER]) == [
        ("f1-a", "address"), ("f1-a", "contact"), ("f9-a", "missing-in-asterisk"),
        ("m9-z", "missing-in-database")]


def test_mobile_handset_without_office_number_is_a_warning_not_a_mismatch() -> None:
    """Source 000 / REC-OUT-2: such a handset's prefixed calls are refused, so the operator is
    told; Asterisk and the database still agree, so the check passes."""
    m1a = DbEndpoint("m1-a", "M1", "127.0.1.5", ("09011110001",), "mobile", None)
    ast = replace(AST, name="m1-a", callerid="09011110001", contacts=("sip:127.0.1.5:5060",),
                  matches=("127.0.1.5/32",))
    report = compare([m1a], {"m1-a": ast})
    assert report.ok and report.mismatches == []
    assert [(w.endpoint, w.problem) for w in report.warnings] == [("m1-a", "no-office-number")]
    assert report.to_json()["warnings"][0]["problem"] == "no-office-number"
    assert compare([replace(m1a, office="0311110001")], {"m1-a": ast}).warnings == []
    assert compare([replace(DB, kind="fixed")], {"f1-a": AST}).warnings == []  # no office role
