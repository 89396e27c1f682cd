"""``supplyline status``: suppliers' feeds and connections' POs at a glance."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from models.db import session_scope
from tasks.feed_health import FeedRules, supplier_feeds
from tasks.po_overview import connection_pos

console = Console()


def _moment(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def status(
    stale_hours: Annotated[
        float | None,
        typer.Option(help="Hours without a file that make a feed stale (default: the setting)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
) -> None:
    """Per supplier the last file, last success and rejection rate; per connection the open POs
    and the oldest unsent one. Exit 1 when a feed is stale or its rejection rate jumped."""
    rules = FeedRules.from_settings(stale_hours)
    with session_scope() as session:
        feeds = supplier_feeds(session, rules, now=datetime.now(UTC))
        connections = connection_pos(session)
    if as_json:
        print(
            json.dumps(
                {
                    "suppliers": [f.as_dict() for f in feeds],
                    "connections": [c.as_dict() for c in connections],
                },
                indent=2,
            )
        )
    else:
        suppliers = Table(
            "supplier",
            "last file",
            "status",
            "received (UTC)",
            "last success (UTC)",
            "rejected: recent",
            "baseline",
            "attention",
            title="Suppliers' catalog feeds",
        )
        for f in feeds:
            attention = [
                f"stale ({f.hours_since_last_file:.0f} h > {f.stale_hours:g} h)" if f.stale else "",
                "rejection jump" if f.rejection_jump else "",
            ]
            suppliers.add_row(
                f.supplier,
                f.last_file or "(none)",
                f.last_file_status or "",
                _moment(f.last_file_at),
                _moment(f.last_success_at),
                f"{_percent(f.recent_rejection_rate)} of {f.recent_files}",
                f"{_percent(f.baseline_rejection_rate)} of {f.baseline_files}",
                ", ".join(a for a in attention if a) or "ok",
            )
        console.print(suppliers)
        pos = Table(
            "retailer",
            "supplier",
            "connection",
            "open POs",
            "oldest unsent",
            "its state",
            "since (UTC)",
            title="POs per connection",
        )
        for c in connections:
            pos.add_row(
                c.retailer,
                c.supplier,
                c.connection_status,
                str(c.open_pos),
                c.oldest_unsent_po or "-",
                c.oldest_unsent_state or "",
                _moment(c.oldest_unsent_at),
            )
        console.print(pos)
    if any(f.stale or f.rejection_jump for f in feeds):
        raise typer.Exit(1)


def register_status_command(app: typer.Typer) -> None:
    """Add ``status`` to the ``supplyline`` app (called from supplyline.cli)."""
    app.command("status")(status)
