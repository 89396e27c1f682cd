"""The ``supplyline`` commands for retailers and their relationships: supplier ordering rules,
retailers, connections, credentials, connectors, lookups and the audit trail.

Exit codes: 0 done; 3 refused (a bad value, something missing, no DISCONNECT typed); 4 refused
because the connection's state does not allow it (someone else may just have changed it).
A secret is printed once, when it is issued, and never again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from models.db import session_scope
from supplyline.errors import RelationshipError
from tasks.audit import audit_trail, default_actor, snapshot
from tasks.connections import (
    DISCONNECT_CONFIRMATION,
    ConnectionStateError,
    approve_connection,
    disconnect_connection,
    find_connection,
    list_connections,
    ordering_of,
    reject_connection,
    request_connection,
    set_supplier_ordering,
    supplier_by_code,
    update_connection_settings,
    view_connection,
)
from tasks.connectors import add_connector, describe_connector, get_connector, list_connectors
from tasks.connectors import remove_connector as remove_retailer_connector
from tasks.credentials import (
    IssuedCredential,
    create_credential,
    list_credentials,
    parse_duration,
    revoke_credential,
    rotate_credential,
)
from tasks.funds import funds_movements
from tasks.lookups import (
    export_lookup_csv,
    import_lookup_csv,
    list_lookups,
    remove_lookup_value,
    set_lookup_default,
    set_lookup_value,
)
from tasks.retailers import add_retailer, get_retailer, list_retailers, set_all_or_nothing

EXIT_REFUSED = 3
EXIT_STATE_CONFLICT = 4

console = Console()
err_console = Console(stderr=True)

retailer_app = typer.Typer(help="Retailers (customers): add, list, show.", no_args_is_help=True)
connection_app = typer.Typer(
    help="Retailer-supplier connections: list, show, approve, reject, disconnect, settings.",
    no_args_is_help=True,
)
credentials_app = typer.Typer(
    help="API credentials: create, list, rotate, revoke.", no_args_is_help=True
)
connector_app = typer.Typer(
    help="Retailers' order connectors: add, list, show, remove.", no_args_is_help=True
)
lookup_app = typer.Typer(
    help="Retailers' lookups (their values -> the platform's): set, list, import, export.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ActorOption = Annotated[
    str | None,
    typer.Option(
        help="Who makes the change, for the audit trail (default: SUPPLYLINE_ACTOR or OS user)."
    ),
]
ConnectionArgument = Annotated[
    str, typer.Argument(help="The connection: its id, or RETAILER/SUPPLIER (the newest).")
]
SupplierScopeOption = Annotated[
    str | None, typer.Option("--supplier", help="The table for this supplier's connection only.")
]


def register_relationship_commands(app: typer.Typer, supplier_app: typer.Typer) -> None:
    """Add these commands to the ``supplyline`` app (called from supplyline.cli)."""
    supplier_app.command("settings")(supplier_settings)
    app.command("connect")(connect)
    app.command("audit")(audit)
    app.add_typer(retailer_app, name="retailer")
    app.add_typer(connection_app, name="connection")
    app.add_typer(credentials_app, name="credentials")
    app.add_typer(connector_app, name="connector")
    app.add_typer(lookup_app, name="lookup")


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn a refused change into its message and an exit code; nothing was changed."""
    try:
        yield
    except ConnectionStateError as exc:
        err_console.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(EXIT_STATE_CONFLICT) from exc
    except RelationshipError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from exc


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _actor(actor: str | None) -> str:
    return actor or default_actor()


# --- suppliers' ordering rules ---------------------------------------------------------------


