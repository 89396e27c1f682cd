"""Picking catalog files up from a supplier's SFTP inbox, once each, and answering there.

list → which files are ready (stable, or marked done) → download → (the catalog steps) →
upload the error file to ``errors`` and move the source to ``archive``. The ledger
(``sftp_remote_file``) says what happened to every file; a pickup row (``sftp_pickup``) is
the run's history and its lease on the inbox.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from blocks.sftp import RemoteFile as Listed
from blocks.sftp import SftpClient, SftpServer, UnsafeRemoteName, check_remote_name
from models.catalog import CatalogFile, Supplier, utcnow
from models.db import as_utc, session_scope
from models.sftp import SETTLED_STATES, Pickup, RemoteFile
from supplyline.settings import get_settings
from tasks.logs import run_logger
from tasks.suppliers import get_supplier

TEMPORARY_SUFFIXES = (".filepart", ".part", ".tmp")
MARKER_SUFFIXES = (".done", ".ok")
COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zip")
# A run waits for files to settle only this long; longer intervals span scheduled runs.
MAX_WAIT_IN_RUN_SECONDS = 120


class PickupBusy(RuntimeError):
    """Another run is working this supplier's inbox."""


@dataclass(frozen=True)
class ReadyFile:
    """A remote file to take now: stable (or marked done), with its ledger row."""

    ledger_id: int
    remote: Listed
    marker: str | None = None

    @property
    def name(self) -> str:
        return self.remote.name


@dataclass(frozen=True)
class Inbox:
    """What one look at the inbox found."""

    listed: int
    ready: list[ReadyFile] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    unanswered: list[ReadyFile] = field(default_factory=list)


def block_name(supplier_code: str) -> str:
    return f"supplier-{supplier_code}"


# --- the pickup lease ------------------------------------------------------------------------


@task(name="begin-pickup", cache_policy=NO_CACHE, task_run_name="begin-pickup-{supplier_code}")
def begin_pickup(supplier_code: str, flow_run_id: str | None = None) -> int:
    """Take the supplier's inbox for this run; refused while another run holds it.

    A lease older than ``SUPPLYLINE_STALE_PROCESSING_MINUTES`` belonged to a run that died:
    it is marked failed and taken over.
    """
    stale_after = timedelta(minutes=get_settings().stale_processing_minutes)
    with session_scope() as session:
        supplier = get_supplier(session, supplier_code)
        running = session.exec(
            select(Pickup).where(Pickup.supplier_id == supplier.id, Pickup.status == "running")
        ).first()
        if running is not None:
            started = as_utc(running.started_at)
            if started is not None and utcnow() - started < stale_after:
                raise PickupBusy(
                    f"{supplier_code}: pickup #{running.id} has been working the inbox since "
                    f"{started:%Y-%m-%d %H:%M:%S} UTC; two runs never work one inbox at once. "
                    f"Wait for it, or, if its run died, for {stale_after} to pass"
                )
            running.status = "failed"
            running.finished_at = utcnow()
            running.message = f"abandoned: still running after {stale_after}; its run died"
            session.add(running)
            session.commit()
        pickup = Pickup(supplier_id=supplier.id or 0, flow_run_id=flow_run_id)
        session.add(pickup)
        try:
            session.commit()
        except IntegrityError as exc:
            raise PickupBusy(
                f"{supplier_code}: another run took the inbox a moment ago; this one stops"
            ) from exc
        return pickup.id or 0


@task(name="finish-pickup", cache_policy=NO_CACHE)
def finish_pickup(pickup_id: int, inbox: Inbox | None, taken: int, error: str | None) -> None:
    """Release the lease and record what the run did, or why it gave up."""
    with session_scope() as session:
        pickup = session.get(Pickup, pickup_id)
        if pickup is None:
            return
        pickup.status = "failed" if error else "completed"
        pickup.finished_at = utcnow()
        pickup.files_listed = inbox.listed if inbox else 0
        pickup.files_waiting = len(inbox.waiting) if inbox else 0
        pickup.files_taken = taken
        pickup.message = error
        session.add(pickup)


# --- looking at the inbox --------------------------------------------------------------------


