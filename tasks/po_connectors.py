"""How POs reach each supplier: the order connector named in its ordering settings.

``rest_api``: the Prefect block ``SupplierApi`` named in the settings (``block``, default
``supplier-api-<code>``). ``sftp``: the PO as a file (``<PO number>.json`` or ``.csv``) in the
supplier's ``orders`` folder (setting ``folder``, default ``/orders``) on its SFTP server, the
``SftpServer`` block ``supplier-<code>``, written under a temporary name and then renamed.

Fulfillment reads back through the same connector: a REST API answers for the status of open
orders in batches (``statuses``) and says whether an order may still be cancelled
(``cancellable``); an SFTP supplier drops acknowledgement, shipment and cancellation files in
its ``outbound`` folder (setting ``outbound``, default ``/outbound``; see
tasks.fulfillment_files).

A PO file is named by its PO number: sending it again replaces the file with the same content,
so a retry never makes a second file. A supplier that has already taken the file away cannot be
asked whether it did: SFTP suppliers must treat a PO number they have seen as a duplicate (the
README says so).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from blocks.sftp import SftpClient, SftpServer
from blocks.supplier_api import SupplierApi, SupplierOrder
from models.catalog import Supplier
from tasks.connections import ordering_of
from tasks.po_cancel import CancelFunction
from tasks.po_submit import SendFunction

PO_FILE_FORMATS = ("json", "csv")
CSV_COLUMNS = (
    "po_number",
    "order_reference",
    "line_no",
    "sku",
    "quantity",
    "unit_cost",
    "carrier_service",
    "ship_to_name",
    "ship_to_company",
    "ship_to_address1",
    "ship_to_address2",
    "ship_to_city",
    "ship_to_region",
    "ship_to_postal_code",
    "ship_to_country",
    "ship_to_phone",
    "ship_to_email",
)


class ConnectorMissing(RuntimeError):
    """The supplier has no order connector set up: its POs wait."""


@dataclass(frozen=True)
class ConnectorSettings:
    kind: str
    block_name: str
    options: dict[str, Any] = field(default_factory=dict)


def api_block_name(supplier_code: str) -> str:
    return f"supplier-api-{supplier_code}"


def connector_settings(session: Session, supplier: Supplier) -> ConnectorSettings:
    ordering = ordering_of(session, supplier)
    kind = ordering.order_connector_type
    if kind is None:
        raise ConnectorMissing(
            f"supplier {supplier.code} has no order connector: set one with supplyline supplier "
            f"orders {supplier.code} (--api-url URL --client-id ID --secret-env VAR, or --sftp)"
        )
    settings = dict(ordering.order_connector_settings or {})
    if kind == "rest_api":
        return ConnectorSettings(kind, str(settings.get("block") or api_block_name(supplier.code)))
    file_format = settings.get("format", "json")
    if file_format not in PO_FILE_FORMATS:
        raise ConnectorMissing(
            f"supplier {supplier.code}'s PO file format {file_format!r} is not one of "
            f"{', '.join(PO_FILE_FORMATS)}"
        )
    return ConnectorSettings(
        kind,
        str(settings.get("block") or f"supplier-{supplier.code}"),
        {
            "format": file_format,
            "folder": str(settings.get("folder") or "/orders"),
            "outbound": str(settings.get("outbound") or "/outbound"),
        },
    )


@dataclass(frozen=True)
class OpenConnector:
    """A supplier's connector, open: send a PO, cancel one, and how many sends run at once.

    A REST connector also reads orders' statuses in batches and says whether an order may
    still be cancelled; an SFTP one does neither (its supplier answers in files).
    """

    send: SendFunction
    cancel: CancelFunction
    concurrency: int
    statuses: Callable[[list[str]], list[dict[str, Any]]] | None = None
    cancellable: Callable[[str], tuple[bool, str | None]] | None = None


@contextmanager
def open_connector(settings: ConnectorSettings) -> Iterator[OpenConnector]:
    """The supplier's connector, open for the ``with`` block."""
    if settings.kind == "rest_api":
        api = _load(SupplierApi, settings.block_name)
        with api.client() as client:
            yield OpenConnector(
                client.send_po,
                client.cancel_order,
                api.max_concurrent_requests,
                statuses=client.order_statuses,
                cancellable=client.can_cancel,
            )
        return
    server = _load(SftpServer, settings.block_name)
    with server.get_client() as sftp:
        sender = _PoFiles(sftp, settings.options["folder"], settings.options["format"])
        sftp.ensure_folder(sender.folder)
        yield OpenConnector(sender.send, sender.cancel, 1)


def _load(block_type: Any, name: str) -> Any:
    try:
        return block_type.load(name)
    except ValueError as exc:
        raise ConnectorMissing(
            f"the {block_type.__name__} block {name!r} cannot be loaded ({exc}); save it with "
            f"supplyline supplier orders (or supplier sftp)"
        ) from exc


@dataclass
class _PoFiles:
    """POs as files in a supplier's SFTP folder."""

    sftp: SftpClient
    folder: str
    file_format: str

    def send(
        self, po: dict[str, Any], *, maybe_sent_before: bool, deadline: float | None = None
    ) -> SupplierOrder:
        number = po["po_number"]
        name = f"{number}.{self.file_format}"
        path = posixpath.join(self.folder, name)
        if maybe_sent_before and self.sftp.stat(path) is not None:
            return SupplierOrder(
                order_id=name, po_number=number, status="sent", found_existing=True
            )
        self._put(name, po_file(po, self.file_format))
        return SupplierOrder(order_id=name, po_number=number, status="sent")

    def cancel(self, order_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        """A cancellation request file beside the PO; the supplier answers in its own files."""
        number = order_id.rsplit(".", 1)[0]
        body = {"po_number": number, "action": "cancel", "requested_at": time.time()}
        self._put(f"{number}.cancel.json", json.dumps(body, indent=2).encode())
        return {"order_id": order_id, "status": "cancel_requested"}

    def _put(self, name: str, content: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="supplyline-po-") as folder:
            local = Path(folder) / name
            local.write_bytes(content)
            self.sftp.upload(local, self.folder, name)


def po_file(po: dict[str, Any], file_format: str) -> bytes:
    """The PO as a supplier reads it: the API's JSON body, or one CSV row per line."""
    if file_format == "json":
        return json.dumps(po, indent=2, ensure_ascii=False).encode()
    ship_to = po.get("ship_to") or {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in po["lines"]:
        writer.writerow(
            [
                po["po_number"],
                po.get("order_reference", ""),
                line["line_no"],
                line["sku"],
                line["quantity"],
                line["unit_cost"],
                po.get("carrier_service") or "",
                *(
                    ship_to.get(key, "")
                    for key in (
                        "name",
                        "company",
                        "address1",
                        "address2",
                        "city",
                        "region",
                        "postal_code",
                        "country",
                        "phone",
                        "email",
                    )
                ),
            ]
        )
    return out.getvalue().encode("utf-8")
