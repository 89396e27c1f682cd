"""The SFTP pickup ledger: every remote file seen in a supplier's inbox, and every pickup run.

The ledger, not the folders, is the truth. A remote file is one row per (supplier, name, size,
mtime): a file still growing shows up as new rows, and only the row whose size and mtime held
still for the stability interval (or that has a marker) is taken. Its state goes
``seen`` → ``downloaded`` → ``processed`` → ``archived``; a file that is no catalog file is
``ignored``, one whose name could escape the working folder ``refused``, each logged once.

A pickup row is both the history of runs and a lease: one ``running`` pickup per supplier
(a partial unique index), so two runs never work one inbox at once.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.catalog import BigId, in_values, timestamp_column, utcnow

REMOTE_FILE_STATES = ("seen", "downloaded", "processed", "archived", "ignored", "refused")
# Past these the file is done with: it is never downloaded or processed again.
SETTLED_STATES = ("processed", "archived", "ignored", "refused")
PICKUP_STATUSES = ("running", "completed", "failed")


class RemoteFile(SQLModel, table=True):
    """A file in a supplier's SFTP inbox, as the ledger knows it."""

    __tablename__ = "sftp_remote_file"
    __table_args__ = (
        sa.CheckConstraint(
            in_values("state", REMOTE_FILE_STATES), name="ck_sftp_remote_file_state"
        ),
        sa.UniqueConstraint(
            "supplier_id", "name", "size_bytes", "mtime", name="uq_sftp_remote_file_version"
        ),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    supplier_id: int = Field(sa_type=sa.BigInteger, foreign_key="supplier.id")
    name: str = Field(sa_type=sa.String(512))
    remote_path: str = Field(sa_type=sa.Text)
    size_bytes: int = Field(sa_type=sa.BigInteger)
    mtime: int = Field(sa_type=sa.BigInteger, description="Remote modification time, epoch s.")
    state: str = Field(default="seen", sa_type=sa.String(16))
    first_seen_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    sha256: str | None = Field(default=None, sa_type=sa.String(64))
    download_attempts: int = 0
    catalog_file_id: int | None = Field(
        default=None, sa_type=sa.BigInteger, foreign_key="catalog_file.id"
    )
    archived_path: str | None = Field(default=None, sa_type=sa.Text)
    error_file_path: str | None = Field(default=None, sa_type=sa.Text)
    message: str | None = Field(default=None, sa_type=sa.Text)


class Pickup(SQLModel, table=True):
    """One run over a supplier's inbox: what it found, took and why it stopped."""

    __tablename__ = "sftp_pickup"
    __table_args__ = (
        sa.CheckConstraint(in_values("status", PICKUP_STATUSES), name="ck_sftp_pickup_status"),
        sa.Index(
            "uq_sftp_pickup_running",
            "supplier_id",
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        ),
        sa.Index("ix_sftp_pickup_supplier_started", "supplier_id", "started_at"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    supplier_id: int = Field(sa_type=sa.BigInteger, foreign_key="supplier.id")
    status: str = Field(default="running", sa_type=sa.String(16))
    started_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    finished_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    files_listed: int = 0
    files_taken: int = 0
    files_waiting: int = 0
    flow_run_id: str | None = Field(default=None, sa_type=sa.String(36))
    message: str | None = Field(default=None, sa_type=sa.Text)
