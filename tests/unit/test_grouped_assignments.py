"""Channel variables in as few assignments as ARRAY() allows (callguard.dialplan): the ARI
app sends them in one request, the FastAGI fallback in one SET VARIABLE (PERF-1, REL-1)."""

from __future__ import annotations

from callguard.dialplan import grouped_assignments


def test_assignments_are_grouped_where_array_takes_them_verbatim() -> None:
    """Both shells: most of a decision's variables in one ARRAY() assignment; empty values
    ride along (ARRAY sets a missing or empty field to "", as a single assignment does)."""
    assert grouped_assignments({"CG_DIAL": "PJSIP/f1-a", "CG_CID_NUM": "", "CG_TIMEOUT": "30",
                                "CG_NEXT": "cg-connect"}) == [
        ("ARRAY(CG_DIAL,CG_CID_NUM,CG_TIMEOUT,CG_NEXT)", "PJSIP/f1-a,,30,cg-connect")]


def test_values_array_could_split_or_unquote_go_one_by_one() -> None:
    got = grouped_assignments({"CG_DIAL": "PJSIP/f1-a", "CG_PROMPT": "a,b",
                               "CHANNEL(hangup_handler_push)": "cg-agi-ended,s,1",
                               "CG_NOTE": 'say "hi"', "CG_CAUSE": "16"})
    assert got == [("ARRAY(CG_DIAL,CG_CAUSE)", "PJSIP/f1-a,16"), ("CG_PROMPT", "a,b"),
                   ("CHANNEL(hangup_handler_push)", "cg-agi-ended,s,1"),
                   ("CG_NOTE", 'say "hi"')]


def test_one_safe_value_is_assigned_as_itself() -> None:
    assert grouped_assignments({"CG_NEXT": "cg-reject", "CG_X": "a b"}) == [
        ("CG_NEXT", "cg-reject"), ("CG_X", "a b")]
    assert grouped_assignments({}) == []
