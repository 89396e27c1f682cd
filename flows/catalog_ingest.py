"""Flows: ingest a supplier's catalog files, and release a held one.

Per file: claim → validate → error file → apply, then artifacts keyed per supplier
(``catalog-<supplier>``) so that its history accumulates in the Prefect UI. A file that fails
is recorded as ``failed`` with the reason; the other files go on.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, tags
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.runtime import flow_run

from tasks.events import emit_file_event
from tasks.flow_runs import first_and_count, parameter, run_name, tag_current_run
from tasks.ingest import (
    ClaimedFile,
    apply_file,
    claim_file,
    claim_for_release,
    fail_file,
    file_entry,
    validate_claimed_file,
    without_source_rows,
    write_claimed_error_files,
)
from tasks.reports import file_link
from tasks.suppliers import normalise_code
from tasks.validate import FileValidation


def _ingest_run_name() -> str:
    names = parameter("names") or parameter("files") or []
    return run_name("ingest", str(parameter("supplier", "?")), first_and_count(names))  # type: ignore[arg-type]


def _release_run_name() -> str:
    return run_name("release", f"file-{parameter('file_id')}")


@flow(name="catalog-ingest", flow_run_name=_ingest_run_name)
def catalog_ingest(
    supplier: str,
    files: list[Path],
    source: str = "manual",
    names: list[str] | None = None,
) -> list[dict[str, object]]:
    """Ingest ``files`` for ``supplier``, in order, one at a time (a full feed depends on it).

    ``names`` are the files' original names when ``files`` are local copies (from SFTP).
    """
    code = normalise_code(supplier)
    tag_flow_run(code)
    names = names or [Path(f).name for f in files]
    entries = []
    with tags(f"supplier:{code}"):
        for path, name in zip(files, names, strict=True):
            entries.append(ingest_one(code, Path(path), name, source))
    return entries


@flow(name="catalog-release", flow_run_name=_release_run_name)
def catalog_release(file_id: int) -> dict[str, object]:
    """Apply a file the retire guard held, as it is, on an operator's word."""
    claim = claim_for_release(file_id)
    tag_flow_run(claim.supplier.code)
    with tags(f"supplier:{claim.supplier.code}"):
        return _process(claim, release=True)


def ingest_one(code: str, path: Path, name: str, source: str) -> dict[str, object]:
    logger = get_run_logger()
    started = time.perf_counter()
    try:
        claim = claim_file(code, path, name=name, source=source, flow_run_id=current_flow_run_id())
    except Exception as exc:
        # Nothing was recorded or loaded: the file stays where it is, with the reason logged.
        logger.error("%s: could not be claimed, left in place: %s", name, exc)
        return {"supplier": code, "file": name, "status": "failed", "message": str(exc)}
    if claim.is_duplicate:
        logger.info("%s: %s", name, claim.message)
        entry = file_entry(claim.file_id)
        _publish(code, entry, None)
        return entry
    return _process(claim, timings={"claim": time.perf_counter() - started})


def _process(
    claim: ClaimedFile, *, release: bool = False, timings: dict[str, float] | None = None
) -> dict[str, object]:
    """Validate, write the error file, apply; ``timings_s`` says how long each step took."""
    logger = get_run_logger()
    timings = dict(timings or {})
    validation: FileValidation | None = None
    try:
        validation = validate_claimed_file(claim)
        timings |= validation.timings
        started = time.perf_counter()
        error_files = write_claimed_error_files(claim, validation)
        timings["error_file"] = time.perf_counter() - started
        validation = without_source_rows(validation)
        started = time.perf_counter()
        entry = apply_file(claim, validation, error_files, release=release)
        timings["load"] = time.perf_counter() - started
    except Exception as exc:
        logger.error("%s: failed, nothing of it was loaded: %s", claim.name, exc)
        entry = fail_file(claim, f"failed, nothing of it was loaded: {exc}")
    entry["timings_s"] = {step: round(seconds, 3) for step, seconds in timings.items()}
    logger.info(
        "%s: %s (%s rows, %s valid, %s invalid)",
        claim.name,
        entry["status"],
        entry["rows_total"],
        entry["rows_valid"],
        entry["rows_invalid"],
    )
    _publish(claim.supplier.code, entry, validation)
    return entry


def current_flow_run_id() -> str | None:
    run_id = flow_run.id
    return str(run_id) if run_id else None


def tag_flow_run(code: str) -> None:
    """Tag the run ``supplier:<code>``, however it was started (CLI, deployment, schedule)."""
    tag_current_run(f"supplier:{code}")


def _publish(code: str, entry: dict[str, object], validation: FileValidation | None) -> None:
    """Artifacts keyed per supplier, so that each new file adds a version to its history.

    Every file gets a summary; a validated one also the failures per rule; one with rejected
    rows also a link to its error file.
    """
    key = f"catalog-{code}"
    title = f"#{entry['id']} {entry['file']}: {str(entry['status']).replace('_', ' ')}"
    lines = [
        f"### {title}",
        f"Supplier `{code}`, source {entry['source']}, sha256 `{entry['sha256']}`.",
        "",
        "| rows | valid | invalid | inserted | updated | retired |",
        "|---|---|---|---|---|---|",
        f"| {entry['rows_total']} | {entry['rows_valid']} | {entry['rows_invalid']} "
        f"| {entry['rows_inserted']} | {entry['rows_updated']} | {entry['rows_retired']} |",
    ]
    if entry.get("message"):
        lines += ["", f"**{entry['message']}**"]
    if entry.get("error_file"):
        lines += ["", f"Error file: {file_link(entry['error_file'])}"]
    if entry.get("timings_s"):
        steps = ", ".join(f"{k} {v:.2f} s" for k, v in entry["timings_s"].items())  # type: ignore[union-attr]
        lines += ["", f"Steps: {steps}."]
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines), description=title)
    emit_file_event(code, entry)
    if validation is not None:
        rules = [
            {"rule": r["rule"], "column": r["column"] or "", "failures": r["failures"]}
            for r in validation.summary()["rules"]  # type: ignore[union-attr]
        ]
        create_table_artifact(
            key=key,
            table=rules or [{"rule": "(none failed)", "column": "", "failures": 0}],
            description=f"{title}: failures per rule",
        )
    if entry.get("error_file"):
        error_file = Path(str(entry["error_file"]))
        create_link_artifact(
            key=f"{key}-error-file",
            link=error_file.as_uri(),
            link_text=error_file.name,
            description=f"{title}: the error file for the supplier",
        )
