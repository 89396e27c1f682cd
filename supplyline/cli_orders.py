"""The ``supplyline`` commands for orders and POs, the intake API, suppliers' order connectors
and the supplier sandbox.

Exit codes: 0 done; 3 refused (the message says why); 1 a sync that left POs rejected,
waiting or failed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import select

from models.catalog import Supplier
from models.db import session_scope
from models.orders import PO_STATES, PurchaseOrder, RetailOrder
from models.relationships import Retailer
from supplyline.errors import RelationshipError
from tasks.audit import default_actor
from tasks.po_states import InvalidTransition

if TYPE_CHECKING:
    from sandbox.retailer_webhook import RetailerWebhookSandbox

EXIT_REFUSED = 3

console = Console()
err_console = Console(stderr=True)

orders_app = typer.Typer(
    help="Orders and POs: sync, list, show, submit, purchase, cancel, retry.",
    no_args_is_help=True,
)
api_app = typer.Typer(help="The order intake API.", no_args_is_help=True)
sandbox_app = typer.Typer(help="Sandboxes standing in for partners.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ActorOption = Annotated[
    str | None, typer.Option(help="Who acts, for the PO's history (default: SUPPLYLINE_ACTOR).")
]


def register_order_commands(app: typer.Typer, supplier_app: typer.Typer) -> None:
    """Add these commands to the ``supplyline`` app (called from supplyline.cli)."""
    app.add_typer(orders_app, name="orders")
    app.add_typer(api_app, name="api")
    app.add_typer(sandbox_app, name="sandbox")
    supplier_app.command("orders")(supplier_orders)
    from supplyline.cli_relationships import connector_app

    connector_app.command("sftp")(connector_sftp)


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except (RelationshipError, InvalidTransition, ValueError) as exc:
        err_console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from exc


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _po(session: Any, number: str) -> PurchaseOrder:
    po = session.exec(
        select(PurchaseOrder).where(PurchaseOrder.po_number == number.strip())
    ).first()
    if po is None:
        raise ValueError(f"no PO {number!r}: see supplyline orders list")
    return po


# --- running -----------------------------------------------------------------------------------


@orders_app.command("sync")
def orders_sync(as_json: JsonOption = False) -> None:
    """Route received orders and send the POs that go out on their own, now."""
    from flows.order_sync import order_sync

    summary = order_sync()
    _print_summary(summary, as_json)
    if summary["pos_rejected"] or summary["pos_failed"] or summary["pos_waiting"]:
        raise typer.Exit(1)


@orders_app.command("submit")
def orders_submit(
    po_numbers: Annotated[list[str], typer.Argument(help="PO numbers awaiting sync.")],
    as_json: JsonOption = False,
) -> None:
    """Send POs now: those awaiting sync on an active connection (auto sync off)."""
    from flows.order_sync import submit_pos

    with _refusals():
        with session_scope() as session:
            from tasks.po_submit import check_sendable

            for number in po_numbers:
                check_sendable(session, _po(session, number))
        summary = submit_pos(po_numbers)
    _print_summary(summary, as_json)
    if summary["pos_submitted"] < len(po_numbers):
        raise typer.Exit(1)


@orders_app.command("purchase")
def orders_purchase(
    po_number: Annotated[str, typer.Argument(help="A PO awaiting purchase.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record that a person purchased a PO (e.g. by credit card)."""
    from tasks.orders import po_view
    from tasks.po_submit import manual_purchase

    with _refusals(), session_scope(immediate=True) as session:
        po = _po(session, po_number)
        if po.state != "awaiting_purchase":
            raise ValueError(
                f"PO {po.po_number} is {po.state}: only a PO awaiting purchase can be purchased"
            )
        po = manual_purchase(session, po, actor=actor or default_actor())
        shown = po_view(po, session.get(Supplier, po.supplier_id).code)  # type: ignore[union-attr]
    _show_po(shown, as_json)


