"""Flows: order sync (route received orders, send POs), and sending chosen POs now.

Tasks take batches: one task run routes a batch of orders, one sends a batch of one
supplier's POs. Exactly-once is the database's doing (tasks.po_submit), not Prefect's.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prefect import flow, get_run_logger, tags, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from sqlmodel import select

from models.catalog import Supplier, utcnow
from models.db import session_scope
from models.orders import PurchaseOrder
from models.relationships import Retailer
from supplyline.settings import get_settings
from tasks.events import emit_po_event, emit_submitted_batch
from tasks.flow_runs import first_and_count, parameter, run_name, tag_current_run
from tasks.po_cancel import CancelOutcome, cancel_at_supplier, due_for_cancel
from tasks.po_connectors import ConnectorMissing, connector_settings, open_connector
from tasks.po_overview import OPEN_PO_STATES, connection_pos, pos_by_supplier_and_state
from tasks.po_submit import (
    SendOutcome,
    check_sendable,
    claim,
    due_for_auto_send,
    mark_awaiting_manual_sync,
    record_results,
    release_holds,
    send_claimed,
)
from tasks.routing import RoutingOutcome, route_received_orders

ACTOR = "order-sync"


def _sync_run_name() -> str:
    return run_name("order-sync")


def _submit_run_name() -> str:
    return run_name("po-submit", first_and_count(parameter("po_numbers") or []))  # type: ignore[arg-type]


@task(name="route-orders", cache_policy=NO_CACHE)
def route_order_batch(batch_size: int) -> RoutingOutcome:
    """Route one batch of received orders: POs per supplier, or the reasons lines are not."""
    started = time.perf_counter()
    with session_scope(immediate=True) as session:
        outcome = route_received_orders(session, limit=batch_size, actor=ACTOR)
    outcome.seconds = time.perf_counter() - started
    return outcome


@task(name="prepare-pos", cache_policy=NO_CACHE)
def prepare_pos() -> dict[str, int]:
    """Held POs whose connection is now active go on; manual-sync POs get their reason."""
    with session_scope(immediate=True) as session:
        released = release_holds(session, actor=ACTOR)
    with session_scope(immediate=True) as session:
        manual = mark_awaiting_manual_sync(session, actor=ACTOR)
    return {"released_from_hold": released, "awaiting_manual_sync": manual}


@task(name="send-pos", task_run_name="send-pos-{supplier_code}", cache_policy=NO_CACHE)
def send_po_batch(supplier_code: str, po_ids: list[int]) -> SendOutcome:
    """Claim, send and record one batch of a supplier's POs (see tasks.po_submit)."""
    logger = get_run_logger()
    lease_seconds = get_settings().po_send_lease_seconds
    timings: dict[str, float] = {}
    try:
        with session_scope() as session:
            supplier = session.exec(select(Supplier).where(Supplier.code == supplier_code)).one()
            settings = connector_settings(session, supplier)
        with open_connector(settings) as connector:
            started = time.perf_counter()
            with session_scope(immediate=True) as session:
                claimed = claim(session, po_ids, lease_seconds=lease_seconds)
            timings["claim"] = time.perf_counter() - started
            started = time.perf_counter()
            results = send_claimed(
                claimed,
                connector.send,
                lease_seconds=lease_seconds,
                concurrency=connector.concurrency,
            )
    except ConnectorMissing as exc:
        with session_scope(immediate=True) as session:
            _note_error(session, po_ids, str(exc))
        logger.warning("%s: %d POs wait: %s", supplier_code, len(po_ids), exc)
        return SendOutcome(waiting=[(str(i), str(exc)) for i in po_ids])
    timings["send"] = time.perf_counter() - started
    started = time.perf_counter()
    with session_scope(immediate=True) as session:
        outcome = record_results(session, results, actor=ACTOR)
    timings["record"] = time.perf_counter() - started
    started = time.perf_counter()
    _emit_events(supplier_code, outcome)
    timings["events"] = time.perf_counter() - started
    outcome.timings = timings
    logger.info(
        "%s: %d submitted (%d found already there), %d purchased, %d awaiting purchase, "
        "%d rejected, %d waiting, %d failed",
        supplier_code,
        len(outcome.submitted),
        outcome.found_at_supplier,
        len(outcome.purchased),
        len(outcome.awaiting_purchase),
        len(outcome.rejected),
        len(outcome.waiting),
        len(outcome.failed),
    )
    return outcome


