"""Pushing PO events to retailers' webhooks, on SQLite and PostgreSQL: signed events reach a
real receiver (the retailer sandbox) in order, the receiver down for a while loses nothing,
duplicates are deduplicable by event id, failures hold back only their own order, 4xx answers
fail for good, bad signatures are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from order_world import kill_once, make_world, run_to_the_end, run_twice_at_once
from push_world import (
    add_event,
    deliveries,
    events_of,
    life_of,
    move,
    order_through,
    shipment,
    unpushed,
    use_webhook,
)

from blocks.retailer_webhook import EVENT_ID_HEADER, SIGNATURE_HEADER, sign_body
from flows.retailer_push import retailer_push
from sandbox.retailer_webhook import RetailerWebhookSandbox
from supplyline.settings import get_settings
from tasks.retailer_events import event_key
from tasks.retailer_push import set_connector_webhook

pytestmark = pytest.mark.usefixtures("prefect_api", "database")


@pytest.fixture
def receiver() -> Iterator[RetailerWebhookSandbox]:
    with RetailerWebhookSandbox() as server:
        yield server


@pytest.fixture
def retry_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed deliveries are due again at once (each is still tried once per run)."""
    monkeypatch.setenv("SUPPLYLINE_PUSH_RETRY_DELAY_SECONDS", "0")
    get_settings.cache_clear()


def native_world(receiver: RetailerWebhookSandbox) -> str:
    world = make_world()
    code = world["native"].code
    use_webhook(code, receiver)
    return code


def received_ids(receiver: RetailerWebhookSandbox) -> list[str]:
    return [event.event_id for event in receiver.events()]


def test_events_reach_the_receiver_signed_and_in_order(receiver: RetailerWebhookSandbox) -> None:
    world = make_world()
    native, siteflow = world["native"].code, world["siteflow"].code
    use_webhook(native, receiver)
    order_through(native, "O1", ("A-1", 2))
    order_through(siteflow, "O2", ("A-1", 1))  # a connector with no webhook: nowhere to go
    life_of("O1")

    summary = retailer_push()
    ids = events_of("O1")
    assert len(ids) == 10  # created, 5 state moves, acknowledgement, 2 shipments, delivery
    assert summary["events_planned"] == len(ids) + len(events_of("O2"))
    assert summary["events_without_destination"] == len(events_of("O2"))
    assert (summary["delivered"], summary["retrying"], summary["failed"]) == (len(ids), 0, 0)
    assert received_ids(receiver) == [event_key(i) for i in ids]
    assert receiver.stats.bad_signatures == 0 and receiver.stats.duplicates == 0

    bodies = [event.body for event in receiver.events()]
    assert [b["type"] for b in bodies] == [
        "po.state",
        "po.state",
        "po.acknowledgement",
        "po.state",
        "po.shipment",
        "po.state",
        "po.shipment",
        "po.state",
        "po.delivery",
        "po.state",
    ]
    assert [b["state"] for b in bodies if b["type"] == "po.state"] == [
        "awaiting_sync",
        "submitted",
        "acknowledged",
        "partially_shipped",
        "shipped",
        "delivered",
    ]
    first_shipment = bodies[4]
    assert first_shipment["order_id"] == "O1"
    assert first_shipment["po_number"] == "PO-ACME-00000001"
    assert first_shipment["supplier"] == "acme" and first_shipment["retailer"] == "shopco"
    assert first_shipment["data"] == shipment("O1-S1", (1, "A-1", 1))
    assert bodies[1]["previous_state"] == "awaiting_sync"
    assert unpushed() == []
    log = deliveries()
    assert {d.status for d in log.values()} == {"delivered"}
    assert {d.last_status_code for d in log.values()} == {200}
    assert set(log) == set(ids)

    # Nothing new: nothing is sent again, and the run publishes nothing.
    requests = receiver.stats.requests
    again = retailer_push()
    assert (again["events_planned"], again["delivered"]) == (0, 0)
    assert receiver.stats.requests == requests

    # A later change goes out on its own.
    [late] = [add_event("O1", "delivery", {"shipment_id": "O1-S2", "delivered_at": "x"})]
    assert retailer_push()["delivered"] == 1
    assert received_ids(receiver)[-1] == event_key(late)


