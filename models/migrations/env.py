"""Alembic environment: runs on the connection Supplyline hands over (see models.db.upgrade)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

# Importing the models registers their tables on SQLModel.metadata.
import models.catalog
import models.orders
import models.relationships
import models.retailer_push
import models.sftp  # noqa: F401
from models.db import normalise_url

target_metadata = SQLModel.metadata


def run_migrations(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    # `alembic` on the command line (for writing a new migration): the configured URL.
    from supplyline.settings import get_settings

    section = context.config.get_section(context.config.config_ini_section) or {}
    section["sqlalchemy.url"] = normalise_url(
        context.config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url
    )
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.begin() as connection:
        run_migrations(connection)


main()
