"""REL-5: a `contract:<id>` notice replaces that contract's part of the site snapshot and
nothing else (callguard.domain.site.with_contracts_replaced, pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callguard.domain.site import (
    ContractInfo,
    EndpointInfo,
    ForwardingInfo,
    NumberInfo,
    SiteSnapshot,
    build_index,
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


# ---- the index that makes the merge and extension dialing O(what changed) (PERF-3) ---------

def _reference(site: SiteSnapshot, ids: set[int], part: SiteSnapshot) -> SiteSnapshot:
    """The merge as it was before the index: a pass over every key of the site."""
    gone = {code for code, c in site.contracts.items() if c.id in ids}
    gone_numbers = {n for n, info in site.numbers.items() if info.contract in gone}
    return SiteSnapshot(
        contracts={k: v for k, v in site.contracts.items() if k not in gone} | part.contracts,
        endpoints={k: v for k, v in site.endpoints.items() if v.contract not in gone}
        | part.endpoints,
        numbers={k: v for k, v in site.numbers.items() if k not in gone_numbers} | part.numbers,
        forwardings={k: v for k, v in site.forwardings.items() if k not in gone_numbers}
        | part.forwardings,
        priority_lines=site.priority_lines,
        settings=site.settings,
    )


_CODES = st.sampled_from(["A", "B", "C", "D", "E", "F"])
_KEYS = st.integers(min_value=0, max_value=7)


@st.composite
def _sites(draw: st.DrawFn, ids: list[int]) -> SiteSnapshot:
    """Contracts `ids` under distinct codes, endpoints and numbers each owned by one of them."""
    codes = draw(st.lists(_CODES, min_size=len(ids), max_size=len(ids), unique=True))
    contracts = {c: ContractInfo(id=i, code=c, kind="fixed")
                 for i, c in zip(ids, codes, strict=True)}
    endpoints: dict[str, EndpointInfo] = {}
    numbers: dict[str, NumberInfo] = {}
    forwardings: dict[str, ForwardingInfo] = {}
    for key in draw(st.sets(_KEYS)) if codes else ():
        owner = draw(st.sampled_from(codes))
        endpoints[f"ep{key}"] = EndpointInfo(name=f"ep{key}", contract=owner,
                                             extension=str(100 + draw(_KEYS)))
    for key in draw(st.sets(_KEYS)) if endpoints else ():
        ep = endpoints[draw(st.sampled_from(sorted(endpoints)))]
        numbers[f"03{key}"] = NumberInfo(id=key, number=f"03{key}", contract=ep.contract,
                                         endpoint=ep.name, role="base")
        if draw(st.booleans()):
            forwardings[f"03{key}"] = ForwardingInfo("unconditional", "0311112222")
    return SiteSnapshot(contracts, endpoints, numbers, forwardings)


@given(data=st.data())
@settings(max_examples=400, deadline=None)
def test_the_merge_equals_the_full_pass_and_keeps_the_index_true(data: st.DataObject) -> None:
    """Whatever moved between contracts, renamed or vanished, a chain of merges gives what the
    pass over every key gave, and an index equal to one built from scratch."""
    site = data.draw(_sites([1, 2, 3, 4]))
    for _ in range(3):
        ids = data.draw(st.sets(st.integers(min_value=1, max_value=5), min_size=1))
        part = data.draw(_sites(sorted(data.draw(st.sets(st.sampled_from(sorted(ids)))))))
        # The part holds contracts of ids only, as load_contracts does; its keys may exist
        # in the site under any contract (moved), its codes under another id (renamed).
        after = with_contracts_replaced(site, ids, part)
        assert after == _reference(site, ids, part)
        assert after.index == build_index(after)
        for code in after.contracts:
            assert dict(after.extensions_of(code)) == {
                e.extension: e.name for e in sorted(after.endpoints.values(),
                                                    key=lambda e: e.name)
                if e.contract == code}
        site = after


def test_extensions_are_found_without_a_pass_over_the_site() -> None:
    assert dict(SITE.extensions_of("B")) == {"1001": "ep-B"}
    assert dict(SITE.extensions_of("nobody")) == {}
