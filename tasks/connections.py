"""Connections between retailers and suppliers (account binding), and suppliers' ordering rules.

Every status change is one conditional UPDATE on the current status (``WHERE status IN …``): of
two operators acting at once, say one approving while the other disconnects, the second finds
the status changed and is refused with the reason. Nothing is overwritten unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.catalog import Supplier, utcnow
from models.relationships import (
    FUNDS_SOURCES,
    LIVE_CONNECTION_STATUSES,
    ORDER_CONNECTOR_TYPES,
    ORDERING_MODES,
    PAYMENT_METHODS,
    Retailer,
    RetailerConnection,
    SupplierOrdering,
)
from supplyline.errors import RelationshipError
from tasks.audit import record_event, snapshot
from tasks.retailers import get_retailer
from tasks.suppliers import SupplierError, get_supplier

DISCONNECT_CONFIRMATION = "DISCONNECT"


class ConnectionStateError(RelationshipError):
    """The connection is not in a state that allows the change (someone else may have acted)."""


# --- suppliers' ordering rules ---------------------------------------------------------------


def ordering_of(session: Session, supplier: Supplier) -> SupplierOrdering:
    """The supplier's ordering rules; the defaults (not stored) if it never set any."""
    return session.get(SupplierOrdering, supplier.id) or SupplierOrdering(supplier_id=supplier.id)


def set_supplier_ordering(
    session: Session,
    supplier_code: str,
    *,
    ordering_mode: str | None = None,
    terms_url: str | None = None,
    clear_terms: bool = False,
    order_connector_type: str | None = None,
    order_connector_settings: dict[str, Any] | None = None,
    actor: str,
) -> SupplierOrdering:
    """Change what is given. A new terms URL does not void acceptances already recorded."""
    supplier = supplier_by_code(session, supplier_code)
    if ordering_mode is not None and ordering_mode not in ORDERING_MODES:
        raise RelationshipError(
            f"ordering {ordering_mode!r} is not one of: {', '.join(ORDERING_MODES)}"
        )
    if terms_url is not None:
        check_url(terms_url, what="the terms-of-service URL")
    if order_connector_type is not None and order_connector_type not in ORDER_CONNECTOR_TYPES:
        raise RelationshipError(
            f"order connector {order_connector_type!r} is not one of: "
            f"{', '.join(ORDER_CONNECTOR_TYPES)}"
        )
    ordering = session.get(SupplierOrdering, supplier.id)
    before = snapshot(ordering) if ordering else None
    if ordering is None:
        ordering = SupplierOrdering(supplier_id=supplier.id)
        session.add(ordering)
    if ordering_mode is not None:
        ordering.ordering_mode = ordering_mode
    if terms_url is not None or clear_terms:
        ordering.terms_url = terms_url
    if order_connector_type is not None:
        ordering.order_connector_type = order_connector_type
    if order_connector_settings is not None:
        ordering.order_connector_settings = order_connector_settings
    ordering.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=actor,
        action="supplier.ordering",
        entity_type="supplier",
        entity_id=supplier.id,
        before=before,
        after=snapshot(ordering),
    )
    return ordering


