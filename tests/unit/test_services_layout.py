"""Issue #15: the operator services stay small (one resource per module, none over 250
lines), every repository lives under callguard/db/, and the shells do not write models."""

from __future__ import annotations

import re

from callguard.config import PROJECT_ROOT

SERVICES = PROJECT_ROOT / "callguard" / "services"
RESOURCES = ("contracts", "endpoints", "numbers", "subscriptions", "forwarding", "capacity",
             "priority", "tokens", "recordings", "billing")


def test_one_module_per_resource_none_over_250_lines() -> None:
    for name in RESOURCES:
        assert (SERVICES / f"{name}.py").is_file(), name
    sizes = {p.name: len(p.read_text().splitlines()) for p in SERVICES.glob("*.py")}
    assert all(n <= 250 for n in sizes.values()), sizes


def test_repositories_under_db_and_no_admin_module() -> None:
    assert not (PROJECT_ROOT / "callguard" / "admin.py").exists()
    assert not list((PROJECT_ROOT / "callguard").glob("*_repo.py"))
    assert (PROJECT_ROOT / "callguard" / "db" / "billing_repo.py").is_file()


def test_cli_commands_write_no_models() -> None:
    """The CLI is thin: no command module adds, deletes or upserts rows itself."""
    writes = re.compile(r"session\.(add|delete|execute)\(|pg_insert|\bdelete\(")
    for path in (PROJECT_ROOT / "callguard" / "cli").glob("*.py"):
        if path.name in ("db.py", "site.py", "status.py", "_common.py"):
            continue  # migrations, the reference site and a read-only status probe
        assert not writes.search(path.read_text()), path.name
