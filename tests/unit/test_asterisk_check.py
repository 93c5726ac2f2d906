"""`callguard check` (ADM-1): the pure comparison of Asterisk's PJSIP endpoints with the
database, one case per kind of mismatch."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from callguard.asterisk_check import (
    AstEndpoint,
    AsteriskUnavailable,
    AstIdentify,
    DbEndpoint,
    compare,
    config_section_names,
)

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
                                "ignored": ["carrier"], "warnings": [], "identifies": 0}


def test_missing_on_either_side() -> None:
    assert problems([DB], [CARRIER]) == [("f1-a", "missing-in-asterisk")]
    assert problems([], [AST]) == [("f1-a", "missing-in-database")]


def test_each_attribute() -> None:
    assert problems([DB], [replace(AST, context="default")]) == [("f1-a", "context")]
    assert problems([DB], [replace(AST, matches=("127.0.1.9/32",))]) == [("f1-a", "address")]
    assert problems([DB], [replace(AST, matches=None)]) == [("f1-a", "address")]
    assert problems([DB], [replace(AST, matches=("127.0.1.1", "127.0.1.9"))]) == [
        ("f1-a", "address")]  # a second address would let another box call as f1-a
    assert problems([DB], [replace(AST, matches=("127.0.1.1/32",))]) == []
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


# ---- identify objects whatever their names (SEC-1) ----------------------------------------
IDENT = AstIdentify("f1-a", "f1-a", ("127.0.1.1/255.255.255.255",))
CARRIER_ID = AstIdentify("carrier", "carrier", ("127.0.0.2/255.255.255.255",))
F9 = DbEndpoint("f9-a", "F9", "127.0.1.9", ("0312349999",))
AST_F9 = replace(AST, name="f9-a", callerid="0312349999", contacts=("sip:127.0.1.9:5060",))


def id_problems(db: list[DbEndpoint], ast: list[AstEndpoint], ids: list[AstIdentify],
                header_trusted: bool = False) -> list[tuple[str, str]]:
    report = compare(db, {a.name: a for a in ast}, ids, header_trusted)
    assert report.ok == (not report.mismatches) and report.identifies == len(ids)
    return sorted((m.endpoint, m.problem) for m in report.mismatches)


def test_identifies_agreeing() -> None:
    report = compare([DB], {"f1-a": AST, "carrier": CARRIER}, [IDENT, CARRIER_ID])
    assert report.ok and report.to_json()["identifies"] == 2
    # the endpoint's addresses come from the identify list, not from the endpoint
    assert compare([DB], {"f1-a": replace(AST, matches=None)}, [IDENT]).ok


def test_copied_identify_block_still_naming_the_original_endpoint() -> None:
    """The README's "copy an f1-a block": [f9-a] identify with a new match but still
    `endpoint = f1-a` makes 127.0.1.9 call as f1-a (F1's number, recordings and bill). The
    identify is named f9-a and matches f9-a's address, so a check by name saw agreement."""
    copied = AstIdentify("f9-a", "f1-a", ("127.0.1.9/255.255.255.255",))
    report = compare([DB, F9], {"f1-a": AST, "f9-a": AST_F9}, [IDENT, copied])
    assert not report.ok
    assert sorted((m.endpoint, m.problem) for m in report.mismatches) == [
        ("f1-a", "address"), ("f9-a", "address"), ("f9-a", "identify-endpoint")]
    bad = next(m for m in report.mismatches if m.problem == "identify-endpoint")
    assert bad.identify == "f9-a" and "to endpoint f1-a" in bad.detail
    assert bad.to_json() == {"endpoint": "f9-a", "problem": "identify-endpoint",
                             "detail": bad.detail, "identify": "f9-a"}
    # fixed: `endpoint = f9-a`
    assert id_problems([DB, F9], [AST, AST_F9], [IDENT, replace(copied, endpoint="f9-a")]) == []


def test_stray_identify_section_mapping_an_extra_address() -> None:
    """[x] type=identify endpoint=f1-a match=127.0.1.9: a second box calls as f1-a."""
    stray = AstIdentify("x", "f1-a", ("127.0.1.9",))
    assert id_problems([DB], [AST], [IDENT, stray]) == [
        ("f1-a", "address"), ("f1-a", "identify-address")]
    assert id_problems([DB], [AST], [IDENT, replace(stray, matches=("127.0.1.1",))]) == []
    # another customer's address mapped to the carrier (trusted for P-Asserted-Identity)
    to_carrier = AstIdentify("carrier-2", "carrier", ("127.0.1.1/32",))
    assert id_problems([DB], [AST, CARRIER], [IDENT, CARRIER_ID, to_carrier]) == [
        ("carrier", "identify-address")]
    # a second carrier address that is nobody's equipment is the carrier's business
    more = AstIdentify("carrier-2", "carrier", ("127.0.0.7",))
    assert id_problems([DB], [AST, CARRIER], [IDENT, CARRIER_ID, more]) == []


def test_identify_of_an_endpoint_not_loaded_is_a_warning() -> None:
    orphan = AstIdentify("old", "f8-z", ("127.0.1.8",))
    report = compare([DB], {"f1-a": AST}, [IDENT, orphan])
    assert report.ok
    assert [(w.endpoint, w.problem) for w in report.warnings] == [("f8-z", "identify-no-endpoint")]


def test_forgeable_identification_is_a_mismatch() -> None:
    """match_header / match_request_uri are written by the sender; X-Src-IP is the source
    address only behind Kamailio with `header` in endpoint_identifier_order (CLU-1)."""
    by_header = replace(IDENT, match_header="X-Src-IP: 127.0.1.1")
    assert id_problems([DB], [AST], [by_header]) == [("f1-a", "identify-header")]
    assert id_problems([DB], [AST], [replace(IDENT, match_request_uri="f1a")]) == [
        ("f1-a", "identify-header")]
    assert id_problems([DB], [AST], [replace(IDENT, match_header="X-Who: f1-a")], True) == [
        ("f1-a", "identify-header")]
    assert id_problems([DB], [AST], [replace(IDENT, match_header="X-Src-IP: /^127/")],
                       True) == [("f1-a", "identify-header")]


def test_cluster_node_identifies_by_x_src_ip() -> None:
    """tools/cluster.sh turns `match = A` into `match_header = X-Src-IP: A` and puts `header`
    first in endpoint_identifier_order: the check compares A as the address."""
    node = AstIdentify("f1-a", "f1-a", (), "X-Src-IP: 127.0.1.1")
    assert id_problems([DB], [AST], [node], header_trusted=True) == []
    moved = id_problems([replace(DB, address="127.0.1.7")], [AST], [node], header_trusted=True)
    assert moved == [("f1-a", "address"), ("f1-a", "contact")]
    copied = AstIdentify("f9-a", "f1-a", (), "X-Src-IP: 127.0.1.9")
    assert id_problems([DB, F9], [AST, AST_F9], [node, copied], header_trusted=True) == [
        ("f1-a", "address"), ("f9-a", "address"), ("f9-a", "identify-endpoint")]


def test_section_names_follow_includes(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "asterisk"
    etc.mkdir(parents=True)
    (etc / "pjsip.conf").write_text(
        "[global]\ntype = global\n[tpl](!)\ntype = endpoint\n[carrier](tpl) ; x\n"
        "#include pjsip_site.conf\n#tryinclude pjsip_bench.conf\n"
        "#include \"/etc/asterisk/more.conf\"\n")
    (etc / "pjsip_site.conf").write_text("[f1-a](customer)\n[f1-a]\ntype=identify\n"
                                         ";[commented]\n[x] ; stray\n")
    (etc / "more.conf").write_text("[y]\ntype = identify\n")
    assert config_section_names(etc, root=str(tmp_path)) == {"global", "carrier", "f1-a", "x",
                                                             "y"}
    (etc / "pjsip_site.conf").chmod(0)
    if not os.access(etc / "pjsip_site.conf", os.R_OK):  # root reads it anyway
        with pytest.raises(AsteriskUnavailable):
            config_section_names(etc, root=str(tmp_path))


def test_a_network_is_not_the_address_of_its_first_host() -> None:
    """SEC-1: `match = 127.0.1.0/24` (Asterisk shows 127.0.1.0/255.255.255.0) lets a whole
    network call as the line, even where the database's address is the network's own."""
    net = replace(DB, address="127.0.1.0")
    assert problems([net], [replace(AST, contacts=("sip:127.0.1.0:5060",),
                                    matches=("127.0.1.0/255.255.255.0",))]) == [
        ("f1-a", "address")]
    assert id_problems([net], [replace(AST, contacts=("sip:127.0.1.0:5060",))],
                       [replace(IDENT, matches=("127.0.1.0/255.255.255.255",))]) == []
