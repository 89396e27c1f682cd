"""Prefect events Supplyline raises, so that automations can notify people.

- ``supplyline.catalog.file.<status>`` (``accepted``, ``partially_accepted``, ``rejected``,
  ``held``, ``failed``, ``duplicate``): a catalog file was processed; resource
  ``supplyline.catalog-file.<id>``, related to its supplier.
- ``supplyline.po.rejected`` / ``.failed``: the supplier refused a PO, or order sync gave up on
  it; resource ``supplyline.po.<number>``.
- ``supplyline.pos.submitted``: order sync sent a batch of a supplier's POs (their count and
  numbers in the payload); resource ``supplyline.supplier.<code>``. Submitting is the normal
  path and comes by the thousand: one event per batch spares the event pipeline.
- ``supplyline.feed.stale``: feed health found a supplier that sent no file for too long;
  resource ``supplyline.supplier.<code>``.
- ``supplyline.feed.rejection-jump``: feed health found a supplier whose recent files are
  rejected far more than before; resource ``supplyline.supplier.<code>``.

Events raised inside a flow run are related to it (and its deployment) by Prefect.
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event


def supplier_resource(code: str, role: str | None = None) -> dict[str, str]:
    resource = {
        "prefect.resource.id": f"supplyline.supplier.{code}",
        "prefect.resource.name": code,
    }
    return resource | ({"prefect.resource.role": role} if role else {})


def emit_file_event(supplier_code: str, entry: dict[str, Any]) -> None:
    """One event per processed catalog file, named for its status."""
    identity = entry.get("id") or entry.get("file")
    emit_event(
        event=f"supplyline.catalog.file.{entry['status']}",
        resource={
            "prefect.resource.id": f"supplyline.catalog-file.{identity}",
            "prefect.resource.name": str(entry.get("file")),
        },
        related=[supplier_resource(supplier_code, "supplier")],
        payload={
            key: entry.get(key)
            for key in ("rows_total", "rows_valid", "rows_invalid", "message", "error_file")
            if entry.get(key) is not None
        },
    )


def emit_po_event(event: str, supplier_code: str, po_number: str, reason: str | None) -> None:
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": f"supplyline.po.{po_number}",
            "prefect.resource.name": po_number,
        },
        related=[supplier_resource(supplier_code, "supplier")],
        payload={"reason": reason} if reason else {},
    )


def emit_submitted_batch(supplier_code: str, po_numbers: list[str]) -> None:
    emit_event(
        event="supplyline.pos.submitted",
        resource=supplier_resource(supplier_code),
        payload={"count": len(po_numbers), "po_numbers": po_numbers},
    )


def emit_supplier_event(event: str, supplier_code: str, payload: dict[str, Any]) -> None:
    emit_event(event=event, resource=supplier_resource(supplier_code), payload=payload)
