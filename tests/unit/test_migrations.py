"""RUN-2: the schema comes only from Alembic, as one straight line of revisions. Branches
merged in parallel each add a migration; two heads would stop `callguard db upgrade`."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from callguard.config import PROJECT_ROOT


def test_one_head_one_line() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    script = ScriptDirectory.from_config(cfg)
    assert len(script.get_heads()) == 1, script.get_heads()
    revisions = list(script.walk_revisions())
    assert [r.down_revision for r in revisions if r.down_revision is None] == [None]
    assert all(not isinstance(r.down_revision, tuple) for r in revisions)  # no merge points