def check_url(url: str, *, what: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise RelationshipError(f"{what} must be an http(s) URL, not {url!r}")


# --- requests and status changes -------------------------------------------------------------


def request_connection(
    session: Session,
    retailer_code: str,
    supplier_code: str,
    *,
    accept_terms: str | None = None,
    account_ref: str | None = None,
    actor: str,
) -> RetailerConnection:
    """A retailer asks to connect: active at once (instant ordering) or pending (review).

    When the supplier publishes terms, the request must accept exactly that URL; the accepted
    URL and the time are recorded on the connection.
    """
    retailer = get_retailer(session, retailer_code)
    supplier = supplier_by_code(session, supplier_code)
    ordering = ordering_of(session, supplier)
    _check_terms(supplier, ordering, accept_terms)
    live = _live_connection(session, retailer, supplier)
    if live is not None:
        raise ConnectionStateError(_already_connected(retailer, supplier, live))
    now = utcnow()
    instant = ordering.ordering_mode == "instant"
    connection = RetailerConnection(
        retailer_id=retailer.id,
        supplier_id=supplier.id,
        status="active" if instant else "pending",
        account_ref=account_ref,
        terms_url_accepted=accept_terms,
        terms_accepted_at=now if ordering.terms_url else None,
        requested_at=now,
        decided_at=now if instant else None,
    )
    session.add(connection)
    try:
        session.flush()
    except IntegrityError as exc:  # a request for the same pair committed meanwhile
        raise ConnectionStateError(
            f"retailer {retailer.code!r} already has a pending or active connection to "
            f"{supplier.code!r}; see: supplyline connection list --retailer {retailer.code}"
        ) from exc
    record_event(
        session,
        actor=actor,
        action="connection.request",
        entity_type="connection",
        entity_id=connection.id,
        after=snapshot(connection),
    )
    return connection


def approve_connection(session: Session, connection_id: int, *, actor: str) -> RetailerConnection:
    """The supplier accepts a pending request: the connection is active."""
    return _change_status(
        session, connection_id, "approve", ("pending",), "active", {"decided_at": utcnow()}, actor
    )


def reject_connection(session: Session, connection_id: int, *, actor: str) -> RetailerConnection:
    """The supplier turns a pending request down; the retailer may ask again later."""
    return _change_status(
        session, connection_id, "reject", ("pending",), "rejected", {"decided_at": utcnow()}, actor
    )


def disconnect_connection(
    session: Session, connection_id: int, *, confirmation: str, actor: str
) -> RetailerConnection:
    """End a connection (or withdraw a pending request). Deliberate: ``confirmation`` must be
    the word DISCONNECT. No new PO goes out from then on; POs already sent keep receiving their
    fulfillment updates. Reconnecting is a new request."""
    if confirmation != DISCONNECT_CONFIRMATION:
        raise RelationshipError(
            f"not disconnected: type {DISCONNECT_CONFIRMATION} (in capitals) to confirm, "
            f"or pass --confirm {DISCONNECT_CONFIRMATION} in scripts"
        )
    return _change_status(
        session,
        connection_id,
        "disconnect",
        LIVE_CONNECTION_STATUSES,
        "disconnected",
        {"disconnected_at": utcnow()},
        actor,
    )


def _change_status(
    session: Session,
    connection_id: int,
    verb: str,
    from_statuses: tuple[str, ...],
    to_status: str,
    values: dict[str, datetime],
    actor: str,
) -> RetailerConnection:
    # One conditional UPDATE per possible current status: the first that matches wins, so the
    # audit records the status the change really came from.
    for from_status in from_statuses:
        changed = session.execute(
            sa.update(RetailerConnection)
            .where(
                RetailerConnection.id == connection_id,  # type: ignore[arg-type]
                RetailerConnection.status == from_status,  # type: ignore[arg-type]
            )
            .values(status=to_status, **values)
        )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            connection = reload_connection(session, connection_id)
            record_event(
                session,
                actor=actor,
                action=f"connection.{verb}",
                entity_type="connection",
                entity_id=connection_id,
                before={"status": from_status},
                after={"status": to_status} | {k: v.isoformat() for k, v in values.items()},
            )
            return connection
    connection = reload_connection(session, connection_id)
    raise ConnectionStateError(
        f"cannot {verb} connection #{connection_id}: it is {connection.status}, not "
        f"{' or '.join(from_statuses)}"
    )


# --- settings --------------------------------------------------------------------------------


def update_connection_settings(
    session: Session,
    connection_id: int,
    *,
    auto_sync: bool | None = None,
    auto_purchase: bool | None = None,
    payment_method: str | None = None,
    funds: Decimal | str | None = None,
    funds_source: str = "operator",
    account_ref: str | None = None,
    actor: str,
) -> RetailerConnection:
    """Change the given settings of a pending or active connection.

    ``funds`` sets the available funds (ACH) or the credit limit left (line of credit), as the
    operator or the supplier reports it; purchases then take from it.
    """
    if funds_source not in FUNDS_SOURCES:
        raise RelationshipError(
            f"funds source {funds_source!r} is not one of: {', '.join(FUNDS_SOURCES)}"
        )
    if payment_method is not None and payment_method not in PAYMENT_METHODS:
        raise RelationshipError(
            f"payment method {payment_method!r} is not one of: {', '.join(PAYMENT_METHODS)}"
        )
    values: dict[str, Any] = {
        name: value
        for name, value in (
            ("auto_sync", auto_sync),
            ("auto_purchase", auto_purchase),
            ("payment_method", payment_method),
            ("account_ref", account_ref),
        )
        if value is not None
    }
    if funds is not None:
        values |= {
            "available_funds": parse_money(funds, what="funds"),
            "funds_source": funds_source,
            "funds_updated_at": utcnow(),
        }
    if not values:
        raise RelationshipError(
            "nothing to change: give --auto-sync/--no-auto-sync, --auto-purchase/"
            "--no-auto-purchase, --payment, --funds or --account"
        )
    before = snapshot(reload_connection(session, connection_id), include=set(values))
    changed = session.execute(
        sa.update(RetailerConnection)
        .where(
            RetailerConnection.id == connection_id,  # type: ignore[arg-type]
            RetailerConnection.status.in_(LIVE_CONNECTION_STATUSES),  # type: ignore[attr-defined]
        )
        .values(**values)
    )
    connection = reload_connection(session, connection_id)
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise ConnectionStateError(
            f"connection #{connection_id} is {connection.status}: only a pending or active "
            f"connection has settings to change; reconnect with: supplyline connect"
        )
    record_event(
        session,
        actor=actor,
        action="connection.settings",
        entity_type="connection",
        entity_id=connection_id,
        before=before,
        after=snapshot(connection, include=set(values)),
    )
    return connection


def parse_money(value: Decimal | str, *, what: str) -> Decimal:
    """A non-negative amount with at most two decimals, never a float."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise RelationshipError(f"{what} {value!r} is not an amount such as 1500.00") from exc
    if not amount.is_finite() or amount < 0:
        raise RelationshipError(f"{what} must be an amount of 0 or more, not {value!r}")
    if amount != amount.quantize(Decimal("0.01")):
        raise RelationshipError(f"{what} {value!r} has more than two decimals")
    return amount.quantize(Decimal("0.01"))


def can_send_new_po(connection: RetailerConnection) -> bool:
    """Whether a new PO may go out on this connection: only while it is active.

    Read the connection in the transaction that records the PO. A disconnected connection
    sends nothing new; POs it already sent still take their fulfillment updates.
    """
    return connection.status == "active"


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionView:
    connection: RetailerConnection
    retailer_code: str
    supplier_code: str

    def as_dict(self) -> dict[str, Any]:
        data = snapshot(self.connection)
        return {
            "id": data.pop("id"),
            "retailer": self.retailer_code,
            "supplier": self.supplier_code,
            "status": data.pop("status"),
            "linked_account": data.pop("account_ref"),
            **data,
            "can_send_new_po": can_send_new_po(self.connection),
        }


def find_connection(session: Session, reference: str) -> RetailerConnection:
    """A connection by its id, or ``RETAILER/SUPPLIER`` (the newest connection of the pair)."""
    reference = reference.strip()
    if reference.isdigit():
        connection = session.get(RetailerConnection, int(reference))
        if connection is None:
            raise RelationshipError(f"no connection #{reference}; see: supplyline connection list")
        return connection
    retailer_code, _, supplier_code = reference.partition("/")
    if not supplier_code:
        raise RelationshipError(
            f"{reference!r} is not a connection: give its id or RETAILER/SUPPLIER"
        )
    retailer = get_retailer(session, retailer_code)
    supplier = supplier_by_code(session, supplier_code)
    connection = session.exec(
        select(RetailerConnection)
        .where(
            RetailerConnection.retailer_id == retailer.id,
            RetailerConnection.supplier_id == supplier.id,
        )
        .order_by(RetailerConnection.id.desc())  # type: ignore[union-attr]
    ).first()
    if connection is None:
        raise RelationshipError(
            f"retailer {retailer.code!r} has never connected to {supplier.code!r}; "
            f"ask with: supplyline connect {retailer.code} {supplier.code}"
        )
    return connection


def list_connections(
    session: Session,
    *,
    retailer_code: str | None = None,
    supplier_code: str | None = None,
    status: str | None = None,
) -> list[ConnectionView]:
    query = (
        select(RetailerConnection, Retailer.code, Supplier.code)
        .join(Retailer, Retailer.id == RetailerConnection.retailer_id)
        .join(Supplier, Supplier.id == RetailerConnection.supplier_id)
        .order_by(RetailerConnection.id)  # type: ignore[arg-type]
    )
    if retailer_code:
        retailer = get_retailer(session, retailer_code)
        query = query.where(RetailerConnection.retailer_id == retailer.id)
    if supplier_code:
        supplier = supplier_by_code(session, supplier_code)
        query = query.where(RetailerConnection.supplier_id == supplier.id)
    if status:
        query = query.where(RetailerConnection.status == status)
    return [ConnectionView(c, r, s) for c, r, s in session.exec(query)]


def view_connection(session: Session, connection: RetailerConnection) -> ConnectionView:
    retailer = session.get(Retailer, connection.retailer_id)
    supplier = session.get(Supplier, connection.supplier_id)
    return ConnectionView(connection, retailer.code, supplier.code)  # type: ignore[union-attr]


# --- helpers ---------------------------------------------------------------------------------


def supplier_by_code(session: Session, code: str) -> Supplier:
    """The supplier, or a RelationshipError that says how to add it."""
    try:
        return get_supplier(session, code)
    except SupplierError as exc:
        raise RelationshipError(str(exc)) from exc


def reload_connection(session: Session, connection_id: int) -> RetailerConnection:
    """The connection as the database has it now, not as the session last saw it."""
    connection = session.exec(
        select(RetailerConnection)
        .where(RetailerConnection.id == connection_id)
        .execution_options(populate_existing=True)
    ).first()
    if connection is None:
        raise RelationshipError(f"no connection #{connection_id}; see: supplyline connection list")
    return connection


def _live_connection(
    session: Session, retailer: Retailer, supplier: Supplier
) -> RetailerConnection | None:
    return session.exec(
        select(RetailerConnection).where(
            RetailerConnection.retailer_id == retailer.id,
            RetailerConnection.supplier_id == supplier.id,
            RetailerConnection.status.in_(LIVE_CONNECTION_STATUSES),  # type: ignore[attr-defined]
        )
    ).first()


def _already_connected(
    retailer: Retailer, supplier: Supplier, connection: RetailerConnection
) -> str:
    return (
        f"retailer {retailer.code!r} already has a {connection.status} connection to "
        f"{supplier.code!r} (#{connection.id}); disconnect it first to ask again"
    )


def _check_terms(supplier: Supplier, ordering: SupplierOrdering, accepted: str | None) -> None:
    if ordering.terms_url is None:
        if accepted is not None:
            raise RelationshipError(
                f"supplier {supplier.code!r} publishes no terms of service: drop --accept-terms"
            )
        return
    if accepted is None:
        raise RelationshipError(
            f"supplier {supplier.code!r} asks retailers to accept its terms of service at "
            f"{ordering.terms_url}: read them, then repeat with --accept-terms {ordering.terms_url}"
        )
    if accepted != ordering.terms_url:
        raise RelationshipError(
            f"the accepted terms {accepted!r} are not supplier {supplier.code!r}'s terms of "
            f"service, which are at {ordering.terms_url}: accept exactly that URL"
        )
