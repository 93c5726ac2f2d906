"""REL-1, REL-6: the astdb route map the dialplan reads without the services, as a pure function
of the site snapshot, and the few puts and deletes that bring astdb to it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from callguard.domain.astdb import (
    CID,
    ROUTE,
    Changes,
    Delete,
    Put,
    UnreadableOutput,
    desired_map,
    diff,
    parse_get,
    parse_show,
)
from callguard.domain.site import ContractInfo, EndpointInfo, NumberInfo, SiteSnapshot


def site(**moved: str) -> SiteSnapshot:
    """A fixed contract (two lines), a mobile one (a handset with native and office numbers)
    and a line without a number of its own; `moved` puts numbers on other endpoints."""
    endpoints = {
        "f1-a": EndpointInfo("f1-a", "F1", "2001", own_number="0312345678"),
        "f1-b": EndpointInfo("f1-b", "F1", "2002", own_number="0312345679"),
        "m1-a": EndpointInfo("m1-a", "M1", "3001", own_number="09011110001",
                             office_number="0311110001"),
        "f1-c": EndpointInfo("f1-c", "F1", "2003"),
    }
    numbers = {
        "0312345678": NumberInfo(1, "0312345678", "F1", "f1-a", "representative"),
        "0312345679": NumberInfo(2, "0312345679", "F1", "f1-b", "dial-in"),
        "0312345670": NumberInfo(3, "0312345670", "F1", "f1-c", "dial-in"),
        "09011110001": NumberInfo(4, "09011110001", "M1", "m1-a", "native"),
        "0311110001": NumberInfo(5, "0311110001", "M1", "m1-a", "office"),
    }
    for number, endpoint in moved.items():
        numbers[number] = replace(numbers[number], endpoint=endpoint)
    return SiteSnapshot(contracts={"F1": ContractInfo(1, "F1", "fixed"),
                                   "M1": ContractInfo(2, "M1", "mobile")},
                        endpoints=endpoints, numbers=numbers)


def test_the_map_of_a_site() -> None:
    """A phone is called by its own number at its endpoint, as routed calls are (the office
    number of a handset rings it as its native number); a line without one by its name."""
    assert desired_map(site()) == {
        ROUTE: {"0312345678": "0312345678@f1-a", "0312345679": "0312345679@f1-b",
                "0312345670": "f1-c", "09011110001": "09011110001@m1-a",
                "0311110001": "09011110001@m1-a"},
        CID: {"f1-a": "0312345678", "f1-b": "0312345679", "m1-a": "09011110001"},
    }


def test_an_empty_site_still_names_both_families() -> None:
    """Whatever astdb still holds of a site that is gone must go."""
    assert desired_map(SiteSnapshot()) == {ROUTE: {}, CID: {}}
    assert diff(desired_map(SiteSnapshot()), {ROUTE: {"0312345678": "0312345678@f1-a"}}) \
        == Changes(deletes=(Delete(ROUTE, "0312345678"),))


def test_a_word_the_cli_would_split_is_never_written() -> None:
    odd = site()
    odd.numbers["03 1234"] = NumberInfo(9, "03 1234", "F1", "f1-a", "dial-in")
    odd.endpoints["f1-a"] = replace(odd.endpoints["f1-a"], own_number='03"1')
    m = desired_map(odd)
    assert "03 1234" not in m[ROUTE] and "f1-a" not in m[CID]


def test_nothing_to_do_when_astdb_holds_the_map() -> None:
    m = desired_map(site())
    assert not diff(m, m)
    assert diff(m, m).commands() == []


def test_a_moved_number_is_one_put() -> None:
    before = desired_map(site())
    after = desired_map(site(**{"0312345679": "f1-a"}))
    changes = diff(after, before)
    assert changes == Changes(puts=(Put(ROUTE, "0312345679", "0312345678@f1-a"),))
    assert changes.commands() == ["database put callguard_route 0312345679 0312345678@f1-a"]


def test_an_added_and_a_deleted_number() -> None:
    before = desired_map(site())
    s = site()
    del s.numbers["0312345670"]
    s.numbers["0312340000"] = NumberInfo(7, "0312340000", "F1", "f1-b", "dial-in")
    changes = diff(desired_map(s), before)
    assert changes.commands() == [
        "database put callguard_route 0312340000 0312345679@f1-b",
        "database del callguard_route 0312345670",
    ]


def test_a_changed_own_number_rewrites_its_caller_id_and_every_route_to_the_line() -> None:
    before = desired_map(site())
    s = site()
    s.endpoints["m1-a"] = replace(s.endpoints["m1-a"], own_number="09099990001")
    changes = diff(desired_map(s), before)
    assert changes.puts == (Put(CID, "m1-a", "09099990001"),
                            Put(ROUTE, "0311110001", "09099990001@m1-a"),
                            Put(ROUTE, "09011110001", "09099990001@m1-a"))
    assert changes.deletes == ()


def test_a_line_that_lost_its_number_loses_its_caller_id() -> None:
    before = desired_map(site())
    s = site()
    s.endpoints["f1-b"] = replace(s.endpoints["f1-b"], own_number=None)
    changes = diff(desired_map(s), before)
    assert changes.puts == (Put(ROUTE, "0312345679", "f1-b"),)
    assert changes.deletes == (Delete(CID, "f1-b"),)


def test_puts_come_before_deletes_and_other_families_are_left_alone() -> None:
    current = {ROUTE: {"0399999999": "x@f9"}, "callguard_bench": {"active": "1"}}
    changes = diff({ROUTE: {"0312345678": "0312345678@f1-a"}}, current)
    assert changes.commands() == [
        "database put callguard_route 0312345678 0312345678@f1-a",
        "database del callguard_route 0399999999",
    ]


def test_a_key_that_is_no_cli_word_is_not_deleted() -> None:
    """Not one we wrote (we write words only), and `database del` could not name it."""
    assert not diff({ROUTE: {}}, {ROUTE: {"a b": "x"}})


# ---- what Asterisk answers (main/db.c) -----------------------------------------------------------
SHOW = (
    "/callguard_route/0311110001                       : 09011110001@m1-a         \n"
    "/callguard_route/0312345678                       : 0312345678@f1-a          \n"
    "2 results found.\n"
)


def test_show_is_read_as_asterisk_prints_it() -> None:
    assert parse_show(SHOW, ROUTE) == {"0311110001": "09011110001@m1-a",
                                       "0312345678": "0312345678@f1-a"}


def test_show_of_an_empty_family() -> None:
    assert parse_show("0 results found.\n", CID) == {}


def test_show_with_a_long_key_an_empty_value_and_a_log_line_between() -> None:
    long_key = "k" * 60  # past the 50 columns: no padding at all
    out = ("[Dec  7 18:46:00] WARNING[123]: something else happened\n"
           f"/callguard_cid/{long_key}: 0312345678               \n"
           "/callguard_cid/f1-c                               :                          \n"
           "2 results found.\n")
    assert parse_show(out, CID) == {long_key: "0312345678", "f1-c": ""}


@pytest.mark.parametrize("out", [
    "",  # nothing at all
    "No such command 'database show' (type 'core show help database' for help)\n",
    SHOW.replace("2 results found.\n", ""),  # cut short
    SHOW.replace("2 results", "3 results"),  # a line lost
])
def test_show_that_is_not_a_whole_answer_is_unreadable(out: str) -> None:
    """Never read as an empty family: every key would be written again (harmless) and, worse
    with another answer, deleted."""
    with pytest.raises(UnreadableOutput):
        parse_show(out, ROUTE)


def test_get() -> None:
    assert parse_get("Value: 0612345679@f2-b\n") == "0612345679@f2-b"
    assert parse_get("Database entry not found.\n") is None
    with pytest.raises(UnreadableOutput):
        parse_get("Unable to connect to remote asterisk\n")
