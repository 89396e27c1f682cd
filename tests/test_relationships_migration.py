"""Migrations 0003 (relationships) and 0004 (orders) stand on their own: each downgrades and
upgrades cleanly on a database at the head, on SQLite and PostgreSQL, and leaves the tables
before it alone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import models.orders
import models.relationships  # noqa: F401  (their tables are compared with the migrations too)
from models.db import alembic_config, current_revision, get_engine, head_revision, session_scope
from tasks.retailers import add_retailer
from tasks.suppliers import add_supplier

pytestmark = pytest.mark.usefixtures("database")

RELATIONSHIP_TABLES = {
    "supplier_ordering",
    "retailer",
    "retailer_connection",
    "funds_movement",
    "retailer_connector",
    "credential",
    "credential_secret",
    "lookup_table",
    "lookup_entry",
    "audit_event",
}


def migrate(direction: str, revision: str) -> None:
    config = alembic_config()
    with get_engine().begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def test_relationships_migration_downgrades_and_upgrades_cleanly() -> None:
    with session_scope() as session:
        add_supplier(session, "acme", "ACME Tools")
    engine = get_engine()
    assert set(sa.inspect(engine).get_table_names()) >= RELATIONSHIP_TABLES

    migrate("downgrade", "0002")
    assert current_revision(engine) == "0002"
    assert not RELATIONSHIP_TABLES & set(sa.inspect(engine).get_table_names())

    migrate("upgrade", "head")
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT code FROM supplier")).scalar_one() == "acme"
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], "the models and the migrations disagree: write a migration"


ORDER_TABLES = {"retail_order", "order_line", "purchase_order", "po_event"}


def test_orders_migration_downgrades_and_upgrades_cleanly() -> None:
    with session_scope() as session:
        add_retailer(session, "shopco", "Shop Co", actor="tester")
    engine = get_engine()
    assert set(sa.inspect(engine).get_table_names()) >= ORDER_TABLES

    migrate("downgrade", "0003")
    assert not ORDER_TABLES & set(sa.inspect(engine).get_table_names())
    assert "all_or_nothing" not in {c["name"] for c in sa.inspect(engine).get_columns("retailer")}

    migrate("upgrade", "head")
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT code, all_or_nothing FROM retailer")).one()
        assert (row.code, bool(row.all_or_nothing)) == ("shopco", False)
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], "the models and the migrations disagree: write a migration"
