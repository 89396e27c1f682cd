"""The delivery log of the outbox: each PO event, per destination, until the retailer has it.

``po_event`` is the outbox; a row here is one event owed to one destination of a retailer's
connector (its webhook, or the status files in its SFTP folder). Attempts, the next attempt's
time and the last answer are kept here, so retries with backoff carry across runs and
crashes. An event is done (``po_event.pushed_at``) once every delivery it has is ``delivered``
or ``failed``, or at once when it has no destination.

``lease_until`` is taken by a conditional UPDATE before a run delivers: one run at a time per
delivery, so that two runs cannot deliver an order's events out of order.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.catalog import BigId, in_values, timestamp_column, utcnow
from models.orders import PoEvent

DELIVERY_CHANNELS = ("webhook", "sftp")
# pending: owed (retried with backoff); delivered: the destination took it; failed: the
# destination refused it for good (a 4xx other than 408/429) or the attempts ran out.
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class PoEventDelivery(SQLModel, table=True):
    """One PO event owed to one destination of a retailer's connector."""

    __tablename__ = "po_event_delivery"
    __table_args__ = (
        sa.CheckConstraint(in_values("channel", DELIVERY_CHANNELS), name="ck_delivery_channel"),
        sa.CheckConstraint(in_values("status", DELIVERY_STATUSES), name="ck_delivery_status"),
        sa.UniqueConstraint("event_id", "connector_id", "channel", name="uq_delivery_destination"),
        sa.Index("ix_delivery_connector_status", "connector_id", "status", "event_id"),
        # An order's queue at one destination: what comes before a delivery, what follows it.
        sa.Index("ix_delivery_order_queue", "order_id", "connector_id", "channel", "event_id"),
    )

    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    event_id: int = Field(sa_type=sa.BigInteger, foreign_key="po_event.id")
    connector_id: int = Field(sa_type=sa.BigInteger, foreign_key="retailer_connector.id")
    channel: str = Field(sa_type=sa.String(16))
    order_id: int = Field(
        sa_type=sa.BigInteger,
        foreign_key="retail_order.id",
        description="The event's order: an order's events go out one after another, in order.",
    )
    status: str = Field(default="pending", sa_type=sa.String(16))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    lease_until: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    last_status_code: int | None = Field(
        default=None, description="The destination's last HTTP status (webhooks)."
    )
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


# The outbox's open end: events not pushed yet, found without reading the whole log.
UNPUSHED_EVENTS_INDEX = sa.Index(
    "ix_po_event_unpushed",
    PoEvent.__table__.c.id,  # type: ignore[attr-defined]
    sqlite_where=sa.text("pushed_at IS NULL"),
    postgresql_where=sa.text("pushed_at IS NULL"),
)
