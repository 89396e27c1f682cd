"""Pushing to retailers: ``supplyline fulfillment push|deliveries|redeliver``, a connector's
webhook, and the retailer sandbox.

Exit codes: 0 done; 3 refused (the message says why); 1 a push that left deliveries to retry
or failed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from models.db import session_scope
from models.retailer_push import DELIVERY_STATUSES
from supplyline.errors import RelationshipError
from tasks.audit import default_actor

if TYPE_CHECKING:
    from sandbox.retailer_webhook import RetailerWebhookSandbox

EXIT_REFUSED = 3

console = Console()
err_console = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register_push_commands(
    fulfillment_app: typer.Typer, connector_app: typer.Typer, sandbox_app: typer.Typer
) -> None:
    """Add these commands to ``supplyline fulfillment``, ``connector`` and ``sandbox``."""
    fulfillment_app.add_typer(push_app)
    connector_app.command("webhook")(connector_webhook)
    sandbox_app.command("retailer")(sandbox_retailer)


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except (RelationshipError, ValueError) as exc:
        err_console.print(f"[red]refused:[/red] {exc}", markup=True, soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from exc


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# --- pushing to retailers ----------------------------------------------------------------------

push_app = typer.Typer()


@push_app.command("push")
def fulfillment_push(
    batch_size: Annotated[
        int | None, typer.Option(help="Events per batch (default: SUPPLYLINE_PUSH_BATCH_SIZE).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Push PO events to retailers now (retailer-push flow): webhooks and SFTP status files.
    Exit 1 if deliveries wait for a retry, failed, or were left for the next run."""
    from flows.retailer_push import retailer_push

    summary = retailer_push(batch_size=batch_size)
    if as_json:
        _print_json(summary)
    else:
        console.print(
            f"events planned: {summary['events_planned']} ({summary['deliveries_planned']} "
            f"deliveries, {summary['events_without_destination']} with no destination); "
            f"delivered {summary['delivered']}, to retry {summary['retrying']}, failed "
            f"{summary['failed']}, still pending {summary['pending']}",
            soft_wrap=True,
        )
        for problem in summary["problems"]:
            console.print(f"  - {problem}", markup=False, soft_wrap=True)
        for code in summary["connectors_paused"]:
            console.print(f"  - {code}: more is due; the next run goes on", markup=False)
    if any(summary[k] for k in ("retrying", "failed", "connectors_paused", "connectors_broken")):
        raise typer.Exit(1)


@push_app.command("deliveries")
def fulfillment_deliveries(
    connector: Annotated[str | None, typer.Option(help="Only this connector's.")] = None,
    status: Annotated[
        str | None, typer.Option(help=f"Only these: {', '.join(DELIVERY_STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The delivery log: each event per destination, its tries and the last answer."""
    from tasks.retailer_push import delivery_log

    with _refusals(), session_scope() as session:
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValueError(f"status {status!r} is not one of: {', '.join(DELIVERY_STATUSES)}")
        rows = delivery_log(session, connector_code=connector, status=status, limit=limit)
    if as_json:
        _print_json(rows)
        return
    table = Table("event", "type", "connector", "channel", "PO", "status", "tries", "last answer")
    for row in rows:
        table.add_row(
            row["event_id"],
            row["type"],
            row["connector"],
            row["channel"],
            row["po_number"],
            row["status"],
            str(row["attempts"]),
            row["last_error"] or (str(row["last_status_code"] or "")),
        )
    console.print(table)


@push_app.command("redeliver")
def fulfillment_redeliver(
    events: Annotated[
        list[str] | None, typer.Argument(help="Event ids (evt_42 or 42); none: every failed one.")
    ] = None,
    connector: Annotated[str | None, typer.Option(help="Only this connector's.")] = None,
) -> None:
    """Give failed deliveries a new round of tries (the next push sends them)."""
    from tasks.retailer_events import EVENT_ID_PREFIX
    from tasks.retailer_push import redeliver

    with _refusals(), session_scope(immediate=True) as session:
        ids = None
        if events:
            try:
                ids = [int(e.strip().removeprefix(EVENT_ID_PREFIX)) for e in events]
            except ValueError as exc:
                raise ValueError(
                    f"event ids look like {EVENT_ID_PREFIX}42 (see supplyline fulfillment "
                    f"deliveries --status failed): {exc}"
                ) from exc
        count = redeliver(session, connector_code=connector, event_ids=ids)
    console.print(f"{count} failed deliveries go out again with the next push")


# --- a connector's webhook ---------------------------------------------------------------------


def connector_webhook(
    code: Annotated[str, typer.Argument(help="A retailer's connector.")],
    url: Annotated[str | None, typer.Option(help="Where its PO events are POSTed.")] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the signing secret agreed with it."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds a delivery may take.")] = 10,
    remove: Annotated[bool, typer.Option("--remove", help="Stop sending it events.")] = False,
    actor: Annotated[
        str | None, typer.Option(help="Who acts, for the audit trail (default: SUPPLYLINE_ACTOR).")
    ] = None,
) -> None:
    """Send the connector's PO events to a webhook: saves the block webhook-CODE (URL and
    signing secret, a SecretStr) and records the URL on the connector. The secret is read from
    the environment and never printed."""
    from blocks.retailer_webhook import RetailerWebhook
    from tasks.connectors import get_connector, webhook_block_name
    from tasks.retailer_push import set_connector_webhook

    with _refusals():
        with session_scope() as session:
            found = get_connector(session, code)
        name = webhook_block_name(found.code)
        if remove:
            if url or secret_env:
                raise ValueError("give --remove alone, or --url and --secret-env")
            with session_scope(immediate=True) as session:
                set_connector_webhook(session, found.code, None, actor=actor or default_actor())
            console.print(f"connector {found.code}: no webhook; its pending deliveries fail")
            return
        if not (url and secret_env):
            raise ValueError("give --url and --secret-env (or --remove)")
        secret = os.environ.get(secret_env)
        if not secret:
            raise ValueError(f"environment variable {secret_env} is not set")
        if len(secret) < 16:
            raise ValueError(
                f"the secret in {secret_env} is too short to sign with: use at least 16 "
                f"characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        RetailerWebhook(url=url, signing_secret=secret, timeout_seconds=timeout).save(
            name, overwrite=True
        )
        with session_scope(immediate=True) as session:
            set_connector_webhook(session, found.code, url, actor=actor or default_actor())
    console.print(
        f"saved block [bold]{name}[/bold]: connector {found.code}'s PO events go to {url}, "
        f"signed with the secret from {secret_env}",
        soft_wrap=True,
    )


# --- the retailer sandbox ----------------------------------------------------------------------


def sandbox_retailer(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8091,
    secret_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the signing secret.")
    ] = None,
    down: Annotated[
        bool, typer.Option("--down", help="Start down: answer every event 503.")
    ] = False,
) -> None:
    """Run the retailer sandbox (a webhook receiver that checks signatures) until Ctrl-C."""
    from sandbox.retailer_webhook import RetailerWebhookSandbox

    secret = os.environ.get(secret_env) if secret_env else None
    if secret_env and not secret:
        err_console.print(f"[red]refused:[/red] environment variable {secret_env} is not set")
        raise typer.Exit(EXIT_REFUSED)
    sandbox = RetailerWebhookSandbox(port=port, **({"secret": secret} if secret else {}))
    with sandbox:
        if down:
            sandbox.go_down(503)
        console.print(f"retailer sandbox: webhook at {sandbox.url}", soft_wrap=True)
        if not secret:
            console.print(
                f"  signing secret (made for this run): {sandbox.secret}",
                markup=False,
                soft_wrap=True,
            )
        console.print(
            '  GET /_sandbox/events: what it received; POST /_sandbox/down {"status": 503} or '
            '{"drop": true}, POST /_sandbox/up; Ctrl-C stops it',
            markup=False,
            soft_wrap=True,
        )
        _wait_for_interrupt()


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