def test_receiver_down_then_up_loses_nothing_and_duplicates_are_deduplicable(
    receiver: RetailerWebhookSandbox, retry_at_once: None
) -> None:
    native = native_world(receiver)
    for order_id in ("O1", "O2"):
        order_through(native, order_id, ("A-1", 2))
        life_of(order_id)
    expected = {event_key(i) for i in events_of("O1") + events_of("O2")}

    receiver.go_down(503)
    down = retailer_push()
    assert (down["delivered"], down["retrying"]) == (0, 2)  # one try per order, then it waits
    receiver.go_down(drop=True)  # the connection closes unanswered
    assert retailer_push()["retrying"] == 2
    receiver.go_down(after_storing=True)  # it keeps events but the answers are lost
    stored = retailer_push()
    assert stored["retrying"] == 2 and len(receiver.events()) == 2
    assert len(unpushed()) == len(expected)

    receiver.come_up()
    up = retailer_push()
    assert up["delivered"] == len(expected) and up["pending"] == 0
    assert {e.event_id for e in receiver.events()} == expected  # nothing lost
    assert len(receiver.events()) == len(expected)  # each kept once...
    assert receiver.stats.duplicates == 2  # ...though two came twice (their answers were lost)
    assert unpushed() == []
    # Each order's events arrived in order.
    arrived = received_ids(receiver)
    for order_id in ("O1", "O2"):
        mine = [event_key(i) for i in events_of(order_id)]
        assert [e for e in arrived if e in mine] == mine
    first = deliveries()[events_of("O1")[0]]
    assert (first.status, first.attempts, first.last_error) == ("delivered", 4, None)


def test_a_failing_event_holds_back_its_order_only(
    receiver: RetailerWebhookSandbox, retry_at_once: None
) -> None:
    native = native_world(receiver)
    order_through(native, "O1", ("A-1", 2))
    order_through(native, "O2", ("A-1", 2))
    life_of("O1")
    life_of("O2")
    o1 = events_of("O1")
    stuck = event_key(o1[2])
    receiver.answer(stuck, 503)

    summary = retailer_push()
    assert summary["retrying"] == 1
    assert received_ids(receiver)[:2] == [event_key(i) for i in o1[:2]]
    assert stuck not in received_ids(receiver)
    assert not {event_key(i) for i in o1[3:]} & set(received_ids(receiver))  # held back
    assert {event_key(i) for i in events_of("O2")} <= set(received_ids(receiver))  # not held
    log = deliveries()
    assert log[o1[2]].status == "pending" and log[o1[2]].last_status_code == 503
    assert "HTTP 503" in log[o1[2]].last_error
    assert {log[i].attempts for i in o1[3:]} == {0}

    receiver.answer_normally()
    assert retailer_push()["delivered"] == len(o1) - 2
    arrived = received_ids(receiver)
    assert [e for e in arrived if e in {event_key(i) for i in o1}] == [event_key(i) for i in o1]


def test_a_refused_event_fails_for_good_and_does_not_hold_back(
    receiver: RetailerWebhookSandbox, retry_at_once: None
) -> None:
    native = native_world(receiver)
    order_through(native, "O1", ("A-1", 2))
    life_of("O1")
    ids = events_of("O1")
    refused, throttled = event_key(ids[1]), event_key(ids[4])
    receiver.answer(refused, 422)
    receiver.answer(throttled, 429)

    summary = retailer_push()
    assert (summary["failed"], summary["retrying"]) == (1, 1)
    assert any(refused in p and "HTTP 422" in p for p in summary["problems"])
    log = deliveries()
    assert (log[ids[1]].status, log[ids[1]].last_status_code) == ("failed", 422)
    assert f"event {refused} is not taken now" in log[ids[1]].last_error
    assert log[ids[4]].status == "pending"  # 429: tried again later
    assert received_ids(receiver) == [event_key(i) for i in (ids[0], ids[2], ids[3])]

    receiver.answer_normally()
    assert retailer_push()["delivered"] == len(ids) - 4
    assert unpushed() == []  # the refused event is done too: it failed for good
    assert refused not in received_ids(receiver)
    assert retailer_push()["delivered"] == 0  # and it is not tried again on its own


