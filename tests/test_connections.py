"""Connections between retailers and suppliers, and the funds ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from models.db import get_engine, session_scope
from models.relationships import RetailerConnection
from supplyline.errors import RelationshipError
from tasks.audit import audit_trail
from tasks.connections import (
    ConnectionStateError,
    approve_connection,
    can_send_new_po,
    disconnect_connection,
    find_connection,
    reject_connection,
    request_connection,
    set_supplier_ordering,
    update_connection_settings,
)
from tasks.funds import (
    AwaitingPurchase,
    Purchased,
    decide_purchase,
    decide_purchases,
    funds_movements,
    release_funds,
)
from tasks.retailers import add_retailer
from tasks.suppliers import add_supplier

pytestmark = pytest.mark.usefixtures("database")

ACTOR = "tester"
TERMS = "https://acme.example/terms-v1"


@pytest.fixture
def parties(database: str) -> None:
    with session_scope() as session:
        add_supplier(session, "acme", "ACME Tools")
        add_retailer(session, "shopco", "Shop Co", registration_number="C-1", actor=ACTOR)


def ordering(**settings: object) -> None:
    with session_scope() as session:
        set_supplier_ordering(session, "acme", actor=ACTOR, **settings)  # type: ignore[arg-type]


def connect(**options: object) -> RetailerConnection:
    with session_scope() as session:
        return request_connection(session, "shopco", "acme", actor=ACTOR, **options)  # type: ignore[arg-type]


def current(connection_id: int) -> RetailerConnection:
    with session_scope() as session:
        return find_connection(session, str(connection_id))


def purchasing(funds: str = "100.00", payment: str = "ach") -> int:
    """An active connection that purchases automatically with ``funds``."""
    ordering(ordering_mode="instant")
    connection = connect()
    with session_scope() as session:
        update_connection_settings(
            session,
            connection.id,
            auto_purchase=True,
            payment_method=payment,
            funds=funds,
            actor=ACTOR,
        )
    return connection.id


# --- ordering rules and requests ------------------------------------------------------------


@pytest.mark.usefixtures("parties")
def test_instant_ordering_connects_at_once() -> None:
    ordering(ordering_mode="instant")
    connection = connect(account_ref="SHOP-42")
    assert connection.status == "active"
    assert connection.account_ref == "SHOP-42"
    assert can_send_new_po(connection)
    assert (connection.auto_sync, connection.auto_purchase) == (False, False)


@pytest.mark.usefixtures("parties")
def test_review_waits_for_the_supplier_to_approve_or_reject() -> None:
    pending = connect()  # review is the default
    assert pending.status == "pending"
    assert not can_send_new_po(pending)
    with session_scope() as session:
        assert approve_connection(session, pending.id, actor=ACTOR).status == "active"

    with session_scope() as session:
        disconnect_connection(session, pending.id, confirmation="DISCONNECT", actor=ACTOR)
    again = connect()
    assert again.id != pending.id and again.status == "pending"
    with session_scope() as session:
        assert reject_connection(session, again.id, actor=ACTOR).status == "rejected"
    with (
        pytest.raises(ConnectionStateError, match="it is rejected, not pending"),
        session_scope() as session,
    ):
        approve_connection(session, again.id, actor=ACTOR)


@pytest.mark.usefixtures("parties")
def test_one_pending_or_active_connection_per_pair() -> None:
    first = connect()
    with pytest.raises(ConnectionStateError, match="already has a pending connection"):
        connect()
    with session_scope() as session:
        session.add(
            RetailerConnection(
                retailer_id=first.retailer_id, supplier_id=first.supplier_id, status="active"
            )
        )
        with pytest.raises(sa.exc.IntegrityError):
            session.flush()
        session.rollback()


@pytest.mark.usefixtures("parties")
def test_terms_must_be_accepted_exactly_and_are_recorded() -> None:
    ordering(terms_url=TERMS, ordering_mode="instant")
    with pytest.raises(RelationshipError, match=re.escape(f"--accept-terms {TERMS}")):
        connect()
    with pytest.raises(RelationshipError, match="accept exactly that URL"):
        connect(accept_terms=TERMS + "?")
    connection = connect(accept_terms=TERMS)
    assert connection.terms_url_accepted == TERMS
    assert connection.terms_accepted_at is not None

    ordering(terms_url="https://acme.example/terms-v2")
    kept = current(connection.id)
    assert (kept.status, kept.terms_url_accepted) == ("active", TERMS)

    with session_scope() as session:  # reconnecting is a new request, under today's terms
        disconnect_connection(session, connection.id, confirmation="DISCONNECT", actor=ACTOR)
    with pytest.raises(RelationshipError, match="terms-v2"):
        connect(accept_terms=TERMS)
    again = connect(accept_terms="https://acme.example/terms-v2")
    assert (again.id, again.terms_url_accepted) != (connection.id, TERMS)
    assert current(connection.id).terms_url_accepted == TERMS


@pytest.mark.usefixtures("parties")
def test_no_terms_to_accept() -> None:
    with pytest.raises(RelationshipError, match="publishes no terms"):
        connect(accept_terms=TERMS)


@pytest.mark.usefixtures("parties")
def test_ordering_settings_are_checked() -> None:
    with pytest.raises(RelationshipError, match="not one of: instant, review"):
        ordering(ordering_mode="sometimes")
    with pytest.raises(RelationshipError, match="http"):
        ordering(terms_url="ftp://acme.example/terms")
    with pytest.raises(RelationshipError, match="rest_api, sftp"):
        ordering(order_connector_type="fax")
    ordering(order_connector_type="sftp", order_connector_settings={"folder": "/po"})


# --- disconnect -----------------------------------------------------------------------------


@pytest.mark.usefixtures("parties")
@pytest.mark.parametrize("typed", ["", "disconnect", "DISCONNECT ", "yes"])
def test_disconnect_needs_the_word(typed: str) -> None:
    ordering(ordering_mode="instant")
    connection = connect()
    with pytest.raises(RelationshipError, match="type DISCONNECT"), session_scope() as session:
        disconnect_connection(session, connection.id, confirmation=typed, actor=ACTOR)
    assert current(connection.id).status == "active"


@pytest.mark.usefixtures("parties")
def test_disconnect_stops_new_pos_at_once() -> None:
    ordering(ordering_mode="instant")
    connection = connect()
    with session_scope() as session:
        gone = disconnect_connection(session, connection.id, confirmation="DISCONNECT", actor=ACTOR)
    assert not can_send_new_po(gone)
    assert not can_send_new_po(current(connection.id))
    assert current(connection.id).disconnected_at is not None
    with (
        pytest.raises(ConnectionStateError, match="only a pending or active"),
        session_scope() as session,
    ):
        update_connection_settings(session, connection.id, auto_sync=True, actor=ACTOR)


@pytest.mark.usefixtures("parties")
def test_an_approval_based_on_a_stale_view_is_refused() -> None:
    connection = connect()
    with Session(get_engine()) as approver:  # the approver looks: pending
        assert approver.get(RetailerConnection, connection.id).status == "pending"
        approver.commit()
        with session_scope() as other:  # meanwhile someone disconnects
            disconnect_connection(other, connection.id, confirmation="DISCONNECT", actor="b")
        with pytest.raises(ConnectionStateError, match="it is disconnected, not pending"):
            approve_connection(approver, connection.id, actor="a")
        approver.rollback()
    assert current(connection.id).status == "disconnected"


def race(changes: dict[str, object], connection_id: int) -> dict[str, object]:
    """Run each change in its own thread and session, all released at once; each outcome is
    "done" (committed) or the ConnectionStateError that refused it."""
    barrier = threading.Barrier(len(changes))
    outcomes: dict[str, object] = {}

    def act(name: str, change) -> None:  # type: ignore[no-untyped-def]
        with Session(get_engine()) as session:
            barrier.wait()
            try:
                change(session, connection_id)
                time.sleep(0.05)
                session.commit()
                outcomes[name] = "done"
            except ConnectionStateError as exc:
                session.rollback()
                outcomes[name] = exc

    threads = [threading.Thread(target=act, args=item) for item in changes.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


@pytest.mark.usefixtures("parties")
def test_approve_racing_disconnect_loses_no_update() -> None:
    """Both at once, on real connections: the disconnect always stands; an approval either
    came first (and is recorded) or is refused."""
    changes = {
        "approve": lambda s, c: approve_connection(s, c, actor="a"),
        "disconnect": lambda s, c: disconnect_connection(
            s, c, confirmation="DISCONNECT", actor="b"
        ),
    }
    for _ in range(4):
        connection = connect()
        outcomes = race(changes, connection.id)
        assert outcomes["disconnect"] == "done"
        assert current(connection.id).status == "disconnected"
        with session_scope() as session:
            events = audit_trail(session, entity_type="connection", entity_id=connection.id)
        actions = [e.action for e in reversed(events)]
        if outcomes["approve"] == "done":
            assert actions == ["connection.request", "connection.approve", "connection.disconnect"]
        else:
            assert "it is disconnected" in str(outcomes["approve"])
            assert actions == ["connection.request", "connection.disconnect"]


# --- settings and funds ---------------------------------------------------------------------


@pytest.mark.usefixtures("parties")
def test_settings_are_checked_and_audited() -> None:
    ordering(ordering_mode="instant")
    connection = connect()
    with (
        pytest.raises(RelationshipError, match="ach, line_of_credit, credit_card"),
        session_scope() as session,
    ):
        update_connection_settings(session, connection.id, payment_method="cash", actor=ACTOR)
    for bad, message in (("-1", "0 or more"), ("1.005", "two decimals"), ("lots", "amount")):
        with pytest.raises(RelationshipError, match=message), session_scope() as session:
            update_connection_settings(session, connection.id, funds=bad, actor=ACTOR)
    with session_scope() as session:
        update_connection_settings(
            session, connection.id, auto_sync=True, funds="250.5", actor="ops"
        )
    changed = current(connection.id)
    assert (changed.auto_sync, changed.available_funds) == (True, Decimal("250.50"))
    assert changed.funds_source == "operator"
    with session_scope() as session:
        event = audit_trail(session, limit=1)[0]
    assert (event.actor, event.action) == ("ops", "connection.settings")
    assert event.before["auto_sync"] is False and event.after["auto_sync"] is True
    assert event.after["available_funds"] in ("250.50", 250.5)


@pytest.mark.usefixtures("parties")
def test_auto_purchase_takes_from_the_funds_and_cancellation_gives_back() -> None:
    connection_id = purchasing("100.00")
    with session_scope() as session:
        outcome = decide_purchase(session, connection_id, Decimal("33.33"), reference="PO-1")
    assert outcome == Purchased(connection_id, "PO-1", Decimal("33.33"), Decimal("66.67"))
    with session_scope() as session:
        again = decide_purchase(session, connection_id, "33.33", reference="PO-1")
    assert again.available_funds == Decimal("66.67"), "a retried purchase takes nothing twice"
    with session_scope() as session:
        decide_purchase(session, connection_id, "33.33", reference="PO-2")
        last = decide_purchase(session, connection_id, "33.34", reference="PO-3")
    assert last.available_funds == Decimal("0.00")
    with session_scope() as session:
        assert release_funds(session, connection_id, reference="PO-2") == Decimal("33.33")
        assert release_funds(session, connection_id, reference="PO-2") == Decimal("0.00")
        assert release_funds(session, connection_id, reference="PO-9") == Decimal("0.00")
    assert current(connection_id).available_funds == Decimal("33.33")
    with session_scope() as session:
        kinds = [(m.reference, m.kind) for m in funds_movements(session, connection_id)]
    assert kinds == [
        ("PO-1", "purchase"),
        ("PO-2", "purchase"),
        ("PO-3", "purchase"),
        ("PO-2", "release"),
    ]


@pytest.mark.usefixtures("parties")
def test_purchases_decided_in_a_batch_take_in_order_and_never_twice() -> None:
    connection_id = purchasing("50.00")
    with session_scope(immediate=True) as session:
        decisions = decide_purchases(
            session,
            connection_id,
            [("PO-1", Decimal("20.00")), ("PO-2", Decimal("40.00")), ("PO-3", Decimal("30.00"))],
        )
    assert decisions["PO-1"] == Purchased(connection_id, "PO-1", Decimal("20.00"), Decimal("30.00"))
    assert isinstance(decisions["PO-2"], AwaitingPurchase)
    assert "available funds 30.00 do not cover the PO total 40.00" in decisions["PO-2"].reason
    assert decisions["PO-3"].available_funds == Decimal("0.00")  # type: ignore[union-attr]
    assert current(connection_id).available_funds == Decimal("0.00")
    with session_scope(immediate=True) as session:
        again = decide_purchases(session, connection_id, [("PO-1", Decimal("20.00"))])
    assert isinstance(again["PO-1"], Purchased), "an earlier purchase stands"
    assert current(connection_id).available_funds == Decimal("0.00")
    with session_scope() as session:
        assert [m.reference for m in funds_movements(session, connection_id)] == ["PO-1", "PO-3"]
        [event] = [e for e in audit_trail(session) if e.action == "funds.purchase"]
    assert event.after["references"] == ["PO-1", "PO-3"]


@pytest.mark.usefixtures("parties")
def test_a_purchase_needs_a_real_connection_and_a_positive_total() -> None:
    connection_id = purchasing("10.00")
    with pytest.raises(RelationshipError, match="no connection #999"), session_scope() as session:
        decide_purchase(session, 999, "1.00", reference="PO-1")
    for bad in ("0", "-5", "1.234", "ten"):
        with pytest.raises(RelationshipError), session_scope() as session:
            decide_purchase(session, connection_id, bad, reference="PO-1")
    assert current(connection_id).available_funds == Decimal("10.00")


@pytest.mark.usefixtures("parties")
def test_funds_never_go_negative() -> None:
    connection_id = purchasing("50.00")
    with session_scope() as session:
        outcome = decide_purchase(session, connection_id, "50.01", reference="PO-1")
    assert isinstance(outcome, AwaitingPurchase)
    assert "available funds 50.00 do not cover the PO total 50.01" in outcome.reason
    assert current(connection_id).available_funds == Decimal("50.00")
    with session_scope() as session:
        assert funds_movements(session, connection_id) == []
    with pytest.raises(sa.exc.IntegrityError), session_scope() as session:
        connection = session.get(RetailerConnection, connection_id)
        connection.available_funds = Decimal("-0.01")
        session.flush()


@pytest.mark.usefixtures("parties")
@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"auto_purchase": False}, "auto purchase is off"),
        ({"payment_method": "credit_card"}, "credit_card always needs a person"),
        ({"payment_method": "line_of_credit", "funds": "10.00"}, "remaining credit 10.00"),
    ],
)
def test_each_rule_that_stops_an_auto_purchase_says_so(
    settings: dict[str, object], reason: str
) -> None:
    connection_id = purchasing("100.00")
    with session_scope() as session:
        update_connection_settings(session, connection_id, actor=ACTOR, **settings)  # type: ignore[arg-type]
    with session_scope() as session:
        outcome = decide_purchase(session, connection_id, "20.00", reference="PO-1")
    assert isinstance(outcome, AwaitingPurchase)
    assert reason in outcome.reason and "manual purchase" in outcome.reason


@pytest.mark.usefixtures("parties")
def test_no_funds_set_and_disconnected_wait_for_a_manual_purchase() -> None:
    ordering(ordering_mode="instant")
    connection = connect()
    with session_scope() as session:
        update_connection_settings(
            session, connection.id, auto_purchase=True, payment_method="ach", actor=ACTOR
        )
        outcome = decide_purchase(session, connection.id, "1.00", reference="PO-1")
    assert "no available funds set" in outcome.reason
    with session_scope() as session:
        update_connection_settings(session, connection.id, funds="10", actor=ACTOR)
        disconnect_connection(session, connection.id, confirmation="DISCONNECT", actor=ACTOR)
        outcome = decide_purchase(session, connection.id, "1.00", reference="PO-2")
    assert "is disconnected" in outcome.reason


@pytest.mark.usefixtures("parties")
def test_a_cancellation_after_disconnect_still_gives_back() -> None:
    connection_id = purchasing("10.00")
    with session_scope() as session:
        decide_purchase(session, connection_id, "4.00", reference="PO-1")
        disconnect_connection(session, connection_id, confirmation="DISCONNECT", actor=ACTOR)
    with session_scope() as session:
        assert release_funds(session, connection_id, reference="PO-1") == Decimal("4.00")
    assert current(connection_id).available_funds == Decimal("10.00")


@pytest.mark.usefixtures("parties")
def test_two_purchases_at_once_that_exceed_the_funds_one_waits() -> None:
    """Real threads on real connections; each holds its transaction open a moment after
    reserving, so the other must wait for it (no check-then-act race)."""
    connection_id = purchasing("100.00")
    barrier = threading.Barrier(2)
    outcomes: list[Purchased | AwaitingPurchase] = []

    def purchase(reference: str) -> None:
        with Session(get_engine()) as session:
            barrier.wait()
            outcome = decide_purchase(session, connection_id, "70.00", reference=reference)
            time.sleep(0.3)
            session.commit()
        outcomes.append(outcome)

    threads = [threading.Thread(target=purchase, args=(f"PO-{n}",)) for n in (1, 2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert time.monotonic() - started >= 0.55, "the second purchase did not wait for the first"
    assert sorted(type(o).__name__ for o in outcomes) == ["AwaitingPurchase", "Purchased"]
    waiting = next(o for o in outcomes if isinstance(o, AwaitingPurchase))
    assert "available funds 30.00 do not cover the PO total 70.00" in waiting.reason
    assert current(connection_id).available_funds == Decimal("30.00")
