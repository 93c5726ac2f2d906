"""Who changed a price, and when (BILL audit, ADM-1/2), and which price table each bill was
computed with (BILL `prices_from` per bill). An operator asking why a month's bill changed
reads `billing price-history` / GET /api/v1/prices/history: each change says `changed_by`
(`cli:<OS user>` or the API token's role, id and label, never its secret) and `changed_at`;
rows from before migration price_history_audit say unknown. No database here: the SQL the
repository sends is compiled and read; the real runs are in tests/api/test_billing_db.py."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from datetime import UTC, date, datetime
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from callguard.api import resources, schema
from callguard.api.core import Ctx, Principal, openapi
from callguard.cli import billing as cli_billing
from callguard.cli import build_parser
from callguard.db import billing_repo
from callguard.db.billing_repo import PriceAudit, Report
from callguard.domain.audit import MAX_ACTOR, api_actor, clean_actor, cli_actor
from callguard.domain.billing import (
    PRICE_NAMES,
    BillableContract,
    ContractKind,
    NuisanceUnit,
    PricesInForce,
    PriceTable,
    bill_in_force,
    monthly_bill,
)
from callguard.services import base, billing
from tests.migration_module import load_migration

AUG = date(2026, 8, 1)
F2 = BillableContract(code="F2", kind=ContractKind.FIXED, channels=2,
                      nuisance_unit=NuisanceUnit.PER_CONTRACT,
                      nuisance_activated_on=date(2026, 4, 15))


# ---- the actor's text (domain.audit, pure) -------------------------------------------------
def test_the_cli_actor_is_the_os_user_else_the_uid_else_unknown() -> None:
    assert cli_actor("alice") == "cli:alice"
    assert cli_actor("  bob ") == "cli:bob"
    assert cli_actor(None, 1000) == "cli:uid-1000"
    assert cli_actor("", 0) == "cli:uid-0"
    assert cli_actor(None) == "cli:unknown"


def test_the_api_actor_is_the_tokens_role_id_and_label_never_the_token() -> None:
    assert api_actor("operator", None) == "api:operator:token-file"
    assert api_actor("operator", 12) == "api:operator:token-12"
    assert api_actor("operator", 12, "ops laptop") == "api:operator:token-12 (ops laptop)"
    secret = "cgt_" + "x" * 43
    who = Principal(None, None, 7, "operator", "billing desk")
    assert who.actor() == "api:operator:token-7 (billing desk)"
    assert secret not in who.actor() and "cgt_" not in who.actor()
    assert Principal(None, None, None, "operator").actor() == "api:operator:token-file"


def test_an_actor_is_printable_and_bounded() -> None:
    """Shown in a terminal, kept in a column whose check bounds it (migration 0016)."""
    assert clean_actor("cli:ev\x1b[31mil\nname") == "cli:ev?[31mil?name"
    assert len(clean_actor("cli:" + "u" * 500)) == MAX_ACTOR
    assert len(cli_actor("u" * 500)) == MAX_ACTOR
    with pytest.raises(ValueError, match="needs a name"):
        clean_actor(" \t ")


def test_the_cli_says_who_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from callguard.cli import _admin
    monkeypatch.setattr(getpass, "getuser", lambda: "carol")
    assert _admin.actor() == "cli:carol"

    def nobody() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", nobody)
    assert _admin.actor().startswith("cli:uid-")  # a container's bare uid: still recorded


# ---- the CLI and the API pass the actor on ---------------------------------------------------
def _capture_set_prices(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake(session: Session, values: dict[str, int], today: date,
             from_month: str | None = None, force_past: bool = False, **kw: Any
             ) -> PricesInForce:
        seen.append({"values": values, "from": from_month, "force_past": force_past, **kw})
        return PricesInForce(AUG, PriceTable(nuisance_per_unit=250),
                             (("nuisance_per_unit", 250),))

    monkeypatch.setattr(billing, "set_prices", fake)
    return seen


def test_cli_set_prices_records_the_os_user(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    seen = _capture_set_prices(monkeypatch)
    monkeypatch.setattr(getpass, "getuser", lambda: "dave")
    monkeypatch.setattr(cli_billing, "run", lambda work: work(cast(Session, None)))
    args = build_parser().parse_args(["billing", "prices", "--set", "nuisance_per_unit=250",
                                      "--from", "2026-08", "--json"])
    assert args.handler(args) == 0
    assert seen == [{"values": {"nuisance_per_unit": 250}, "from": "2026-08",
                     "force_past": False, "actor": "cli:dave"}]
    assert json.loads(capsys.readouterr().out)["prices_from"] == "2026-08"


def test_api_set_prices_records_the_tokens_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture_set_prices(monkeypatch)

    async def no_db(app: object, work: Any) -> Any:
        return work(None)

    monkeypatch.setattr(resources, "db", no_db)
    request = cast(Any, SimpleNamespace(app=None))
    ctx = Ctx(request, Principal(None, None, 3, "operator", "desk"), {}, {},
              {"nuisance_per_unit": 250, "from": "2026-08"})
    answer = asyncio.run(resources.set_prices(ctx))
    assert answer["prices_from"] == "2026-08"
    assert seen == [{"values": {"nuisance_per_unit": 250}, "from": "2026-08",
                     "force_past": False, "actor": "api:operator:token-3 (desk)"}]


# ---- the repository writes who and when with each row ---------------------------------------
class _Recorder:
    """A session that answers every SELECT with no rows and keeps the other statements."""

    def __init__(self) -> None:
        self.written: list[Any] = []

    def execute(self, stmt: Any, *args: Any) -> list[Any]:
        if not isinstance(stmt, Select):
            self.written.append(stmt)
        return []

    def flush(self) -> None:
        pass


def _sql(stmt: Any) -> tuple[str, dict[str, Any]]:
    compiled = stmt.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    return " ".join(str(compiled).split()), dict(compiled.params)


def test_set_prices_writes_the_actor_and_keeps_the_writer_of_an_unchanged_value() -> None:
    rec = _Recorder()
    at = datetime(2026, 7, 20, 1, 2, 3, tzinfo=UTC)
    billing_repo.set_prices(cast(Session, rec), {"nuisance_per_unit": 250}, AUG,
                            "cli:erin", at)
    [upsert] = rec.written
    sql, params = _sql(upsert)
    assert "changed_by" in sql and "changed_at" in sql
    assert (params["changed_by"], params["changed_at"], params["value"]) == ("cli:erin", at, 250)
    # An upsert of the same value is no change: it keeps who set it (the WHERE of DO UPDATE).
    assert "ON CONFLICT (effective_from, name) DO UPDATE SET" in sql
    assert "WHERE price_history.value != %(value_1)s" in sql
    assert params["value_1"] == 250


def test_without_a_time_the_databases_clock_says_when() -> None:
    rec = _Recorder()
    billing_repo.set_prices(cast(Session, rec), {"tax_rate_percent": 12}, AUG, "cli:erin")
    sql, params = _sql(rec.written[0])
    assert "now()" in sql and params["changed_by"] == "cli:erin"


def test_a_writer_that_does_not_say_who_leaves_the_row_unknown() -> None:
    """Never the previous writer's name on someone else's value."""
    rec = _Recorder()
    billing_repo.set_prices(cast(Session, rec), {"tax_rate_percent": 12}, AUG)
    sql, params = _sql(rec.written[0])
    assert params["changed_by"] is None and params["changed_at"] is None
    # The update sets them to NULL too (not left out, which would keep the old writer).
    assert "SET value = %(param_1)s::INTEGER, changed_by = %(param_2)s" in sql
    assert params["param_2"] is None and params["param_3"] is None


def test_a_bad_actor_is_refused_before_anything_is_written() -> None:
    rec = _Recorder()
    with pytest.raises(ValueError, match="needs a name"):
        billing_repo.set_prices(cast(Session, rec), {"tax_rate_percent": 12}, AUG, "\n")
    assert rec.written == []
    with pytest.raises(base.Invalid, match="needs a name"):
        billing.set_prices(cast(Session, rec), {"tax_rate_percent": 12}, date(2026, 7, 20),
                           "2026-08", actor=" ")
    assert rec.written == []


# ---- what price-history shows -----------------------------------------------------------------
T1 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 7, 2, 9, 0, tzinfo=UTC)
AUG_TABLE = PricesInForce(AUG, PriceTable(nuisance_per_unit=250, tax_rate_percent=12),
                          (("nuisance_per_unit", 250), ("tax_rate_percent", 12)))


def test_an_entry_says_its_latest_known_writer_and_each_prices_own() -> None:
    entry = billing.price_version_json(AUG_TABLE, (
        PriceAudit("nuisance_per_unit", 250, "api:operator:token-3", T2),
        PriceAudit("tax_rate_percent", 12, "cli:alice", T1)))
    assert (entry["changed_by"], entry["changed_at"]) == ("api:operator:token-3",
                                                          T2.isoformat())
    assert entry["audit"] == {
        "nuisance_per_unit": {"changed_by": "api:operator:token-3", "changed_at": T2.isoformat()},
        "tax_rate_percent": {"changed_by": "cli:alice", "changed_at": T1.isoformat()}}
    # Every field it had is still there (a fixed interface: fields are only added).
    assert entry["changed"] == {"nuisance_per_unit": 250, "tax_rate_percent": 12}
    assert entry["prices_from"] == "2026-08" and entry["nuisance_per_unit"] == 250
    schema.validate(entry, schema.PRICE_VERSION)  # documented as it is (SchemaError if not)


def test_rows_from_before_the_audit_are_unknown() -> None:
    entry = billing.price_version_json(AUG_TABLE, (
        PriceAudit("nuisance_per_unit", 250, None, None),
        PriceAudit("tax_rate_percent", 12, "cli:alice", T1)))
    assert (entry["changed_by"], entry["changed_at"]) == ("cli:alice", T1.isoformat())
    assert entry["audit"]["nuisance_per_unit"] == {"changed_by": None, "changed_at": None}
    old = billing.price_version_json(AUG_TABLE, (
        PriceAudit("nuisance_per_unit", 250, None, None),))
    assert (old["changed_by"], old["changed_at"]) == (None, None)
    defaults = billing.price_version_json(PricesInForce(None, PriceTable()))
    assert (defaults["changed_by"], defaults["changed_at"], defaults["audit"]) == (
        None, None, {})


def test_the_cli_lists_who_and_when(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    page = base.Page([
        billing.price_version_json(PricesInForce(None, PriceTable())),
        billing.price_version_json(AUG_TABLE, (
            PriceAudit("nuisance_per_unit", 250, "cli:alice", T1),
            PriceAudit("tax_rate_percent", 12, "cli:alice", T1))),
        billing.price_version_json(
            PricesInForce(date(2026, 9, 1), PriceTable(recording_initial=1),
                          (("recording_initial", 1),)),
            (PriceAudit("recording_initial", 1, None, None),)),
    ], None, 0, None)
    monkeypatch.setattr(cli_billing, "run", lambda work: page)
    args: argparse.Namespace = build_parser().parse_args(["billing", "price-history"])
    assert args.handler(args) == 0
    head, defaults, aug, sep = capsys.readouterr().out.splitlines()
    assert head.split() == ["FROM", "CHANGED", "BY", "AT"]
    assert defaults.split()[-2:] == ["-", "-"]  # nobody set the defaults
    assert "cli:alice" in aug and T1.isoformat() in aug
    assert sep.split()[-2:] == ["(unknown)", "(unknown)"]


def test_the_openapi_document_says_who_and_when() -> None:
    doc = openapi(resources.routes(), "callguard", "1")
    history = doc["paths"]["/api/v1/prices/history"]["get"]["responses"]["200"]
    item = history["content"]["application/json"]["schema"]["properties"]["items"]["items"]
    assert {"changed_by", "changed_at", "audit"} <= set(item["required"])
    assert {*PRICE_NAMES, "prices_from", "changed"} <= set(item["required"])  # still there
    assert item["properties"]["changed_by"]["type"] == ["string", "null"]


# ---- each bill says which price table it was computed with ---------------------------------
def test_a_bill_carries_the_prices_from_of_its_table() -> None:
    in_force = PricesInForce(AUG, PriceTable(nuisance_per_unit=250))
    one = bill_in_force(F2, 2026, 9, in_force)
    assert one.prices_from == "2026-08"
    assert one.items == monthly_bill(F2, 2026, 9, in_force.table).items  # priced by it
    assert one.to_json()["prices_from"] == "2026-08"
    assert bill_in_force(F2, 2026, 9, PricesInForce(None, PriceTable())).prices_from is None


def test_each_bill_of_a_report_says_its_prices_from() -> None:
    bills = [bill_in_force(F2, 2026, 9, PricesInForce(AUG, PriceTable()))]
    data = Report("2026-09", bills, [], prices_from="2026-08").to_json()
    assert data["prices_from"] == "2026-08"
    assert [b["prices_from"] for b in data["bills"]] == ["2026-08"]
    assert "prices_from" in schema.BILL["required"]
    schema.validate(data, schema.BILLING_REPORT)  # documented as it is (SchemaError if not)


# ---- migration 0016 ---------------------------------------------------------------------------
def _migration() -> ModuleType:
    return load_migration("0016_price_history_audit.py")


def test_the_migration_adds_two_nullable_columns_and_drops_them_on_downgrade(
        monkeypatch: pytest.MonkeyPatch) -> None:
    m = _migration()
    assert (m.revision, m.down_revision) == ("price_history_audit", "price_history")
    assert m.MAX_ACTOR == MAX_ACTOR
    done: list[tuple[str, ...]] = []

    class Op:
        def add_column(self, table: str, column: Any) -> None:
            assert column.nullable is True  # old rows stay NULL: unknown, never guessed
            done.append(("add", table, column.name, str(column.type)))

        def create_check_constraint(self, name: str, table: str, condition: str) -> None:
            done.append(("check", table, str(name), condition))

        def drop_constraint(self, name: str, table: str, type_: str) -> None:
            done.append(("drop-check", table, str(name)))

        def drop_column(self, table: str, column: str) -> None:
            done.append(("drop", table, column))

        def f(self, name: str) -> str:
            return name

    monkeypatch.setattr(m, "op", Op())
    m.upgrade()
    assert done[:2] == [("add", "price_history", "changed_by", "TEXT"),
                        ("add", "price_history", "changed_at", "DATETIME")]
    kind, table, name, condition = done[2]
    assert (kind, table, name) == ("check", "price_history", "ck_price_history_changed")
    assert "(changed_by IS NULL) = (changed_at IS NULL)" in condition
    done.clear()
    m.downgrade()
    assert done == [("drop-check", "price_history", "ck_price_history_changed"),
                    ("drop", "price_history", "changed_at"),
                    ("drop", "price_history", "changed_by")]
