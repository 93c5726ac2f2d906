"""The e2e tests' guard (tests/e2e/conftest.py): they wipe call logs, lists and recordings, so
they refuse a database that holds more than the reference site."""

from __future__ import annotations

from tests.e2e.conftest import REFERENCE_CONTRACTS, REFERENCE_ENDPOINTS, beyond_reference_site


def test_the_reference_site_alone_passes() -> None:
    assert beyond_reference_site(set(REFERENCE_CONTRACTS), set(REFERENCE_ENDPOINTS)) == []
    assert beyond_reference_site(set(), set()) == []  # before provisioning


def test_another_contract_or_endpoint_is_named() -> None:
    assert beyond_reference_site({"F1", "F2", "M1", "K7"}, set(REFERENCE_ENDPOINTS)) == [
        "contract(s) K7"]
    assert beyond_reference_site(set(REFERENCE_CONTRACTS),
                                 set(REFERENCE_ENDPOINTS) | {"k7-a", "f1-c"}) == [
        "endpoint(s) f1-c, k7-a"]
    assert beyond_reference_site({"K7"}, {"k7-a"}) == ["contract(s) K7", "endpoint(s) k7-a"]
