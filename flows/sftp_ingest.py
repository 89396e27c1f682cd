"""Flow: pick a supplier's catalog files up from its SFTP server, ingest them, answer there.

One run per supplier at a time (a lease in the database, and the deployment's concurrency
limit). Per file: download → the catalog steps of ``catalog-ingest`` → the error file to the
supplier's ``errors`` folder and the source to ``archive``. A file that fails never stops the
others; the ledger keeps each file from being loaded twice, whatever dies half-way.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, tags
from prefect.states import State
from prefect.tasks import exponential_backoff

from blocks.sftp import SftpRefused, SftpServer
from flows.catalog_ingest import current_flow_run_id, ingest_one, tag_flow_run
from supplyline.settings import get_settings
from tasks.flow_runs import parameter, run_name
from tasks.sftp import (
    Inbox,
    ReadyFile,
    answer_supplier,
    begin_pickup,
    block_name,
    download_remote_file,
    find_ready_files,
    finish_pickup,
    record_answer_failure,
    record_left_in_place,
    record_processed,
)
from tasks.suppliers import normalise_code


def _run_name() -> str:
    return run_name("ingest", str(parameter("supplier", "?")))


@flow(name="catalog-sftp-ingest", flow_run_name=_run_name)
def catalog_sftp_ingest(
    supplier: str,
    block: str | None = None,
    stable_seconds: float | None = None,
) -> dict[str, object]:
    """Take the ready files from the supplier's SFTP inbox and ingest them, oldest first.

    ``block``: the SftpServer block's name (default ``supplier-<code>``); ``stable_seconds``:
    how long a file must hold still before it is taken (default SUPPLYLINE_SFTP_STABLE_SECONDS).
    """
    code = normalise_code(supplier)
    tag_flow_run(code)
    settings = get_settings()
    stable = settings.sftp_stable_seconds if stable_seconds is None else stable_seconds
    retrying = {
        "retries": settings.sftp_retries,
        "retry_delay_seconds": exponential_backoff(settings.sftp_retry_delay_seconds),
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": worth_retrying,
    }
    server = SftpServer.load(block or block_name(code))
    with tags(f"supplier:{code}"):
        pickup_id = begin_pickup(code, current_flow_run_id())
        inbox: Inbox | None = None
        entries: list[dict[str, object]] = []
        try:
            inbox = find_ready_files.with_options(**retrying)(server, code, stable)
            for ready in inbox.unanswered:
                _answer(server, ready, retrying)
            for ready in inbox.ready:
                entry = _take(server, code, ready, retrying)
                if entry is not None:
                    entries.append(entry)
        except Exception as exc:
            finish_pickup(pickup_id, inbox, len(entries), f"gave up: {exc}")
            raise
        finish_pickup(pickup_id, inbox, len(entries), None)
    return {
        "supplier": code,
        "pickup": pickup_id,
        "files": entries,
        "waiting": inbox.waiting if inbox else [],
    }


def worth_retrying(_task: object, _task_run: object, state: State) -> bool:
    """Connection trouble is tried again; what another try cannot fix is not: a changed host
    key, a refused login, a folder the account may not write to, a file that is gone. (A
    write-protected archive cost a run four retries and two minutes of backoff before its
    warning.)"""
    try:
        state.result()
    except (SftpRefused, PermissionError, FileNotFoundError):
        return False
    except Exception:
        return True
    return True


def _take(
    server: SftpServer, code: str, ready: ReadyFile, retrying: dict[str, object]
) -> dict[str, object] | None:
    logger = get_run_logger()
    try:
        local = download_remote_file.with_options(**retrying)(server, code, ready)
    except Exception as exc:
        reason = f"download failed: {exc}"
        logger.error("%s: %s; left in the inbox for the next run", ready.name, reason)
        record_left_in_place(ready, reason)
        return None
    if local is None:
        return None
    entry = ingest_one(code, local, ready.name, "sftp")
    local.unlink(missing_ok=True)
    if entry["status"] == "failed":
        # Nothing of it was loaded and its content is not held: the next run tries again.
        record_left_in_place(ready, f"processing failed: {entry.get('message')}")
        return entry
    record_processed(ready, entry)
    entry["remote"] = _answer(server, ready, retrying)
    return entry


def _answer(
    server: SftpServer, ready: ReadyFile, retrying: dict[str, object]
) -> dict[str, str | None] | None:
    try:
        return answer_supplier.with_options(**retrying)(server, ready)
    except Exception as exc:
        get_run_logger().warning(
            "%s: processed, but the error file or the move to %s failed: %s; it will not be "
            "processed again, and the next run retries",
            ready.name,
            server.archive,
            exc,
        )
        record_answer_failure(ready, str(exc))
        return None