@task(name="find-ready-files", cache_policy=NO_CACHE, task_run_name="list-{supplier_code}")
def find_ready_files(
    server: SftpServer, supplier_code: str, stable_seconds: float, wait: bool = True
) -> Inbox:
    """The inbox's files that are ready, those still changing, and those left unanswered.

    A file is ready when its size and mtime held still for ``stable_seconds`` (the ledger
    remembers when each version was first seen, across runs) or when its marker is there.
    If some files are not yet stable and ``wait`` is set, look again once after the interval,
    if it is short; after a long one the next scheduled run will find them stable.
    """
    with server.get_client() as sftp:
        sftp_inbox = _look(sftp, server, supplier_code, stable_seconds)
        if sftp_inbox.waiting and wait and stable_seconds <= MAX_WAIT_IN_RUN_SECONDS:
            time.sleep(stable_seconds)
            sftp_inbox = _look(sftp, server, supplier_code, stable_seconds)
    return sftp_inbox


def _look(sftp: SftpClient, server: SftpServer, supplier_code: str, stable: float) -> Inbox:
    logger = run_logger()
    listing = sftp.list(server.inbox)
    names = {f.name for f in listing}
    now = utcnow()
    inbox = Inbox(listed=len(listing))
    with session_scope() as session:
        supplier_id = get_supplier(session, supplier_code).id or 0
        for remote in listing:
            if is_temporary(remote.name) or is_marker(remote.name, names):
                continue
            reason = _refusal(remote.name, server.patterns)
            if reason is not None and "\x00" in remote.name:
                logger.warning("%r: %s", remote.name, reason)  # cannot even be recorded
                continue
            row = ledger_row(session, supplier_id, remote)
            if row.state in ("ignored", "refused"):
                continue
            if reason is not None:
                row.state = "refused" if reason.startswith("refused") else "ignored"
                row.message = reason
                session.add(row)
                logger.warning("%r: %s", remote.name, reason)
                continue
            if row.state == "processed":
                inbox.unanswered.append(ReadyFile(row.id or 0, remote, marker_of(remote, names)))
                continue
            if row.state == "archived":
                continue
            marker = marker_of(remote, names)
            first_seen = as_utc(row.first_seen_at) or now
            if marker or now - first_seen >= timedelta(seconds=stable):
                inbox.ready.append(ReadyFile(row.id or 0, remote, marker))
            else:
                inbox.waiting.append(remote.name)
    if inbox.waiting:
        logger.info("still changing, taken once stable: %s", ", ".join(inbox.waiting))
    return inbox


