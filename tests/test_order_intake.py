"""The order intake API over real HTTP, on SQLite and PostgreSQL: both dialects, idempotency,
validation, authentication, status and cancel."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
from order_world import make_world, native_order, place, siteflow_order

from api.server import serving_in_thread
from models.db import session_scope
from models.orders import OrderLine, RetailOrder
from tasks.connectors import remove_connector
from tasks.credentials import revoke_credential

pytestmark = pytest.mark.usefixtures("database")


@pytest.fixture
def world(database: str) -> dict:
    return make_world()


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    with serving_in_thread() as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def stored_orders() -> tuple[int, int]:
    with session_scope() as session:
        orders = session.execute(sa.select(sa.func.count()).select_from(RetailOrder)).scalar_one()
        lines = session.execute(sa.select(sa.func.count()).select_from(OrderLine)).scalar_one()
    return orders, lines


def test_native_order_is_stored_once_and_shown(world: dict, api: httpx.Client) -> None:
    native = world["native"]
    body = native_order("R-1001", ("A-1", 2), ("G-1", 1))
    first = place(api, native, body)
    assert first.status_code == 201, first.text
    shown = first.json()
    assert (shown["order_id"], shown["status"], shown["dialect"]) == (
        "R-1001",
        "received",
        "native",
    )
    assert [(line["sku"], line["quantity"], line["status"]) for line in shown["lines"]] == [
        ("A-1", 2, "pending"),
        ("G-1", 1, "pending"),
    ]
    again = place(api, native, body)
    assert again.status_code == 200
    assert again.json()["id"] == shown["id"]
    assert stored_orders() == (1, 2)

    status = api.get(f"/v1/native/{native.code}/orders/R-1001", headers=native.auth())
    assert status.status_code == 200
    assert status.json()["lines"][0]["unit_cost"] == "19.99"


def test_other_content_under_the_same_order_id_is_refused(world: dict, api: httpx.Client) -> None:
    native = world["native"]
    assert place(api, native, native_order("R-1", ("A-1", 2))).status_code == 201
    changed = place(api, native, native_order("R-1", ("A-1", 3)))
    assert changed.status_code == 409
    assert "already received" in changed.json()["detail"]
    assert stored_orders() == (1, 1)


def test_orders_posted_at_once_are_each_stored_once(world: dict, api: httpx.Client) -> None:
    """Orders placed at once share commits (models.db.GroupCommit); each answer stands alone."""
    native = world["native"]
    bodies = [native_order(f"R-{n % 30}", ("A-1", 1 + n % 30)) for n in range(90)]
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda body: place(api, native, body).status_code, bodies))
    assert sorted(codes) == [200] * 60 + [201] * 30
    assert place(api, native, native_order("R-0", ("A-1", 5))).status_code == 409
    assert stored_orders() == (30, 30)
    with session_scope() as session:
        quantities = dict(
            session.execute(
                sa.select(RetailOrder.source_order_id, OrderLine.quantity).join(
                    OrderLine, OrderLine.order_id == RetailOrder.id
                )
            ).all()
        )
    assert quantities == {f"R-{n}": 1 + n for n in range(30)}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "A-1", "quantity": 0}]}, "quantity"),
        ({"lines": [{"sku": "A-1", "quantity": "five"}]}, "quantity"),
        ({"lines": [{"sku": "A-1", "quantity": 1, "unit_cost": "1.005"}]}, "unit_cost"),
        (
            {
                "ship_to": {
                    "name": "X",
                    "address1": "1",
                    "city": "C",
                    "postal_code": "1",
                    "country": "USA",
                }
            },
            "country",
        ),
        ({"order_id": "has space"}, "order_id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_validation_errors_name_the_field_and_store_nothing(
    world: dict, api: httpx.Client, change: dict, field: str
) -> None:
    body = native_order("R-BAD", ("A-1", 1)) | change
    response = place(api, world["native"], body)
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(field in [str(part) for part in problem["loc"]] for problem in problems), problems
    assert all(problem["msg"] for problem in problems)
    assert stored_orders() == (0, 0)


def test_siteflow_dialect(world: dict, api: httpx.Client) -> None:
    siteflow = world["siteflow"]
    response = place(api, siteflow, siteflow_order("SF-9", ("A-1", 1), ("SHARED", 2)), "siteflow")
    assert response.status_code == 201, response.text
    shown = response.json()
    assert shown["dialect"] == "siteflow"
    assert shown["ship_to"]["city"] == "Leeds"
    assert shown["shipping_method"] == "express"
    assert [line["source_item_id"] for line in shown["lines"]] == ["SF-9-1", "SF-9-2"]
    missing = place(
        api, siteflow, {"orderData": {"sourceOrderId": "SF-10", "items": []}}, "siteflow"
    )
    assert missing.status_code == 422
    locations = [problem["loc"] for problem in missing.json()["detail"]]
    assert ["body", "orderData", "items"] in locations
    assert ["body", "orderData", "shipments"] in locations
    status = api.get(f"/v1/siteflow/{siteflow.code}/orders/SF-9", headers=siteflow.auth())
    assert status.json()["id"] == shown["id"]


def test_authentication_failures(world: dict, api: httpx.Client) -> None:
    native, siteflow = world["native"], world["siteflow"]
    body = native_order("R-AUTH", ("A-1", 1))
    url = f"/v1/native/{native.code}/orders"
    assert api.post(url, json=body).status_code == 401
    wrong = api.post(
        url, json=body, headers={"X-Api-Key": native.api_key, "X-Api-Secret": "sls_wrong"}
    )
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == "Basic"
    other = api.post(url, json=body, headers=siteflow.auth())
    assert other.status_code == 403
    dialect = api.post(
        f"/v1/siteflow/{native.code}/orders",
        json=siteflow_order("X", ("A-1", 1)),
        headers=native.auth(),
    )
    assert dialect.status_code == 404
    headers_ok = api.post(
        url, json=body, headers={"X-Api-Key": native.api_key, "X-Api-Secret": native.secret}
    )
    assert headers_ok.status_code == 201
    with session_scope() as session:
        revoke_credential(session, native.api_key, actor="tester")
    assert place(api, native, native_order("R-AUTH-2", ("A-1", 1))).status_code == 401
    with session_scope() as session:
        remove_connector(session, siteflow.code, actor="tester")
    assert place(api, siteflow, siteflow_order("SF-X", ("A-1", 1)), "siteflow").status_code == 401
    assert stored_orders() == (1, 1)


def test_cancel_before_routing_cancels_the_order(world: dict, api: httpx.Client) -> None:
    native = world["native"]
    place(api, native, native_order("R-C", ("A-1", 1)))
    cancelled = api.post(f"/v1/native/{native.code}/orders/R-C/cancel", headers=native.auth())
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["lines"][0]["status"] == "cancelled"
    unknown = api.post(f"/v1/native/{native.code}/orders/NOPE/cancel", headers=native.auth())
    assert unknown.status_code == 404


def test_openapi_documents_the_native_dialect(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert "/v1/native/{connector}/orders" in schema["paths"]
    native = schema["components"]["schemas"]["NativeOrder"]
    assert set(native["required"]) == {"order_id", "ship_to", "lines"}
