"""Applying suppliers' fulfillment updates to POs: monotonic, logged, each change an event.

An update (:class:`UpdateIn`) is what a supplier says about one PO: an ``acknowledgement`` of
its lines (accepted, backordered with a date, rejected with a reason), a ``shipment`` (carrier,
service, tracking, quantities per line), a ``cancellation`` (the whole PO, or quantities of
lines) or a ``delivery`` (of one shipment, or of all). Lines are named by ``line_no`` (as sent
in the PO) and, optionally, the supplier's ``sku``, which must then match.

Quantities are levels, not steps: an acknowledgement says how many of a line are accepted,
backordered and rejected now; a cancellation how many of a line are cancelled in all. So an
update sent twice changes nothing, and one that arrives late cannot undo a newer one:

- ``applied``: it changed something; the change is a ``po_event`` (the retailer push's outbox)
  written in the same transaction, with the PO's state before and after;
- ``duplicate``: it says what is known already;
- ``stale``: it would move a line backwards (fewer accepted, fewer cancelled, a tracking number
  erased); nothing moves backwards;
- ``conflict``: it contradicts what is known (a shipment id with another tracking number or
  other lines, more shipped or cancelled than is open, a line the PO does not have, an update
  for a PO that is closed): kept and reported, not applied.

Every update is logged in ``supplier_update`` with its outcome. The PO's state follows its
lines: acknowledged → partially shipped → shipped → delivered, or cancelled when the supplier
rejected or cancelled every unit; it only ever moves forwards (one ``move_pos`` per PO and
batch). Units rejected or cancelled give their funds back, line by line, once.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.catalog import utcnow
from models.db import as_utc, chunked
from models.orders import (
    FINAL_PO_STATES,
    OPEN_SENT_PO_STATES,
    OrderLine,
    PoEvent,
    PurchaseOrder,
    Shipment,
    ShipmentLine,
    SupplierUpdate,
)
from tasks.funds import release_funds, release_line_funds
from tasks.orders import refresh_order_status
from tasks.po_states import lock_orders_of, move_pos

ACTOR = "fulfillment-sync"
UPDATE_KINDS = ("acknowledgement", "shipment", "cancellation", "delivery")
ACK_STATUSES = ("accepted", "backordered", "rejected")
# POs that still take updates that change something.
ACCEPTING_PO_STATES = (*OPEN_SENT_PO_STATES, "shipped")
# How far along a PO is: it never goes to a lower rank.
_RANK = {
    "awaiting_purchase": 0,
    "submitted": 0,
    "cancel_requested": 0,
    "acknowledged": 1,
    "partially_shipped": 2,
    "shipped": 3,
    "delivered": 4,
    "cancelled": 5,
}


class UpdateProblem(ValueError):
    """Why an update cannot be applied: it is a conflict."""


@dataclass(frozen=True)
class UpdateIn:
    """One update from a supplier about one PO, in Supplyline's terms (see the module doc)."""

    po_number: str
    kind: str
    payload: dict[str, Any]
    source: str = "api"

    def __post_init__(self) -> None:
        if self.kind not in UPDATE_KINDS:
            raise ValueError(f"update kind {self.kind!r} is not one of {', '.join(UPDATE_KINDS)}")

    @property
    def dedupe_key(self) -> str:
        """sha256 of what it says: the same update again has the same key, wherever it came
        from."""
        text = json.dumps(
            [self.po_number, self.kind, self.payload],
            sort_keys=True,
            default=str,
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class FulfillmentOutcome:
    """What a batch of updates did."""

    applied: int = 0
    duplicate: int = 0
    stale: int = 0
    conflict: int = 0
    known: int = 0
    events: int = 0
    moved: dict[str, str] = field(default_factory=dict)
    released: Decimal = Decimal("0.00")
    problems: list[str] = field(default_factory=list)
    # (outcome, detail) of each update applied or logged, in the order given.
    results: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, other: FulfillmentOutcome) -> None:
        for name in ("applied", "duplicate", "stale", "conflict", "known", "events"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.moved |= other.moved
        self.released += other.released
        self.problems.extend(other.problems)

    @property
    def received(self) -> int:
        return self.applied + self.duplicate + self.stale + self.conflict

    @property
    def did_something(self) -> bool:
        return bool(self.received)


# --- the PO as the updates see it ------------------------------------------------------------


@dataclass
class _Line:
    id: int
    line_no: int
    sku: str
    supplier_sku: str | None
    quantity: int
    unit_cost: Decimal
    accepted: int
    backordered: int
    backorder_date: date | None
    rejected: int
    rejection_reason: str | None
    cancelled: int
    cancellation_reason: str | None
    shipped: int
    delivered: int
    acknowledged_at: datetime | None
    given_back: int = 0  # rejected + cancelled when loaded: what was released already

    @property
    def live(self) -> int:
        """Units that will ship: neither rejected nor cancelled."""
        return self.quantity - self.rejected - self.cancelled

    @property
    def open(self) -> int:
        """Units neither shipped, rejected nor cancelled."""
        return self.live - self.shipped


@dataclass
class _Shipment:
    supplier_shipment_id: str
    carrier: str
    service: str | None
    tracking_number: str
    tracking_url: str | None
    shipped_at: datetime
    delivered_at: datetime | None
    lines: dict[int, int]
    id: int | None = None
    changed: bool = False


@dataclass
class _Po:
    id: int
    po_number: str
    state: str
    order_id: int
    connection_id: int | None
    lines: dict[int, _Line]
    shipments: dict[str, _Shipment]
    loaded_state: str = ""


@dataclass
class _Applied:
    outcome: str
    detail: str | None = None
    payload: dict[str, Any] | None = None


# --- applying ---------------------------------------------------------------------------------


def apply_updates(
    session: Session,
    supplier_id: int,
    updates: Iterable[UpdateIn],
    *,
    actor: str = ACTOR,
    skip_known: bool = False,
) -> FulfillmentOutcome:
    """Apply a supplier's updates in order, in the caller's transaction (on SQLite one that
    holds the write lock: ``session_scope(immediate=True)``).

    ``skip_known``: an update already in the log (any outcome) is passed over without a new
    log row; for APIs polled for their whole state, which repeat it on every poll.
    """
    updates = list(updates)
    outcome = FulfillmentOutcome()
    if skip_known and updates:
        known = _known_keys(session, supplier_id, {u.dedupe_key for u in updates})
        outcome.known = sum(u.dedupe_key in known for u in updates)
        updates = [u for u in updates if u.dedupe_key not in known]
    if not updates:
        return outcome
    po_numbers = {u.po_number for u in updates}
    named = sa.select(PurchaseOrder.id).where(
        PurchaseOrder.supplier_id == supplier_id,
        PurchaseOrder.po_number.in_(sorted(po_numbers)),  # type: ignore[attr-defined]
    )
    lock_orders_of(session, named)  # before the POs' own rows
    pos = _load(session, supplier_id, po_numbers)
    now = utcnow()
    log: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for update in updates:
        po = pos.get(update.po_number)
        if po is None:
            result = _Applied("conflict", f"no PO {update.po_number} was sent to this supplier")
        else:
            result = _apply_one(po, update, now)
        if result.outcome == "applied" and po is not None:
            state_before = po.state
            po.state = _next_state(po)
            events.append(
                {
                    "po_id": po.id,
                    "from_state": state_before,
                    "to_state": po.state,
                    "kind": update.kind,
                    "payload": result.payload,
                    "reason": None,
                    "actor": actor,
                    "at": now,
                }
            )
        setattr(outcome, result.outcome, getattr(outcome, result.outcome) + 1)
        outcome.results.append((result.outcome, result.detail))
        if result.outcome in ("conflict", "stale"):
            outcome.problems.append(
                f"{update.po_number} {update.kind} ({update.source}): {result.outcome}: "
                f"{result.detail}"
            )
        log.append(
            {
                "supplier_id": supplier_id,
                "po_id": po.id if po else None,
                "po_number": update.po_number[:128],
                "source": update.source[:512],
                "kind": update.kind,
                "dedupe_key": update.dedupe_key,
                "payload": update.payload,
                "outcome": result.outcome,
                "detail": result.detail,
                "received_at": now,
            }
        )
    session.execute(sa.insert(SupplierUpdate), log)
    _write(session, [po for po in pos.values()], now)
    if events:
        session.execute(sa.insert(PoEvent), events)
    outcome.events = len(events)
    for po in pos.values():
        outcome.released += _give_funds_back(session, po, actor=actor)
        if po.state != po.loaded_state:
            moved = move_pos(
                session,
                [(po.id, po.loaded_state)],
                po.state,
                actor=actor,
                reason=_state_reason(po),
            )
            if moved:
                outcome.moved[po.po_number] = po.state
            if po.state == "cancelled":
                if po.connection_id is not None:
                    outcome.released += release_funds(
                        session, po.connection_id, reference=po.po_number, actor=actor
                    )
                refresh_order_status(session, po.order_id)
    return outcome


def _apply_one(po: _Po, update: UpdateIn, now: datetime) -> _Applied:
    before = copy.deepcopy(po)
    try:
        if update.kind == "acknowledgement":
            result = _acknowledge(po, update.payload, now)
        elif update.kind == "shipment":
            result = _ship(po, update.payload)
        elif update.kind == "cancellation":
            result = _cancel(po, update.payload)
        else:
            result = _deliver(po, update.payload)
    except UpdateProblem as exc:
        result = _Applied("conflict", str(exc))
    except (KeyError, TypeError, ValueError) as exc:
        result = _Applied("conflict", f"malformed {update.kind}: {type(exc).__name__}: {exc}")
    if result.outcome == "applied" and po.state not in ACCEPTING_PO_STATES:
        result = _Applied(
            "conflict",
            f"PO {po.po_number} is {po.state}: it takes no more changes "
            f"({result.detail or update.kind})",
        )
    if result.outcome != "applied":
        po.lines, po.shipments = before.lines, before.shipments
    return result


def _acknowledge(po: _Po, payload: dict[str, Any], now: datetime) -> _Applied:
    targets: dict[int, dict[str, Any]] = {}
    for item in _items(payload):
        line = _line(po, item)
        status = item.get("status")
        if status not in ACK_STATUSES:
            raise UpdateProblem(
                f"line {line.line_no}: status {status!r} is not one of {', '.join(ACK_STATUSES)}"
            )
        quantity = _quantity(item, line, allow_zero=True)
        target = targets.setdefault(
            line.line_no,
            {"accepted": 0, "backordered": 0, "rejected": 0, "date": None, "reason": None},
        )
        target[status] += quantity
        if status == "backordered":
            target["date"] = _date(item.get("backorder_date"), line.line_no)
        if status == "rejected":
            target["reason"] = _text(item.get("reason"))
    changed: list[_Line] = []
    stale: list[str] = []
    for line_no, target in targets.items():
        line = po.lines[line_no]
        total = target["accepted"] + target["backordered"] + target["rejected"]
        if total > line.quantity:
            raise UpdateProblem(
                f"line {line_no}: {total} acknowledged, but {line.quantity} were ordered"
            )
        if target["rejected"] > line.quantity - line.cancelled - line.shipped:
            raise UpdateProblem(
                f"line {line_no}: {target['rejected']} rejected, but only "
                f"{line.quantity - line.cancelled - line.shipped} are neither shipped nor "
                f"cancelled"
            )
        if target["accepted"] < line.accepted or target["rejected"] < line.rejected:
            stale.append(
                f"line {line_no}: {target['accepted']} accepted and {target['rejected']} "
                f"rejected is behind what is known ({line.accepted} and {line.rejected})"
            )
            continue
        new = (target["accepted"], target["backordered"], target["rejected"], target["date"])
        old = (line.accepted, line.backordered, line.rejected, line.backorder_date)
        if new == old and line.acknowledged_at is not None:
            continue
        line.accepted, line.backordered, line.rejected = new[:3]
        line.backorder_date = target["date"] if target["backordered"] else None
        if target["rejected"]:
            line.rejection_reason = target["reason"] or line.rejection_reason
        line.acknowledged_at = line.acknowledged_at or now
        changed.append(line)
    if not changed:
        return _Applied("stale", "; ".join(stale)) if stale else _Applied("duplicate")
    return _Applied(
        "applied",
        "; ".join(stale) or None,
        {"lines": [entry for line in changed for entry in _ack_entries(line)]},
    )


def _ack_entries(line: _Line) -> list[dict[str, Any]]:
    entries = []
    for status, quantity in (
        ("accepted", line.accepted),
        ("backordered", line.backordered),
        ("rejected", line.rejected),
    ):
        if quantity:
            entries.append(
                {
                    "line_no": line.line_no,
                    "sku": line.sku,
                    "status": status,
                    "quantity": quantity,
                    "backorder_date": line.backorder_date.isoformat()
                    if status == "backordered" and line.backorder_date
                    else None,
                    "reason": line.rejection_reason if status == "rejected" else None,
                }
            )
    return entries


def _ship(po: _Po, payload: dict[str, Any]) -> _Applied:
    shipment_id = _required(payload, "shipment_id")
    carrier = _required(payload, "carrier")
    tracking = _text(payload.get("tracking_number"))
    quantities: dict[int, int] = {}
    for item in _items(payload):
        line = _line(po, item)
        quantities[line.line_no] = quantities.get(line.line_no, 0) + _quantity(item, line)
    if not quantities:
        raise UpdateProblem(f"shipment {shipment_id} has no lines")
    known = po.shipments.get(shipment_id)
    if known is not None:
        return _ship_again(po, known, payload, carrier, tracking, quantities)
    if not tracking:
        raise UpdateProblem(f"shipment {shipment_id} has no tracking number")
    for line_no, quantity in quantities.items():
        line = po.lines[line_no]
        if quantity > line.open:
            raise UpdateProblem(
                f"shipment {shipment_id} ships {quantity} of line {line_no}, but only "
                f"{line.open} of its {line.quantity} are open (shipped {line.shipped}, "
                f"rejected {line.rejected}, cancelled {line.cancelled})"
            )
    shipment = _Shipment(
        supplier_shipment_id=shipment_id,
        carrier=carrier,
        service=_text(payload.get("service")),
        tracking_number=tracking,
        tracking_url=_text(payload.get("tracking_url")),
        shipped_at=_moment(payload.get("shipped_at"), "shipped_at"),
        delivered_at=None,
        lines=quantities,
        changed=True,
    )
    po.shipments[shipment_id] = shipment
    for line_no, quantity in quantities.items():
        po.lines[line_no].shipped += quantity
    return _Applied("applied", None, _shipment_payload(po, shipment))


def _ship_again(
    po: _Po,
    known: _Shipment,
    payload: dict[str, Any],
    carrier: str,
    tracking: str | None,
    quantities: dict[int, int],
) -> _Applied:
    """A shipment id seen before: the same again, more detail, or a contradiction."""
    name = known.supplier_shipment_id
    if tracking and tracking != known.tracking_number:
        raise UpdateProblem(
            f"shipment {name} was reported with tracking number {known.tracking_number}; "
            f"now {tracking}: kept as it was"
        )
    if carrier != known.carrier:
        raise UpdateProblem(
            f"shipment {name} was reported with carrier {known.carrier}; now {carrier}"
        )
    if quantities != known.lines:
        raise UpdateProblem(
            f"shipment {name} was reported with lines {_lines_text(known.lines)}; now "
            f"{_lines_text(quantities)}"
        )
    filled = False
    for attribute in ("service", "tracking_url"):
        value = _text(payload.get(attribute))
        if value and getattr(known, attribute) is None:
            setattr(known, attribute, value)
            filled = True
    if filled:
        known.changed = True
        return _Applied("applied", "details added", _shipment_payload(po, known))
    if not tracking:
        return _Applied("stale", f"shipment {name} without its tracking number: kept")
    return _Applied("duplicate")


def _shipment_payload(po: _Po, shipment: _Shipment) -> dict[str, Any]:
    return {
        "shipment_id": shipment.supplier_shipment_id,
        "carrier": shipment.carrier,
        "service": shipment.service,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "shipped_at": shipment.shipped_at.isoformat(),
        "lines": [
            {"line_no": line_no, "sku": po.lines[line_no].sku, "quantity": quantity}
            for line_no, quantity in sorted(shipment.lines.items())
        ],
    }


def _cancel(po: _Po, payload: dict[str, Any]) -> _Applied:
    whole = bool(payload.get("whole_po"))
    reason = _text(payload.get("reason"))
    targets: dict[int, tuple[int, str | None]] = {}
    if whole:
        for line in po.lines.values():
            targets[line.line_no] = (line.cancelled + line.open, reason)
    for item in _items(payload):
        line = _line(po, item)
        targets[line.line_no] = (
            _quantity(item, line, allow_zero=True),
            _text(item.get("reason")) or reason,
        )
    if not targets:
        raise UpdateProblem("a cancellation names no lines and is not for the whole PO")
    changed: list[tuple[_Line, int]] = []
    stale: list[str] = []
    for line_no, (cancelled, why) in targets.items():
        line = po.lines[line_no]
        if cancelled < line.cancelled:
            stale.append(
                f"line {line_no}: {cancelled} cancelled is behind what is known ({line.cancelled})"
            )
            continue
        more = cancelled - line.cancelled
        if more > line.open:
            raise UpdateProblem(
                f"line {line_no}: {cancelled} cancelled in all, but only {line.open} more are "
                f"open (shipped {line.shipped}, rejected {line.rejected})"
            )
        if more:
            line.cancelled = cancelled
            line.cancellation_reason = why or line.cancellation_reason
            changed.append((line, more))
    if not changed:
        if whole and not any(line.cancelled for line in po.lines.values()):
            raise UpdateProblem("the whole PO is cancelled, but nothing of it is open")
        return _Applied("stale", "; ".join(stale)) if stale else _Applied("duplicate")
    return _Applied(
        "applied",
        "; ".join(stale) or None,
        {
            "whole_po": whole and all(line.open == 0 for line in po.lines.values()),
            "lines": [
                {
                    "line_no": line.line_no,
                    "sku": line.sku,
                    "quantity": more,
                    "reason": line.cancellation_reason,
                }
                for line, more in changed
            ],
        },
    )


def _deliver(po: _Po, payload: dict[str, Any]) -> _Applied:
    shipment_id = _text(payload.get("shipment_id"))
    delivered_at = _moment(payload.get("delivered_at"), "delivered_at")
    if shipment_id is not None:
        if shipment_id not in po.shipments:
            raise UpdateProblem(f"delivery of shipment {shipment_id}, which is not known")
        shipments = [po.shipments[shipment_id]]
    else:
        shipments = list(po.shipments.values())
        if not shipments:
            raise UpdateProblem("delivery of a PO with no shipment known")
    fresh = [s for s in shipments if s.delivered_at is None]
    if not fresh:
        return _Applied("duplicate")
    for shipment in fresh:
        shipment.delivered_at = delivered_at
        shipment.changed = True
        for line_no, quantity in shipment.lines.items():
            po.lines[line_no].delivered += quantity
    return _Applied(
        "applied", None, {"shipment_id": shipment_id, "delivered_at": delivered_at.isoformat()}
    )


def _next_state(po: _Po) -> str:
    """The state the lines say, unless the PO is further along already."""
    derived = derived_state(po.lines.values())
    if derived is None or po.state in FINAL_PO_STATES:
        return po.state
    return derived if _RANK[derived] > _RANK.get(po.state, -1) else po.state


def derived_state(lines: Iterable[Any]) -> str | None:
    """A PO's state from its lines (``_Line``-like: quantity, rejected, cancelled, shipped,
    delivered, accepted, backordered), or None when they say nothing yet."""
    lines = list(lines)
    if not lines:
        return None
    live = [line.quantity - line.rejected - line.cancelled for line in lines]
    if all(n == 0 for n in live):
        return "cancelled"
    if all(line.shipped >= n for line, n in zip(lines, live, strict=True)):
        delivered = all(line.delivered >= n for line, n in zip(lines, live, strict=True))
        return "delivered" if delivered else "shipped"
    if any(line.shipped for line in lines):
        return "partially_shipped"
    if any(line.accepted or line.backordered or line.rejected or line.cancelled for line in lines):
        return "acknowledged"
    return None


def _state_reason(po: _Po) -> str:
    if po.state == "cancelled":
        reasons = {
            line.cancellation_reason or line.rejection_reason
            for line in po.lines.values()
            if line.cancellation_reason or line.rejection_reason
        }
        why = "; ".join(sorted(r for r in reasons if r))
        return "cancelled by the supplier" + (f": {why}" if why else "")
    return f"{po.state.replace('_', ' ')}, as the supplier reports"


# --- reading and writing ---------------------------------------------------------------------


def _known_keys(session: Session, supplier_id: int, keys: set[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(keys)
    for chunk in chunked(ordered, 500):
        found.update(
            session.execute(
                sa.select(SupplierUpdate.dedupe_key).where(
                    SupplierUpdate.supplier_id == supplier_id,
                    SupplierUpdate.dedupe_key.in_(chunk),  # type: ignore[attr-defined]
                )
            ).scalars()
        )
    return found


def _load(session: Session, supplier_id: int, po_numbers: set[str]) -> dict[str, _Po]:
    """The supplier's POs named, locked on PostgreSQL, with their lines and shipments."""
    query = select(PurchaseOrder).where(
        PurchaseOrder.supplier_id == supplier_id,
        PurchaseOrder.po_number.in_(sorted(po_numbers)),  # type: ignore[attr-defined]
        PurchaseOrder.supplier_order_id.is_not(None),  # type: ignore[union-attr]
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    rows = list(session.exec(query.execution_options(populate_existing=True)))
    pos = {
        po.id: _Po(
            id=po.id,  # type: ignore[arg-type]
            po_number=po.po_number,
            state=po.state,
            order_id=po.order_id,
            connection_id=po.connection_id,
            lines={},
            shipments={},
            loaded_state=po.state,
        )
        for po in rows
    }
    if not pos:
        return {}
    for line in session.exec(select(OrderLine).where(OrderLine.po_id.in_(list(pos)))):  # type: ignore[union-attr]
        pos[line.po_id].lines[line.line_no] = _Line(  # type: ignore[index]
            id=line.id,  # type: ignore[arg-type]
            line_no=line.line_no,
            sku=line.sku,
            supplier_sku=line.supplier_sku,
            quantity=line.quantity,
            unit_cost=Decimal(str(line.supplier_unit_cost or 0)),
            accepted=line.accepted_quantity,
            backordered=line.backordered_quantity,
            backorder_date=line.backorder_date,
            rejected=line.rejected_quantity,
            rejection_reason=line.rejection_reason,
            cancelled=line.cancelled_quantity,
            cancellation_reason=line.cancellation_reason,
            shipped=line.shipped_quantity,
            delivered=line.delivered_quantity,
            acknowledged_at=line.acknowledged_at,
            given_back=line.rejected_quantity + line.cancelled_quantity,
        )
    line_numbers = {line.id: line.line_no for po in pos.values() for line in po.lines.values()}
    shipments = {
        s.id: s
        for s in session.exec(select(Shipment).where(Shipment.po_id.in_(list(pos))))  # type: ignore[attr-defined]
    }
    quantities: dict[int, dict[int, int]] = {}
    if shipments:
        for row in session.exec(
            select(ShipmentLine).where(ShipmentLine.shipment_id.in_(list(shipments)))  # type: ignore[attr-defined]
        ):
            quantities.setdefault(row.shipment_id, {})[line_numbers[row.order_line_id]] = (
                row.quantity
            )
    for shipment in shipments.values():
        pos[shipment.po_id].shipments[shipment.supplier_shipment_id] = _Shipment(
            id=shipment.id,
            supplier_shipment_id=shipment.supplier_shipment_id,
            carrier=shipment.carrier,
            service=shipment.service,
            tracking_number=shipment.tracking_number,
            tracking_url=shipment.tracking_url,
            shipped_at=as_utc(shipment.shipped_at),  # type: ignore[arg-type]
            delivered_at=as_utc(shipment.delivered_at),
            lines=quantities.get(shipment.id, {}),  # type: ignore[arg-type]
        )
    return {po.po_number: po for po in pos.values()}


_LINE_UPDATE = (
    sa.update(OrderLine.__table__)  # type: ignore[attr-defined]
    .where(OrderLine.__table__.c.id == sa.bindparam("line_id"))  # type: ignore[attr-defined]
    .values(
        accepted_quantity=sa.bindparam("accepted"),
        backordered_quantity=sa.bindparam("backordered"),
        backorder_date=sa.bindparam("backorder_date"),
        rejected_quantity=sa.bindparam("rejected"),
        rejection_reason=sa.bindparam("rejection_reason"),
        cancelled_quantity=sa.bindparam("cancelled"),
        cancellation_reason=sa.bindparam("cancellation_reason"),
        shipped_quantity=sa.bindparam("shipped"),
        delivered_quantity=sa.bindparam("delivered"),
        acknowledged_at=sa.bindparam("acknowledged_at"),
    )
)
_SHIPMENT_UPDATE = (
    sa.update(Shipment.__table__)  # type: ignore[attr-defined]
    .where(Shipment.__table__.c.id == sa.bindparam("shipment_id"))  # type: ignore[attr-defined]
    .values(
        service=sa.bindparam("service"),
        tracking_url=sa.bindparam("tracking_url"),
        delivered_at=sa.bindparam("delivered_at"),
        updated_at=sa.bindparam("updated_at"),
    )
)


def _write(session: Session, pos: list[_Po], now: datetime) -> None:
    """Lines and shipments as the updates left them: a few statements per batch."""
    line_rows = [
        {
            "line_id": line.id,
            "accepted": line.accepted,
            "backordered": line.backordered,
            "backorder_date": line.backorder_date,
            "rejected": line.rejected,
            "rejection_reason": line.rejection_reason,
            "cancelled": line.cancelled,
            "cancellation_reason": line.cancellation_reason,
            "shipped": line.shipped,
            "delivered": line.delivered,
            "acknowledged_at": line.acknowledged_at,
        }
        for po in pos
        for line in po.lines.values()
    ]
    if line_rows:
        session.connection().execute(_LINE_UPDATE, line_rows)
    known = [
        {
            "shipment_id": s.id,
            "service": s.service,
            "tracking_url": s.tracking_url,
            "delivered_at": s.delivered_at,
            "updated_at": now,
        }
        for po in pos
        for s in po.shipments.values()
        if s.changed and s.id is not None
    ]
    if known:
        session.connection().execute(_SHIPMENT_UPDATE, known)
    new = [(po, s) for po in pos for s in po.shipments.values() if s.id is None]
    if not new:
        return
    session.execute(
        sa.insert(Shipment),
        [
            {
                "po_id": po.id,
                "supplier_shipment_id": s.supplier_shipment_id,
                "carrier": s.carrier,
                "service": s.service,
                "tracking_number": s.tracking_number,
                "tracking_url": s.tracking_url,
                "shipped_at": s.shipped_at,
                "delivered_at": s.delivered_at,
                "created_at": now,
                "updated_at": now,
            }
            for po, s in new
        ],
    )
    ids = {
        (po_id, name): shipment_id
        for shipment_id, po_id, name in session.execute(
            sa.select(Shipment.id, Shipment.po_id, Shipment.supplier_shipment_id).where(
                Shipment.po_id.in_({po.id for po, _ in new})  # type: ignore[attr-defined]
            )
        )
    }
    session.execute(
        sa.insert(ShipmentLine),
        [
            {
                "shipment_id": ids[(po.id, s.supplier_shipment_id)],
                "order_line_id": po.lines[line_no].id,
                "line_no": line_no,
                "quantity": quantity,
            }
            for po, s in new
            for line_no, quantity in s.lines.items()
        ],
    )
    for po, s in new:
        s.id = ids[(po.id, s.supplier_shipment_id)]


def _give_funds_back(session: Session, po: _Po, *, actor: str) -> Decimal:
    """Units the supplier rejected or cancelled since they were loaded give their cost back."""
    if po.connection_id is None:
        return Decimal("0.00")
    released = Decimal("0.00")
    for line in po.lines.values():
        now_back = line.rejected + line.cancelled
        if now_back > line.given_back:
            released += release_line_funds(
                session,
                po.connection_id,
                po_reference=po.po_number,
                line_no=line.line_no,
                quantity_given_back=now_back,
                amount=line.unit_cost * (now_back - line.given_back),
                actor=actor,
            )
            line.given_back = now_back
    return released


# --- a PO cancelled at the retailer's request --------------------------------------------------


def cancel_open_lines(
    session: Session, po_id: int, reason: str, *, from_state: str, actor: str
) -> None:
    """Mark what is open of a PO's lines cancelled, with its ``cancellation`` event: the PO was
    cancelled at the supplier on the retailer's request (it is ``cancelled`` now), so the
    supplier's own report of it later is a duplicate."""
    lines = list(
        session.exec(
            select(OrderLine).where(OrderLine.po_id == po_id).order_by(OrderLine.line_no)  # type: ignore[arg-type]
        )
    )
    cancelled = [
        (line, line.quantity - line.shipped_quantity - line.rejected_quantity)
        for line in lines
        if line.quantity - line.shipped_quantity - line.rejected_quantity > line.cancelled_quantity
    ]
    if not cancelled:
        return
    session.connection().execute(
        sa.update(OrderLine.__table__)  # type: ignore[attr-defined]
        .where(OrderLine.__table__.c.id == sa.bindparam("line_id"))  # type: ignore[attr-defined]
        .values(
            cancelled_quantity=sa.bindparam("cancelled"),
            cancellation_reason=sa.bindparam("why"),
        ),
        [
            {
                "line_id": line.id,
                "cancelled": total,
                "why": line.cancellation_reason or reason,
            }
            for line, total in cancelled
        ],
    )
    lock_orders_of(session, [po_id])
    session.execute(
        sa.insert(PoEvent).values(
            po_id=po_id,
            from_state=from_state,
            to_state="cancelled",
            kind="cancellation",
            payload={
                "whole_po": True,
                "lines": [
                    {
                        "line_no": line.line_no,
                        "sku": line.sku,
                        "quantity": total - line.cancelled_quantity,
                        "reason": line.cancellation_reason or reason,
                    }
                    for line, total in cancelled
                ],
            },
            actor=actor,
            at=utcnow(),
        )
    )


# --- what is open at each supplier ---------------------------------------------------------------


def open_pos_by_supplier(session: Session) -> dict[int, list[tuple[str, str]]]:
    """Per supplier, ``(PO number, supplier's order id)`` of the POs it may still report on."""
    rows = session.execute(
        sa.select(
            PurchaseOrder.supplier_id, PurchaseOrder.po_number, PurchaseOrder.supplier_order_id
        )
        .where(
            PurchaseOrder.state.in_(ACCEPTING_PO_STATES),  # type: ignore[attr-defined]
            PurchaseOrder.supplier_order_id.is_not(None),  # type: ignore[union-attr]
        )
        .order_by(PurchaseOrder.id)  # type: ignore[arg-type]
    ).all()
    found: dict[int, list[tuple[str, str]]] = {}
    for supplier_id, number, order_id in rows:
        found.setdefault(supplier_id, []).append((number, order_id))
    return found


# --- small parsers ----------------------------------------------------------------------------


def _items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    items = payload.get("lines") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UpdateProblem("lines must be a list of objects")
    return items


def _line(po: _Po, item: dict[str, Any]) -> _Line:
    try:
        line_no = int(item["line_no"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UpdateProblem(f"a line without a valid line_no ({item!r})") from exc
    line = po.lines.get(line_no)
    if line is None:
        raise UpdateProblem(
            f"PO {po.po_number} has no line {line_no} (it has {', '.join(map(str, po.lines))})"
        )
    sku = _text(item.get("sku"))
    if sku is not None and sku not in (line.supplier_sku, line.sku):
        raise UpdateProblem(f"line {line_no} is SKU {line.supplier_sku}, not {sku}")
    return line


def _quantity(item: dict[str, Any], line: _Line, *, allow_zero: bool = False) -> int:
    value = item.get("quantity")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UpdateProblem(f"line {line.line_no}: quantity {value!r} is not a whole number")
    try:
        quantity = int(value)
    except ValueError as exc:
        raise UpdateProblem(
            f"line {line.line_no}: quantity {value!r} is not a whole number"
        ) from exc
    if quantity < (0 if allow_zero else 1):
        raise UpdateProblem(f"line {line.line_no}: quantity {quantity} is too small")
    return quantity


def _required(payload: dict[str, Any], name: str) -> str:
    value = _text(payload.get(name))
    if value is None:
        raise UpdateProblem(f"{name} is required")
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _date(value: Any, line_no: int) -> date | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise UpdateProblem(
            f"line {line_no}: backorder_date {text!r} is not a date like 2026-12-24"
        ) from exc


def _moment(value: Any, name: str) -> datetime:
    text = _text(value)
    if text is None:
        raise UpdateProblem(f"{name} is required")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UpdateProblem(f"{name} {text!r} is not a time like 2026-12-06T14:30:00Z") from exc
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _lines_text(lines: dict[int, int]) -> str:
    return ", ".join(f"{quantity} of line {n}" for n, quantity in sorted(lines.items()))
