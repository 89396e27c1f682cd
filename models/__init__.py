"""Supplyline's database: SQLModel tables, the engine, and Alembic migrations."""
