"""Flow: fulfillment sync. What happens at suppliers (acknowledgements, shipments with
tracking, cancellations, deliveries) comes back onto the POs, line by line, once, in order.

Per supplier, by its order connector: a REST API is asked for the status of its open POs, a
task per batch (the client asks at most ``max_pos_per_status_call`` a request and keeps to
the block's ``requests_per_second``); an SFTP supplier's ``outbound`` folder is read, a task
per file. tasks.fulfillment applies the updates; each change is a ``po_event``, the outbox
that the pushes to retailers read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from sqlmodel import select

from blocks.sftp import SftpServer
from flows.retailer_push import retailer_push
from models.catalog import Supplier
from models.db import chunked, session_scope
from models.relationships import SupplierOrdering
from supplyline.settings import get_settings
from tasks.fulfillment import ACTOR, FulfillmentOutcome, apply_updates, open_pos_by_supplier
from tasks.fulfillment_api import collect_api_updates
from tasks.fulfillment_sftp import (
    Outbound,
    answer_outbound_file,
    find_outbound_files,
    take_outbound_file,
)
from tasks.po_connectors import (
    ConnectorMissing,
    ConnectorSettings,
    connector_settings,
    open_connector,
)
from tasks.po_overview import pos_by_supplier_and_state
from tasks.sftp import ReadyFile


def _run_name() -> str:
    return f"fulfillment-sync-{datetime.now(UTC):%Y-%m-%dT%H:%M}"


@task(
    name="poll-supplier-api",
    task_run_name="poll-{supplier_code}-{first_po}",
    cache_policy=NO_CACHE,
)
def poll_supplier_batch(
    supplier_code: str,
    supplier_id: int,
    settings: ConnectorSettings,
    pos: list[tuple[str, str]],
    first_po: str,
) -> FulfillmentOutcome:
    """Ask the supplier's API for the status of a batch of open POs and apply what changed."""
    logger = get_run_logger()
    with open_connector(settings) as connector:
        assert connector.statuses is not None
        updates, missing = collect_api_updates(connector.statuses, pos)
    for problem in missing:
        logger.warning("%s: %s", supplier_code, problem)
    with session_scope(immediate=True) as session:
        outcome = apply_updates(session, supplier_id, updates, actor=ACTOR, skip_known=True)
    logger.info(
        "%s: %d POs asked, %d updates new (%d applied, %d duplicate, %d stale, %d conflict), "
        "%d known already",
        supplier_code,
        len(pos),
        outcome.received,
        outcome.applied,
        outcome.duplicate,
        outcome.stale,
        outcome.conflict,
        outcome.known,
    )
    return outcome


@task(name="list-outbound", task_run_name="list-outbound-{supplier_code}", cache_policy=NO_CACHE)
def list_outbound(
    supplier_code: str, supplier_id: int, settings: ConnectorSettings, stable_seconds: float
) -> Outbound:
    """The supplier's outbound files ready to take (and those taken but not yet answered)."""
    server = SftpServer.load(settings.block_name)
    return find_outbound_files(server, supplier_id, settings.options["outbound"], stable_seconds)


@task(name="take-fulfillment-file", task_run_name="fulfillment-file-{name}", cache_policy=NO_CACHE)
def take_file(
    supplier_code: str, supplier_id: int, settings: ConnectorSettings, ready: ReadyFile, name: str
) -> tuple[dict[str, Any], FulfillmentOutcome]:
    """Validate, apply (once) and answer one acknowledgement, shipment or cancellation file."""
    server = SftpServer.load(settings.block_name)
    return take_outbound_file(server, supplier_code, supplier_id, ready, actor=ACTOR)


@task(name="answer-fulfillment-file", task_run_name="answer-{name}", cache_policy=NO_CACHE)
def answer_file(
    supplier_code: str, settings: ConnectorSettings, ready: ReadyFile, name: str
) -> dict[str, str | None] | None:
    """Answer a file an earlier run applied but could not answer."""
    server = SftpServer.load(settings.block_name)
    return answer_outbound_file(server, supplier_code, ready)


