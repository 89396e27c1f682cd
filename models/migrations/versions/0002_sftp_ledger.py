"""SFTP pickup ledger: remote files seen in suppliers' inboxes, and pickup runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sftp_remote_file",
        sa.Column("id", BigId, nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("remote_path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("download_attempts", sa.Integer(), nullable=False),
        sa.Column("catalog_file_id", sa.BigInteger(), nullable=True),
        sa.Column("archived_path", sa.Text(), nullable=True),
        sa.Column("error_file_path", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('seen', 'downloaded', 'processed', 'archived', 'ignored', 'refused')",
            name="ck_sftp_remote_file_state",
        ),
        sa.ForeignKeyConstraint(["catalog_file_id"], ["catalog_file.id"]),
        sa.ForeignKeyConstraint(["supplier_id"], ["supplier.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "supplier_id", "name", "size_bytes", "mtime", name="uq_sftp_remote_file_version"
        ),
    )
    op.create_table(
        "sftp_pickup",
        sa.Column("id", BigId, nullable=False),
        sa.Column("supplier_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("files_listed", sa.Integer(), nullable=False),
        sa.Column("files_taken", sa.Integer(), nullable=False),
        sa.Column("files_waiting", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed')", name="ck_sftp_pickup_status"
        ),
        sa.ForeignKeyConstraint(["supplier_id"], ["supplier.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_sftp_pickup_supplier_started",
        "sftp_pickup",
        ["supplier_id", "started_at"],
        unique=False,
    )
    op.create_index(
        "uq_sftp_pickup_running",
        "sftp_pickup",
        ["supplier_id"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("uq_sftp_pickup_running", table_name="sftp_pickup")
    op.drop_index("ix_sftp_pickup_supplier_started", table_name="sftp_pickup")
    op.drop_table("sftp_pickup")
    op.drop_table("sftp_remote_file")
