"""Fulfillment sync on SQLite and PostgreSQL: the supplier sandbox (a real HTTP server) moves
orders along and fulfillment-sync follows, line by line; updates twice, late and conflicting;
batches of at most 100 POs a call, counted at the sandbox; the order status view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from order_world import (
    make_world,
    money,
    native_order,
    order,
    place,
    run_twice_at_once,
    use_sandbox,
)
from sqlmodel import select
from typer.testing import CliRunner

from api.server import serving_in_thread
from flows.fulfillment_sync import fulfillment_sync
from flows.order_sync import order_sync
from models.db import session_scope
from models.orders import OrderLine, PoEvent, PurchaseOrder, Shipment, SupplierUpdate
from models.relationships import RetailerConnection
from sandbox.supplier_api import Faults, SupplierSandbox
from supplyline.cli import app
from tasks.fulfillment import UpdateIn, apply_updates
from tasks.suppliers import get_supplier

pytestmark = pytest.mark.usefixtures("prefect_api", "database")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SupplierSandbox]:
    with SupplierSandbox(database=tmp_path / "supplier.db") as server:
        yield server


def save_block(sandbox: SupplierSandbox, **options: object) -> None:
    use_sandbox("acme", sandbox, **options).save("supplier-api-acme", overwrite=True)


def po(number: str = "PO-ACME-00000001") -> PurchaseOrder:
    with session_scope() as session:
        return session.exec(select(PurchaseOrder).where(PurchaseOrder.po_number == number)).one()


def lines(number: str = "PO-ACME-00000001") -> list[OrderLine]:
    with session_scope() as session:
        found = po(number)
        return list(
            session.exec(
                select(OrderLine).where(OrderLine.po_id == found.id).order_by(OrderLine.line_no)
            )
        )


def events(number: str = "PO-ACME-00000001") -> list[PoEvent]:
    with session_scope() as session:
        found = po(number)
        return list(
            session.exec(select(PoEvent).where(PoEvent.po_id == found.id).order_by(PoEvent.id))
        )


def funds(connection_id: int) -> Decimal:
    with session_scope() as session:
        return session.get(RetailerConnection, connection_id).available_funds  # type: ignore[union-attr,return-value]


def test_the_supplier_moves_an_order_along_and_sync_follows(sandbox: SupplierSandbox) -> None:
    make_world()
    save_block(sandbox)
    order("O1", ("A-1", 3), ("SHARED", 2))
    assert order_sync()["pos_purchased"] == 1
    supplier_order = po().supplier_order_id
    assert supplier_order is not None

    # Nothing happened at the supplier: a run finds nothing new and publishes nothing.
    quiet = fulfillment_sync()
    assert (quiet["updates_applied"], quiet["events"]) == (0, 0)
    assert po().state == "submitted"

    sandbox.acknowledge(supplier_order, backordered={2: "2026-12-24"})
    summary = fulfillment_sync()
    assert summary["updates_applied"] == 1
    assert summary["pos_moved"] == {"PO-ACME-00000001": "acknowledged"}
    first, second = lines()
    assert (first.accepted_quantity, first.backordered_quantity) == (3, 0)
    assert (second.accepted_quantity, second.backordered_quantity) == (0, 2)
    assert str(second.backorder_date) == "2026-12-24"
    ack = [e for e in events() if e.kind == "acknowledgement"]
    assert len(ack) == 1
    assert (ack[0].from_state, ack[0].to_state) == ("submitted", "acknowledged")
    assert ack[0].payload == {
        "lines": [
            {
                "line_no": 1,
                "sku": "A-1",
                "status": "accepted",
                "quantity": 3,
                "backorder_date": None,
                "reason": None,
            },
            {
                "line_no": 2,
                "sku": "SHARED",
                "status": "backordered",
                "quantity": 2,
                "backorder_date": "2026-12-24",
                "reason": None,
            },
        ]
    }

    # The same status again: known, nothing logged or applied twice.
    again = fulfillment_sync()
    assert (again["updates_applied"], again["updates_known"]) == (0, 1)

    shipment = sandbox.ship(supplier_order, {1: 2}, carrier="UPS", service="Ground")
    summary = fulfillment_sync()
    assert summary["pos_moved"] == {"PO-ACME-00000001": "partially_shipped"}
    assert [line.shipped_quantity for line in lines()] == [2, 0]
    [shipment_event] = [e for e in events() if e.kind == "shipment"]
    assert shipment_event.payload == {
        "shipment_id": shipment["shipment_id"],
        "carrier": "UPS",
        "service": "Ground",
        "tracking_number": shipment["tracking_number"],
        "tracking_url": shipment["tracking_url"],
        "shipped_at": shipment_event.payload["shipped_at"],  # type: ignore[index]
        "lines": [{"line_no": 1, "sku": "A-1", "quantity": 2}],
    }
    assert shipment_event.to_state == "partially_shipped"

    sandbox.ship(supplier_order)  # the rest, backordered units included
    summary = fulfillment_sync()
    assert summary["pos_moved"] == {"PO-ACME-00000001": "shipped"}
    assert [line.shipped_quantity for line in lines()] == [3, 2]
    # The backordered units that shipped are accepted now: a new acknowledgement.
    assert [line.accepted_quantity for line in lines()] == [3, 2]

    sandbox.deliver(supplier_order)
    summary = fulfillment_sync()
    assert summary["pos_moved"] == {"PO-ACME-00000001": "delivered"}
    assert [line.delivered_quantity for line in lines()] == [3, 2]

    states = [(e.kind, e.from_state, e.to_state) for e in events()]
    moves = [(f, t) for k, f, t in states if k == "state"]
    assert moves == [
        (None, "awaiting_sync"),
        ("awaiting_sync", "submitted"),
        ("submitted", "acknowledged"),
        ("acknowledged", "partially_shipped"),
        ("partially_shipped", "shipped"),
        ("shipped", "delivered"),
    ]
    assert [k for k, _, _ in states if k != "state"] == [
        "acknowledgement",
        "shipment",
        "acknowledgement",  # the snapshot's acknowledgement comes before its shipments
        "shipment",
        "delivery",
        "delivery",
    ]
    with session_scope() as session:
        assert len(session.exec(select(Shipment)).all()) == 2
        outcomes = {u.outcome for u in session.exec(select(SupplierUpdate))}
    assert outcomes == {"applied"}
    # Delivered: no longer asked about.
    calls = sandbox.stats.status_calls
    assert fulfillment_sync()["updates_known"] == 0
    assert sandbox.stats.status_calls == calls

    shown = CliRunner().invoke(app, ["orders", "show", "PO-ACME-00000001"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "3 accepted, 3 shipped, 3 delivered" in shown.output
    assert f"shipment {shipment['shipment_id']}: UPS Ground {shipment['tracking_number']}" in (
        shown.output
    )
    assert "[shipment] acknowledged -> partially_shipped" in shown.output


def test_order_status_shows_acknowledgements_shipments_and_tracking(
    sandbox: SupplierSandbox,
) -> None:
    world = make_world()
    save_block(sandbox)
    with serving_in_thread() as url, httpx.Client(base_url=url, timeout=30) as client:
        native = world["native"]
        assert place(client, native, native_order("W1", ("A-1", 2), ("A-2", 1))).status_code == 201
        order_sync()
        supplier_order = po().supplier_order_id
        sandbox.acknowledge(supplier_order, rejected={2: "out of production"})  # type: ignore[arg-type]
        shipment = sandbox.ship(supplier_order, {1: 1}, tracking_number="1ZTRACK1")  # type: ignore[arg-type]
        fulfillment_sync()
        view = client.get(f"/v1/native/{native.code}/orders/W1", headers=native.auth()).json()
    first, second = view["lines"]
    assert first["fulfillment"] | {"acknowledged_at": None} == {
        "acknowledged_at": None,
        "accepted": 2,
        "backordered": 0,
        "backorder_date": None,
        "rejected": 0,
        "rejection_reason": None,
        "cancelled": 0,
        "cancellation_reason": None,
        "shipped": 1,
        "delivered": 0,
    }
    assert first["fulfillment"]["acknowledged_at"]
    assert (second["fulfillment"]["rejected"], second["fulfillment"]["rejection_reason"]) == (
        1,
        "out of production",
    )
    [purchase_order] = view["purchase_orders"]
    assert purchase_order["state"] == "partially_shipped"
    [shown] = purchase_order["shipments"]
    assert shown["shipment_id"] == shipment["shipment_id"]
    assert (shown["carrier"], shown["tracking_number"]) == ("UPS", "1ZTRACK1")
    assert shown["tracking_url"].endswith("1ZTRACK1")
    assert shown["lines"] == [{"line_no": 1, "sku": "A-1", "quantity": 1}]


def _shipment(shipment_id: str, tracking: str | None, *lines: tuple[int, int]) -> dict:
    return {
        "shipment_id": shipment_id,
        "carrier": "UPS",
        "service": None,
        "tracking_number": tracking,
        "tracking_url": None,
        "shipped_at": "2026-12-06T10:00:00Z",
        "lines": [{"line_no": n, "quantity": q} for n, q in lines],
    }


def _apply(*updates: UpdateIn) -> list[tuple[str, str | None]]:
    with session_scope(immediate=True) as session:
        outcome = apply_updates(session, get_supplier(session, "acme").id, list(updates))
    return outcome.results


def test_updates_twice_late_and_conflicting_never_move_backwards(sandbox: SupplierSandbox) -> None:
    make_world()
    save_block(sandbox)
    order("O1", ("A-1", 3), ("SHARED", 2))
    order_sync()
    number = "PO-ACME-00000001"
    ack = UpdateIn(
        number,
        "acknowledgement",
        {
            "lines": [
                {"line_no": 1, "sku": "A-1", "status": "accepted", "quantity": 3},
                {"line_no": 2, "status": "accepted", "quantity": 2},
            ]
        },
    )
    first = UpdateIn(number, "shipment", _shipment("S1", "1Z1", (1, 2)))
    # The shipment arrives before the acknowledgement; then both again.
    assert _apply(first, ack, first, ack) == [
        ("applied", None),
        ("applied", None),
        ("duplicate", None),
        ("duplicate", None),
    ]
    # The acknowledgement came late: the PO did not go back to acknowledged.
    assert po(number).state == "partially_shipped"
    late_ack = next(e for e in events(number) if e.kind == "acknowledgement")
    assert (late_ack.from_state, late_ack.to_state) == ("partially_shipped", "partially_shipped")

    older_ack = UpdateIn(
        number,
        "acknowledgement",
        {"lines": [{"line_no": 1, "status": "accepted", "quantity": 1}]},
    )
    without_tracking = UpdateIn(number, "shipment", _shipment("S1", None, (1, 2)))
    other_tracking = UpdateIn(number, "shipment", _shipment("S1", "1Z-OTHER", (1, 2)))
    too_many = UpdateIn(number, "shipment", _shipment("S2", "1Z2", (1, 2)))
    wrong_sku = UpdateIn(
        number,
        "shipment",
        _shipment("S3", "1Z3", (2, 1)) | {"lines": [{"line_no": 2, "sku": "G-1", "quantity": 1}]},
    )
    early_delivery = UpdateIn(
        number, "delivery", {"shipment_id": "S9", "delivered_at": "2026-12-07T10:00:00Z"}
    )
    unknown_po = UpdateIn("PO-ACME-99999999", "shipment", _shipment("S1", "1Z1", (1, 1)))
    results = _apply(
        older_ack, without_tracking, other_tracking, too_many, wrong_sku, early_delivery, unknown_po
    )
    assert [outcome for outcome, _ in results] == [
        "stale",
        "stale",
        "conflict",
        "conflict",
        "conflict",
        "conflict",
        "conflict",
    ]
    details = [detail or "" for _, detail in results]
    assert "behind what is known" in details[0]
    assert "tracking number 1Z1; now 1Z-OTHER" in details[2]
    assert "only 1 of its 3 are open" in details[3]
    assert "is SKU SHARED, not G-1" in details[4]
    assert "shipment S9, which is not known" in details[5]
    assert "no PO PO-ACME-99999999" in details[6]

    # Nothing moved backwards and the tracking number is kept.
    with session_scope() as session:
        [kept] = session.exec(select(Shipment)).all()
        logged = session.exec(select(SupplierUpdate).order_by(SupplierUpdate.id)).all()
    assert kept.tracking_number == "1Z1"
    assert [line.accepted_quantity for line in lines(number)] == [3, 2]
    assert [line.shipped_quantity for line in lines(number)] == [2, 0]
    assert po(number).state == "partially_shipped"
    assert [u.outcome for u in logged] == [
        "applied",
        "applied",
        "duplicate",
        "duplicate",
        "stale",
        "stale",
        "conflict",
        "conflict",
        "conflict",
        "conflict",
        "conflict",
    ]
    assert logged[-1].po_id is None and logged[-1].po_number == "PO-ACME-99999999"

    # More detail for a known shipment is added; then the rest ships and is delivered, twice.
    with_url = UpdateIn(
        number,
        "shipment",
        _shipment("S1", "1Z1", (1, 2)) | {"tracking_url": "https://track.example/1Z1"},
    )
    rest = UpdateIn(number, "shipment", _shipment("S2", "1Z2", (1, 1), (2, 2)))
    delivered = UpdateIn(number, "delivery", {"shipment_id": None, "delivered_at": "2026-12-08"})
    assert [o for o, _ in _apply(with_url, rest, delivered, delivered, rest)] == [
        "applied",
        "applied",
        "applied",
        "duplicate",
        "duplicate",
    ]
    assert po(number).state == "delivered"
    # A delivered PO takes no further change.
    cancel = UpdateIn(number, "cancellation", {"whole_po": True, "lines": []})
    [(outcome, detail)] = _apply(cancel)
    assert outcome == "conflict" and "nothing of it is open" in (detail or "")


def test_status_requests_carry_at_most_100_pos_and_keep_the_rate_limit(
    sandbox: SupplierSandbox,
) -> None:
    make_world()
    save_block(sandbox, max_concurrent_requests=16)
    for n in range(1, 151):
        order(f"O{n}", ("A-1", 1))
    assert order_sync()["pos_submitted"] == 150

    summary = fulfillment_sync()
    assert summary["updates_applied"] == 0
    assert sandbox.stats.status_batch_sizes == [100, 50]  # counted at the server

    # A smaller limit in the block, and a rate limit the sandbox enforces with 429s: a client
    # keeping to it is never refused.
    save_block(sandbox, max_pos_per_status_call=10, requests_per_second=5)
    sandbox.set_faults(Faults(rate_limit_per_second=10))
    by_number = sorted((o["po_number"], o["order_id"]) for o in sandbox.orders())
    for _, supplier_order in by_number[:30]:
        sandbox.acknowledge(supplier_order)
    sandbox.stats.status_batch_sizes.clear()
    summary = fulfillment_sync()
    assert sandbox.stats.status_batch_sizes == [10] * 15
    assert sandbox.stats.throttled == 0
    assert summary["updates_applied"] == 30
    assert summary["pos_moved"] == {f"PO-ACME-{n:08d}": "acknowledged" for n in range(1, 31)}

    # A sandbox that allows fewer than the block asks for refuses the call: it is reported.
    sandbox.max_status_batch = 5
    summary = fulfillment_sync()
    assert any("at most 5 orders a call" in p for p in summary["problems"])


def test_cancel_before_and_after_shipment_gives_funds_back_once(
    sandbox: SupplierSandbox,
) -> None:
    from tasks.funds import funds_movements, release_funds
    from tasks.orders import OrderError, cancel_order, order_by_reference

    world = make_world(funds="1000.00")
    connection = world["acme_connection"]
    save_block(sandbox)
    order("O1", ("A-1", 2))  # 20.00
    order("O2", ("A-1", 1), ("A-2", 2))  # 15.00
    order("O3", ("A-1", 3), ("SHARED", 1))  # 37.00
    order_sync()
    assert funds(connection) == money("928.00")
    orders = {o["po_number"]: o["order_id"] for o in sandbox.orders()}

    def cancel(reference: str) -> None:
        with session_scope(immediate=True) as session:
            cancel_order(session, order_by_reference(session, reference), actor="tester")

    # Before shipment: cancelled at the supplier, the funds come back.
    cancel("shopco:O1")
    summary = order_sync()
    assert summary["pos_cancelled_at_supplier"] == 1
    assert po("PO-ACME-00000001").state == "cancelled"
    assert funds(connection) == money("948.00")
    assert sandbox.order_status(orders["PO-ACME-00000001"])["status"] == "cancelled"  # type: ignore[index]
    # Its lines are cancelled: the supplier's own report of it is nothing new.
    assert [line.cancelled_quantity for line in lines("PO-ACME-00000001")] == [2]
    [retailer_cancel] = [e for e in events("PO-ACME-00000001") if e.kind == "cancellation"]
    assert (retailer_cancel.from_state, retailer_cancel.to_state) == (
        "cancel_requested",
        "cancelled",
    )
    assert retailer_cancel.payload == {
        "whole_po": True,
        "lines": [
            {
                "line_no": 1,
                "sku": "A-1",
                "quantity": 2,
                "reason": "cancelled on the retailer's request",
            }
        ],
    }

    # After shipment: the connector says it can no longer be cancelled; refused with why.
    sandbox.ship(orders["PO-ACME-00000002"], {1: 1})
    cancel("shopco:O2")
    summary = order_sync()
    assert summary["pos_cancel_refused"] == 1
    refused = po("PO-ACME-00000002")
    assert refused.state == "cancel_requested"
    assert "the supplier refused to cancel" in refused.reason  # type: ignore[operator]
    assert "partially_shipped: it can no longer be cancelled" in refused.reason  # type: ignore[operator]
    fulfillment_sync()
    assert po("PO-ACME-00000002").state == "partially_shipped"
    with session_scope() as session, pytest.raises(OrderError, match="partially shipped"):
        cancel_order(session, order_by_reference(session, "shopco:O2"), actor="tester")
    assert funds(connection) == money("948.00")

    # The supplier rejects a line: its cost comes back, once, however often it is reported.
    sandbox.acknowledge(orders["PO-ACME-00000003"], rejected={2: "discontinued"})
    fulfillment_sync()
    assert funds(connection) == money("955.00")
    sandbox.set_faults(Faults())
    for _ in range(2):
        with session_scope(immediate=True) as session:
            apply_updates(
                session,
                get_supplier(session, "acme").id,
                [
                    UpdateIn(
                        "PO-ACME-00000003",
                        "acknowledgement",
                        {
                            "lines": [
                                {"line_no": 1, "status": "accepted", "quantity": 3},
                                {
                                    "line_no": 2,
                                    "status": "rejected",
                                    "quantity": 1,
                                    "reason": "discontinued",
                                },
                            ]
                        },
                        "sftp:again.csv",
                    )
                ],
            )
    assert funds(connection) == money("955.00")
    # Then it cancels one unit of line 1, then the rest: the PO is cancelled, and exactly what
    # it took comes back in all.
    sandbox.cancel_lines(orders["PO-ACME-00000003"], {1: 1}, reason="damaged")
    fulfillment_sync()
    assert funds(connection) == money("965.00")
    assert po("PO-ACME-00000003").state == "acknowledged"
    sandbox.cancel_lines(orders["PO-ACME-00000003"], reason="out of stock")
    summary = fulfillment_sync()
    assert summary["pos_moved"] == {"PO-ACME-00000003": "cancelled"}
    assert funds(connection) == money("985.00")
    with session_scope(immediate=True) as session:
        assert release_funds(session, connection, reference="PO-ACME-00000003") == 0
        movements = funds_movements(session, connection)
    released = {m.reference: m.amount for m in movements if m.kind == "release"}
    assert released == {
        "PO-ACME-00000001": money("20.00"),
        "PO-ACME-00000003:2:1": money("7.00"),
        "PO-ACME-00000003:1:1": money("10.00"),
        "PO-ACME-00000003:1:3": money("20.00"),
    }
    cancellation = [e for e in events("PO-ACME-00000003") if e.kind == "cancellation"]
    assert [e.payload for e in cancellation] == [
        {
            "whole_po": False,
            "lines": [{"line_no": 1, "sku": "A-1", "quantity": 1, "reason": "damaged"}],
        },
        {
            "whole_po": True,
            "lines": [{"line_no": 1, "sku": "A-1", "quantity": 2, "reason": "out of stock"}],
        },
    ]
    assert cancellation[-1].to_state == "cancelled"


def test_faults_of_the_sandbox_reach_the_status_endpoint(sandbox: SupplierSandbox) -> None:
    make_world()
    save_block(sandbox)
    order("O1", ("A-1", 1))
    order_sync()
    sandbox.acknowledge(po().supplier_order_id)  # type: ignore[arg-type]
    sandbox.set_faults(Faults(error_share=0.4, throttle_share=0.2, retry_after_seconds=0, seed=3))
    summary = fulfillment_sync()
    assert summary["pos_moved"] == {"PO-ACME-00000001": "acknowledged"}
    assert sandbox.stats.errors + sandbox.stats.throttled > 0

    # An API that keeps failing: the run reports it and the next one catches up.
    sandbox.ship(po().supplier_order_id)  # type: ignore[arg-type]
    sandbox.set_faults(Faults(error_share=1.0))
    summary = fulfillment_sync()
    assert summary["problems"] and "failed 6 times" in summary["problems"][0]
    assert po().state == "acknowledged"
    sandbox.set_faults(Faults())
    assert fulfillment_sync()["pos_moved"] == {"PO-ACME-00000001": "shipped"}


def test_the_fulfillment_migration_downgrades_and_upgrades_keeping_orders(
    sandbox: SupplierSandbox,
) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    from models.db import alembic_config, get_engine

    make_world()
    save_block(sandbox)
    order("O1", ("A-1", 2))
    order_sync()
    sandbox.ship(po().supplier_order_id)  # type: ignore[arg-type]
    fulfillment_sync()
    config = alembic_config()
    engine = get_engine()
    tables = {"shipment", "shipment_line", "supplier_update"}
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    assert not tables & set(sa.inspect(engine).get_table_names())
    columns = {c["name"] for c in sa.inspect(engine).get_columns("order_line")}
    assert "shipped_quantity" not in columns
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    assert tables <= set(sa.inspect(engine).get_table_names())
    assert [line.shipped_quantity for line in lines()] == [0]  # the data went with the tables
    assert po().state == "shipped"
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], "the models and the migrations disagree: write a migration"


def test_a_run_publishes_only_when_it_did_something(sandbox: SupplierSandbox) -> None:
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
    save_block(sandbox)
    order("O1", ("A-1", 2))
    order_sync()
    quiet = fulfillment_sync(return_state=True).state_details.flow_run_id  # type: ignore[attr-defined]
    assert asyncio.run(artifacts("fulfillment-sync-report", quiet)) == []
    sandbox.ship(po().supplier_order_id, tracking_number="1ZART")  # type: ignore[arg-type]
    busy = fulfillment_sync(return_state=True).state_details.flow_run_id  # type: ignore[attr-defined]
    [table] = asyncio.run(artifacts("fulfillment-sync-pos", busy))
    data = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert {(r["supplier"], r["state"]): r["pos"] for r in data} == {("acme", "shipped"): 1}
    [report] = asyncio.run(artifacts("fulfillment-sync-report", busy))
    # Shipping without an acknowledgement first: the supplier reports both, both applied.
    assert "| 2 | 0 | 0 | 0 |" in report.data
    again = fulfillment_sync(return_state=True).state_details.flow_run_id  # type: ignore[attr-defined]
    assert asyncio.run(artifacts("fulfillment-sync-pos", again)) == []


def test_the_sandbox_moves_orders_along_over_http(sandbox: SupplierSandbox) -> None:
    make_world()
    save_block(sandbox)
    order("O1", ("A-1", 3), ("SHARED", 1))
    order_sync()
    supplier_order = po().supplier_order_id
    admin = f"http://127.0.0.1:{sandbox.port}/_sandbox/orders/{supplier_order}"
    with httpx.Client(timeout=10) as client:
        answer = client.post(f"{admin}/acknowledge", json={"rejected": {"2": "recalled"}})
        assert answer.status_code == 200 and answer.json()["status"] == "acknowledged"
        shipped = client.post(f"{admin}/ship", json={"lines": {"1": 1}, "carrier": "DHL"})
        assert shipped.status_code == 200 and shipped.json()["carrier"] == "DHL"
        too_much = client.post(f"{admin}/ship", json={"lines": {"1": 5}})
        assert too_much.status_code == 422 and "has 2 open, not 5" in too_much.json()["message"]
        cancelled = client.post(f"{admin}/cancel", json={"reason": "no more stock"})
        assert cancelled.json()["status"] == "shipped"  # what shipped stays shipped
        client.post(f"{admin}/deliver", json={})
        assert client.post(f"{admin}/teleport").status_code == 422
    summary = fulfillment_sync()
    assert summary["pos_moved"] == {"PO-ACME-00000001": "delivered"}
    found = lines()
    assert [(x.shipped_quantity, x.rejected_quantity, x.cancelled_quantity) for x in found] == [
        (1, 0, 2),
        (0, 1, 0),
    ]
    assert found[0].cancellation_reason == "no more stock"
    assert found[1].rejection_reason == "recalled"


def test_two_runs_applying_the_same_updates_at_once_change_things_once(
    sandbox: SupplierSandbox,
) -> None:
    make_world()
    save_block(sandbox)
    order("O1", ("A-1", 2))
    order_sync()
    number = "PO-ACME-00000001"
    updates = [
        UpdateIn(
            number,
            "acknowledgement",
            {"lines": [{"line_no": 1, "status": "accepted", "quantity": 2}]},
        ),
        UpdateIn(number, "shipment", _shipment("S1", "1Z1", (1, 2))),
    ]
    run_twice_at_once(lambda: _apply(*updates))
    with session_scope() as session:
        outcomes = sorted(u.outcome for u in session.exec(select(SupplierUpdate)))
        [shipment] = session.exec(select(Shipment)).all()
    assert outcomes == ["applied", "applied", "duplicate", "duplicate"]
    assert shipment.tracking_number == "1Z1"
    assert [line.shipped_quantity for line in lines(number)] == [2]
    kinds = [e.kind for e in events(number)]
    assert kinds.count("acknowledgement") == 1 and kinds.count("shipment") == 1
    assert [e.to_state for e in events(number) if e.kind == "state"][-1] == "shipped"
    assert po(number).state == "shipped"