def test_deliveries_give_up_after_the_last_try(
    receiver: RetailerWebhookSandbox, retry_at_once: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPLYLINE_PUSH_MAX_ATTEMPTS", "2")
    get_settings.cache_clear()
    native = native_world(receiver)
    order_through(native, "O1", ("A-1", 1))
    [created] = events_of("O1")
    receiver.go_down(500)
    assert retailer_push()["retrying"] == 1
    assert retailer_push()["failed"] == 1
    gave_up = deliveries()[created]
    assert gave_up.status == "failed" and gave_up.attempts == 2
    assert gave_up.last_error.startswith("gave up after 2 tries; last: HTTP 500")
    assert unpushed() == []


def test_later_retries_wait_longer() -> None:
    from tasks.retailer_push import retry_delay

    first = get_settings().push_retry_delay_seconds
    assert first / 2 <= retry_delay(1) <= first * 1.5
    assert first * 4 <= retry_delay(4) <= first * 12
    assert retry_delay(40) == get_settings().push_max_retry_delay_seconds
    assert retry_delay(1, retry_after=600) >= 600


def test_bad_signatures_are_refused_and_nothing_is_kept(receiver: RetailerWebhookSandbox) -> None:
    native = make_world()["native"].code
    use_webhook(native, receiver, secret="not-the-secret-the-retailer-has")
    order_through(native, "O1", ("A-1", 1))
    summary = retailer_push()
    assert summary["failed"] == 1
    assert receiver.events() == [] and receiver.stats.bad_signatures == 1
    [delivery] = deliveries().values()
    assert delivery.last_status_code == 401

    # A receiver checks the signature of the exact bytes: a body changed on the way is refused.
    body = json.dumps({"id": "evt_1", "type": "po.state"}).encode()
    with httpx.Client() as client:
        good = {SIGNATURE_HEADER: sign_body(receiver.secret, body), EVENT_ID_HEADER: "evt_1"}
        tampered = body.replace(b"po.state", b"po.shipment")
        assert client.post(receiver.url, content=tampered, headers=good).status_code == 401
        assert client.post(receiver.url, content=body, headers={}).status_code == 401
        assert receiver.events() == []
        assert client.post(receiver.url, content=body, headers=good).status_code == 200
    assert received_ids(receiver) == ["evt_1"]


def test_orders_without_a_connector_go_to_each_of_the_retailers_webhooks(
    receiver: RetailerWebhookSandbox,
) -> None:
    native = native_world(receiver)
    order_through(None, "O1", ("A-1", 1))
    move("O1", "submitted")
    summary = retailer_push()
    assert summary["delivered"] == 2
    assert {d.connector_id for d in deliveries().values()} == {
        _connector_id(native),
    }


def test_removing_the_webhook_ends_its_pending_deliveries(
    receiver: RetailerWebhookSandbox,
) -> None:
    from models.db import session_scope

    native = native_world(receiver)
    order_through(native, "O1", ("A-1", 1))
    receiver.go_down(503)
    assert retailer_push()["retrying"] == 1
    with session_scope() as session:
        set_connector_webhook(session, native, None, actor="tester")
    move("O1", "submitted")
    summary = retailer_push()
    assert summary["events_without_destination"] == 1
    [delivery] = deliveries().values()
    assert delivery.status == "failed" and "has no webhook any more" in delivery.last_error
    assert unpushed() == []


def _connector_id(code: str) -> int:
    from sqlmodel import select

    from models.db import session_scope
    from models.relationships import RetailerConnector

    with session_scope() as session:
        return session.exec(
            select(RetailerConnector.id).where(RetailerConnector.code == code)
        ).one()


def test_two_pushes_at_once_deliver_each_event_once_in_order(retry_at_once: None) -> None:
    with RetailerWebhookSandbox(latency_seconds=0.002) as receiver:
        native = native_world(receiver)
        for n in range(12):
            order_through(native, f"C-{n}", ("A-1", 2))
            life_of(f"C-{n}")
        receiver.answer(event_key(events_of("C-3")[4]), 503)  # one order waits for a retry
        run_twice_at_once(lambda: retailer_push(batch_size=7))
        receiver.answer_normally()
        retailer_push()
        assert receiver.stats.duplicates == 0
        arrived = received_ids(receiver)
        for n in range(12):
            mine = [event_key(i) for i in events_of(f"C-{n}")]
            assert [e for e in arrived if e in set(mine)] == mine
        assert len(arrived) == 12 * 10
        assert unpushed() == []


def test_the_order_status_endpoint_shows_every_event(receiver: RetailerWebhookSandbox) -> None:
    from api.server import serving_in_thread

    native = make_world()["native"]
    use_webhook(native.code, receiver)
    order_through(native.code, "O1", ("A-1", 2))
    life_of("O1")
    with serving_in_thread() as url, httpx.Client(base_url=url, timeout=30) as client:

        def events() -> list[dict]:
            answer = client.get(f"/v1/native/{native.code}/orders/O1", headers=native.auth())
            assert answer.status_code == 200, answer.text
            return answer.json()["events"]

        before = events()
        assert [e["id"] for e in before] == [event_key(i) for i in events_of("O1")]
        assert {e["pushed_at"] for e in before} == {None}
        retailer_push()
        after = events()
    assert all(e["pushed_at"] for e in after)
    sent = {e.event_id: e.body for e in receiver.events()}
    assert [{k: v for k, v in e.items() if k != "pushed_at"} for e in after] == [
        sent[e["id"]] for e in after
    ]
    shipped = [e for e in after if e["type"] == "po.shipment"]
    assert [e["data"]["tracking_number"] for e in shipped] == ["1ZO1-S1", "1ZO1-S2"]


def test_a_run_publishes_artifacts_only_when_it_did_something(
    receiver: RetailerWebhookSandbox,
) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def artifacts(key: str, run_id: object) -> list:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )
        return [a for a in found if a.flow_run_id == run_id]

    native = native_world(receiver)
    order_through(native, "O1", ("A-1", 1))
    [created] = events_of("O1")
    receiver.answer(event_key(created), 400)
    run_id = retailer_push(return_state=True).state_details.flow_run_id
    [table] = asyncio.run(artifacts("retailer-push", run_id))
    data = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert data == [
        {"connector": native, "delivered": 0, "to retry": 0, "failed": 1, "still pending": 0}
    ]
    [report] = asyncio.run(artifacts("retailer-push-report", run_id))
    assert event_key(created) in report.data and "HTTP 400" in report.data
    quiet = retailer_push(return_state=True).state_details.flow_run_id
    assert asyncio.run(artifacts("retailer-push", quiet)) == []
    assert asyncio.run(artifacts("retailer-push-report", quiet)) == []


