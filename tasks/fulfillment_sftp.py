"""Fulfillment files from a supplier's SFTP ``outbound`` folder, each taken once.

Files go through the SFTP ledger (``sftp_remote_file``) as catalog files do, under their full
remote path (so they never meet the inbox's catalog files): a file is ready once its size and
mtime held still for the stability interval, or with a ``.done``/``.ok`` marker. Taking one is
one transaction: the ledger row becomes ``processed`` by a conditional UPDATE and the file's
updates are applied, together, so a file is applied at most once whatever runs overlap or die.
Then the error file (and its summary) go to the server's ``errors`` folder and the file to its
``archive``; a run that fails there leaves the row ``processed`` and the next run answers it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from blocks.sftp import RemoteFile as ListedFile
from blocks.sftp import SftpClient, SftpServer, UnsafeRemoteName, check_remote_name
from models.catalog import utcnow
from models.db import as_utc, session_scope
from models.sftp import RemoteFile
from supplyline.settings import get_settings
from tasks.error_files import ERROR_SUFFIX, SUMMARY_SUFFIX, error_file_paths, original_stem
from tasks.fulfillment import FulfillmentOutcome
from tasks.fulfillment_files import (
    KIND_ORDER,
    file_kind,
    not_a_fulfillment_file,
    read_fulfillment_file,
    take_in_fulfillment_file,
)
from tasks.logs import run_logger
from tasks.sftp import (
    MAX_WAIT_IN_RUN_SECONDS,
    ReadyFile,
    is_marker,
    is_temporary,
    ledger_row,
    marker_of,
    stamped,
)


@dataclass(frozen=True)
class Outbound:
    """What one look at the outbound folder found."""

    listed: int
    ready: list[ReadyFile]
    waiting: list[str]
    unanswered: list[ReadyFile]


def find_outbound_files(
    server: SftpServer, supplier_id: int, folder: str, stable_seconds: float
) -> Outbound:
    """The folder's fulfillment files that are ready, still changing, or taken but not yet
    answered; other files are ignored once, with the reason in the ledger and the log. The
    folder is made if it is missing: it shows the supplier where its files go."""
    with server.get_client() as sftp:
        sftp.ensure_folder(folder)
        found = _look(sftp, supplier_id, folder, stable_seconds)
        if found.waiting and stable_seconds <= MAX_WAIT_IN_RUN_SECONDS:
            time.sleep(stable_seconds)
            found = _look(sftp, supplier_id, folder, stable_seconds)
    return found


def _look(sftp: SftpClient, supplier_id: int, folder: str, stable: float) -> Outbound:
    logger = run_logger()
    listing = sftp.list(folder)
    names = {f.name for f in listing}
    now = utcnow()
    found = Outbound(len(listing), [], [], [])
    with session_scope(immediate=True) as session:
        for remote in sorted(listing, key=_taking_order):
            if is_temporary(remote.name) or is_marker(remote.name, names):
                continue
            reason = _refusal(remote.name)
            if reason is not None and "\x00" in remote.name:
                logger.warning("%r: %s", remote.name, reason)
                continue
            row = ledger_row(session, supplier_id, dataclasses.replace(remote, name=remote.path))
            if row.state in ("ignored", "refused", "archived"):
                continue
            if reason is not None:
                row.state = "refused" if reason.startswith("refused") else "ignored"
                row.message = reason
                session.add(row)
                logger.warning("%s", reason)
                continue
            ready = ReadyFile(row.id or 0, remote, marker_of(remote, names))
            if row.state == "processed":
                found.unanswered.append(ready)
            elif ready.marker or now - (as_utc(row.first_seen_at) or now) >= timedelta(
                seconds=stable
            ):
                found.ready.append(ready)
            else:
                found.waiting.append(remote.name)
    return found


def _taking_order(remote: ListedFile) -> tuple[int, int, str]:
    """Oldest first; of files from the same moment, acknowledgements, then shipments, then
    deliveries, then cancellations (a delivery dropped with its shipment file finds it)."""
    kind = file_kind(remote.name)
    return (remote.mtime, KIND_ORDER.get(kind or "", len(KIND_ORDER)), remote.name)


def _refusal(name: str) -> str | None:
    try:
        check_remote_name(name)
    except UnsafeRemoteName as exc:
        return str(exc)
    if file_kind(name) is None:
        return not_a_fulfillment_file(name)
    return None


def take_outbound_file(
    server: SftpServer,
    supplier_code: str,
    supplier_id: int,
    ready: ReadyFile,
    *,
    actor: str,
) -> tuple[dict[str, Any], FulfillmentOutcome]:
    """Download, validate and apply one file, once (see the module doc); then answer."""
    logger = run_logger()
    kind = file_kind(ready.name)
    assert kind is not None  # _look ignores the others
    work = get_settings().incoming_dir / supplier_code / "outbound" / str(ready.ledger_id)
    with server.get_client() as sftp:
        now = sftp.stat(ready.remote.path)
        if now is None or (now.size, now.mtime) != (ready.remote.size, ready.remote.mtime):
            logger.info("%s: gone or changed since it was listed; next run", ready.name)
            return {"file_name": ready.name, "status": "waiting"}, FulfillmentOutcome()
        download = sftp.download(ready.remote, work)
    try:
        found = read_fulfillment_file(download.path, file_name=ready.name, kind=kind)
        with session_scope(immediate=True) as session:
            if not _claim(session, ready.ledger_id, download.sha256):
                logger.info("%s: another run took it meanwhile", ready.name)
                return {"file_name": ready.name, "status": "taken"}, FulfillmentOutcome()
            outcome, applied = take_in_fulfillment_file(
                session, supplier_id, found, errors_dir=_errors_dir(supplier_code), actor=actor
            )
    finally:
        download.path.unlink(missing_ok=True)
    logger.info(
        "%s: %s %s file, %d applied, %d duplicate, %d stale, %d conflict, %d rows refused",
        ready.name,
        outcome.status,
        kind,
        outcome.applied,
        outcome.duplicate,
        outcome.stale,
        outcome.conflict,
        outcome.rows_refused,
    )
    entry = outcome.as_dict()
    entry["remote"] = answer_outbound_file(server, supplier_code, ready)
    return entry, applied


def answer_outbound_file(
    server: SftpServer, supplier_code: str, ready: ReadyFile
) -> dict[str, str | None] | None:
    """The error file and summary to the server's ``errors`` folder, the file (and its
    marker) to ``archive``; the ledger row becomes ``archived``. A failure is logged and
    recorded; the next run tries again."""
    csv_path, json_path = error_file_paths(ready.name, _errors_dir(supplier_code))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        with server.get_client() as sftp:
            uploaded = None
            if csv_path.is_file():
                sftp.ensure_folder(server.errors)
                stem = f"{original_stem(ready.name)}.{stamp}"
                uploaded = sftp.upload(csv_path, server.errors, stem + ERROR_SUFFIX)
                if json_path.is_file():
                    sftp.upload(json_path, server.errors, stem + SUMMARY_SUFFIX)
            sftp.ensure_folder(server.archive)
            archived = sftp.move(ready.remote.path, server.archive, stamped(ready.name, stamp))
            if ready.marker:
                marker = PurePosixPath(ready.marker).name
                sftp.move(ready.marker, server.archive, stamped(marker, stamp))
    except Exception as exc:
        run_logger().warning(
            "%s: applied, but the error file or the move to %s failed: %s; the next run "
            "answers it (it is not applied again)",
            ready.name,
            server.archive,
            exc,
        )
        _set_ledger(ready.ledger_id, message=f"applied; answering on the server failed: {exc}")
        return None
    _set_ledger(
        ready.ledger_id,
        state="archived",
        archived_path=archived,
        error_file_path=uploaded,
        message=None,
    )
    return {"archived": archived, "error_file": uploaded}


def _claim(session: Session, ledger_id: int, sha256: str) -> bool:
    """The ledger row becomes ``processed`` in the transaction that applies the file."""
    result = session.execute(
        sa.update(RemoteFile)
        .where(
            RemoteFile.id == ledger_id,  # type: ignore[arg-type]
            RemoteFile.state.in_(("seen", "downloaded")),  # type: ignore[attr-defined]
        )
        .values(
            state="processed",
            sha256=sha256,
            download_attempts=RemoteFile.download_attempts + 1,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _set_ledger(ledger_id: int, **values: Any) -> None:
    with session_scope() as session:
        session.execute(
            sa.update(RemoteFile)
            .where(RemoteFile.id == ledger_id)  # type: ignore[arg-type]
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )


def _errors_dir(supplier_code: str) -> Path:
    return get_settings().errors_dir / "fulfillment" / supplier_code
