"""Migration 0007 (the delivery log) downgrades and upgrades cleanly on SQLite and PostgreSQL;
events recorded before it count as pushed, so that an upgrade does not send retailers a
database's whole history."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from order_world import make_world
from push_world import life_of, order_through
from sqlmodel import SQLModel

from models.db import alembic_config, current_revision, get_engine, head_revision

pytestmark = pytest.mark.usefixtures("database")


def migrate(direction: str, revision: str) -> None:
    config = alembic_config()
    with get_engine().begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def test_delivery_log_migration_and_the_events_before_it() -> None:
    make_world()
    order_through(None, "O1", ("A-1", 1))
    life_of("O1")
    engine = get_engine()
    before = ScriptDirectory.from_config(alembic_config()).get_revision("0007").down_revision
    migrate("downgrade", str(before))
    assert "po_event_delivery" not in sa.inspect(engine).get_table_names()
    assert "ix_po_event_unpushed" not in {
        i["name"] for i in sa.inspect(engine).get_indexes("po_event")
    }
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE po_event SET pushed_at = NULL"))

    migrate("upgrade", "head")
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        events = connection.execute(sa.text("SELECT at, pushed_at FROM po_event")).all()
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert len(events) == 10
    assert all(pushed is not None and pushed == at for at, pushed in events)
    assert diff == [], "the models and the migrations disagree: write a migration"