def test_a_missing_block_or_a_removed_connector_is_said_plainly(
    receiver: RetailerWebhookSandbox,
) -> None:
    import uuid

    from models.db import session_scope
    from tasks.connectors import add_connector, remove_connector

    make_world()
    with session_scope() as session:  # the setting, but no block (say it was deleted)
        native = add_connector(
            session, "shopco", "native_api", code=f"no-block-{uuid.uuid4().hex[:8]}", actor="t"
        ).connector.code
        set_connector_webhook(session, native, receiver.url, actor="tester")
    order_through(native, "O1", ("A-1", 1))
    summary = retailer_push()
    assert summary["retrying"] == 1
    [problem] = summary["problems"]
    assert f"the block webhook-{native} cannot be loaded" in problem
    assert "supplyline connector webhook" in problem

    with session_scope() as session:
        remove_connector(session, native, actor="tester")
    move("O1", "submitted")
    summary = retailer_push()  # a removed connector is due at once, whatever its retry time
    assert summary["events_without_destination"] == 1 and summary["failed"] == 1
    [delivery] = deliveries().values()
    assert delivery.status == "failed"
    assert delivery.last_error == f"connector {native} was removed"
    assert unpushed() == [] and receiver.events() == []


def test_a_push_killed_mid_delivery_loses_nothing_and_keeps_each_orders_order(
    supplyline_home: Path, database: str
) -> None:
    """``supplyline fulfillment push`` in a real process, killed (SIGKILL) while it delivers,
    then run again: every event reaches the receiver, each order's in order; what a killed run
    sent but did not record comes again, and the receiver's dedup by id absorbs it."""
    import os
    import sys
    import time

    from prefect.settings import PREFECT_API_URL

    with RetailerWebhookSandbox(latency_seconds=0.02) as receiver:
        native = make_world()["native"].code
        use_webhook(native, receiver, timeout_seconds=0.5)
        orders = [f"K-{n}" for n in range(15)]
        for order_id in orders:
            order_through(native, order_id, ("A-1", 2))
            life_of(order_id)
        total = 10 * len(orders)
        lease = 6.0  # a run starts no POST later than 3 timeouts (1.5 s) before its lease ends
        env = os.environ | {
            "SUPPLYLINE_HOME": str(supplyline_home),
            "SUPPLYLINE_DATABASE_URL": database,
            "SUPPLYLINE_PUSH_LEASE_SECONDS": str(lease),
            "SUPPLYLINE_PUSH_BATCH_SIZE": "20",
            "SUPPLYLINE_PUSH_RETRY_DELAY_SECONDS": "0",
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        }
        command = [sys.executable, "-m", "supplyline.cli", "fulfillment", "push", "--json"]
        killed = 0
        for target in (25, 70, 110):
            killed += kill_once(command, env, lambda t=target: receiver.stats.requests >= t)
            time.sleep(lease + 0.5)  # the killed run's leases run out
        assert killed >= 2
        final = run_to_the_end(command, env)
        assert final.returncode == 0, final.stdout + final.stderr
        arrived = received_ids(receiver)
        assert len(arrived) == total == len(set(arrived))
        assert receiver.stats.requests == total + receiver.stats.duplicates
        for order_id in orders:
            mine = [event_key(i) for i in events_of(order_id)]
            assert [e for e in arrived if e in set(mine)] == mine
        assert unpushed() == []


def test_a_receiver_slower_than_the_timeout_is_tried_again(retry_at_once: None) -> None:
    with RetailerWebhookSandbox(latency_seconds=1.0) as receiver:
        native = make_world()["native"].code
        use_webhook(native, receiver, timeout_seconds=0.2)
        order_through(native, "O1", ("A-1", 1))
        [created] = events_of("O1")
        summary = retailer_push()
        assert summary["retrying"] == 1
        assert "ReadTimeout" in deliveries()[created].last_error
        receiver.latency_seconds = 0.0
        assert retailer_push()["delivered"] == 1
        assert received_ids(receiver) == [event_key(created)]
        # The slow receiver kept the first copy after the sender gave up: the second is a
        # duplicate it recognises by the event id.
        import time

        deadline = time.monotonic() + 10
        while receiver.stats.duplicates < 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the first, slow answer may still be on its way
        assert receiver.events()[0].copies == 2 and receiver.stats.duplicates == 1