@flow(name="fulfillment-sync", flow_run_name=_run_name)
def fulfillment_sync(
    batch_size: int | None = None, stable_seconds: float | None = None, push: bool = True
) -> dict[str, Any]:
    """Collect every supplier's fulfillment updates and apply them to the POs, then push what
    changed on to the retailers (the ``retailer-push`` flow, as a subflow; ``push=False`` leaves
    that to its own schedule).

    ``batch_size``: open POs per task (default SUPPLYLINE_ORDER_BATCH_SIZE; the client splits a
    batch into requests the API allows); ``stable_seconds``: how long an outbound file must
    hold still before it is taken (default SUPPLYLINE_SFTP_STABLE_SECONDS).
    """
    logger = get_run_logger()
    settings = get_settings()
    size = batch_size or settings.order_batch_size
    stable = settings.sftp_stable_seconds if stable_seconds is None else stable_seconds
    total = FulfillmentOutcome()
    files: list[dict[str, Any]] = []
    for code, supplier_id, connector, open_pos in _suppliers():
        try:
            if connector.kind == "rest_api":
                for batch in chunked(open_pos, size):
                    total.add(poll_supplier_batch(code, supplier_id, connector, batch, batch[0][0]))
                continue
            outbound = list_outbound(code, supplier_id, connector, stable)
            for ready in outbound.unanswered:
                answer_file(code, connector, ready, ready.name)
            for ready in outbound.ready:
                try:
                    entry, applied = take_file(code, supplier_id, connector, ready, ready.name)
                except Exception as exc:
                    # Nothing of it was applied (one transaction): the next run tries again.
                    logger.error("%s: %s failed, left in place: %s", code, ready.name, exc)
                    total.problems.append(f"{code}: {ready.name}: {exc}")
                    continue
                files.append({"supplier": code} | entry)
                total.add(applied)
        except Exception as exc:
            # One supplier's trouble never stops the others; the next run tries again.
            logger.error("%s: fulfillment sync failed: %s", code, exc)
            total.problems.append(f"{code}: {exc}")
    summary = _summary(total, files)
    if push:  # this run's changes are in po_event, the outbox the push reads
        summary["retailer_push"] = retailer_push(batch_size=batch_size)
    if total.did_something or files or total.problems:
        _publish(summary, files)  # a run that found nothing new adds no artifact version
    return summary


def _suppliers() -> list[tuple[str, int, ConnectorSettings, list[tuple[str, str]]]]:
    """Suppliers to ask: REST ones with open POs, every SFTP one (files may come any time)."""
    with session_scope() as session:
        open_pos = open_pos_by_supplier(session)
        ordering = {
            o.supplier_id: o.order_connector_type
            for o in session.exec(
                select(SupplierOrdering).where(SupplierOrdering.order_connector_type.is_not(None))  # type: ignore[union-attr]
            )
        }
        wanted = {sid for sid, kind in ordering.items() if kind == "sftp" or sid in open_pos}
        found = []
        for supplier in session.exec(
            select(Supplier).where(Supplier.id.in_(wanted)).order_by(Supplier.code)  # type: ignore[union-attr]
        ):
            try:
                connector = connector_settings(session, supplier)
            except ConnectorMissing as exc:
                get_run_logger().warning("%s: %s", supplier.code, exc)
                continue
            found.append(
                (supplier.code, supplier.id, connector, open_pos.get(supplier.id, []))  # type: ignore[arg-type]
            )
    return found


def _summary(total: FulfillmentOutcome, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "updates_applied": total.applied,
        "updates_duplicate": total.duplicate,
        "updates_stale": total.stale,
        "updates_conflict": total.conflict,
        "updates_known": total.known,
        "events": total.events,
        "pos_moved": dict(sorted(total.moved.items())),
        "funds_released": f"{total.released:.2f}",
        "files": len(files),
        "files_refused_rows": sum(int(f.get("rows_refused", 0) or 0) for f in files),
        "problems": total.problems[:50],
    }


def _publish(summary: dict[str, Any], files: list[dict[str, Any]]) -> None:
    """A table of open POs by supplier and state, and a markdown report of the run."""
    with session_scope() as session:
        table = pos_by_supplier_and_state(session, at_supplier_only=True)
    create_table_artifact(
        key="fulfillment-sync-pos",
        table=table,
        description="POs at suppliers by state, after this run",
    )
    lines = [
        "### Fulfillment sync",
        "",
        "| applied | duplicate | stale | conflict | events | POs moved | funds given back "
        "| files |",
        "|---|---|---|---|---|---|---|---|",
        f"| {summary['updates_applied']} | {summary['updates_duplicate']} "
        f"| {summary['updates_stale']} | {summary['updates_conflict']} | {summary['events']} "
        f"| {len(summary['pos_moved'])} | {summary['funds_released']} | {summary['files']} |",
    ]
    if files:
        lines += ["", "| supplier | file | kind | status | applied | rows refused | error file |"]
        lines += ["|---|---|---|---|---|---|---|"]
        lines += [
            f"| {f['supplier']} | {f.get('file_name')} | {f.get('kind', '')} | {f.get('status')} "
            f"| {f.get('applied', 0)} | {f.get('rows_refused', 0)} "
            f"| {(f.get('remote') or {}).get('error_file') or ''} |"
            for f in files
        ]
    if summary["problems"]:
        lines += ["", "**Problems**", ""] + [f"- {p}" for p in summary["problems"]]
    create_markdown_artifact(
        key="fulfillment-sync-report", markdown="\n".join(lines), description="fulfillment sync run"
    )