def is_temporary(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


def is_marker(name: str, names: set[str]) -> bool:
    lowered = name.lower()
    return any(lowered.endswith(s) and name[: -len(s)] in names for s in MARKER_SUFFIXES)


def marker_of(remote: Listed, names: set[str]) -> str | None:
    for suffix in MARKER_SUFFIXES:
        for candidate in (remote.name + suffix, remote.name + suffix.upper()):
            if candidate in names:
                return str(PurePosixPath(remote.path).with_name(candidate))
    return None


def _refusal(name: str, patterns: list[str]) -> str | None:
    try:
        check_remote_name(name)
    except UnsafeRemoteName as exc:
        return str(exc)
    if not any(fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns):
        return (
            f"ignored, left in place: not a catalog file by its name (patterns: "
            f"{', '.join(patterns[:6])}{', ...' if len(patterns) > 6 else ''})"
        )
    return None


def ledger_row(session: Session, supplier_id: int, remote: Listed) -> RemoteFile:
    """This version of the file in the ledger; older versions still ``seen`` are dropped."""
    row = session.exec(
        select(RemoteFile).where(
            RemoteFile.supplier_id == supplier_id,
            RemoteFile.name == remote.name,
            RemoteFile.size_bytes == remote.size,
            RemoteFile.mtime == remote.mtime,
        )
    ).first()
    if row is not None:
        return row
    session.execute(
        sa.delete(RemoteFile).where(
            RemoteFile.supplier_id == supplier_id,  # type: ignore[arg-type]
            RemoteFile.name == remote.name,  # type: ignore[arg-type]
            RemoteFile.state == "seen",  # type: ignore[arg-type]
        )
    )
    row = RemoteFile(
        supplier_id=supplier_id,
        name=remote.name,
        remote_path=remote.path,
        size_bytes=remote.size,
        mtime=remote.mtime,
    )
    session.add(row)
    session.flush()
    return row


# --- taking a file ---------------------------------------------------------------------------


@task(name="download-remote-file", cache_policy=NO_CACHE, task_run_name="download-{ready.name}")
def download_remote_file(server: SftpServer, supplier_code: str, ready: ReadyFile) -> Path | None:
    """Fetch the file into ``SUPPLYLINE_HOME/incoming``; None if it changed or went away."""
    logger = run_logger()
    folder = get_settings().incoming_dir / supplier_code / str(ready.ledger_id)
    with session_scope() as session:
        row = _ledger(session, ready.ledger_id)
        row.download_attempts += 1
        session.add(row)
    with server.get_client() as sftp:
        now = sftp.stat(ready.remote.path)
        if now is None:
            logger.warning("%s: gone from the inbox before it was downloaded", ready.name)
            return None
        if (now.size, now.mtime) != (ready.remote.size, ready.remote.mtime):
            logger.info("%s: changed since it was listed; taken once it is stable", ready.name)
            return None
        download = sftp.download(ready.remote, folder)
    with session_scope() as session:
        row = _ledger(session, ready.ledger_id)
        row.state = "downloaded"
        row.sha256 = download.sha256
        row.updated_at = utcnow()
        row.message = None
        session.add(row)
        _abandon_dead_claims(session, row.supplier_id, download.sha256)
    logger.info("%s: downloaded, %s bytes, sha256 %s", ready.name, download.size, download.sha256)
    return download.path


def _abandon_dead_claims(session: Session, supplier_id: int, sha256: str) -> None:
    """Fail this content's SFTP claims still ``processing``: their runs died holding them.

    Safe because the caller holds the supplier's pickup lease, so no other SFTP run of the
    supplier is alive. Without this, the file would come back as a duplicate of itself.
    """
    for row in session.exec(
        select(CatalogFile).where(
            CatalogFile.supplier_id == supplier_id,
            CatalogFile.sha256 == sha256,
            CatalogFile.source == "sftp",
            CatalogFile.status == "processing",
        )
    ):
        row.status = "failed"
        row.finished_at = utcnow()
        row.message = "abandoned: the pickup run that claimed it stopped; taken again"
        session.add(row)


def record_left_in_place(ready: ReadyFile, reason: str) -> None:
    """The file could not be taken this time: it stays in the inbox for the next run."""
    with session_scope() as session:
        row = _ledger(session, ready.ledger_id)
        row.message = f"{reason}; left in the inbox for the next run"
        row.updated_at = utcnow()
        session.add(row)


def record_processed(ready: ReadyFile, entry: dict[str, object]) -> None:
    """The file went through the catalog steps: never process it again, whatever follows."""
    with session_scope() as session:
        row = _ledger(session, ready.ledger_id)
        row.state = "processed"
        file_id = entry.get("id")
        row.catalog_file_id = int(file_id) if isinstance(file_id, int) else None
        row.updated_at = utcnow()
        session.add(row)


# --- answering -------------------------------------------------------------------------------


@task(name="answer-supplier", cache_policy=NO_CACHE, task_run_name="answer-{ready.name}")
def answer_supplier(server: SftpServer, ready: ReadyFile) -> dict[str, str | None]:
    """Upload the error file (and its JSON summary) to ``errors``; move the source (and its
    marker) to ``archive`` with a timestamp suffix. The ledger then says ``archived``."""
    logger = run_logger()
    with session_scope() as session:
        row = _ledger(session, ready.ledger_id)
        error_file, summary_file = _answer_files(session, row.catalog_file_id)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    uploaded = None
    with server.get_client() as sftp:
        if error_file is not None:
            sftp.ensure_folder(server.errors)
            stem = f"{_split_extension(ready.name)[0]}.{stamp}"
            uploaded = sftp.upload(error_file, server.errors, f"{stem}.errors.csv")
            if summary_file is not None:
                sftp.upload(summary_file, server.errors, f"{stem}.errors.json")
        sftp.ensure_folder(server.archive)
        archived = sftp.move(ready.remote.path, server.archive, stamped(ready.name, stamp))
        if ready.marker:
            marker = PurePosixPath(ready.marker).name
            sftp.move(ready.marker, server.archive, stamped(marker, stamp))
    with session_scope() as session:
        row = _ledger(session, ready.ledger_id)
        row.state = "archived"
        row.archived_path = archived
        row.error_file_path = uploaded
        row.message = None
        row.updated_at = utcnow()
        session.add(row)
    logger.info(
        "%s: archived as %s%s", ready.name, archived, f"; errors: {uploaded}" * bool(uploaded)
    )
    return {"archived": archived, "error_file": uploaded}


def record_answer_failure(ready: ReadyFile, reason: str) -> None:
    with session_scope() as session:
        row = _ledger(session, ready.ledger_id)
        row.message = (
            f"processed, but the answer on the server failed ({reason}); it will not be "
            f"processed again, and the next run retries the error file and the move"
        )
        row.updated_at = utcnow()
        session.add(row)


def _answer_files(session: Session, file_id: int | None) -> tuple[Path | None, Path | None]:
    """The local error file and summary to send back (a duplicate's: those of the first)."""
    row = session.get(CatalogFile, file_id) if file_id else None
    if row is not None and row.status == "duplicate" and row.duplicate_of_id:
        row = session.get(CatalogFile, row.duplicate_of_id)
    if row is None:
        return None, None
    error_file = Path(row.error_file) if row.error_file else None
    summary = Path(row.summary_file) if row.summary_file else None
    return (
        error_file if error_file and error_file.is_file() else None,
        summary if summary and summary.is_file() else None,
    )


def stamped(name: str, stamp: str) -> str:
    """``catalog.csv.gz`` → ``catalog.20261125T101500Z.csv.gz``: the stamp before the type."""
    base, extension = _split_extension(name)
    return f"{base}.{stamp}{extension}"


def _split_extension(name: str) -> tuple[str, str]:
    path = PurePosixPath(name)
    suffixes = path.suffixes
    take = 2 if len(suffixes) >= 2 and suffixes[-1].lower() in COMPRESSION_SUFFIXES else 1
    extension = "".join(suffixes[-take:]) if suffixes else ""
    if not extension or extension == name:
        return name, ""
    return name[: -len(extension)], extension


def _ledger(session: Session, ledger_id: int) -> RemoteFile:
    row = session.get(RemoteFile, ledger_id)
    if row is None:
        raise LookupError(f"no ledger row #{ledger_id}")
    return row


# --- reading the ledger back -----------------------------------------------------------------


def pickups(session: Session, supplier: Supplier, limit: int = 20) -> list[dict[str, object]]:
    """The supplier's newest pickup runs, for the CLI and the status views."""
    rows = session.exec(
        select(Pickup)
        .where(Pickup.supplier_id == supplier.id)
        .order_by(sa.desc(Pickup.id))  # type: ignore[arg-type]
        .limit(limit)
    ).all()
    return [
        {
            "id": p.id,
            "supplier": supplier.code,
            "status": p.status,
            "started_at": _iso(p.started_at),
            "finished_at": _iso(p.finished_at),
            "files_listed": p.files_listed,
            "files_taken": p.files_taken,
            "files_waiting": p.files_waiting,
            "flow_run_id": p.flow_run_id,
            "message": p.message,
        }
        for p in rows
    ]


def remote_files(session: Session, supplier: Supplier, limit: int = 50) -> list[dict[str, object]]:
    """The ledger's newest rows for the supplier."""
    rows = session.exec(
        select(RemoteFile)
        .where(RemoteFile.supplier_id == supplier.id)
        .order_by(sa.desc(RemoteFile.id))  # type: ignore[arg-type]
        .limit(limit)
    ).all()
    return [
        {
            "id": r.id,
            "name": r.name,
            "state": r.state,
            "size_bytes": r.size_bytes,
            "sha256": r.sha256,
            "catalog_file_id": r.catalog_file_id,
            "archived_path": r.archived_path,
            "error_file_path": r.error_file_path,
            "first_seen_at": _iso(r.first_seen_at),
            "updated_at": _iso(r.updated_at),
            "message": r.message,
            "settled": r.state in SETTLED_STATES,
        }
        for r in rows
    ]


def _iso(moment: datetime | None) -> str | None:
    value = as_utc(moment)
    return value.isoformat() if value else None
