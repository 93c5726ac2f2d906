"""SEC-4 (issue 19 item 7): whether an API token is the operator's or a contract's is a stated
role column, kept consistent with its contract by the database, not inferred from NULL."""

from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from callguard.config import PROJECT_ROOT, Settings

CLI = str(PROJECT_ROOT / ".venv" / "bin" / "callguard")


def test_token_roles_are_stated_and_consistent(engine: Engine, stack: Settings) -> None:
    made = []
    try:
        for contract in (["--contract", "F1"], ["--operator"]):
            run = subprocess.run([CLI, "tokens", "create", *contract, "--label", "e2e role",
                                  "--json"], capture_output=True, text=True, check=True)
            made.append(json.loads(run.stdout)["id"])
        with engine.connect() as c:
            rows = c.execute(text("SELECT id, role FROM api_tokens WHERE id = ANY(:ids)"),
                             {"ids": made}).all()
        roles = {int(r[0]): str(r[1]) for r in rows}
        assert [roles[i] for i in made] == ["contract", "operator"]
        with engine.connect() as c:
            f1 = c.execute(text("SELECT id FROM contracts WHERE code = 'F1'")).scalar_one()
        for contract_id, role in ((None, "contract"), (f1, "operator")):
            with pytest.raises(IntegrityError), engine.begin() as c:
                c.execute(text(
                    "INSERT INTO api_tokens (token_sha256, contract_id, label, role, created_at)"
                    " VALUES (md5(random()::text) || md5(random()::text), :c, 'bad', :r,"
                    " now())"), {"c": contract_id, "r": role})
    finally:
        for token_id in made:
            subprocess.run([CLI, "tokens", "revoke", str(token_id)], capture_output=True,
                           check=False)
