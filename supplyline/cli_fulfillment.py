"""The ``supplyline fulfillment`` commands: sync suppliers' fulfillment updates now, and read
the log of every update a supplier sent.

Exit codes: 0 done; 1 a sync that met conflicting or stale updates or a supplier it could not
read (the output says which).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from models.catalog import Supplier
from models.db import as_utc, session_scope
from models.orders import SUPPLIER_UPDATE_OUTCOMES, SupplierUpdate

console = Console()

fulfillment_app = typer.Typer(
    help="Fulfillment: what suppliers report (acknowledgements, shipments, cancellations,"
    " deliveries), pushed on to retailers.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register_fulfillment_commands(app: typer.Typer) -> None:
    """Add these commands to the ``supplyline`` app (called from supplyline.cli)."""
    app.add_typer(fulfillment_app, name="fulfillment")


@fulfillment_app.command("sync")
def fulfillment_sync_now(
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Open POs per task (default the order batch size).")
    ] = None,
    stable_seconds: Annotated[
        float | None,
        typer.Option(min=0, help="Seconds an outbound file must hold still (SFTP suppliers)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Collect every supplier's updates now (API status of open POs, SFTP outbound files)."""
    from flows.fulfillment_sync import fulfillment_sync

    summary = fulfillment_sync(batch_size=batch_size, stable_seconds=stable_seconds)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary)
    if summary["updates_conflict"] or summary["updates_stale"] or summary["problems"]:
        raise typer.Exit(1)


@fulfillment_app.command("log")
def fulfillment_log(
    supplier: Annotated[str | None, typer.Option(help="Only this supplier's updates.")] = None,
    po: Annotated[str | None, typer.Option(help="Only this PO's updates.")] = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            help=f"Only updates with this outcome: {', '.join(SUPPLIER_UPDATE_OUTCOMES)}."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="The newest this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Every update suppliers sent, newest first, with what became of it."""
    rows = update_log(supplier=supplier, po_number=po, outcome=outcome, limit=limit)
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table("id", "received", "supplier", "PO", "kind", "source", "outcome", "detail")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["received_at"][:19],
            row["supplier"],
            row["po_number"],
            row["kind"],
            row["source"],
            row["outcome"],
            row["detail"] or "",
        )
    console.print(table)


def update_log(
    *,
    supplier: str | None = None,
    po_number: str | None = None,
    outcome: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The update log, newest first, filtered."""
    if outcome is not None and outcome not in SUPPLIER_UPDATE_OUTCOMES:
        console.print(
            f"[red]refused:[/red] outcome {outcome!r} is not one of "
            f"{', '.join(SUPPLIER_UPDATE_OUTCOMES)}"
        )
        raise typer.Exit(3)
    query = (
        sa.select(SupplierUpdate, Supplier.code)
        .join(Supplier, Supplier.id == SupplierUpdate.supplier_id)  # type: ignore[arg-type]
        .order_by(sa.desc(SupplierUpdate.id))  # type: ignore[arg-type]
        .limit(limit)
    )
    if supplier:
        query = query.where(Supplier.code == supplier)
    if po_number:
        query = query.where(SupplierUpdate.po_number == po_number)
    if outcome:
        query = query.where(SupplierUpdate.outcome == outcome)
    with session_scope() as session:
        return [
            {
                "id": update.id,
                "received_at": (as_utc(update.received_at) or update.received_at).isoformat(),
                "supplier": code,
                "po_number": update.po_number,
                "kind": update.kind,
                "source": update.source,
                "outcome": update.outcome,
                "detail": update.detail,
                "payload": update.payload,
            }
            for update, code in session.execute(query).all()
        ]


def _print_summary(summary: dict[str, Any]) -> None:
    console.print(
        f"updates: {summary['updates_applied']} applied, {summary['updates_duplicate']} "
        f"duplicate, {summary['updates_stale']} stale, {summary['updates_conflict']} conflict "
        f"({summary['updates_known']} known already); {summary['events']} events; "
        f"{summary['files']} files; funds given back {summary['funds_released']}"
    )
    for po_number, state in summary["pos_moved"].items():
        console.print(f"  {po_number} → {state}")
    for problem in summary["problems"]:
        console.print(f"  [yellow]problem:[/yellow] {problem}", markup=True)
