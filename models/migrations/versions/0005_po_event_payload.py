"""PO events carry a kind and a payload: acknowledgements, shipments and cancellations from
suppliers become events too, and the outbox pushes all of them to retailers.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 18:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: SQLite need not rebuild the table.
    op.add_column(
        "po_event",
        sa.Column("kind", sa.String(length=32), server_default="state", nullable=False),
    )
    op.add_column("po_event", sa.Column("payload", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("po_event", schema=None) as batch_op:
        batch_op.drop_column("payload")
        batch_op.drop_column("kind")
