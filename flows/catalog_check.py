"""Flow: check catalog files against a contract and publish what failed, with no database.

The catalog ingest flow builds on the same task; this one loads nothing, so engineers can run
a supplier's files through Prefect (and see the artifacts) before the supplier goes live.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import State

from supplyline.settings import get_settings
from tasks.check import check_catalog_file_task
from tasks.flow_runs import first_and_count, parameter, run_name


def _run_name() -> str:
    subject = Path(str(parameter("mapping") or parameter("contract") or "canonical")).stem
    return run_name("check", subject, first_and_count(parameter("files") or []))  # type: ignore[arg-type]


@flow(name="catalog-check", flow_run_name=_run_name, log_prints=False)
def catalog_check(
    files: list[Path],
    contract: str | None = None,
    mapping: str | None = None,
) -> list[dict[str, object]]:
    """Check each file in its own task run; a failing file never stops the others."""
    logger = get_run_logger()
    errors_dir = get_settings().errors_dir / "check"
    futures = [
        check_catalog_file_task.submit(
            Path(f), contract=contract, mapping=mapping, errors_dir=errors_dir
        )
        for f in files
    ]
    summaries: list[dict[str, object]] = []
    for file, future in zip(files, futures, strict=True):
        future.wait()
        state: State = future.state
        if state.is_completed():
            summaries.append(future.result())
        else:
            logger.error("checking %s failed: %s", Path(file).name, state.message)
            summaries.append({"file": Path(file).name, "status": "failed", "error": state.message})
    _publish(summaries, mapping)
    return summaries


def _publish(summaries: list[dict[str, object]], mapping: str | None) -> None:
    key = f"catalog-check-{mapping or 'canonical'}".lower().replace("_", "-")
    rows = [
        {"file": s["file"], "rule": r["rule"], "column": r["column"], "failures": r["failures"]}
        for s in summaries
        for r in s.get("rules", [])  # type: ignore[union-attr]
    ]
    create_table_artifact(
        key=key,
        table=rows or [{"file": "", "rule": "(none)", "column": "", "failures": 0}],
        description="Failures per rule and file",
    )
    lines = ["| file | status | rows | valid | invalid | error file |", "|---|---|---|---|---|---|"]
    for s in summaries:
        counts = " | ".join(str(s.get(k, "")) for k in ("rows_total", "rows_valid", "rows_invalid"))
        lines.append(f"| {s['file']} | {s['status']} | {counts} | {s.get('error_file') or ''} |")
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines))