# --- the demo's notifications part -------------------------------------------------------------


def demo_webhook(connector: str, receiver: RetailerWebhookSandbox) -> None:
    """Point the connector's webhook at the demo's receiver (the retailer sandbox); failed
    deliveries are retried on the next push, not half a minute later."""
    from blocks.retailer_webhook import RetailerWebhook
    from supplyline.settings import get_settings
    from tasks.connectors import webhook_block_name
    from tasks.retailer_push import set_connector_webhook

    os.environ["SUPPLYLINE_PUSH_RETRY_DELAY_SECONDS"] = "0"
    get_settings.cache_clear()
    RetailerWebhook(url=receiver.url, signing_secret=receiver.secret).save(
        webhook_block_name(connector), overwrite=True
    )
    with session_scope(immediate=True) as session:
        set_connector_webhook(session, connector, receiver.url, actor="demo")
    console.print(
        f"Its webhook receiver (the retailer sandbox) is {receiver.url}: every change to its "
        f"orders is POSTed there, signed with a secret kept in the block "
        f"{webhook_block_name(connector)}.",
        soft_wrap=True,
    )


def demo_notifications(retailer_code: str, receiver: RetailerWebhookSandbox) -> bool:
    """What the retailer's receiver holds: every PO event once, signed, in order; a forged
    event is refused. Returns whether everything went as it should."""
    import httpx

    from blocks.retailer_webhook import EVENT_ID_HEADER, SIGNATURE_HEADER
    from flows.retailer_push import retailer_push

    console.rule(f"[bold]Notifications: {retailer_code} hears what became of its orders")
    left = retailer_push()
    events = receiver.events()
    console.print(
        f"{retailer_code}'s receiver holds {len(events)} event(s), each once "
        f"({receiver.stats.answered_down} refused while it was down were sent again; "
        f"{left['pending']} still to send):",
        soft_wrap=True,
    )
    for event in events:
        body = event.body
        line = (
            f"  {event.event_id} {event.event_type}: {body['po_number']} of order "
            f"{body['order_id']} is {body['state']}"
        )
        if event.event_type == "po.shipment":
            data = body["data"]
            line += f" (tracking {data['carrier']} {data['tracking_number']})"
        console.print(line, markup=False, soft_wrap=True)
    forged = json.dumps({"id": "evt_999999", "type": "po.shipment"}).encode()
    with httpx.Client(timeout=10) as client:
        answer = client.post(
            receiver.url,
            content=forged,
            headers={SIGNATURE_HEADER: "sha256=" + "0" * 64, EVENT_ID_HEADER: "evt_999999"},
        )
    console.print(f"A forged event (bad signature) is refused: HTTP {answer.status_code}.")
    console.print(
        "Look further: supplyline fulfillment deliveries (with SUPPLYLINE_HOME set as above)."
    )
    types = {event.event_type for event in events}
    return (
        left["pending"] == 0
        and {"po.state", "po.acknowledgement", "po.shipment", "po.delivery"} <= types
        and receiver.stats.answered_down > 0
        and receiver.stats.duplicates == 0
        and answer.status_code == 401
    )
