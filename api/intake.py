"""The order intake API: retailers place, cancel and read orders through their connectors.

Two dialects, one per connector type: Supplyline's native JSON (``/v1/native/{connector}``,
documented by the OpenAPI schema at ``/docs``) and a SiteFlow-style one
(``/v1/siteflow/{connector}``). A request authenticates with the connector's API key and
secret, as HTTP Basic credentials or as ``X-Api-Key`` / ``X-Api-Secret`` headers.

Placing is idempotent on the retailer's order id: the same order again answers 200 with the
stored one (201 the first time); other content under the same id is a 409. A request that is
refused (401, 403, 409, 422) stores nothing. Serve it with ``supplyline api serve``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from models.db import GroupCommit, session_scope
from tasks.credentials import InvalidCredentials, verify_connector_key
from tasks.orders import (
    LineIn,
    OrderError,
    OrderIn,
    OrderNotFound,
    cancel_order,
    find_order,
    new_order_view,
    order_view,
    place_order,
)
from tasks.retailer_events import order_events

MAX_LINES = 500
Text = Annotated[str, Field(min_length=1, max_length=255)]
Sku = Annotated[str, Field(min_length=1, max_length=128)]
OrderId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/]+$")]
Quantity = Annotated[int, Field(gt=0, le=100_000)]
Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")]


# --- native dialect ----------------------------------------------------------------------------


class NativeShipTo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    company: Text | None = None
    address1: Text
    address2: Text | None = None
    city: Text
    region: Text | None = None
    postal_code: Annotated[str, Field(min_length=1, max_length=32)]
    country: Country
    phone: Annotated[str, Field(max_length=64)] | None = None
    email: Annotated[str, Field(max_length=255)] | None = None


class NativeLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="The retailer's id of the line (default: its position)."
    )
    sku: Sku = Field(description="The retailer's SKU; lookups map it to the supplier's.")
    quantity: Quantity
    unit_cost: Price | None = Field(default=None, description="The retailer's price, if given.")


class NativeOrder(BaseModel):
    """An order in Supplyline's own dialect."""

    model_config = ConfigDict(extra="forbid")

    order_id: OrderId = Field(description="The retailer's order id: placing is idempotent on it.")
    ship_to: NativeShipTo
    shipping_method: Text | None = Field(
        default=None, description="The retailer's name for it; the shipping_method lookup maps it."
    )
    all_or_nothing: bool | None = Field(
        default=None, description="Reject the whole order if a line cannot be routed."
    )
    lines: list[NativeLine] = Field(min_length=1, max_length=MAX_LINES)

    def normalised(self) -> OrderIn:
        return OrderIn(
            source_order_id=self.order_id,
            lines=tuple(
                LineIn(line.line_id or str(n), line.sku, line.quantity, line.unit_cost)
                for n, line in enumerate(self.lines, start=1)
            ),
            ship_to=self.ship_to.model_dump(exclude_none=True),
            shipping_method=self.shipping_method,
            all_or_nothing=self.all_or_nothing,
        )


# --- SiteFlow-style dialect --------------------------------------------------------------------


class SiteflowItem(BaseModel):
    sourceItemId: Annotated[str, Field(min_length=1, max_length=128)]
    sku: Sku
    quantity: Quantity
    unitCost: Price | None = None


class SiteflowShipTo(BaseModel):
    name: Text
    companyName: Text | None = None
    address1: Text
    address2: Text | None = None
    town: Text
    state: Text | None = None
    postcode: Annotated[str, Field(min_length=1, max_length=32)]
    isoCountry: Country
    phone: Annotated[str, Field(max_length=64)] | None = None
    email: Annotated[str, Field(max_length=255)] | None = None


class SiteflowCarrier(BaseModel):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    service: Text


class SiteflowShipment(BaseModel):
    shipTo: SiteflowShipTo
    carrier: SiteflowCarrier


class SiteflowOrderData(BaseModel):
    sourceOrderId: OrderId
    items: list[SiteflowItem] = Field(min_length=1, max_length=MAX_LINES)
    shipments: list[SiteflowShipment] = Field(
        min_length=1, max_length=1, description="One shipment: where and how the order ships."
    )


class SiteflowOrder(BaseModel):
    """An order in the SiteFlow-style dialect (fields it does not use are ignored)."""

    orderData: SiteflowOrderData

    def normalised(self) -> OrderIn:
        data = self.orderData
        shipment = data.shipments[0]
        to = shipment.shipTo
        ship_to = {
            "name": to.name,
            "company": to.companyName,
            "address1": to.address1,
            "address2": to.address2,
            "city": to.town,
            "region": to.state,
            "postal_code": to.postcode,
            "country": to.isoCountry,
            "phone": to.phone,
            "email": to.email,
        }
        return OrderIn(
            source_order_id=data.sourceOrderId,
            lines=tuple(
                LineIn(item.sourceItemId, item.sku, item.quantity, item.unitCost)
                for item in data.items
            ),
            ship_to={k: v for k, v in ship_to.items() if v is not None},
            shipping_method=shipment.carrier.service,
            carrier_code=shipment.carrier.code,
        )


# --- authentication ----------------------------------------------------------------------------


def _credentials(
    request: Request,
    x_api_key: Annotated[str | None, Header()] = None,
    x_api_secret: Annotated[str | None, Header()] = None,
) -> tuple[str, str]:
    if x_api_key and x_api_secret:
        return x_api_key, x_api_secret
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id = secret = ""
        if client_id and secret:
            return client_id, secret
    raise _unauthorized(
        "give the connector's API key and secret (HTTP Basic, or X-Api-Key and X-Api-Secret)"
    )


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Basic"}
    )