@flow(name="order-sync", flow_run_name=_sync_run_name)
def order_sync(batch_size: int | None = None) -> dict[str, Any]:
    """Route every received order, then send every PO that goes out on its own."""
    started = utcnow()
    size = batch_size or get_settings().order_batch_size
    routing = RoutingOutcome()
    while True:
        batch = route_order_batch(size)
        routing.add(batch)
        if batch.orders < size:
            break
    prepared = prepare_pos()
    sending = _send_due(size)
    cancelling = _cancel_due()
    prepared |= {
        "pos_cancelled_at_supplier": len(cancelling.cancelled),
        "pos_cancel_refused": len(cancelling.refused),
    }
    sending.waiting.extend(cancelling.waiting)
    summary = _summary(routing, prepared, sending)
    summary["po_failures"].extend(f"{n}: {r}" for n, r in cancelling.refused)
    if (
        routing.orders
        or sending.submitted
        or sending.rejected
        or sending.waiting
        or cancelling.cancelled
        or cancelling.refused
        or sending.failed
    ):
        _publish(summary, routing, sending)  # a run that found nothing to do adds no version
        publish_connections(started)
    return summary


@flow(name="po-submit", flow_run_name=_submit_run_name)
def submit_pos(po_numbers: list[str]) -> dict[str, Any]:
    """Send chosen POs now (awaiting sync on an active connection), e.g. when auto sync is off."""
    by_supplier: dict[str, list[int]] = {}
    with session_scope(immediate=True) as session:
        for number in po_numbers:
            po = session.exec(
                select(PurchaseOrder).where(PurchaseOrder.po_number == number)
            ).first()
            if po is None:
                raise ValueError(f"no PO {number}: see supplyline orders list")
            check_sendable(session, po)
            supplier = session.get(Supplier, po.supplier_id)
            by_supplier.setdefault(supplier.code, []).append(po.id)  # type: ignore[union-attr,arg-type]
    tag_current_run(*(f"supplier:{code}" for code in by_supplier))
    started = utcnow()
    sending = SendOutcome()
    for code, ids in by_supplier.items():
        sending.add(send_po_batch(code, ids))
    publish_connections(started)
    return _summary(RoutingOutcome(), {}, sending)


def _send_due(batch_size: int) -> SendOutcome:
    """Send what is due, supplier by supplier, batch by batch; a PO is tried once per run."""
    sending = SendOutcome()
    tried: set[int] = set()
    while True:
        with session_scope(immediate=True) as session:
            due = due_for_auto_send(session, limit=batch_size + len(tried))
            codes = {
                s.id: s.code
                for s in session.exec(select(Supplier).where(Supplier.id.in_(list(due))))  # type: ignore[union-attr]
            }
        fresh = {sid: [i for i in ids if i not in tried] for sid, ids in due.items()}
        fresh = {sid: ids[:batch_size] for sid, ids in fresh.items() if ids}
        if not fresh:
            return sending
        tag_current_run(*(f"supplier:{codes[supplier_id]}" for supplier_id in fresh))
        for supplier_id, ids in fresh.items():
            tried.update(ids)
            with tags(f"supplier:{codes[supplier_id]}"):
                sending.add(send_po_batch(codes[supplier_id], ids))


@task(name="cancel-pos", task_run_name="cancel-pos-{supplier_code}", cache_policy=NO_CACHE)
def cancel_po_batch(supplier_code: str, po_ids: list[int]) -> CancelOutcome:
    """Ask a supplier to cancel the POs its retailers cancelled after sending them."""
    with session_scope(immediate=True) as session:
        supplier = session.exec(select(Supplier).where(Supplier.code == supplier_code)).one()
        settings = connector_settings(session, supplier)
    with open_connector(settings) as connector:
        outcome = cancel_at_supplier(
            _writing_session,
            po_ids,
            connector.cancel,
            actor=ACTOR,
            cancellable=connector.cancellable,
        )
    get_run_logger().info(
        "%s: %d cancelled, %d refused, %d waiting",
        supplier_code,
        len(outcome.cancelled),
        len(outcome.refused),
        len(outcome.waiting),
    )
    return outcome


def _cancel_due() -> CancelOutcome:
    total = CancelOutcome()
    with session_scope(immediate=True) as session:
        due = due_for_cancel(session)
        codes = {
            s.id: s.code
            for s in session.exec(select(Supplier).where(Supplier.id.in_(list(due))))  # type: ignore[union-attr]
        }
    for supplier_id, ids in due.items():
        try:
            with tags(f"supplier:{codes[supplier_id]}"):
                outcome = cancel_po_batch(codes[supplier_id], ids)
        except ConnectorMissing as exc:
            outcome = CancelOutcome(waiting=[(str(i), str(exc)) for i in ids])
        total.cancelled += outcome.cancelled
        total.refused += outcome.refused
        total.waiting += outcome.waiting
    return total


