"""Markdown for the Prefect UI's artifacts: reports that link to the files they talk about."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def file_link(path: str | Path | None) -> str:
    """A markdown link to a local file (its name as the text), or ``""`` for none."""
    if not path:
        return ""
    resolved = Path(str(path)).resolve()
    return f"[{resolved.name}]({resolved.as_uri()})"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def order_files_report(title: str, entries: Sequence[dict[str, Any]]) -> str:
    """One row per order file: its status, the orders taken and refused, its error file."""
    lines = [
        f"### {title}",
        "",
        "| file | status | new orders | already received | refused orders | rows refused "
        "| error file |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        problem = entry.get("file_error")
        error_file = file_link(entry.get("error_file"))
        lines.append(
            f"| {_cell(entry.get('file_name'))} | {_cell(entry.get('status'))} "
            f"| {len(entry.get('orders_new', []))} | {len(entry.get('orders_again', []))} "
            f"| {len(entry.get('orders_refused', []))} | {entry.get('rows_refused', 0)} "
            f"| {error_file or (_cell(problem) if problem else '')} |"
        )
    return "\n".join(lines)
