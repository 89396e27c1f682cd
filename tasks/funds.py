"""The purchase decision and the funds ledger of a connection.

Funds are reserved by one conditional UPDATE (``… WHERE available_funds >= amount``), so two
purchases at once that together exceed the funds cannot both pass: on PostgreSQL the second
waits for the first's row lock and re-checks, on SQLite writers take turns. Amounts are
``Decimal``; the SQL rounds every result to cents so SQLite's doubles stay exact.

Each PO reference is purchased at most once and released at most once (a unique key on the
ledger), so a retried purchase or cancellation never moves funds twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.catalog import utcnow
from models.relationships import (
    UNATTENDED_PAYMENT_METHODS,
    FundsMovement,
    RetailerConnection,
)
from supplyline.errors import RelationshipError
from tasks.audit import record_event
from tasks.connections import parse_money, reload_connection

CENTS = 2


@dataclass(frozen=True)
class Purchased:
    """The PO was purchased automatically; ``amount`` was taken from the connection's funds."""

    connection_id: int
    reference: str
    amount: Decimal
    available_funds: Decimal


@dataclass(frozen=True)
class AwaitingPurchase:
    """The PO waits for a manual purchase; ``reason`` names the rule that stopped it."""

    connection_id: int
    reference: str
    reason: str


def decide_purchase(
    session: Session,
    connection_id: int,
    amount: Decimal | str,
    *,
    reference: str,
    actor: str = "order-sync",
) -> Purchased | AwaitingPurchase:
    """Purchase a sent PO automatically if the connection's rules allow it, else say why not.

    Auto purchase must be on, the payment method ACH or line of credit, and the available
    funds (or remaining credit) must cover ``amount``, which is then reserved. The caller's
    transaction holds the reservation: commit it with the PO's state. Call it as the first
    write of its transaction (on SQLite a transaction that read first cannot wait for a lock).
    """
    total = parse_money(amount, what="the PO total")
    if total == 0:
        raise RelationshipError(f"PO {reference}: a purchase needs a total above 0")
    savepoint = session.begin_nested()
    try:
        session.add(
            FundsMovement(
                connection_id=connection_id, reference=reference, kind="purchase", amount=total
            )
        )
        session.flush()
    except IntegrityError:
        savepoint.rollback()
        return _already_purchased(session, connection_id, reference)
    covered = session.execute(
        sa.update(RetailerConnection)
        .where(
            RetailerConnection.id == connection_id,  # type: ignore[arg-type]
            RetailerConnection.status == "active",  # type: ignore[arg-type]
            RetailerConnection.auto_purchase.is_(True),  # type: ignore[attr-defined]
            RetailerConnection.payment_method.in_(UNATTENDED_PAYMENT_METHODS),  # type: ignore[union-attr]
            RetailerConnection.available_funds >= total,  # type: ignore[operator]
        )
        .values(
            available_funds=sa.func.round(RetailerConnection.available_funds - total, CENTS),
            funds_updated_at=utcnow(),
        )
    )
    if covered.rowcount != 1:  # type: ignore[attr-defined]
        savepoint.rollback()
        return AwaitingPurchase(
            connection_id, reference, _why_not(reload_connection(session, connection_id), total)
        )
    savepoint.commit()
    connection = reload_connection(session, connection_id)
    remaining = connection.available_funds or Decimal("0.00")
    record_event(
        session,
        actor=actor,
        action="funds.purchase",
        entity_type="connection",
        entity_id=connection_id,
        before={"available_funds": f"{remaining + total:.2f}"},
        after={"available_funds": f"{remaining:.2f}", "reference": reference},
    )
    return Purchased(connection_id, reference, total, remaining)