def _writing_session() -> Any:
    return session_scope(immediate=True)


def _note_error(session: Any, po_ids: list[int], message: str) -> None:
    session.execute(
        sa.update(PurchaseOrder)
        .where(PurchaseOrder.id.in_(po_ids), PurchaseOrder.state == "awaiting_sync")  # type: ignore[union-attr]
        .values(last_error=message, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _emit_events(supplier_code: str, outcome: SendOutcome) -> None:
    """Events for automations: one per PO rejected or failed, one per batch submitted."""
    if outcome.submitted:
        emit_submitted_batch(supplier_code, outcome.submitted)
    for event, items in (
        ("supplyline.po.rejected", outcome.rejected),
        ("supplyline.po.failed", outcome.failed),
    ):
        for number, reason in items:
            emit_po_event(event, supplier_code, number, reason)


def _summary(
    routing: RoutingOutcome, prepared: dict[str, int], sending: SendOutcome
) -> dict[str, Any]:
    return {
        "orders_routed": routing.orders,
        "orders_fully_routed": routing.routed,
        "orders_partially_routed": routing.partially_routed,
        "orders_rejected": routing.rejected,
        "lines_rejected": routing.lines_rejected,
        "pos_created": len(routing.pos_created),
        **prepared,
        "pos_submitted": len(sending.submitted),
        "pos_found_at_supplier": sending.found_at_supplier,
        "pos_purchased": len(sending.purchased),
        "pos_awaiting_purchase": len(sending.awaiting_purchase),
        "pos_rejected": len(sending.rejected),
        "pos_waiting": len(sending.waiting),
        "pos_failed": len(sending.failed),
        "timings_s": {
            "route": round(routing.seconds, 3),
            **{step: round(seconds, 3) for step, seconds in sending.timings.items()},
        },
        "rejections": routing.rejections[:50],
        "po_failures": [
            f"{n}: {r}" for n, r in (sending.rejected + sending.failed + sending.waiting)[:50]
        ],
    }


def _publish(summary: dict[str, Any], routing: RoutingOutcome, sending: SendOutcome) -> None:
    """A table of POs by supplier and state, and a markdown report of the run."""
    with session_scope() as session:  # a read: no write lock for the intake to wait on
        table = pos_by_supplier_and_state(session)
    create_table_artifact(
        key="order-sync-pos",
        table=table,
        description="POs by supplier and state, after this run",
    )
    lines = [
        "### Order sync",
        "",
        "| orders in | routed | partly | rejected | POs created | submitted | purchased "
        "| awaiting purchase | PO rejected | waiting | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {routing.orders} | {routing.routed} | {routing.partially_routed} | {routing.rejected} "
        f"| {len(routing.pos_created)} | {len(sending.submitted)} | {len(sending.purchased)} "
        f"| {len(sending.awaiting_purchase)} | {len(sending.rejected)} | {len(sending.waiting)} "
        f"| {len(sending.failed)} |",
    ]
    problems = summary["rejections"] + summary["po_failures"]
    if problems:
        lines += ["", "**Problems**", ""] + [f"- {p}" for p in problems]
    create_markdown_artifact(
        key="order-sync-report", markdown="\n".join(lines), description="order sync run"
    )


def publish_connections(since: datetime) -> None:
    """Per connection whose POs changed since ``since``: its POs by state and the oldest
    unsent one, as the table artifact ``pos-<retailer>-<supplier>`` (its history in the UI)."""
    with session_scope() as session:
        pairs = session.execute(
            sa.select(Retailer.code, Supplier.code)
            .select_from(PurchaseOrder)
            .join(Retailer, Retailer.id == PurchaseOrder.retailer_id)  # type: ignore[arg-type]
            .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)  # type: ignore[arg-type]
            .where(PurchaseOrder.updated_at >= since)  # type: ignore[operator]
            .distinct()
        ).all()
        if not pairs:
            return
        connections = connection_pos(session, [tuple(p) for p in pairs])
    for connection in connections:
        oldest = (
            f"oldest unsent: {connection.oldest_unsent_po} ({connection.oldest_unsent_state}, "
            f"since {connection.oldest_unsent_at:%Y-%m-%d %H:%M} UTC)"
            if connection.oldest_unsent_at
            else "nothing unsent"
        )
        create_table_artifact(
            key=connection.key,
            table=[
                {"state": state, "pos": count, "open": state in OPEN_PO_STATES}
                for state, count in sorted(connection.pos_by_state.items())
            ],
            description=(
                f"POs of {connection.retailer} at {connection.supplier} by state: "
                f"{connection.open_pos} open, {oldest}"
            ),
        )
