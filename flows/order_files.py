"""Flows: order files from retailers, by hand (``order-file-intake``) or from the SFTP folder of
a retailer's ``sftp`` connector (``order-sftp-intake``). One task run per file.

Over SFTP: the connector's ``orders_folder`` on the server of the block ``retailer-<connector>``.
A file is taken once its size and mtime held still between two listings (or at once with a
``<name>.done`` / ``<name>.ok`` marker); its error file and summary go to the connector's
``status_folder``, and the file itself moves to ``<orders_folder>/processed``. A file taken
twice (a run that died before moving it) adds nothing: orders are stored once per order id.
"""

from __future__ import annotations

import posixpath
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from blocks.sftp import SftpServer, check_remote_name
from models.db import session_scope
from models.relationships import Retailer, RetailerConnector
from supplyline.settings import get_settings
from tasks.connectors import get_connector, retailer_block_name
from tasks.error_files import ERROR_SUFFIX, SUMMARY_SUFFIX, original_stem
from tasks.flow_runs import first_and_count, parameter, run_name, tag_current_run
from tasks.order_files import read_order_file, take_in_order_file
from tasks.reports import order_files_report
from tasks.sftp import MARKER_SUFFIXES, TEMPORARY_SUFFIXES, stamped

ORDER_FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".xlsx", ".gz", ".zip")


@task(name="take-in-order-file", task_run_name="order-file-{name}", cache_policy=NO_CACHE)
def take_in_file(connector: str, path: Path, name: str) -> dict[str, Any]:
    """Validate one order file, store its orders, write its error file (one transaction)."""
    errors_dir = get_settings().errors_dir / "orders" / connector
    order_file = read_order_file(path, file_name=name)
    with session_scope(immediate=True) as session:
        found = get_connector(session, connector)
        retailer = session.get(Retailer, found.retailer_id)
        outcome = take_in_order_file(
            session,
            retailer,
            order_file,
            connector_id=found.id,
            errors_dir=errors_dir,  # type: ignore[arg-type]
        )
    get_run_logger().info(
        "%s: %s, %d new orders, %d already received, %d refused (%d rows)",
        name,
        outcome.status,
        len(outcome.orders_new),
        len(outcome.orders_again),
        len(outcome.orders_refused),
        outcome.rows_refused,
    )
    return outcome.as_dict()


def _file_intake_run_name() -> str:
    names = parameter("names") or parameter("files") or []
    return run_name("order-files", str(parameter("connector", "?")), first_and_count(names))  # type: ignore[arg-type]


def _sftp_intake_run_name() -> str:
    return run_name("order-sftp", str(parameter("connector", "?")))


@flow(name="order-file-intake", flow_run_name=_file_intake_run_name)
def order_file_intake(
    connector: str, files: list[Path], names: list[str] | None = None
) -> list[dict[str, Any]]:
    """Take in order files a person hands over; one bad file never stops the others."""
    _tag_run(connector)
    names = names or [Path(f).name for f in files]
    entries = []
    for path, name in zip(files, names, strict=True):
        try:
            entries.append(take_in_file(connector, Path(path), name))
        except Exception as exc:
            get_run_logger().error("%s: failed, nothing of it was stored: %s", name, exc)
            entries.append({"file_name": name, "status": "failed", "file_error": str(exc)})
    _publish(connector, entries)
    return entries


@flow(name="order-sftp-intake", flow_run_name=_sftp_intake_run_name)
def order_sftp_intake(connector: str, stable_seconds: float | None = None) -> list[dict[str, Any]]:
    """Take in the order files in a retailer's SFTP orders folder and answer there."""
    logger = get_run_logger()
    found = _tag_run(connector)
    if found.connector_type != "sftp":
        raise ValueError(f"connector {connector} is {found.connector_type}, not sftp")
    orders_folder = found.settings["orders_folder"]
    status_folder = found.settings["status_folder"]
    processed = posixpath.join(orders_folder, "processed")
    wait = get_settings().sftp_stable_seconds if stable_seconds is None else stable_seconds
    server = SftpServer.load(retailer_block_name(connector))
    entries: list[dict[str, Any]] = []
    with server.get_client() as sftp, tempfile.TemporaryDirectory(prefix="order-files-") as work:
        for folder in (status_folder, processed):
            sftp.ensure_folder(folder)
        first = {f.name: f for f in sftp.list(orders_folder)}
        if wait and first:
            time.sleep(wait)
        now = {f.name: f for f in sftp.list(orders_folder)}
        markers = {n.rsplit(".", 1)[0] for n in now if n.lower().endswith(MARKER_SUFFIXES)}
        for name, remote in sorted(now.items()):
            lowered = name.lower()
            if name.startswith(".") or lowered.endswith(TEMPORARY_SUFFIXES + MARKER_SUFFIXES):
                continue
            if not lowered.endswith(ORDER_FILE_SUFFIXES):
                logger.warning(
                    "%s: not an order file (%s); left in place",
                    name,
                    ", ".join(ORDER_FILE_SUFFIXES),
                )
                continue
            before = first.get(name)
            steady = before is not None and (before.size, before.mtime) == (
                remote.size,
                remote.mtime,
            )
            if not (steady or name in markers):
                logger.info("%s: still changing; the next run looks again", name)
                continue
            try:
                check_remote_name(name)
                local = sftp.download(remote, Path(work)).path
                entry = take_in_file(connector, local, name)
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                for key, suffix in (("error_file", ERROR_SUFFIX), ("summary_file", SUMMARY_SUFFIX)):
                    if entry.get(key):
                        answer = f"{original_stem(name)}.{stamp}{suffix}"
                        sftp.upload(Path(str(entry[key])), status_folder, answer)
                sftp.move(remote.path, processed, stamped(name, stamp))
                for suffix in MARKER_SUFFIXES:
                    if sftp.stat(remote.path + suffix) is not None:
                        sftp.remove(remote.path + suffix)
            except Exception as exc:
                logger.error("%s: failed, left in place for the next run: %s", name, exc)
                entry = {"file_name": name, "status": "failed", "file_error": str(exc)}
            entries.append(entry)
    _publish(connector, entries)
    return entries


def _tag_run(connector: str) -> RetailerConnector:
    """Tag the run with the connector and its retailer; returns the connector."""
    with session_scope() as session:
        found = get_connector(session, connector)
        retailer = session.get(Retailer, found.retailer_id)
    tag_current_run(f"retailer:{retailer.code}", f"connector:{found.code}")  # type: ignore[union-attr]
    return found


def _publish(connector: str, entries: list[dict[str, Any]]) -> None:
    """A table per connector (its history accumulates), and a report linking the error files."""
    create_table_artifact(
        key=f"order-files-{connector}",
        table=[
            {
                "file": e.get("file_name"),
                "status": e.get("status"),
                "new orders": len(e.get("orders_new", [])),
                "already received": len(e.get("orders_again", [])),
                "refused orders": len(e.get("orders_refused", [])),
                "rows refused": e.get("rows_refused", 0),
                "error file": e.get("error_file") or e.get("file_error") or "",
            }
            for e in entries
        ]
        or [{"file": "(none)", "status": ""}],
        description=f"order files of connector {connector}",
    )
    if entries:
        create_markdown_artifact(
            key=f"order-files-{connector}-report",
            markdown=order_files_report(f"Order files of connector `{connector}`", entries),
            description=f"order files of connector {connector}: report",
        )
