"""Order sync on SQLite and PostgreSQL: routing rules, POs to the supplier sandbox over real
HTTP, purchase rules, rejections, faults, and exactly once under retries and concurrent runs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from order_world import (
    ACTOR,
    approve,
    kill_once,
    make_world,
    money,
    order,
    run_to_the_end,
    run_twice_at_once,
    use_sandbox,
)
from sqlmodel import select

from flows.order_sync import order_sync
from models.db import session_scope
from models.orders import OrderLine, PoEvent, PurchaseOrder, RetailOrder
from models.relationships import RetailerConnection
from sandbox.supplier_api import Faults, SupplierSandbox
from tasks.lookups import set_lookup_value
from tasks.orders import cancel_order
from tasks.po_states import InvalidTransition, move_pos
from tasks.po_submit import manual_purchase
from tasks.routing import idempotency_key, route_received_orders

pytestmark = pytest.mark.usefixtures("prefect_api", "database")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SupplierSandbox]:
    with SupplierSandbox(database=tmp_path / "supplier.db") as server:
        yield server


def pos() -> dict[str, PurchaseOrder]:
    with session_scope() as session:
        return {po.po_number: po for po in session.exec(select(PurchaseOrder))}


def lines_of(order_id: str) -> list[OrderLine]:
    with session_scope() as session:
        found = session.exec(
            select(RetailOrder).where(RetailOrder.source_order_id == order_id)
        ).one()
        return list(
            session.exec(
                select(OrderLine).where(OrderLine.order_id == found.id).order_by(OrderLine.line_no)
            )
        )


def order_status(order_id: str) -> str:
    with session_scope() as session:
        return session.exec(
            select(RetailOrder.status).where(RetailOrder.source_order_id == order_id)
        ).one()


def save_block(sandbox: SupplierSandbox, supplier: str = "acme", **options: object) -> None:
    use_sandbox(supplier, sandbox, **options).save(f"supplier-api-{supplier}", overwrite=True)


def test_routing_rules_lookups_and_po_numbers() -> None:
    make_world()
    with session_scope() as session:
        set_lookup_value(session, "shopco", "sku", "R-77", "A-1", actor=ACTOR)
        set_lookup_value(session, "shopco", "shipping_method", "standard", "UPS_GND", actor=ACTOR)
        set_lookup_value(
            session,
            "shopco",
            "shipping_method",
            "standard",
            "FEDEX_HOME",
            supplier_code="globex",
            actor=ACTOR,
        )
    order("O1", ("A-1", 2), ("G-1", 1))
    order("O2", ("NOPE", 1), ("A-OLD", 1), ("A-2", 5), ("A-1", 1))
    order("O3", ("A-1", 1), ("NOPE", 1), all_or_nothing=True)
    order("O4", ("SHARED", 2), ("R-77", 3))
    order("O5", ("A-1", 1), shipping_method="teleport")

    with session_scope() as session:
        outcome = route_received_orders(session, limit=2)
    assert outcome.orders == 2
    with session_scope() as session:
        outcome = route_received_orders(session)
    assert outcome.orders == 3
    with session_scope() as session:
        assert route_received_orders(session).orders == 0

    found = pos()
    assert set(found) == {
        "PO-ACME-00000001",
        "PO-GLOBEX-00000001",
        "PO-ACME-00000002",
        "PO-ACME-00000004",
    }
    acme_1 = found["PO-ACME-00000001"]
    assert (acme_1.state, acme_1.total, acme_1.carrier_service) == (
        "awaiting_sync",
        money("20.00"),
        "UPS_GND",
    )
    assert acme_1.idempotency_key == idempotency_key("shopco", "O1", "acme")
    globex_1 = found["PO-GLOBEX-00000001"]
    assert globex_1.state == "on_hold"
    assert "waits for the supplier's approval" in globex_1.reason
    assert globex_1.carrier_service == "FEDEX_HOME"  # the supplier's own table first
    assert order_status("O1") == "routed"

    reasons = [line.reason for line in lines_of("O2")]
    assert "in the catalog of no supplier" in reasons[0]
    assert "discontinued at acme" in reasons[1]
    assert "quantity 5 of SKU A-2 is above the stock (acme has 3)" in reasons[2]
    assert reasons[3] is None
    assert order_status("O2") == "partially_routed"
    assert found["PO-ACME-00000002"].total == money("10.00")

    assert order_status("O3") == "rejected"
    assert all(
        "all-or-nothing" in (line.reason or "") or "no supplier" in (line.reason or "")
        for line in lines_of("O3")
    )
    assert "PO-ACME-00000003" not in found

    # SHARED is cheaper at globex, but acme's connection is active; R-77 maps to acme's A-1.
    o4 = lines_of("O4")
    assert [(line.supplier_sku, line.status) for line in o4] == [
        ("SHARED", "routed"),
        ("A-1", "routed"),
    ]
    assert found["PO-ACME-00000004"].total == money("44.00")

    assert order_status("O5") == "rejected"
    o5 = lines_of("O5")
    assert o5[0].status == "rejected"
    assert "no value for 'teleport'" in o5[0].reason

    with session_scope() as session:
        first_events = session.exec(select(PoEvent).where(PoEvent.po_id == acme_1.id)).all()
    assert [(e.from_state, e.to_state) for e in first_events] == [(None, "awaiting_sync")]


def test_pos_reach_the_supplier_and_are_purchased_or_wait(sandbox: SupplierSandbox) -> None:
    world = make_world(payment="ach", funds="25.00")
    save_block(sandbox)
    order("O1", ("A-1", 2))  # 20.00: purchased from the 25.00 of funds
    order("O2", ("A-1", 1))  # 10.00: more than the 5.00 left
    order("O3", ("G-1", 1))  # globex: pending connection, held
    summary = order_sync()
    assert (
        summary["pos_submitted"],
        summary["pos_purchased"],
        summary["pos_awaiting_purchase"],
    ) == (2, 1, 1)
    found = pos()
    assert found["PO-ACME-00000001"].state == "submitted"
    assert found["PO-ACME-00000001"].purchase_kind == "auto"
    waiting = found["PO-ACME-00000002"]
    assert waiting.state == "awaiting_purchase"
    assert "do not cover the PO total 10.00" in waiting.reason
    assert found["PO-GLOBEX-00000003"].state == "on_hold"
    with session_scope() as session:
        assert session.get(RetailerConnection, world["acme_connection"]).available_funds == money(
            "5.00"
        )

    at_supplier = {o["po_number"]: o for o in sandbox.orders()}
    assert set(at_supplier) == {"PO-ACME-00000001", "PO-ACME-00000002"}
    sent = at_supplier["PO-ACME-00000001"]
    assert sent["order_id"] == found["PO-ACME-00000001"].supplier_order_id
    assert sent["body"]["lines"] == [
        {"line_no": 1, "sku": "A-1", "quantity": 2, "unit_cost": "10.00"}
    ]
    assert sent["body"]["ship_to"]["city"] == "Springfield"

    with session_scope() as session:
        po = manual_purchase(session, session.get(PurchaseOrder, waiting.id), actor=ACTOR)
    assert (po.state, po.purchase_kind) == ("submitted", "manual")

    # The held PO goes out once the supplier approves the connection (it has no connector yet:
    # it waits with that reason, then goes once the connector is set).
    approve(world["globex_connection"])
    summary = order_sync()
    globex = pos()["PO-GLOBEX-00000003"]
    assert globex.state == "awaiting_sync"
    assert (
        globex.last_error is None
        or "no order connector" in globex.last_error
        or "cannot be loaded" in globex.last_error
    )


def test_auto_sync_off_waits_for_a_person(sandbox: SupplierSandbox) -> None:
    make_world(auto_sync=False)
    save_block(sandbox)
    order("O1", ("A-1", 1))
    order_sync()
    po = pos()["PO-ACME-00000001"]
    assert po.state == "awaiting_sync"
    assert "auto sync is off" in po.reason
    assert sandbox.orders() == []
    from flows.order_sync import submit_pos

    summary = submit_pos(["PO-ACME-00000001"])
    assert summary["pos_submitted"] == 1
    assert pos()["PO-ACME-00000001"].state == "submitted"
    assert len(sandbox.orders()) == 1


def test_a_supplier_refusal_rejects_the_po_without_retrying(sandbox: SupplierSandbox) -> None:
    make_world()
    sandbox.refused_skus = {"A-2"}
    save_block(sandbox)
    order("O1", ("A-2", 1))
    order("O2", ("A-1", 1))
    summary = order_sync()
    assert summary["pos_rejected"] == 1
    rejected = pos()["PO-ACME-00000001"]
    assert rejected.state == "rejected"
    assert (
        "HTTP 422" in rejected.reason and "SKU A-2 is not sold to this account" in rejected.reason
    )
    assert sandbox.stats.rejected == 1
    assert pos()["PO-ACME-00000002"].state == "submitted"
    order_sync()
    assert sandbox.stats.rejected == 1


def test_a_thousand_orders_through_faults_arrive_exactly_once(sandbox: SupplierSandbox) -> None:
    make_world(funds="1000000.00")
    sandbox.set_faults(
        Faults(
            error_share=0.2,
            throttle_share=0.1,
            retry_after_seconds=0,
            drop_after_commit_share=0.05,
            seed=7,
        )
    )
    save_block(sandbox, max_attempts=4)
    for n in range(1000):
        order(f"F-{n}", ("A-1", 1))
    rounds = 0
    while rounds < 6:
        rounds += 1
        order_sync()
        if all(po.state == "submitted" for po in pos().values()):
            break
    found = pos()
    assert len(found) == 1000
    assert Counter(po.state for po in found.values()) == {"submitted": 1000}
    at_supplier = sandbox.orders()
    assert len(at_supplier) == 1000
    assert {o["po_number"] for o in at_supplier} == set(found)
    assert {o["order_id"] for o in at_supplier} == {po.supplier_order_id for po in found.values()}
    stats = sandbox.stats
    assert stats.errors > 100 and stats.throttled > 50 and stats.dropped_after_commit > 20


def test_retry_after_is_honoured(sandbox: SupplierSandbox) -> None:
    make_world()
    sandbox.set_faults(Faults(throttle_share=1.0, retry_after_seconds=1, seed=1))
    block = use_sandbox("acme", sandbox, max_attempts=3)
    import time

    with block.client() as client:
        started = time.monotonic()
        with pytest.raises(Exception, match="429"):
            client.send_po(
                {"po_number": "PO-X", "lines": [{"sku": "A-1", "quantity": 1}]},
                maybe_sent_before=False,
            )
        waited = time.monotonic() - started
    assert sandbox.stats.throttled == 3
    assert waited >= 2.0  # two pauses of Retry-After: 1 between three tries
    assert sandbox.orders() == []


def test_two_syncs_at_once_send_each_po_once(sandbox: SupplierSandbox) -> None:
    make_world(funds="1000000.00")
    sandbox.set_faults(Faults(latency_seconds=0.005, seed=3))
    save_block(sandbox)
    for n in range(200):
        order(f"C-{n}", ("A-1", 1), ("SHARED", 1))
    run_twice_at_once(lambda: order_sync(batch_size=40))
    order_sync()
    found = pos()
    assert len(found) == 200
    assert all(po.state == "submitted" for po in found.values())
    at_supplier = Counter(o["po_number"] for o in sandbox.orders())
    assert at_supplier == Counter(set(found))


def test_states_only_move_forward() -> None:
    make_world()
    order("O1", ("A-1", 1))
    with session_scope() as session:
        route_received_orders(session)
    po = pos()["PO-ACME-00000001"]
    with session_scope() as session:
        assert move_pos(session, [(po.id, "awaiting_sync")], "submitted", actor=ACTOR) == [po.id]
        assert move_pos(session, [(po.id, "submitted")], "shipped", actor=ACTOR) == [po.id]
        with pytest.raises(InvalidTransition, match="cannot become submitted"):
            move_pos(session, [(po.id, "shipped")], "submitted", actor=ACTOR)
        # A stale read (the PO moved meanwhile) changes nothing.
        assert move_pos(session, [(po.id, "submitted")], "acknowledged", actor=ACTOR) == []
    with session_scope() as session:
        events = session.exec(
            select(PoEvent.to_state).where(PoEvent.po_id == po.id).order_by(PoEvent.id)
        ).all()
    assert events == ["awaiting_sync", "submitted", "shipped"]
    with session_scope() as session, pytest.raises(Exception, match="cannot be cancelled"):
        cancel_order(session, session.get(RetailOrder, po.order_id), actor=ACTOR)


def test_cancel_unsent_pos_at_once_and_sent_ones_at_the_supplier(sandbox: SupplierSandbox) -> None:
    world = make_world(auto_sync=False)
    save_block(sandbox)
    order("O1", ("A-1", 1), ("G-1", 1))
    order_sync()
    from flows.order_sync import submit_pos

    submit_pos(["PO-ACME-00000001"])
    with session_scope() as session:
        cancel_order(session, session.exec(select(RetailOrder)).one(), actor=ACTOR)
    found = pos()
    assert found["PO-ACME-00000001"].state == "cancel_requested"
    assert found["PO-GLOBEX-00000001"].state == "cancelled"
    assert order_status("O1") == "routed"
    summary = order_sync()
    assert summary["pos_cancelled_at_supplier"] == 1
    assert pos()["PO-ACME-00000001"].state == "cancelled"
    assert order_status("O1") == "cancelled"
    assert [o["status"] for o in sandbox.orders()] == ["cancelled"]
    with session_scope() as session:
        connection = session.get(RetailerConnection, world["acme_connection"])
        assert connection.available_funds == money("100000.00")  # the purchase was given back

    # Once the supplier has shipped, it refuses; the PO keeps the refusal as its reason.
    order("O2", ("A-1", 1))
    order_sync()
    submit_pos(["PO-ACME-00000002"])
    sandbox.advance(pos()["PO-ACME-00000002"].supplier_order_id, "shipped")
    with session_scope() as session:
        cancel_order(
            session,
            session.exec(select(RetailOrder).where(RetailOrder.source_order_id == "O2")).one(),
            actor=ACTOR,
        )
    summary = order_sync()
    assert summary["pos_cancel_refused"] == 1
    refused = pos()["PO-ACME-00000002"]
    assert refused.state == "cancel_requested"
    assert "the supplier refused to cancel" in refused.reason and "shipped" in refused.reason
    order_sync()
    assert sandbox.orders()[1]["status"] == "shipped"


def test_a_sync_killed_at_random_points_loses_nothing_and_sends_nothing_twice(
    sandbox: SupplierSandbox, supplyline_home: Path, database: str
) -> None:
    """``supplyline orders sync`` in a real process, killed (SIGKILL) while it sends, then run
    again: every PO reaches the supplier once, and the runs after a kill find the POs that were
    sent but not recorded."""
    import os
    import random
    import sys
    import time

    from prefect.settings import PREFECT_API_URL

    make_world(funds="1000000.00")
    sandbox.set_faults(Faults(latency_seconds=0.02, seed=5))
    save_block(sandbox, timeout_seconds=1, max_concurrent_requests=4)
    total = 120
    for n in range(total):
        order(f"K-{n}", ("A-1", 1))
    lease = 5.0  # a run starts no request later than 3 request timeouts before its lease ends
    env = os.environ | {
        "SUPPLYLINE_HOME": str(supplyline_home),
        "SUPPLYLINE_DATABASE_URL": database,
        "SUPPLYLINE_PO_SEND_LEASE_SECONDS": str(lease),
        "SUPPLYLINE_ORDER_BATCH_SIZE": "20",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    command = [sys.executable, "-m", "supplyline.cli", "orders", "sync", "--json"]
    chooser = random.Random(11)
    killed_mid_send = 0
    for _round in range(4):
        before = sandbox.stats.creates_stored
        if before >= total:
            break
        target = before + chooser.randint(5, 25)
        killed_mid_send += kill_once(
            command, env, lambda t=target: sandbox.stats.creates_stored >= t
        )
        time.sleep(lease + 0.5)  # the killed run's leases run out
    assert killed_mid_send >= 2
    final = run_to_the_end(command, env)
    assert final.returncode == 0, final.stdout + final.stderr
    found = pos()
    assert Counter(po.state for po in found.values()) == {"submitted": total}
    at_supplier = Counter(o["po_number"] for o in sandbox.orders())
    assert at_supplier == Counter(set(found))
    assert {o["order_id"] for o in sandbox.orders()} == {
        po.supplier_order_id for po in found.values()
    }
    assert any(po.send_attempts > 1 for po in found.values())


def test_each_run_publishes_pos_by_state_and_its_problems(sandbox: SupplierSandbox) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def artifacts(key: str, run_id: object) -> list:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )
        return [a for a in found if a.flow_run_id == run_id]

    make_world()
    sandbox.refused_skus = {"A-2"}
    save_block(sandbox)
    order("O1", ("A-2", 1))
    order("O2", ("A-1", 1), ("G-1", 1))
    state = order_sync(return_state=True)
    run_id = state.state_details.flow_run_id
    [table] = asyncio.run(artifacts("order-sync-pos", run_id))
    data = json.loads(table.data) if isinstance(table.data, str) else table.data
    rows = {(r["supplier"], r["state"]): r["pos"] for r in data}
    assert rows == {("acme", "rejected"): 1, ("acme", "submitted"): 1, ("globex", "on_hold"): 1}
    [report] = asyncio.run(artifacts("order-sync-report", run_id))
    assert (
        "PO-ACME-00000001" in report.data and "SKU A-2 is not sold to this account" in report.data
    )
    [acme] = asyncio.run(artifacts("pos-shopco-acme", run_id))
    acme_rows = json.loads(acme.data) if isinstance(acme.data, str) else acme.data
    assert {r["state"]: (r["pos"], r["open"]) for r in acme_rows} == {
        "rejected": (1, False),
        "submitted": (1, True),
    }
    assert acme.description.endswith("1 open, nothing unsent")
    [globex] = asyncio.run(artifacts("pos-shopco-globex", run_id))
    assert "1 open, oldest unsent: PO-GLOBEX-00000002 (on_hold" in globex.description
    quiet = order_sync(return_state=True).state_details.flow_run_id
    assert asyncio.run(artifacts("order-sync-pos", quiet)) == []
    assert asyncio.run(artifacts("pos-shopco-acme", quiet)) == []