@dataclass(frozen=True)
class Caller:
    connector_id: int
    connector_type: str
    retailer_id: int
    retailer: str
    all_or_nothing: bool


def _caller(connector: str, credentials: tuple[str, str], connector_type: str) -> Caller:
    try:
        key = verify_connector_key(*credentials)
    except InvalidCredentials:
        raise _unauthorized("the API key or secret is wrong, or the key was revoked") from None
    if key.connector != connector:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"this API key is not for connector {connector!r}"
        )
    if key.removed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"connector {connector!r} is removed")
    if key.connector_type != connector_type:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=(
                f"connector {connector!r} is a {key.connector_type} connector: use its endpoints"
            ),
        )
    return Caller(
        connector_id=key.connector_id,
        connector_type=key.connector_type,
        retailer_id=key.retailer_id,
        retailer=key.retailer,
        all_or_nothing=key.all_or_nothing,
    )


def native_caller(
    connector: Annotated[str, Path()],
    credentials: Annotated[tuple[str, str], Depends(_credentials)],
) -> Caller:
    return _caller(connector, credentials, "native_api")


def siteflow_caller(
    connector: Annotated[str, Path()],
    credentials: Annotated[tuple[str, str], Depends(_credentials)],
) -> Caller:
    return _caller(connector, credentials, "siteflow_api")


# --- the app -----------------------------------------------------------------------------------

app = FastAPI(
    title="Supplyline order intake",
    version="1",
    description=__doc__,
)


@app.exception_handler(OrderError)
def _order_error(_request: Request, exc: OrderError) -> JSONResponse:
    code = 404 if isinstance(exc, OrderNotFound) else 409
    return JSONResponse(status_code=code, content={"detail": str(exc)})


# Orders placed at once share a commit: on SQLite every commit is an fsync, and writers queue.
_orders_placed = GroupCommit()


def _place(caller: Caller, order_in: OrderIn, dialect: str) -> JSONResponse:
    intake = _orders_placed.run(
        lambda session: place_order(
            session,
            caller.retailer_id,
            order_in,
            dialect=dialect,
            connector_id=caller.connector_id,
            retailer_all_or_nothing=caller.all_or_nothing,
        )
    )
    if intake.created:
        view = new_order_view(intake.order, order_in, caller.retailer)
    else:  # read after the write lock is given back
        with session_scope() as session:
            view = order_view(session, intake.order)
    return JSONResponse(status_code=201 if intake.created else 200, content=view)


def _status(caller: Caller, order_id: str) -> dict[str, Any]:
    """The order, its lines and POs, and every PO event (as webhooks carry them)."""
    with session_scope() as session:
        order = find_order(session, caller.retailer_id, order_id)
        return order_view(session, order) | {"events": order_events(session, order.id)}  # type: ignore[arg-type]


def _cancel(caller: Caller, order_id: str) -> dict[str, Any]:
    with session_scope(immediate=True) as session:
        order = find_order(session, caller.retailer_id, order_id)
        cancel_order(session, order, actor=f"api:{caller.connector_id}")
        return order_view(session, order)


@app.post("/v1/native/{connector}/orders", status_code=201, tags=["native"])
def place_native_order(
    order: NativeOrder, caller: Annotated[Caller, Depends(native_caller)]
) -> JSONResponse:
    """Place an order; the same order id again returns the stored order (200)."""
    return _place(caller, order.normalised(), "native")


@app.get("/v1/native/{connector}/orders/{order_id}", tags=["native"])
def native_order_status(
    order_id: str, caller: Annotated[Caller, Depends(native_caller)]
) -> dict[str, Any]:
    """The order, its lines (routed or why not; acknowledged, shipped, cancelled quantities) and
    its POs with their states and shipments (carrier, tracking)."""
    return _status(caller, order_id)


@app.post("/v1/native/{connector}/orders/{order_id}/cancel", tags=["native"])
def cancel_native_order(
    order_id: str, caller: Annotated[Caller, Depends(native_caller)]
) -> dict[str, Any]:
    """Cancel: POs not sent yet are cancelled, sent ones are asked to cancel at the supplier;
    refused (409) once something has shipped."""
    return _cancel(caller, order_id)


@app.post("/v1/siteflow/{connector}/orders", status_code=201, tags=["siteflow"])
def place_siteflow_order(
    order: SiteflowOrder, caller: Annotated[Caller, Depends(siteflow_caller)]
) -> JSONResponse:
    return _place(caller, order.normalised(), "siteflow")


@app.get("/v1/siteflow/{connector}/orders/{source_order_id}", tags=["siteflow"])
def siteflow_order_status(
    source_order_id: str, caller: Annotated[Caller, Depends(siteflow_caller)]
) -> dict[str, Any]:
    return _status(caller, source_order_id)


@app.put("/v1/siteflow/{connector}/orders/{source_order_id}/cancel", tags=["siteflow"])
def cancel_siteflow_order(
    source_order_id: str, caller: Annotated[Caller, Depends(siteflow_caller)]
) -> dict[str, Any]:
    return _cancel(caller, source_order_id)


@app.get("/health", tags=["service"])
def health() -> dict[str, str]:
    return {"status": "ok"}