@orders_app.command("retry")
def orders_retry(
    po_number: Annotated[str, typer.Argument(help="A failed PO.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a failed PO another round of sends (it is looked up at the supplier first)."""
    from tasks.orders import po_view
    from tasks.po_states import move_pos

    with _refusals(), session_scope(immediate=True) as session:
        po = _po(session, po_number)
        if po.state != "failed":
            raise ValueError(f"PO {po.po_number} is {po.state}: only a failed PO can be retried")
        move_pos(
            session,
            [(po.id, "failed")],  # type: ignore[list-item]
            "awaiting_sync",
            actor=actor or default_actor(),
            reason=None,
            # One attempt stays counted: the next send looks the PO up before sending.
            values={"send_attempts": 1, "last_error": None, "reason": None},
        )
        session.refresh(po)
        shown = po_view(po, session.get(Supplier, po.supplier_id).code)  # type: ignore[union-attr]
    _show_po(shown, as_json)


@orders_app.command("cancel")
def orders_cancel(
    order: Annotated[str, typer.Argument(help="Supplyline's order id, or RETAILER:ORDER_ID.")],
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel an order for its retailer: unsent POs at once, sent ones at the supplier."""
    from tasks.orders import cancel_order, order_by_reference, order_view

    with _refusals(), session_scope(immediate=True) as session:
        found = order_by_reference(session, order)
        cancel_order(session, found, actor=actor or default_actor())
        shown = order_view(session, found)
    _show_order(shown, as_json)


# --- order files -------------------------------------------------------------------------------


@orders_app.command("import")
def orders_import(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Order files.")],
    connector: Annotated[str, typer.Option(help="The retailer's connector they came through.")],
    as_json: JsonOption = False,
) -> None:
    """Take in order files by hand (order-file-intake flow): valid orders are stored, the rest
    get an error file. Exit 1 if rows were refused, 2 if a file was refused whole."""
    from flows.order_files import order_file_intake

    with _refusals(), session_scope() as session:
        from tasks.connectors import get_connector

        get_connector(session, connector)
    entries = order_file_intake(connector=connector, files=files)
    _print_order_files(entries, as_json)


@orders_app.command("pickup")
def orders_pickup(
    connector: Annotated[str, typer.Argument(help="A retailer's sftp connector.")],
    stable_seconds: Annotated[
        float | None, typer.Option(help="How long a file must hold still (default: setting).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Take in the order files in the connector's SFTP orders folder now (order-sftp-intake)."""
    from flows.order_files import order_sftp_intake

    entries = order_sftp_intake(connector=connector, stable_seconds=stable_seconds)
    _print_order_files(entries, as_json)


def _print_order_files(entries: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _print_json(entries)
    else:
        for entry in entries:
            console.print(
                f"{entry['file_name']}: {entry['status']}; new orders "
                f"{len(entry.get('orders_new', []))}, already received "
                f"{len(entry.get('orders_again', []))}, "
                f"refused {len(entry.get('orders_refused', []))}"
                + (f"; error file {entry['error_file']}" if entry.get("error_file") else "")
                + (f" ({entry['file_error']})" if entry.get("file_error") else ""),
                markup=False,
                soft_wrap=True,
            )
    statuses = {e["status"] for e in entries}
    if statuses & {"rejected", "failed"}:
        raise typer.Exit(2)
    if "partially_accepted" in statuses:
        raise typer.Exit(1)


def connector_sftp(
    code: Annotated[str, typer.Argument(help="A retailer's sftp connector.")],
    host: Annotated[str, typer.Option(help="SFTP server host name or address.")],
    user: Annotated[str, typer.Option(help="Account to log in as.")],
    known_hosts: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="known_hosts pinning its host key.")
    ],
    port: Annotated[int, typer.Option(help="SSH port.")] = 22,
    password_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the password.")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Private key file.")
    ] = None,
) -> None:
    """Save the SFTP server of an sftp connector's folders as the block retailer-CODE."""
    from blocks.sftp import SftpServer
    from tasks.connectors import get_connector, retailer_block_name

    with _refusals():
        if (password_env is None) == (key_file is None):
            raise ValueError("give exactly one of --password-env and --key-file")
        password = os.environ.get(password_env) if password_env else None
        if password_env and not password:
            raise ValueError(f"environment variable {password_env} is not set")
        with session_scope() as session:
            found = get_connector(session, code)
            if found.connector_type != "sftp":
                raise ValueError(f"connector {code} is {found.connector_type}: it has no folders")
        server = SftpServer(
            host=host,
            port=port,
            username=user,
            password=password,
            private_key=key_file.read_text() if key_file else None,
            known_hosts=known_hosts.read_text(),
        )
        server.save(retailer_block_name(found.code), overwrite=True)
    console.print(
        f"saved block [bold]{retailer_block_name(found.code)}[/bold]: {user}@{host}:{port}, host "
        f"key pinned; orders from {found.settings['orders_folder']}, answers to "
        f"{found.settings['status_folder']}"
    )


# --- reading -----------------------------------------------------------------------------------


@orders_app.command("list")
def orders_list(
    retailer: Annotated[str | None, typer.Option(help="Only this retailer's orders.")] = None,
    supplier: Annotated[str | None, typer.Option(help="Only POs to this supplier.")] = None,
    state: Annotated[
        str | None, typer.Option(help=f"Only POs in this state: {', '.join(PO_STATES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """POs, newest first, with their order and state."""
    with _refusals(), session_scope() as session:
        if state is not None and state not in PO_STATES:
            raise ValueError(f"state {state!r} is not one of: {', '.join(PO_STATES)}")
        query = (
            sa.select(PurchaseOrder, RetailOrder.source_order_id, Retailer.code, Supplier.code)
            .join(RetailOrder, RetailOrder.id == PurchaseOrder.order_id)  # type: ignore[arg-type]
            .join(Retailer, Retailer.id == PurchaseOrder.retailer_id)  # type: ignore[arg-type]
            .join(Supplier, Supplier.id == PurchaseOrder.supplier_id)  # type: ignore[arg-type]
            .order_by(PurchaseOrder.id.desc())  # type: ignore[union-attr]
            .limit(limit)
        )
        if retailer:
            query = query.where(Retailer.code == retailer)
        if supplier:
            query = query.where(Supplier.code == supplier)
        if state:
            query = query.where(PurchaseOrder.state == state)
        rows = [
            {
                "po_number": po.po_number,
                "order": f"{retailer_code}:{source_id}",
                "order_id": po.order_id,
                "supplier": supplier_code,
                "state": po.state,
                "total": f"{po.total:.2f}",
                "reason": po.reason,
                "supplier_order_id": po.supplier_order_id,
            }
            for po, source_id, retailer_code, supplier_code in session.execute(query)
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table("PO", "order", "supplier", "state", "total", "reason")
    for row in rows:
        table.add_row(
            row["po_number"],
            row["order"],
            row["supplier"],
            row["state"],
            row["total"],
            row["reason"] or "",
        )
    console.print(table)


@orders_app.command("show")
def orders_show(
    reference: Annotated[
        str, typer.Argument(help="A PO number, Supplyline's order id, or RETAILER:ORDER_ID.")
    ],
    as_json: JsonOption = False,
) -> None:
    """An order with its lines and POs, and each PO's history."""
    from models.orders import PoEvent
    from tasks.orders import order_by_reference, order_view

    with _refusals(), session_scope() as session:
        po = session.exec(
            select(PurchaseOrder).where(PurchaseOrder.po_number == reference.strip())
        ).first()
        order = (
            session.get(RetailOrder, po.order_id) if po else order_by_reference(session, reference)
        )
        shown = order_view(session, order)  # type: ignore[arg-type]
        numbers = {p["po_number"] for p in shown["purchase_orders"]}
        events = session.execute(
            sa.select(PurchaseOrder.po_number, PoEvent)
            .join(PurchaseOrder, PurchaseOrder.id == PoEvent.po_id)  # type: ignore[arg-type]
            .where(PurchaseOrder.po_number.in_(numbers))  # type: ignore[attr-defined]
            .order_by(PoEvent.id)  # type: ignore[arg-type]
        ).all()
        history: dict[str, list[dict[str, Any]]] = {}
        for number, event in events:
            history.setdefault(number, []).append(
                {
                    "at": event.at.isoformat(),
                    "kind": event.kind,
                    "from": event.from_state,
                    "to": event.to_state,
                    "reason": event.reason,
                    "actor": event.actor,
                }
            )
        for entry in shown["purchase_orders"]:
            entry["history"] = history.get(entry["po_number"], [])
    _show_order(shown, as_json)


def _show_order(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(shown)
        return
    console.print(
        f"[bold]order #{shown['id']}[/bold] {shown['retailer']}:{shown['order_id']} "
        f"({shown['dialect']}): {shown['status']}"
    )
    if shown["reason"]:
        console.print(f"  {shown['reason']}", markup=False, soft_wrap=True)
    lines = Table("line", "sku", "qty", "status", "supplier", "supplier sku", "PO", "supplier says")
    for line in shown["lines"]:
        lines.add_row(
            str(line["line_no"]),
            line["sku"],
            str(line["quantity"]),
            line["status"],
            line["supplier"] or "",
            line["supplier_sku"] or "",
            line["po_number"] or "",
            _fulfillment_text(line["fulfillment"]),
        )
    console.print(lines)
    for po in shown["purchase_orders"]:
        _show_po(po, False)


def _show_po(po: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(po)
        return
    console.print(
        f"[bold]{po['po_number']}[/bold] to {po['supplier']}: {po['state']}, total {po['total']}"
        + (f", supplier order {po['supplier_order_id']}" if po["supplier_order_id"] else "")
        + (f", purchased ({po['purchase']})" if po["purchase"] else "")
    )
    if po["reason"]:
        console.print(f"  {po['reason']}", markup=False, soft_wrap=True)
    for shipment in po.get("shipments", []):
        console.print(
            f"  shipment {shipment['shipment_id']}: {shipment['carrier']} "
            f"{shipment['service'] or ''} {shipment['tracking_number']} "
            f"{shipment['tracking_url'] or ''} shipped {shipment['shipped_at']}"
            + (f", delivered {shipment['delivered_at']}" if shipment["delivered_at"] else "")
            + ": "
            + ", ".join(f"{x['quantity']} x {x['sku']}" for x in shipment["lines"]),
            markup=False,
            soft_wrap=True,
        )
    for event in po.get("history", []):
        kind = "" if event.get("kind", "state") == "state" else f"[{event['kind']}] "
        console.print(
            f"  {event['at']}  {kind}{event['from'] or '-'} -> {event['to']}  "
            f"{event['reason'] or ''} ({event['actor']})",
            markup=False,
            soft_wrap=True,
        )


def _fulfillment_text(fulfillment: dict[str, Any]) -> str:
    """A line's fulfillment in a few words, e.g. ``3 accepted, 2 shipped``."""
    parts = [
        f"{fulfillment[name]} {name}"
        + (
            f" ({fulfillment['backorder_date']})"
            if name == "backordered" and fulfillment["backorder_date"]
            else ""
        )
        for name in ("accepted", "backordered", "rejected", "cancelled", "shipped", "delivered")
        if fulfillment[name]
    ]
    return ", ".join(parts)


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    console.print(
        f"orders routed: {summary['orders_routed']} ({summary['orders_fully_routed']} fully, "
        f"{summary['orders_partially_routed']} partly, {summary['orders_rejected']} rejected); "
        f"POs created: {summary['pos_created']}"
    )
    console.print(
        f"POs submitted: {summary['pos_submitted']} (purchased {summary['pos_purchased']}, "
        f"awaiting purchase {summary['pos_awaiting_purchase']}); "
        f"rejected {summary['pos_rejected']}, waiting {summary['pos_waiting']}, "
        f"failed {summary['pos_failed']}"
    )
    for problem in summary["rejections"] + summary["po_failures"]:
        console.print(f"  - {problem}", markup=False, soft_wrap=True)


# --- suppliers' order connectors ---------------------------------------------------------------


def supplier_orders(
    code: Annotated[str, typer.Argument(help="Supplier code.")],
    api_url: Annotated[str | None, typer.Option(help="The supplier's order API base URL.")] = None,
    client_id: Annotated[
        str | None, typer.Option(help="The client ID the supplier issued.")
    ] = None,
    secret_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the client secret.")
    ] = None,
    max_concurrent: Annotated[int, typer.Option(help="Requests in flight at once.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds a request may take.")] = 10,
    sftp: Annotated[
        bool, typer.Option("--sftp", help="POs as files on the supplier's SFTP server instead.")
    ] = False,
    file_format: Annotated[str, typer.Option("--format", help="sftp: json or csv.")] = "json",
    folder: Annotated[str, typer.Option(help="sftp: the folder POs go to.")] = "/orders",
    outbound: Annotated[
        str, typer.Option(help="sftp: the folder the supplier's fulfillment files come from.")
    ] = "/outbound",
    max_pos_per_call: Annotated[
        int, typer.Option(min=1, max=1000, help="API: POs per status request, the API's limit.")
    ] = 100,
    requests_per_second: Annotated[
        float | None, typer.Option(min=0.01, help="API: its rate limit (requests a second).")
    ] = None,
    actor: ActorOption = None,
) -> None:
    """How this supplier receives POs: its REST order API (saves the Prefect block
    supplier-api-CODE; the secret stays in it), or --sftp: files in a folder of its SFTP
    server (the block supplier-CODE, saved with supplyline supplier sftp)."""
    from tasks.connections import set_supplier_ordering, supplier_by_code
    from tasks.po_connectors import PO_FILE_FORMATS, api_block_name

    with _refusals(), session_scope(immediate=True) as session:
        supplier_code = supplier_by_code(session, code).code
        if sftp:
            if api_url or client_id or secret_env:
                raise ValueError("give --sftp or the API options (--api-url ...), not both")
            if file_format not in PO_FILE_FORMATS:
                raise ValueError(f"--format must be one of {', '.join(PO_FILE_FORMATS)}")
            settings = {
                "block": f"supplier-{supplier_code}",
                "format": file_format,
                "folder": folder,
                "outbound": outbound,
            }
            set_supplier_ordering(
                session,
                supplier_code,
                order_connector_type="sftp",
                order_connector_settings=settings,
                actor=actor or default_actor(),
            )
            console.print(
                f"POs to {supplier_code} go as {file_format.upper()} files to {folder} on its SFTP "
                f"server (block supplier-{supplier_code}); its fulfillment files come from "
                f"{outbound}"
            )
            return
        if not (api_url and client_id and secret_env):
            raise ValueError("give --api-url, --client-id and --secret-env (or --sftp)")
        secret = os.environ.get(secret_env)
        if not secret:
            raise ValueError(f"environment variable {secret_env} is not set")
        from blocks.supplier_api import SupplierApi

        block = SupplierApi(
            base_url=api_url,
            client_id=client_id,
            client_secret=secret,
            max_concurrent_requests=max_concurrent,
            timeout_seconds=timeout,
            max_pos_per_status_call=max_pos_per_call,
            requests_per_second=requests_per_second,
        )
        name = api_block_name(supplier_code)
        block.save(name, overwrite=True)
        set_supplier_ordering(
            session,
            supplier_code,
            order_connector_type="rest_api",
            order_connector_settings={"block": name},
            actor=actor or default_actor(),
        )
    console.print(
        f"saved block [bold]{name}[/bold]: POs to {supplier_code} go to {api_url} as {client_id}"
    )


# --- the intake API and the sandbox ------------------------------------------------------------


@api_app.command("serve")
def api_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Processes serving it.")] = 1,
) -> None:
    """Serve the order intake API (OpenAPI docs at /docs)."""
    from api.server import serve

    serve(host, port, workers)


@sandbox_app.command("supplier")
def sandbox_supplier(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8090,
    database: Annotated[Path | None, typer.Option(help="Its SQLite file.")] = None,
    client_id: Annotated[str, typer.Option(help="The client ID it accepts.")] = "sandbox",
    secret_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the secret it accepts.")
    ] = None,
    error_share: Annotated[float, typer.Option(help="Share of requests answered 503.")] = 0.0,
    throttle_share: Annotated[float, typer.Option(help="Share answered 429.")] = 0.0,
    retry_after: Annotated[int, typer.Option(help="Retry-After of a 429, in seconds.")] = 1,
    drop_share: Annotated[float, typer.Option(help="Share of creates stored, then dropped.")] = 0.0,
    latency: Annotated[float, typer.Option(help="Seconds to wait before each answer.")] = 0.0,
) -> None:
    """Run the supplier sandbox (the order API, with faults) until Ctrl-C."""
    from sandbox.supplier_api import Faults, SupplierSandbox
    from supplyline.settings import get_settings

    secret = os.environ.get(secret_env) if secret_env else None
    sandbox = SupplierSandbox(
        database=database or get_settings().home_dir / "sandbox" / "supplier.db",
        port=port,
        client_id=client_id,
        faults=Faults(
            error_share=error_share,
            throttle_share=throttle_share,
            retry_after_seconds=retry_after,
            drop_after_commit_share=drop_share,
            latency_seconds=latency,
        ),
        **({"client_secret": secret} if secret else {}),
    )
    with sandbox:
        console.print(f"supplier sandbox at {sandbox.url} (client ID {sandbox.client_id})")
        if not secret:
            console.print(f"  secret: {sandbox.client_secret}", markup=False, soft_wrap=True)
        console.print("  orders: GET /_sandbox/orders; Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


# --- the demo's order part ---------------------------------------------------------------------


def demo_orders(supplier_code: str, receiver: RetailerWebhookSandbox) -> bool:
    """Retailer ShopCo orders from the supplier through the intake API; order sync sends the
    POs to the supplier sandbox, which acknowledges, ships and delivers; fulfillment sync brings
    each change back and pushes it to ShopCo's webhook ``receiver``. Returns whether everything
    went as it should."""
    import tempfile

    import httpx

    from api.server import serving_in_thread
    from blocks.supplier_api import SupplierApi
    from flows.order_sync import order_sync
    from sandbox.supplier_api import SupplierSandbox
    from supplyline.cli_retailer_push import demo_webhook
    from supplyline.settings import get_settings
    from tasks.connections import (
        request_connection,
        set_supplier_ordering,
        update_connection_settings,
    )
    from tasks.connectors import add_connector
    from tasks.lookups import set_lookup_value
    from tasks.orders import order_by_reference, order_view
    from tasks.po_connectors import api_block_name
    from tasks.retailers import add_retailer, get_retailer_or_none

    actor = "demo"
    console.rule("[bold]Orders: retailer ShopCo orders from ACME")
    with session_scope() as session:
        if get_retailer_or_none(session, "shopco") is None:
            add_retailer(session, "shopco", "ShopCo", actor=actor)
            set_supplier_ordering(session, supplier_code, ordering_mode="instant", actor=actor)
            connection = request_connection(session, "shopco", supplier_code, actor=actor)
            update_connection_settings(
                session,
                connection.id,  # type: ignore[arg-type]
                auto_sync=True,
                auto_purchase=True,
                payment_method="ach",
                funds="500.00",
                actor=actor,
            )
            set_lookup_value(session, "shopco", "sku", "SHOP-HAMMER", "ACM-1001", actor=actor)
            set_lookup_value(
                session, "shopco", "shipping_method", "standard", "UPS_GND", actor=actor
            )
        added = add_connector(session, "shopco", "native_api", actor=actor)
    assert added.credential is not None
    key, secret = added.credential.credential.client_id, added.credential.secret
    console.print(
        "ShopCo is connected to ACME (instant ordering): auto sync on, auto purchase by ACH with "
        "500.00 of funds; its SKU SHOP-HAMMER maps to ACME's ACM-1001, its 'standard' shipping "
        f"to UPS_GND. Its native API connector is {added.connector.code}."
    )
    demo_webhook(added.connector.code, receiver)
    console.print()
    sandbox_db = Path(tempfile.mkdtemp(prefix="acme-orders-", dir=get_settings().home_dir))
    with (
        SupplierSandbox(database=sandbox_db / "supplier.db") as sandbox,
        serving_in_thread() as api_url,
        httpx.Client(base_url=api_url, auth=(key, secret), timeout=30) as client,
    ):
        SupplierApi(
            base_url=sandbox.url, client_id=sandbox.client_id, client_secret=sandbox.client_secret
        ).save(api_block_name(supplier_code), overwrite=True)
        with session_scope() as session:
            set_supplier_ordering(
                session,
                supplier_code,
                order_connector_type="rest_api",
                order_connector_settings={"block": api_block_name(supplier_code)},
                actor=actor,
            )
        console.print(f"Intake API: {api_url} (OpenAPI docs at {api_url}/docs)")
        console.print(f"ACME's order API (the supplier sandbox): {sandbox.url}\n")
        ship_to = {
            "name": "Ann Buyer",
            "address1": "1 Main St",
            "city": "Springfield",
            "postal_code": "12345",
            "country": "US",
        }
        orders = [
            {
                "order_id": "SC-1001",
                "lines": [
                    {"sku": "SHOP-HAMMER", "quantity": 2},
                    {"sku": "ACM-1002", "quantity": 1},
                ],
            },
            {
                "order_id": "SC-1002",
                "lines": [
                    {"sku": "ACM-1001", "quantity": 1},
                    {"sku": "NO-SUCH-SKU", "quantity": 1},
                ],
            },
            {
                "order_id": "SC-1001",
                "lines": [
                    {"sku": "SHOP-HAMMER", "quantity": 2},
                    {"sku": "ACM-1002", "quantity": 1},
                ],
            },
        ]
        answers = []
        for body in orders:
            response = client.post(
                f"/v1/native/{added.connector.code}/orders",
                json=body | {"ship_to": ship_to, "shipping_method": "standard"},
            )
            answers.append(response.status_code)
            console.print(f"POST order {body['order_id']}: HTTP {response.status_code}")
        console.print("(the second SC-1001 is the same order again: it is stored once)\n")
        summary = order_sync()
        _print_summary(summary, False)
        console.print()
        with session_scope() as session:
            for reference in ("shopco:SC-1001", "shopco:SC-1002"):
                _show_order(order_view(session, order_by_reference(session, reference)), False)
        at_supplier = sandbox.orders()
        console.print(
            f"\nACME's order API holds {len(at_supplier)} order(s): "
            + ", ".join(f"{o['order_id']} for {o['po_number']}" for o in at_supplier)
        )
        fulfilled = _demo_fulfillment(sandbox, at_supplier, receiver)
    console.print(
        "Look further: supplyline orders list, supplyline orders show PO-ACME-00000001 "
        "(with SUPPLYLINE_HOME set as above)."
    )
    return (
        answers == [201, 201, 200]
        and summary["pos_submitted"] == 2
        and len(at_supplier) == 2
        and fulfilled
    )


def _demo_fulfillment(
    sandbox: Any, at_supplier: list[dict[str, Any]], receiver: RetailerWebhookSandbox
) -> bool:
    """ACME acknowledges SC-1001's PO, ships part of it, then the rest, with tracking, then it
    is delivered; each time fulfillment sync brings it back and pushes it on to ShopCo, whose
    receiver is down at first. Returns whether the PO ended up delivered."""
    from flows.fulfillment_sync import fulfillment_sync
    from tasks.orders import order_by_reference, order_view

    console.rule("[bold]Fulfillment: ACME acknowledges, ships with tracking, delivers")
    [first] = [o["order_id"] for o in at_supplier if o["po_number"] == "PO-ACME-00000001"]
    receiver.go_down(503)
    sandbox.acknowledge(first)
    sandbox.ship(first, {1: 1}, carrier="UPS", service="Ground")
    steps = [fulfillment_sync()]
    waiting = steps[0]["retailer_push"]["retrying"]
    console.print(
        f"ShopCo's receiver is down (503): {waiting} order(s) wait for a retry; nothing is lost."
    )
    receiver.come_up()
    sandbox.ship(first, carrier="UPS", service="Ground")
    steps.append(fulfillment_sync())
    sandbox.deliver(first)
    steps.append(fulfillment_sync())
    for step in steps:
        for po_number, state in step["pos_moved"].items():
            console.print(f"fulfillment sync: {po_number} → {state}")
    console.print(
        f"ShopCo's receiver is up: {sum(s['retailer_push']['delivered'] for s in steps)} "
        "event(s) delivered by these syncs."
    )
    with session_scope() as session:
        shown = order_view(session, order_by_reference(session, "shopco:SC-1001"))
    _show_order(shown, False)
    return shown["purchase_orders"][0]["state"] == "delivered" and waiting > 0