def decide_purchases(
    session: Session,
    connection_id: int,
    amounts: list[tuple[str, Decimal]],
    *,
    actor: str = "order-sync",
) -> dict[str, Purchased | AwaitingPurchase]:
    """:func:`decide_purchase` for many sent POs of one connection, in order, at once: one
    read of the connection (row-locked on PostgreSQL; on SQLite the caller's transaction must
    hold the write lock: ``session_scope(immediate=True)``), one ledger insert, one funds
    update and one audit event, whatever the number of POs. A PO purchased before keeps its
    purchase."""
    query = (
        select(RetailerConnection)
        .where(RetailerConnection.id == connection_id)
        .execution_options(populate_existing=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    connection = session.exec(query).first()
    if connection is None:
        raise RelationshipError(f"no connection #{connection_id}; see: supplyline connection list")
    references = [reference for reference, _ in amounts]
    earlier = {
        movement.reference: movement.amount
        for movement in session.exec(
            select(FundsMovement).where(
                FundsMovement.connection_id == connection_id,
                FundsMovement.kind == "purchase",
                FundsMovement.reference.in_(references),  # type: ignore[attr-defined]
            )
        )
    }
    eligible = (
        connection.status == "active"
        and connection.auto_purchase
        and connection.payment_method in UNATTENDED_PAYMENT_METHODS
        and connection.available_funds is not None
    )
    available = connection.available_funds
    decisions: dict[str, Purchased | AwaitingPurchase] = {}
    taken: list[tuple[str, Decimal]] = []
    for reference, amount in amounts:
        total = parse_money(amount, what="the PO total")
        if reference in earlier:
            decisions[reference] = Purchased(
                connection_id, reference, earlier[reference], available or Decimal("0.00")
            )
        elif eligible and total > 0 and available is not None and available >= total:
            available = available - total
            taken.append((reference, total))
            decisions[reference] = Purchased(connection_id, reference, total, available)
        else:
            decisions[reference] = AwaitingPurchase(
                connection_id, reference, _why_not(connection, total, available)
            )
    if taken:
        sum_taken = sum((amount for _, amount in taken), Decimal("0.00"))
        now = utcnow()
        session.execute(
            sa.insert(FundsMovement),
            [
                {
                    "connection_id": connection_id,
                    "reference": reference,
                    "kind": "purchase",
                    "amount": amount,
                    "created_at": now,
                }
                for reference, amount in taken
            ],
        )
        changed = session.execute(
            sa.update(RetailerConnection)
            .where(
                RetailerConnection.id == connection_id,  # type: ignore[arg-type]
                RetailerConnection.available_funds >= sum_taken,  # type: ignore[operator]
            )
            .values(
                available_funds=sa.func.round(
                    RetailerConnection.available_funds - sum_taken, CENTS
                ),
                funds_updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise RelationshipError(
                f"the funds of connection #{connection_id} changed while POs were purchased"
            )
        record_event(
            session,
            actor=actor,
            action="funds.purchase",
            entity_type="connection",
            entity_id=connection_id,
            before={"available_funds": f"{connection.available_funds:.2f}"},
            after={
                "available_funds": f"{available:.2f}",
                "references": [reference for reference, _ in taken],
                "total": f"{sum_taken:.2f}",
            },
        )
    return decisions


def release_funds(
    session: Session, connection_id: int, *, reference: str, actor: str = "order-sync"
) -> Decimal:
    """Give back what PO ``reference`` took, when it is cancelled; returns the amount (0 when
    it was never purchased automatically or was released already). Lines given back earlier
    (:func:`release_line_funds`) are not given back twice: this releases the rest. Works after
    a disconnect: POs already sent still get their cancellations."""
    purchase = _locked_purchase(session, connection_id, reference)
    if purchase is None:
        return Decimal("0.00")
    amount = Decimal(str(purchase.amount)) - _released_for_lines(session, connection_id, reference)
    return _release(session, connection_id, reference, amount, actor=actor)


def line_release_reference(po_reference: str, line_no: int, quantity_given_back: int) -> str:
    """The ledger reference of a line's release: one per line and total quantity given back,
    so each step (a rejection, then a cancellation of more) is released once."""
    return f"{po_reference}:{line_no}:{quantity_given_back}"


def release_line_funds(
    session: Session,
    connection_id: int,
    *,
    po_reference: str,
    line_no: int,
    quantity_given_back: int,
    amount: Decimal,
    actor: str = "fulfillment-sync",
) -> Decimal:
    """Give back ``amount`` for units of a PO line the supplier rejected or cancelled, now
    ``quantity_given_back`` in all on that line; returns what was given back (0 when the PO was
    not purchased automatically, was released whole already, or this step was released)."""
    purchase = _locked_purchase(session, connection_id, po_reference)
    if purchase is None or _movement_or_none(session, connection_id, po_reference, "release"):
        return Decimal("0.00")
    left = Decimal(str(purchase.amount)) - _released_for_lines(session, connection_id, po_reference)
    reference = line_release_reference(po_reference, line_no, quantity_given_back)
    return _release(session, connection_id, reference, min(amount, left), actor=actor)


def _locked_purchase(session: Session, connection_id: int, reference: str) -> FundsMovement | None:
    """The PO's purchase, with the connection's row locked on PostgreSQL (SQLite's writers
    take turns), so two releases of one PO at once cannot both count the same remainder."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            sa.select(RetailerConnection.id)
            .where(RetailerConnection.id == connection_id)  # type: ignore[arg-type]
            .with_for_update()
        )
    return _movement_or_none(session, connection_id, reference, "purchase")


def _released_for_lines(session: Session, connection_id: int, po_reference: str) -> Decimal:
    total = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(FundsMovement.amount), 0)).where(
            FundsMovement.connection_id == connection_id,
            FundsMovement.kind == "release",
            sa.func.substr(FundsMovement.reference, 1, len(po_reference) + 1) == po_reference + ":",
        )
    ).scalar_one()
    return Decimal(str(total)).quantize(Decimal("0.01"))


def _release(
    session: Session, connection_id: int, reference: str, amount: Decimal, *, actor: str
) -> Decimal:
    amount = amount.quantize(Decimal("0.01"))
    if amount <= 0:
        return Decimal("0.00")
    savepoint = session.begin_nested()
    try:
        session.execute(
            sa.insert(FundsMovement).values(
                connection_id=connection_id,
                reference=reference,
                kind="release",
                amount=amount,
                created_at=utcnow(),
            )
        )
    except IntegrityError:
        savepoint.rollback()
        return Decimal("0.00")
    savepoint.commit()
    session.execute(
        sa.update(RetailerConnection)
        .where(RetailerConnection.id == connection_id)  # type: ignore[arg-type]
        .values(
            available_funds=sa.func.round(
                sa.func.coalesce(RetailerConnection.available_funds, 0) + amount, CENTS
            ),
            funds_updated_at=utcnow(),
        )
    )
    remaining = reload_connection(session, connection_id).available_funds or Decimal("0.00")
    record_event(
        session,
        actor=actor,
        action="funds.release",
        entity_type="connection",
        entity_id=connection_id,
        before={"available_funds": f"{remaining - amount:.2f}"},
        after={"available_funds": f"{remaining:.2f}", "reference": reference},
    )
    return amount


def funds_movements(session: Session, connection_id: int) -> list[FundsMovement]:
    return list(
        session.exec(
            select(FundsMovement)
            .where(FundsMovement.connection_id == connection_id)
            .order_by(FundsMovement.id)  # type: ignore[arg-type]
        )
    )


def _why_not(
    connection: RetailerConnection, total: Decimal, available: Decimal | None = None
) -> str:
    """The first rule that keeps the PO from an automatic purchase (``available``: the funds
    left, when earlier POs of the same batch took some)."""
    available = connection.available_funds if available is None else available
    manual = "the PO waits for a manual purchase"
    if connection.status != "active":
        return f"connection #{connection.id} is {connection.status}: {manual}"
    if not connection.auto_purchase:
        return f"auto purchase is off for connection #{connection.id}: {manual}"
    if connection.payment_method is None:
        return f"connection #{connection.id} has no payment method: {manual}"
    if connection.payment_method not in UNATTENDED_PAYMENT_METHODS:
        return (
            f"payment method {connection.payment_method} always needs a person: {manual} "
            f"(auto purchase uses only {' or '.join(UNATTENDED_PAYMENT_METHODS)})"
        )
    funds_name = (
        "remaining credit" if connection.payment_method == "line_of_credit" else "available funds"
    )
    if available is None:
        return (
            f"connection #{connection.id} has no {funds_name} set: {manual} (set them with "
            f"supplyline connection settings {connection.id} --funds AMOUNT)"
        )
    return f"the {funds_name} {available:.2f} do not cover the PO total {total:.2f}: {manual}"


def _already_purchased(session: Session, connection_id: int, reference: str) -> Purchased:
    # The insert also fails for a connection that does not exist: say so, not "purchased".
    remaining = reload_connection(session, connection_id).available_funds or Decimal("0.00")
    purchase = _movement(session, connection_id, reference, "purchase")
    return Purchased(connection_id, reference, purchase.amount, remaining)


def _movement(session: Session, connection_id: int, reference: str, kind: str) -> FundsMovement:
    movement = _movement_or_none(session, connection_id, reference, kind)
    if movement is None:
        raise RelationshipError(f"no {kind} of PO {reference} on connection #{connection_id}")
    return movement


def _movement_or_none(
    session: Session, connection_id: int, reference: str, kind: str
) -> FundsMovement | None:
    return session.exec(
        select(FundsMovement).where(
            FundsMovement.connection_id == connection_id,
            FundsMovement.reference == reference,
            FundsMovement.kind == kind,
        )
    ).first()
