"""How POs reach each supplier: the order connector named in its ordering settings.

``rest_api``: the Prefect block ``SupplierApi`` named in the settings (``block``, default
``supplier-api-<code>``). ``sftp``: the PO as a file in the supplier's SFTP ``orders`` folder,
through its ``SftpServer`` block (``supplier-<code>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlmodel import Session

from blocks.supplier_api import SupplierApi
from models.catalog import Supplier
from tasks.connections import ordering_of
from tasks.po_cancel import CancelFunction
from tasks.po_submit import SendFunction


class ConnectorMissing(RuntimeError):
    """The supplier has no order connector set up: its POs wait."""


@dataclass(frozen=True)
class ConnectorSettings:
    kind: str
    block_name: str


def api_block_name(supplier_code: str) -> str:
    return f"supplier-api-{supplier_code}"


def connector_settings(session: Session, supplier: Supplier) -> ConnectorSettings:
    ordering = ordering_of(session, supplier)
    kind = ordering.order_connector_type
    if kind is None:
        raise ConnectorMissing(
            f"supplier {supplier.code} has no order connector: set one with supplyline supplier "
            f"orders {supplier.code} --api-url URL --client-id ID --secret-env VAR"
        )
    settings = ordering.order_connector_settings or {}
    if kind == "rest_api":
        return ConnectorSettings(kind, str(settings.get("block") or api_block_name(supplier.code)))
    raise ConnectorMissing(
        f"supplier {supplier.code}'s order connector {kind!r} cannot send POs yet; use rest_api"
    )


@dataclass(frozen=True)
class OpenConnector:
    """A supplier's connector, open: send a PO, cancel one, and how many sends run at once."""

    send: SendFunction
    cancel: CancelFunction
    concurrency: int


@contextmanager
def open_connector(settings: ConnectorSettings) -> Iterator[OpenConnector]:
    """The supplier's connector, open for the ``with`` block."""
    try:
        block = SupplierApi.load(settings.block_name)
    except ValueError as exc:
        raise ConnectorMissing(
            f"the SupplierApi block {settings.block_name!r} cannot be loaded ({exc}); save it "
            f"with supplyline supplier orders"
        ) from exc
    with block.client() as client:
        yield OpenConnector(client.send_po, client.cancel_order, block.max_concurrent_requests)
