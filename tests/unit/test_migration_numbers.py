"""recon.db.migrations.upgrade applies migrations by number, not "above the highest applied":
numbers are reserved per workstream, so a lower one may land after a database got a higher."""

from __future__ import annotations

import sqlalchemy as sa

from recon.clock import utc_now
from recon.db import migrations
from recon.db.engine import connect


def test_a_lower_numbered_migration_that_lands_later_is_still_applied(tmp_path, monkeypatch):
    (tmp_path / "sqlite").mkdir()
    monkeypatch.setattr(migrations, "MIGRATIONS", tmp_path)
    (tmp_path / "sqlite" / "001_first.sql").write_text("CREATE TABLE first (x integer);\n")
    (tmp_path / "sqlite" / "009_later.sql").write_text("CREATE TABLE later (x integer);\n")
    database = connect(f"sqlite:///{tmp_path / 'recon.db'}")
    try:
        assert migrations.upgrade(database, clock=utc_now) == ["001_first", "009_later"]
        (tmp_path / "sqlite" / "007_between.sql").write_text("CREATE TABLE middle (x integer);\n")
        assert migrations.upgrade(database, clock=utc_now) == ["007_between"]
        assert migrations.upgrade(database, clock=utc_now) == []
        with database.engine.connect() as connection:
            assert sa.inspect(connection).has_table("middle")
    finally:
        database.dispose()
