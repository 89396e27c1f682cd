"""An order's PO events become visible in the order of their ids, on PostgreSQL too, where two
transactions writing events for POs of one order could otherwise commit out of id order and
the retailer push would send the later event first."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from order_world import make_world, order
from sqlmodel import select

from models.db import get_engine, session_scope
from models.orders import PoEvent, PurchaseOrder
from tasks.po_states import move_pos
from tasks.routing import route_received_orders

pytestmark = [
    pytest.mark.parametrize("database", ["postgresql"], indirect=True),
    pytest.mark.usefixtures("database"),
]


def waiting_on_a_lock() -> int:
    """Sessions of this database waiting for a lock another transaction holds."""
    with get_engine().connect() as connection:
        return int(
            connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def test_a_second_writer_of_the_same_order_waits_for_the_first_to_commit() -> None:
    make_world()
    order("O1", ("A-1", 1), ("G-1", 1))  # one PO at acme, one at globex
    with session_scope() as session:
        route_received_orders(session)
    with session_scope() as session:
        pos = {po.supplier_id: (po.id, po.state) for po in session.exec(select(PurchaseOrder))}
    (first_po, first_state), (second_po, second_state) = sorted(pos.values())
    second_done = threading.Event()

    def second_writer() -> None:
        with session_scope() as session:
            move_pos(session, [(second_po, second_state)], "cancelled", actor="test")
        second_done.set()

    with session_scope() as session:
        move_pos(session, [(first_po, first_state)], "cancelled", actor="test")
        writer = threading.Thread(target=second_writer)
        writer.start()
        deadline = time.monotonic() + 30
        while not second_done.is_set() and time.monotonic() < deadline:
            if waiting_on_a_lock():
                break
            time.sleep(0.05)
        finished_before_the_first_committed = second_done.is_set()
    writer.join(timeout=30)

    assert not finished_before_the_first_committed, "the second writer did not wait"
    assert second_done.is_set()
    with session_scope() as session:
        cancelled = session.exec(
            select(PoEvent).where(PoEvent.to_state == "cancelled").order_by(PoEvent.id)  # type: ignore[arg-type]
        ).all()
    assert [event.po_id for event in cancelled] == [first_po, second_po]
