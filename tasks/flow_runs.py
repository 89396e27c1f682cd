"""What analysts see of a flow run in the Prefect UI: its name and its tags.

Every Supplyline flow run is named ``<action>-<subject>-<UTC minute>[-<detail>]``, e.g.
``ingest-acme-2026-11-22T10:15`` or ``order-files-shopco-sftp-2026-11-22T10:15-june.csv+2``:
what ran, for whom, when; the detail names the first file or PO when there are some. Runs are
tagged ``supplier:<code>``, ``retailer:<code>`` or ``connector:<code>`` however they started
(CLI, deployment, schedule), so the UI filters them by party.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from prefect.runtime import flow_run

RUN_TIME_FORMAT = "%Y-%m-%dT%H:%M"


def run_name(
    action: str, subject: str | None = None, detail: str | None = None, at: datetime | None = None
) -> str:
    """``<action>-<subject>-<UTC minute>[-<detail>]`` (no subject: ``<action>-<minute>``)."""
    moment = (at or datetime.now(UTC)).astimezone(UTC).strftime(RUN_TIME_FORMAT)
    parts = [action, subject, moment, detail]
    return "-".join(p for p in parts if p)


def first_and_count(items: Sequence[object]) -> str | None:
    """``first`` or ``first+N`` for a list of files or PO numbers (a file by its name)."""
    if not items:
        return None
    first = Path(str(items[0])).name
    return f"{first}+{len(items) - 1}" if len(items) > 1 else first


def parameter(name: str, default: object = None) -> object:
    """A parameter of the current flow run (for run-name functions)."""
    return flow_run.parameters.get(name, default)


def tag_current_run(*tags: str) -> None:
    """Add ``tags`` to the current flow run (a no-op outside one, or when it has them)."""
    from prefect.client.orchestration import get_client

    run_id = flow_run.id
    present = list(flow_run.tags or [])
    missing = [t for t in dict.fromkeys(tags) if t not in present]
    if not run_id or not missing:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(run_id).tags or []
        new = [t for t in missing if t not in current]
        if new:
            client.update_flow_run(run_id, tags=[*current, *new])
