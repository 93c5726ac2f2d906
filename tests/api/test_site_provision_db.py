"""`callguard site provision` on every `make run` (ADM-1, SPEC §8): the reference site is
provisioned the first time only, so what an operator deleted since stays deleted and no add-on
is activated again onto a bill; `--again` re-adds what is missing, and the CLI says which."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from callguard.config import Settings
from callguard.db.models import Contract, NuisanceSubscription, PriorityLine, SiteSetting
from callguard.db.provision import PROVISIONED_KEY, provision_once
from tests.isolated_db import cli

FIRST, LATER = date(2026, 4, 15), date(2026, 6, 1)
PRIORITY_LINE = "0312340119"


def f2_nuisance(s: Session) -> NuisanceSubscription | None:
    return s.scalar(select(NuisanceSubscription).join(
        Contract, Contract.id == NuisanceSubscription.contract_id).where(Contract.code == "F2"))


def test_provisioned_once_then_again_only_on_request(iso_engine: Engine) -> None:
    with Session(iso_engine) as s:
        s.begin()
        assert provision_once(s, FIRST) is None  # the first time: provisioned
        assert s.get(SiteSetting, PROVISIONED_KEY).value == "2026-04-15"  # type: ignore[union-attr]
        # The operator removes a priority line and F2's add-on (as a contract's end would).
        s.execute(delete(PriorityLine).where(PriorityLine.number == PRIORITY_LINE))
        f2 = f2_nuisance(s)
        assert f2 is not None
        s.delete(f2)
        s.flush()
        assert provision_once(s, LATER) == FIRST  # skipped: nothing comes back
        assert s.get(PriorityLine, PRIORITY_LINE) is None and f2_nuisance(s) is None
        assert provision_once(s, LATER, again=True) is None  # --again re-adds what is missing
        assert s.get(PriorityLine, PRIORITY_LINE) is not None
        sub = f2_nuisance(s)
        assert sub is not None and sub.activated_on == LATER
        # The stamp keeps the first day; one row.
        assert s.scalar(select(func.count()).select_from(SiteSetting).where(
            SiteSetting.key == PROVISIONED_KEY)) == 1
        assert s.get(SiteSetting, PROVISIONED_KEY).value == "2026-04-15"  # type: ignore[union-attr]
        s.rollback()


def test_cli_says_when_it_did_not_provision(iso: Settings) -> None:
    first = cli(iso, "site", "provision")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("reference site provisioned (contracts F1, F2, M1")
    second = cli(iso, "site", "provision")
    assert second.returncode == 0, second.stderr
    assert "not again" in second.stdout and "--again" in second.stdout
    again = cli(iso, "site", "provision", "--again")
    assert again.returncode == 0 and again.stdout.startswith("reference site provisioned (")