def supplier_settings(
    code: Annotated[str, typer.Argument(help="Supplier code.")],
    ordering: Annotated[
        str | None,
        typer.Option(help="instant: requests are active at once; review: the supplier approves."),
    ] = None,
    terms_url: Annotated[
        str | None, typer.Option(help="Terms of service a connection request must accept.")
    ] = None,
    no_terms: Annotated[bool, typer.Option("--no-terms", help="Publish no terms.")] = False,
    order_connector: Annotated[
        str | None, typer.Option(help="How POs reach the supplier: rest_api or sftp.")
    ] = None,
    order_connector_settings: Annotated[
        str | None, typer.Option(help="The order connector's settings, as a JSON object.")
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show or change a supplier's ordering rules (no option: show them)."""
    with _refusals(), session_scope() as session:
        if terms_url is not None and no_terms:
            raise RelationshipError("give --terms-url or --no-terms, not both")
        changes = (ordering, terms_url, order_connector, order_connector_settings)
        if any(value is not None for value in changes) or no_terms:
            rules = set_supplier_ordering(
                session,
                code,
                ordering_mode=ordering,
                terms_url=terms_url,
                clear_terms=no_terms,
                order_connector_type=order_connector,
                order_connector_settings=_json_object(order_connector_settings),
                actor=_actor(actor),
            )
        else:
            rules = ordering_of(session, supplier_by_code(session, code))
        shown = {"supplier": supplier_by_code(session, code).code} | snapshot(
            rules, exclude={"supplier_id"}
        )
    if as_json:
        _print_json(shown)
        return
    console.print(f"[bold]{shown['supplier']}[/bold] ordering: {shown['ordering_mode']}")
    console.print(f"  terms of service: {shown['terms_url'] or '(none)'}", soft_wrap=True)
    connector = shown["order_connector_type"] or "(not set)"
    console.print(f"  order connector: {connector} {shown['order_connector_settings'] or ''}")


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RelationshipError(f"--order-connector-settings is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise RelationshipError('--order-connector-settings must be a JSON object: {"key": ...}')
    return value


# --- retailers -------------------------------------------------------------------------------


@retailer_app.command("add")
def retailer_add(
    code: Annotated[str, typer.Argument(help="Short code: letters, digits, dashes (shopco).")],
    name: Annotated[str, typer.Option(help="The retailer's name.")],
    registration_number: Annotated[
        str | None, typer.Option(help="Your own id for this customer.")
    ] = None,
    all_or_nothing: Annotated[
        bool,
        typer.Option(
            "--all-or-nothing/--partial",
            help="Reject a whole order when one of its lines cannot be routed (default: partial).",
        ),
    ] = False,
    actor: ActorOption = None,
) -> None:
    """Register a retailer (a customer)."""
    with _refusals(), session_scope() as session:
        retailer = add_retailer(
            session,
            code,
            name,
            registration_number=registration_number,
            all_or_nothing=all_or_nothing,
            actor=_actor(actor),
        )
        console.print(f"retailer [bold]{retailer.code}[/bold] ({retailer.name}) added")


@retailer_app.command("settings")
def retailer_settings(
    code: Annotated[str, typer.Argument(help="Retailer code.")],
    all_or_nothing: Annotated[
        bool,
        typer.Option(
            "--all-or-nothing/--partial",
            help="Reject a whole order when one of its lines cannot be routed, or route the rest.",
        ),
    ],
    actor: ActorOption = None,
) -> None:
    """Change a retailer's order settings."""
    with _refusals(), session_scope(immediate=True) as session:
        retailer = set_all_or_nothing(session, code, all_or_nothing, actor=_actor(actor))
        mode = "all or nothing" if retailer.all_or_nothing else "partial (the rest goes on)"
        console.print(f"retailer [bold]{retailer.code}[/bold]: orders are {mode}")


@retailer_app.command("list")
def retailer_list(as_json: JsonOption = False) -> None:
    """Every retailer."""
    with session_scope() as session:
        rows = [snapshot(r, exclude={"id"}) for r in list_retailers(session)]
    if as_json:
        _print_json(rows)
        return
    table = Table("code", "name", "registration number", "created (UTC)")
    for row in rows:
        table.add_row(
            row["code"], row["name"], row["registration_number"] or "", _when(row["created_at"])
        )
    console.print(table)


@retailer_app.command("show")
def retailer_show(
    code: Annotated[str, typer.Argument(help="Retailer code.")], as_json: JsonOption = False
) -> None:
    """A retailer with its connections, connectors and credentials."""
    with _refusals(), session_scope() as session:
        retailer = get_retailer(session, code)
        shown = snapshot(retailer, exclude={"id"}) | {
            "connections": [
                v.as_dict() for v in list_connections(session, retailer_code=retailer.code)
            ],
            "connectors": [
                describe_connector(session, c)
                for c in list_connectors(session, retailer_code=retailer.code)
            ],
            "credentials": [
                v.as_dict() for v in list_credentials(session, retailer_code=retailer.code)
            ],
        }
    if as_json:
        _print_json(shown)
        return
    registration = shown["registration_number"] or "no registration number"
    console.print(f"[bold]{shown['code']}[/bold]  {shown['name']}  ({registration})")
    if shown["connections"]:
        console.print(_connections_table(shown["connections"]))
    for connector in shown["connectors"]:
        console.print(f"  connector {connector['code']}: {connector['type']}")
    for credential in shown["credentials"]:
        console.print(f"  credential {credential['client_id']}: {credential['status']}")


# --- connections -----------------------------------------------------------------------------


def connect(
    retailer: Annotated[str, typer.Argument(help="Retailer code.")],
    supplier: Annotated[str, typer.Argument(help="Supplier code.")],
    accept_terms: Annotated[
        str | None, typer.Option(help="The supplier's terms-of-service URL, accepted as it is.")
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="The retailer's account at the supplier (linked account).")
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask to connect a retailer to a supplier: active at once or pending the supplier's review."""
    with _refusals(), session_scope() as session:
        connection = request_connection(
            session,
            retailer,
            supplier,
            accept_terms=accept_terms,
            account_ref=account,
            actor=_actor(actor),
        )
        shown = view_connection(session, connection).as_dict()
    if as_json:
        _print_json(shown)
        return
    waiting = " (waiting for the supplier to approve)" if shown["status"] == "pending" else ""
    console.print(
        f"connection #{shown['id']} {shown['retailer']} -> {shown['supplier']}: "
        f"{shown['status']}{waiting}"
    )


@connection_app.command("list")
def connection_list(
    retailer: Annotated[str | None, typer.Option(help="Only this retailer's.")] = None,
    supplier: Annotated[str | None, typer.Option(help="Only this supplier's.")] = None,
    status: Annotated[
        str | None, typer.Option(help="pending, active, rejected or disconnected.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Connections, oldest first."""
    with _refusals(), session_scope() as session:
        rows = [
            v.as_dict()
            for v in list_connections(
                session, retailer_code=retailer, supplier_code=supplier, status=status
            )
        ]
    if as_json:
        _print_json(rows)
    else:
        console.print(_connections_table(rows))


@connection_app.command("show")
def connection_show(connection: ConnectionArgument, as_json: JsonOption = False) -> None:
    """A connection: status, linked account, terms accepted, settings, funds and their ledger."""
    with _refusals(), session_scope() as session:
        found = find_connection(session, connection)
        shown = view_connection(session, found).as_dict() | {
            "funds_movements": [
                snapshot(m, exclude={"id", "connection_id"})
                for m in funds_movements(session, found.id)  # type: ignore[arg-type]
            ]
        }
    if as_json:
        _print_json(shown)
        return
    console.print(
        f"[bold]connection #{shown['id']}[/bold] {shown['retailer']} -> {shown['supplier']}: "
        f"{shown['status']}"
    )
    console.print(f"  linked account: {shown['linked_account'] or '(none)'}")
    if shown["terms_url_accepted"]:
        console.print(
            f"  terms accepted: {shown['terms_url_accepted']} at "
            f"{_when(shown['terms_accepted_at'])}",
            soft_wrap=True,
        )
    console.print(
        f"  auto sync: {_on_off(shown['auto_sync'])}   auto purchase: "
        f"{_on_off(shown['auto_purchase'])}   payment: {shown['payment_method'] or '(not set)'}"
    )
    console.print(
        f"  available funds: {shown['available_funds'] or '(not set)'}"
        + (f" ({shown['funds_source']})" if shown["funds_source"] else "")
    )
    for movement in shown["funds_movements"]:
        console.print(
            f"    {_when(movement['created_at'])}  {movement['kind']:<8} "
            f"{movement['amount']:>12}  {movement['reference']}"
        )


@connection_app.command("approve")
def connection_approve(connection: ConnectionArgument, actor: ActorOption = None) -> None:
    """Approve a pending request: the connection becomes active."""
    with _refusals(), session_scope() as session:
        found = approve_connection(
            session, find_connection(session, connection).id, actor=_actor(actor)
        )
        console.print(f"connection #{found.id}: active")


@connection_app.command("reject")
def connection_reject(connection: ConnectionArgument, actor: ActorOption = None) -> None:
    """Reject a pending request."""
    with _refusals(), session_scope() as session:
        found = reject_connection(
            session, find_connection(session, connection).id, actor=_actor(actor)
        )
        console.print(f"connection #{found.id}: rejected")


@connection_app.command("disconnect")
def connection_disconnect(
    connection: ConnectionArgument,
    confirm: Annotated[
        str | None,
        typer.Option(help=f"Type {DISCONNECT_CONFIRMATION} here in scripts (else you are asked)."),
    ] = None,
    actor: ActorOption = None,
) -> None:
    """Disconnect: no new PO goes out from now on (POs already sent keep their updates).
    Deliberate: the word DISCONNECT must be typed. Reconnecting is a new request."""
    with _refusals():
        with session_scope() as session:
            found = find_connection(session, connection)
            described = view_connection(session, found).as_dict()
        if confirm is None:
            confirm = typer.prompt(
                f"Disconnect {described['retailer']} from {described['supplier']} "
                f"(connection #{found.id})? No new PO will go out. "
                f"Type {DISCONNECT_CONFIRMATION} to confirm",
                default="",
                show_default=False,
            )
        with session_scope() as session:
            disconnect_connection(
                session,
                found.id,  # type: ignore[arg-type]
                confirmation=confirm,
                actor=_actor(actor),
            )
    console.print(f"connection #{found.id}: disconnected")


@connection_app.command("settings")
def connection_settings(
    connection: ConnectionArgument,
    auto_sync: Annotated[
        bool | None,
        typer.Option("--auto-sync/--no-auto-sync", help="Send new POs automatically."),
    ] = None,
    auto_purchase: Annotated[
        bool | None,
        typer.Option(
            "--auto-purchase/--no-auto-purchase",
            help="Also purchase sent POs (ach or line_of_credit, while the funds cover them).",
        ),
    ] = None,
    payment: Annotated[str | None, typer.Option(help="ach, line_of_credit or credit_card.")] = None,
    funds: Annotated[
        str | None,
        typer.Option(help="Available funds, or the credit left, e.g. 1500.00 (sets it)."),
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="The retailer's account at the supplier.")
    ] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a connection's settings."""
    with _refusals(), session_scope() as session:
        found = update_connection_settings(
            session,
            find_connection(session, connection).id,  # type: ignore[arg-type]
            auto_sync=auto_sync,
            auto_purchase=auto_purchase,
            payment_method=payment,
            funds=funds,
            account_ref=account,
            actor=_actor(actor),
        )
        shown = view_connection(session, found).as_dict()
    if as_json:
        _print_json(shown)
        return
    console.print(
        f"connection #{shown['id']}: auto sync {_on_off(shown['auto_sync'])}, auto purchase "
        f"{_on_off(shown['auto_purchase'])}, payment {shown['payment_method'] or '(not set)'}, "
        f"available funds {shown['available_funds'] or '(not set)'}"
    )
    if shown["auto_purchase"] and shown["payment_method"] == "credit_card":
        console.print("  note: with credit_card every PO waits for a manual purchase")


def _connections_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        "id",
        "retailer",
        "supplier",
        "status",
        "linked account",
        "sync",
        "purchase",
        "payment",
        "funds",
    )
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["retailer"],
            row["supplier"],
            row["status"],
            row["linked_account"] or "",
            _on_off(row["auto_sync"]),
            _on_off(row["auto_purchase"]),
            row["payment_method"] or "",
            row["available_funds"] or "",
        )
    return table


# --- credentials -----------------------------------------------------------------------------


@credentials_app.command("create")
def credentials_create(
    retailer: Annotated[str | None, typer.Option(help="For this retailer.")] = None,
    supplier: Annotated[str | None, typer.Option(help="For this supplier.")] = None,
    name: Annotated[str | None, typer.Option(help="A label to tell credentials apart.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a client ID and a secret. The secret is shown this once: store it now."""
    with _refusals(), session_scope() as session:
        issued = create_credential(
            session,
            retailer_code=retailer,
            supplier_code=supplier,
            label=name,
            actor=_actor(actor),
        )
    _print_issued(issued, as_json)


@credentials_app.command("list")
def credentials_list(
    retailer: Annotated[str | None, typer.Option(help="Only this retailer's.")] = None,
    supplier: Annotated[str | None, typer.Option(help="Only this supplier's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Credentials: client ID, owner, state, last use. Never a secret."""
    with _refusals(), session_scope() as session:
        rows = [
            v.as_dict()
            for v in list_credentials(session, retailer_code=retailer, supplier_code=supplier)
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table(
        "client id", "label", "owner", "status", "created", "last used", "old secret until"
    )
    for row in rows:
        table.add_row(
            row["client_id"],
            row["label"] or "",
            row["owner"],
            row["status"],
            _when(row["created_at"]),
            _when(row["last_used_at"]),
            _when(row["previous_valid_until"]),
        )
    console.print(table)


@credentials_app.command("rotate")
def credentials_rotate(
    client_id: Annotated[str, typer.Argument(help="The credential's client ID.")],
    grace: Annotated[
        str, typer.Option(help="How long the old secret keeps working: 0s, 30m, 24h, 7d.")
    ] = "24h",
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a new secret for the same client ID; the old one works for the grace period."""
    with _refusals(), session_scope() as session:
        issued = rotate_credential(
            session, client_id, grace=parse_duration(grace), actor=_actor(actor)
        )
    _print_issued(issued, as_json, note=f"the previous secret keeps working for {grace}")


@credentials_app.command("revoke")
def credentials_revoke(
    client_id: Annotated[str, typer.Argument(help="The credential's client ID.")],
    actor: ActorOption = None,
) -> None:
    """Revoke a credential: every secret of it stops working at once."""
    with _refusals(), session_scope() as session:
        revoke_credential(session, client_id, actor=_actor(actor))
    console.print(f"credential {client_id}: revoked")


def _print_issued(issued: IssuedCredential, as_json: bool, note: str | None = None) -> None:
    if as_json:
        _print_json({"client_id": issued.credential.client_id, "secret": issued.secret})
        return
    console.print(f"client id: {issued.credential.client_id}", highlight=False)
    console.print(f"secret:    {issued.secret}", highlight=False, markup=False, soft_wrap=True)
    console.print("[yellow]The secret is shown only this once: store it now.[/yellow]")
    if note:
        console.print(note)


# --- connectors ------------------------------------------------------------------------------


@connector_app.command("add")
def connector_add(
    retailer: Annotated[str, typer.Option(help="Retailer code.")],
    connector_type: Annotated[
        str, typer.Option("--type", help="native_api, siteflow_api or sftp.")
    ],
    name: Annotated[
        str | None, typer.Option(help="The connector's code (default: RETAILER-TYPE).")
    ] = None,
    orders_folder: Annotated[str | None, typer.Option(help="sftp: where order files go.")] = None,
    status_folder: Annotated[str | None, typer.Option(help="sftp: where status files go.")] = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a connector. An API connector prints its API key, secret (once) and endpoints."""
    with _refusals(), session_scope() as session:
        added = add_connector(
            session,
            retailer,
            connector_type,
            code=name,
            orders_folder=orders_folder,
            status_folder=status_folder,
            actor=_actor(actor),
        )
        shown = describe_connector(session, added.connector)
    if as_json:
        secret = {"api_secret": added.credential.secret} if added.credential else {}
        _print_json(shown | secret)
        return
    _print_connector(shown)
    if added.credential:
        console.print(f"  api secret: {added.credential.secret}", markup=False, soft_wrap=True)
        console.print("[yellow]The secret is shown only this once: store it now.[/yellow]")


@connector_app.command("list")
def connector_list(
    retailer: Annotated[str | None, typer.Option(help="Only this retailer's.")] = None,
    removed: Annotated[bool, typer.Option("--removed", help="Include removed ones.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Connectors."""
    with _refusals(), session_scope() as session:
        rows = [
            describe_connector(session, c)
            for c in list_connectors(session, retailer_code=retailer, removed_too=removed)
        ]
    if as_json:
        _print_json(rows)
        return
    table = Table("code", "retailer", "type", "status", "api key")
    for row in rows:
        table.add_row(
            row["code"], row["retailer"], row["type"], row["status"], ", ".join(row["api_keys"])
        )
    console.print(table)


@connector_app.command("show")
def connector_show(
    code: Annotated[str, typer.Argument(help="Connector code.")], as_json: JsonOption = False
) -> None:
    """A connector: its endpoints or folders, and its API key (never the secret)."""
    with _refusals(), session_scope() as session:
        shown = describe_connector(session, get_connector(session, code, removed_too=True))
    if as_json:
        _print_json(shown)
    else:
        _print_connector(shown)


@connector_app.command("remove")
def connector_remove(
    code: Annotated[str, typer.Argument(help="Connector code.")], actor: ActorOption = None
) -> None:
    """Remove a connector: its API keys stop working at once."""
    with _refusals(), session_scope() as session:
        remove_retailer_connector(session, code, actor=_actor(actor))
    console.print(f"connector {code}: removed, its API keys revoked")


def _print_connector(shown: dict[str, Any]) -> None:
    console.print(
        f"[bold]{shown['code']}[/bold] ({shown['type']}) for retailer {shown['retailer']}: "
        f"{shown['status']}"
    )
    for key in shown["api_keys"]:
        console.print(f"  api key: {key}")
    for name, endpoint in shown["endpoints"].items():
        console.print(f"  {name}: {endpoint['method']} {endpoint['url']}", soft_wrap=True)
    for folder in ("orders_folder", "status_folder"):
        if folder in shown:
            console.print(f"  {folder.replace('_', ' ')}: {shown[folder]}", soft_wrap=True)


# --- lookups ---------------------------------------------------------------------------------


@lookup_app.command("set")
def lookup_set(
    retailer: Annotated[str, typer.Argument(help="Retailer code.")],
    table: Annotated[str, typer.Argument(help="sku, shipping_method, or a name of your own.")],
    key: Annotated[str | None, typer.Argument(help="The retailer's value.")] = None,
    value: Annotated[str | None, typer.Argument(help="The platform's value.")] = None,
    default: Annotated[
        str | None, typer.Option(help="The value for keys the table does not hold.")
    ] = None,
    no_default: Annotated[
        bool, typer.Option("--no-default", help="Drop the default: a missing key is an error.")
    ] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Remove KEY.")] = False,
    supplier: SupplierScopeOption = None,
    actor: ActorOption = None,
) -> None:
    """Set KEY to VALUE in a lookup (created if new), set its --default, or --remove KEY."""
    with _refusals(), session_scope() as session:
        who = _actor(actor)
        if default is not None or no_default:
            set_lookup_default(session, retailer, table, default, supplier_code=supplier, actor=who)
        if remove and key is not None:
            remove_lookup_value(session, retailer, table, key, supplier_code=supplier, actor=who)
        elif key is not None and value is not None:
            set_lookup_value(
                session, retailer, table, key, value, supplier_code=supplier, actor=who
            )
        elif default is None and not no_default:
            raise RelationshipError(
                "give KEY VALUE, --default VALUE, --no-default, or KEY --remove"
            )
    console.print(f"lookup {table} of {retailer}: saved")


@lookup_app.command("list")
def lookup_list(
    retailer: Annotated[str, typer.Argument(help="Retailer code.")],
    table: Annotated[str | None, typer.Argument(help="Only this table.")] = None,
    supplier: SupplierScopeOption = None,
    as_json: JsonOption = False,
) -> None:
    """A retailer's lookups, their defaults and entries."""
    with _refusals(), session_scope() as session:
        views = [
            v.as_dict()
            for v in list_lookups(session, retailer, table_name=table, supplier_code=supplier)
        ]
    if as_json:
        _print_json(views)
        return
    for view in views:
        scope = f" (supplier {view['supplier']})" if view["supplier"] else ""
        grid = Table("key", "value", title=f"{view['table']}{scope}", title_justify="left")
        for key, value in view["entries"].items():
            grid.add_row(key, value)
        if view["default"] is not None:
            grid.add_row("[italic](default)[/italic]", view["default"])
        console.print(grid)


@lookup_app.command("import")
def lookup_import(
    retailer: Annotated[str, typer.Argument(help="Retailer code.")],
    table: Annotated[str, typer.Argument(help="The lookup table.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="key,value CSV.")],
    supplier: SupplierScopeOption = None,
    actor: ActorOption = None,
) -> None:
    """Add or change entries from a CSV file with the header key,value; all or nothing."""
    with _refusals(), session_scope() as session:
        counts = import_lookup_csv(
            session, retailer, table, file, supplier_code=supplier, actor=_actor(actor)
        )
    console.print(
        f"lookup {table} of {retailer}: {counts.added} added, {counts.changed} changed, "
        f"{counts.unchanged} unchanged"
    )


@lookup_app.command("export")
def lookup_export(
    retailer: Annotated[str, typer.Argument(help="Retailer code.")],
    table: Annotated[str, typer.Argument(help="The lookup table.")],
    file: Annotated[Path, typer.Argument(dir_okay=False, help="Where to write the CSV.")],
    supplier: SupplierScopeOption = None,
) -> None:
    """Write a lookup's entries to a key,value CSV file (what import reads)."""
    with _refusals(), session_scope() as session:
        count = export_lookup_csv(session, retailer, table, file, supplier_code=supplier)
    console.print(f"lookup {table} of {retailer}: {count} entries written to {file}")


# --- audit -----------------------------------------------------------------------------------


def audit(
    limit: Annotated[int, typer.Option(help="How many of the newest events.")] = 50,
    entity: Annotated[
        str | None,
        typer.Option(help="Only events of: connection, credential, connector, lookup, ..."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The audit trail, newest first: when, who, what, before and after."""
    with session_scope() as session:
        rows = [snapshot(e) for e in audit_trail(session, limit=limit, entity_type=entity)]
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        console.print(
            f"#{row['id']}  {_when(row['at'])}  {row['actor']}  [bold]{row['action']}[/bold]  "
            f"{row['entity_type']} #{row['entity_id']}",
            highlight=False,
        )
        for side in ("before", "after"):
            if row[side] is not None:
                console.print(f"    {side}: {_compact(row[side])}", markup=False, soft_wrap=True)


def _compact(value: dict[str, Any] | None) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)


def _when(value: str | None) -> str:
    return str(value)[:16].replace("T", " ") if value else ""


def _on_off(value: bool) -> str:
    return "on" if value else "off"
