"""Moving purchase orders between states: only along ``PO_TRANSITIONS``, by conditional
UPDATEs on the state read, each change written to ``po_event`` in the same transaction.

A change that lost a race (another run moved the PO first) changes nothing and is not
reported as done: callers get back the ids that really moved.

Whatever writes a ``po_event`` first locks the PO's order (:func:`lock_orders_of`), so an
order's events become visible in the order of their ids, which is the order the retailer
push sends them in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from models.catalog import utcnow
from models.db import chunked
from models.orders import PO_STATES, PO_TRANSITIONS, PoEvent, PurchaseOrder, RetailOrder


class InvalidTransition(ValueError):
    """A PO cannot go from its state to the one asked for."""

    def __init__(self, po_number: str, from_state: str, to_state: str) -> None:
        allowed = ", ".join(sorted(PO_TRANSITIONS[from_state])) or "nothing: it is final"
        super().__init__(
            f"PO {po_number} is {from_state}: it cannot become {to_state} (from {from_state} it "
            f"can become {allowed})"
        )


def check_transition(po_number: str, from_state: str, to_state: str) -> None:
    if to_state not in PO_STATES:
        raise ValueError(f"{to_state!r} is not a PO state")
    if to_state not in PO_TRANSITIONS[from_state]:
        raise InvalidTransition(po_number, from_state, to_state)


def lock_orders_of(session: Session, po_ids: Iterable[int] | sa.Select[Any]) -> None:
    """Hold the orders of these POs (ids, or a query of ids) until the transaction ends,
    before writing their events.

    Event ids come from a sequence when a row is inserted, but rows show when their
    transaction commits: on PostgreSQL two transactions writing events for POs of one order
    (two suppliers' updates, say) could commit out of id order, and the push, having sent the
    later event, would send the earlier one after it. With the order locked, the second writer
    waits for the first to commit before it takes its ids. Orders are locked in id order and
    before their POs' rows, so writers never wait on each other in a circle; a transaction that
    writes events in several steps locks all of its orders first. SQLite has one writer at a
    time already.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    order_of = sa.select(PurchaseOrder.order_id)
    order_ids: set[int] = set()
    if isinstance(po_ids, sa.Select):
        order_ids.update(session.execute(order_of.where(PurchaseOrder.id.in_(po_ids))).scalars())  # type: ignore[union-attr]
    else:
        ids = sorted(set(po_ids))
        for chunk in chunked(ids, 500):
            order_ids.update(session.execute(order_of.where(PurchaseOrder.id.in_(chunk))).scalars())  # type: ignore[union-attr]
    ordered = sorted(order_ids)
    for chunk in chunked(ordered, 500):
        session.execute(
            sa.select(RetailOrder.id)
            .where(RetailOrder.id.in_(chunk))  # type: ignore[union-attr]
            .order_by(RetailOrder.id)  # type: ignore[arg-type]
            .with_for_update(key_share=True)
        )


def move_pos(
    session: Session,
    current: Iterable[tuple[int, str]],
    to_state: str,
    *,
    actor: str,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
    per_po_values: dict[int, dict[str, Any]] | None = None,
) -> list[int]:
    """Move each ``(po_id, state it was read in)`` to ``to_state``; returns the ids moved.

    A PO no longer in the state it was read in is left alone (someone moved it first). Every
    move must be allowed from the state read; one that is not raises InvalidTransition.
    ``values`` are set on every PO moved; ``per_po_values`` on one PO each.
    """
    by_state: dict[str, list[int]] = defaultdict(list)
    for po_id, state in current:
        check_transition(f"#{po_id}", state, to_state)
        by_state[state].append(po_id)
    lock_orders_of(session, [po_id for ids in by_state.values() for po_id in ids])
    now = utcnow()
    common = {"state": to_state, "updated_at": now, **(values or {})}
    if reason is not None:
        common.setdefault("reason", reason)
    moved: list[int] = []
    for from_state, ids in by_state.items():
        if per_po_values:
            for po_id in ids:
                if _update(
                    session, [po_id], from_state, {**common, **per_po_values.get(po_id, {})}
                ):
                    moved.append(po_id)
                    _events(session, [(po_id, from_state)], to_state, reason, actor, now)
            continue
        changed = _update(session, ids, from_state, common)
        moved.extend(changed)
        _events(session, [(po_id, from_state) for po_id in changed], to_state, reason, actor, now)
    return moved


def record_created(
    session: Session, created: Iterable[tuple[int, str, str | None]], *, actor: str
) -> None:
    """The first event of new POs: ``(po_id, state, reason)``."""
    now = utcnow()
    rows = [
        {
            "po_id": po_id,
            "from_state": None,
            "to_state": state,
            "reason": reason,
            "actor": actor,
            "at": now,
        }
        for po_id, state, reason in created
    ]
    if rows:
        lock_orders_of(session, [row["po_id"] for row in rows])
        session.execute(sa.insert(PoEvent), rows)


def _update(session: Session, ids: list[int], from_state: str, values: dict[str, Any]) -> list[int]:
    moved: list[int] = []
    for chunk in chunked(ids, 500):
        result = session.execute(
            sa.update(PurchaseOrder)
            .where(PurchaseOrder.id.in_(chunk), PurchaseOrder.state == from_state)  # type: ignore[union-attr]
            .values(**values)
            .returning(PurchaseOrder.id)
            .execution_options(synchronize_session=False)
        )
        moved.extend(result.scalars())
    return moved


def _events(
    session: Session,
    moves: list[tuple[int, str]],
    to_state: str,
    reason: str | None,
    actor: str,
    at: Any,
) -> None:
    if moves:
        session.execute(
            sa.insert(PoEvent),
            [
                {
                    "po_id": po_id,
                    "from_state": from_state,
                    "to_state": to_state,
                    "reason": reason,
                    "actor": actor,
                    "at": at,
                }
                for po_id, from_state in moves
            ],
        )
