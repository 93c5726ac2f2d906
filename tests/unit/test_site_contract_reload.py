"""REL-5: a `contract:<id>` notice replaces that contract's part of the site snapshot and
nothing else (callguard.domain.site.with_contracts_replaced, pure)."""

from __future__ import annotations

from callguard.domain.site import (
    ContractInfo,
    EndpointInfo,
    ForwardingInfo,
    NumberInfo,
    SiteSnapshot,
    with_contracts_replaced,
)


def _site(*contracts: tuple[int, str, str]) -> SiteSnapshot:
    """(id, code, number) each: one endpoint `ep-<code>` and one number with a forwarding."""
    return SiteSnapshot(
        contracts={code: ContractInfo(id=cid, code=code, kind="fixed")
                   for cid, code, _ in contracts},
        endpoints={f"ep-{code}": EndpointInfo(name=f"ep-{code}", contract=code, extension="1001")
                   for _, code, _ in contracts},
        numbers={n: NumberInfo(id=cid, number=n, contract=code, endpoint=f"ep-{code}",
                               role="representative") for cid, code, n in contracts},
        forwardings={n: ForwardingInfo("unconditional", "0311112222")
                     for _, _, n in contracts},
        priority_lines=frozenset({"0300000000"}),
        settings={"k": "v"},
    )


SITE = _site((1, "A", "0310000001"), (2, "B", "0310000002"), (3, "C", "0310000003"))


def test_a_changed_contract_is_replaced_and_the_others_kept() -> None:
    part = _site((2, "B2", "0310000022"))  # code and number changed, forwarding kept
    after = with_contracts_replaced(SITE, {2}, part)
    assert set(after.contracts) == {"A", "B2", "C"}
    assert set(after.endpoints) == {"ep-A", "ep-B2", "ep-C"}
    assert set(after.numbers) == {"0310000001", "0310000022", "0310000003"}
    assert set(after.forwardings) == set(after.numbers)
    assert after.contracts["A"] is SITE.contracts["A"]
    assert (after.priority_lines, after.settings) == (SITE.priority_lines, SITE.settings)


def test_a_deleted_contract_leaves_nothing_behind() -> None:
    after = with_contracts_replaced(SITE, {1}, SiteSnapshot())
    assert "A" not in after.contracts and "ep-A" not in after.endpoints
    assert "0310000001" not in after.numbers and "0310000001" not in after.forwardings
    assert set(after.contracts) == {"B", "C"}


def test_a_number_moved_between_two_named_contracts() -> None:
    moved = NumberInfo(id=1, number="0310000001", contract="B", endpoint="ep-B",
                       role="representative")
    part = _site((1, "A", "0319999999"), (2, "B", "0310000002"))
    part = SiteSnapshot(contracts=part.contracts, endpoints=part.endpoints,
                        numbers={"0310000002": part.numbers["0310000002"],
                                 "0310000001": moved},
                        forwardings={"0310000002": part.forwardings["0310000002"]})
    after = with_contracts_replaced(SITE, {1, 2}, part)
    assert after.numbers["0310000001"] == moved
    assert "0310000001" not in after.forwardings  # its forwarding went with the old row


def test_a_contract_not_yet_known_is_added() -> None:
    after = with_contracts_replaced(SITE, {4}, _site((4, "D", "0310000004")))
    assert set(after.contracts) == {"A", "B", "C", "D"}
    assert after.numbers["0310000004"].contract == "D"
