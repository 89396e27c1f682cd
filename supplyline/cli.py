"""The ``supplyline`` command line."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from data_contracts.contract import ContractError, available_contracts, load_contract
from models.db import current_revision, engine_for, ensure_schema, session_scope
from supplyline.cli_fulfillment import fulfillment_app, register_fulfillment_commands
from supplyline.cli_orders import register_order_commands, sandbox_app
from supplyline.cli_relationships import connector_app, register_relationship_commands
from supplyline.cli_retailer_push import register_push_commands
from supplyline.cli_status import register_status_command
from supplyline.settings import get_settings
from tasks.history import history, history_entry
from tasks.suppliers import (
    SupplierError,
    add_supplier,
    get_supplier,
    get_supplier_or_none,
    list_suppliers,
    products_of,
    summarise_supplier,
)

if TYPE_CHECKING:
    from blocks.sftp import SftpServer
    from tasks.check import CheckOutcome

# Great Expectations takes seconds to import: the commands that validate import it themselves.

app = typer.Typer(
    help="Supplyline: supplier catalogs in, validated against data contracts; orders out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(
    help="Catalog files: check, upload, history, error files, products, release.",
    no_args_is_help=True,
)
contract_app = typer.Typer(
    help="Data contracts: list them and the rules they hold.", no_args_is_help=True
)
supplier_app = typer.Typer(
    help="Suppliers: add, list, show, ordering settings.", no_args_is_help=True
)
db_app = typer.Typer(help="Supplyline's database.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(contract_app, name="contract")
app.add_typer(supplier_app, name="supplier")
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)

EXIT_CONFIG_ERROR = 3
PROGRESS_FROM_BYTES = 5 * 1024 * 1024
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
DEMO_SUPPLIER = "acme"
# (sample, the name ACME gives it on its server), in the order ACME sends them.
DEMO_FILES = (
    ("acme_catalog.csv", "acme_catalog.csv"),
    ("acme_catalog_with_errors.csv", "acme_new_products.csv"),
    ("acme_catalog.csv", "acme_catalog_resent.csv"),
)


@catalog_app.command("check")
def catalog_check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The file to check.")],
    contract: Annotated[
        str | None,
        typer.Option(
            help="Contract name or ODCS YAML path (default: the mapping's, or catalog_item)."
        ),
    ] = None,
    mapping: Annotated[
        str | None,
        typer.Option(help="Supplier mapping: a name in data_contracts/mappings or a path."),
    ] = None,
    errors: Annotated[
        Path | None,
        typer.Option(help="Where to write the error file (default: SUPPLYLINE_HOME/errors/check)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate a file with no database and no Prefect server.

    Exit 0: every row is valid; 1: some rows are rejected; 2: the file is rejected as a whole;
    3: the contract or mapping could not be used.
    """
    from tasks.check import check_catalog_file

    try:
        with _stages(file) as on_stage:
            outcome = check_catalog_file(
                file,
                contract=contract,
                mapping=mapping,
                errors_out=errors,
                errors_dir=get_settings().errors_dir / "check",
                on_stage=on_stage,
            )
    except ContractError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_CONFIG_ERROR) from exc
    if as_json:
        print(json.dumps(outcome.summary(), indent=2, ensure_ascii=False))
    else:
        print_outcome(outcome)
    raise typer.Exit(outcome.exit_code)


@contextmanager
def _stages(file: Path):
    """A progress display for files big enough to take more than a moment."""
    if file.stat().st_size < PROGRESS_FROM_BYTES or not err_console.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(f"{file.name}: starting")
        yield lambda stage: progress.update(task, description=f"{file.name}: {stage}")


def print_outcome(outcome: CheckOutcome) -> None:
    summary = outcome.summary()
    status_style = {"accepted": "green", "partially_accepted": "yellow", "rejected": "red"}
    status = str(summary["status"])
    contract = summary["contract"]
    mapping = f", mapping {summary['mapping']}" if summary["mapping"] else ""
    against = f"{contract['name']} {contract['version']}{mapping}"
    console.print(
        f"[bold]{summary['file']}[/bold] against {against}: "
        f"[{status_style[status]}]{status.replace('_', ' ')}[/]"
    )
    for message in summary["file_errors"]:
        console.print(f"  [red]file rejected:[/red] {message}")
    if not summary["file_errors"]:
        console.print(
            f"  rows: {summary['rows_total']:,}   valid: {summary['rows_valid']:,}   "
            f"invalid: {summary['rows_invalid']:,}"
        )
    if summary["rules"]:
        table = Table("rule", "column", "failures", title="Failures by rule", title_justify="left")
        for rule in summary["rules"]:
            table.add_row(rule["rule"], rule["column"] or "", f"{rule['failures']:,}")
        console.print(table)
    if summary["ignored_columns"]:
        console.print(
            f"  columns not in the contract (ignored): {', '.join(summary['ignored_columns'])}"
        )
    if outcome.error_file:
        console.print(f"  error file: {outcome.error_file}", soft_wrap=True)
    console.print(f"  summary:    {outcome.summary_file}", soft_wrap=True)


@contract_app.command("list")
def contract_list() -> None:
    """The contracts Supplyline knows (files named <name>.odcs.yaml in data_contracts/)."""
    table = Table("name", "version", "columns", "file")
    for name, path in available_contracts().items():
        loaded = load_contract(path)
        table.add_row(name, loaded.version, str(len(loaded.columns)), str(path))
    console.print(table)


@contract_app.command("rules")
def contract_rules(name: Annotated[str, typer.Argument(help="Contract name or path.")]) -> None:
    """Every rule of a contract and the Great Expectations expectation that checks it."""
    from data_contracts.suite import compile_contract

    try:
        compiled = compile_contract(load_contract(name))
    except ContractError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_CONFIG_ERROR) from exc
    table = Table(
        "rule",
        "column",
        "kind",
        "expectation",
        title=f"{compiled.contract.name} {compiled.contract.version}",
    )
    for rule in compiled.rules:
        table.add_row(rule.id, rule.column or "", rule.kind, rule.expectation.expectation_type)
    console.print(table)


# --- database and suppliers ----------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database (SUPPLYLINE_DATABASE_URL) up to the newest schema."""
    engine = engine_for(get_settings().resolved_database_url)
    before = current_revision(engine)
    ensure_schema(engine)
    after = current_revision(engine)
    url = engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"{url}: up to date (revision {after})")
    else:
        console.print(f"{url}: upgraded from {before or 'empty'} to {after}")


@supplier_app.command("add")
def supplier_add(
    code: Annotated[str, typer.Argument(help="Short code: letters, digits, dashes (acme).")],
    name: Annotated[str, typer.Option(help="The supplier's name.")],
    contract: Annotated[str, typer.Option(help="Catalog contract.")] = "catalog_item",
    mapping: Annotated[str | None, typer.Option(help="Mapping of the supplier's columns.")] = None,
    feed: Annotated[
        str, typer.Option(help="full: each file is the whole catalog; delta: changes only.")
    ] = "full",
    retire_guard: Annotated[
        float | None,
        typer.Option(
            help="Hold a full feed that would retire more than this share of active products "
            "(default: SUPPLYLINE_RETIRE_GUARD_SHARE, 0.5)."
        ),
    ] = None,
) -> None:
    """Register a supplier, with the contract and mapping its files are checked against."""
    with _store_errors(), session_scope() as session:
        supplier = add_supplier(
            session,
            code,
            name,
            contract=contract,
            mapping=mapping,
            feed_mode=feed,
            retire_guard_share=retire_guard,
        )
        console.print(
            f"supplier [bold]{supplier.code}[/bold] ({supplier.name}) added: contract "
            f"{supplier.contract}, mapping {supplier.mapping or '(canonical headers)'}, "
            f"{supplier.feed_mode} feed"
        )


@supplier_app.command("list")
def supplier_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every supplier, with its product counts."""
    with session_scope() as session:
        summaries = [summarise_supplier(session, s) for s in list_suppliers(session)]
    if as_json:
        _print_json([s.as_dict() for s in summaries])
        return
    table = Table("code", "name", "contract", "mapping", "feed", "active", "discontinued")
    for summary in summaries:
        supplier, counts = summary.supplier, summary.products_by_status
        table.add_row(
            supplier.code,
            supplier.name,
            supplier.contract,
            supplier.mapping or "",
            supplier.feed_mode,
            f"{counts.get('active', 0):,}",
            f"{counts.get('discontinued', 0):,}",
        )
    console.print(table)


@supplier_app.command("show")
def supplier_show(
    code: Annotated[str, typer.Argument(help="Supplier code.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A supplier's settings, product counts and latest files."""
    with _store_errors(), session_scope() as session:
        supplier = get_supplier(session, code)
        summary = summarise_supplier(session, supplier).as_dict()
        latest = history(session, supplier=supplier, limit=10)
        files = [history_entry(row, supplier.code) for row, _ in latest]
    if as_json:
        _print_json(summary | {"latest_files": files})
        return
    guard = summary["retire_guard_share"]
    guard_text = (
        f"{guard:.0%}"
        if guard is not None
        else f"{get_settings().retire_guard_share:.0%} (default)"
    )
    console.print(f"[bold]{summary['code']}[/bold]  {summary['name']}")
    mapping = summary["mapping"] or "(canonical headers)"
    console.print(f"  contract: {summary['contract']}   mapping: {mapping}")
    console.print(f"  feed: {summary['feed_mode']}   retire guard: {guard_text}")
    products = summary["products"] or {}
    counts = ", ".join(f"{n:,} {status}" for status, n in products.items()) or "none yet"
    console.print(f"  products: {counts}")
    if files:
        console.print(_history_table(files, title="Latest files", with_supplier=False))


@supplier_app.command("sftp")
def supplier_sftp(
    code: Annotated[str, typer.Argument(help="Supplier code.")],
    host: Annotated[str, typer.Option(help="SFTP server host name or address.")],
    user: Annotated[str, typer.Option(help="Account to log in as.")],
    known_hosts: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="known_hosts file pinning the server's host key (unknown hosts are refused).",
        ),
    ],
    port: Annotated[int, typer.Option(help="SSH port.")] = 22,
    password_env: Annotated[
        str | None, typer.Option(help="Name of the environment variable holding the password.")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Private key file.")
    ] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the key's passphrase.")
    ] = None,
    inbox: Annotated[str, typer.Option(help="Folder where files arrive.")] = "/inbox",
    archive: Annotated[str, typer.Option(help="Folder processed files move to.")] = "/archive",
    errors: Annotated[str, typer.Option(help="Folder error files go to.")] = "/errors",
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Log in and list the inbox once saved.")
    ] = False,
) -> None:
    """Save the supplier's SFTP server as the Prefect block supplier-CODE (secrets stay in it)."""
    from blocks.sftp import SftpServer
    from tasks.sftp import block_name

    if (password_env is None) == (key_file is None):
        err_console.print("[red]error:[/red] give exactly one of --password-env and --key-file")
        raise typer.Exit(EXIT_CONFIG_ERROR)
    with _store_errors(), session_scope() as session:
        supplier_code = get_supplier(session, code).code
    password = _secret_from_env(password_env)
    passphrase = _secret_from_env(passphrase_env)
    try:
        server = SftpServer(
            host=host,
            port=port,
            username=user,
            password=password,
            private_key=key_file.read_text() if key_file else None,
            private_key_passphrase=passphrase,
            known_hosts=known_hosts.read_text(),
            inbox=inbox,
            archive=archive,
            errors=errors,
        )
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_CONFIG_ERROR) from None
    if check:
        _check_sftp_login(server)
    name = block_name(supplier_code)
    server.save(name, overwrite=True)
    auth = "password" if password else "private key"
    console.print(
        f"saved block [bold]{name}[/bold]: {user}@{host}:{port} by {auth}, host key pinned; "
        f"inbox {inbox}, archive {archive}, errors {errors}"
    )


def _check_sftp_login(server: SftpServer) -> None:
    """Log in and list the inbox, or say why not and stop before anything is saved."""
    import paramiko

    from blocks.sftp import SftpError

    where = server.address
    try:
        with server.get_client() as sftp:
            files = sftp.list(server.inbox)
    except SftpError as exc:
        problem = str(exc)
    except FileNotFoundError:
        problem = f"{where}: the inbox {server.inbox} is not there; check --inbox with the supplier"
    except PermissionError:
        problem = f"{where}: the account may not list the inbox {server.inbox}"
    except (OSError, paramiko.SSHException) as exc:
        problem = f"{where}: cannot reach the server ({exc}); check --host and --port"
    else:
        console.print(f"logged in: {len(files)} file(s) in {server.inbox}")
        return
    err_console.print(f"[red]error:[/red] {problem}. Nothing saved.")
    raise typer.Exit(EXIT_CONFIG_ERROR)


def _secret_from_env(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        err_console.print(f"[red]error:[/red] environment variable {variable} is not set")
        raise typer.Exit(EXIT_CONFIG_ERROR)
    return value


# --- catalog store ------------------------------------------------------------------------

UPLOAD_EXIT = {
    "accepted": 0,
    "duplicate": 0,
    "partially_accepted": 1,
    "held": 1,
    "rejected": 2,
    "failed": 2,
}


@catalog_app.command("upload")
def catalog_upload(
    files: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, help="Catalog files, in order.")
    ],
    supplier: Annotated[str, typer.Option(help="Supplier code.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
) -> None:
    """Ingest files by hand, through the catalog-ingest flow (source: manual).

    A manual upload applies like any file; the supplier's next regular feed overwrites what
    it changed. Exit 0: all accepted (or duplicates); 1: rows rejected, or a feed held;
    2: a file rejected or failed.
    """
    from flows.catalog_ingest import catalog_ingest

    with _store_errors(), session_scope() as session:
        code = get_supplier(session, supplier).code
    entries = catalog_ingest(supplier=code, files=files, source="manual")
    if as_json:
        _print_json(entries)
    else:
        for entry in entries:
            print_entry(entry)
    raise typer.Exit(max(UPLOAD_EXIT.get(str(e["status"]), 2) for e in entries))


@catalog_app.command("release")
def catalog_release(
    file_id: Annotated[int, typer.Argument(help="Id of the held file (catalog history).")],
) -> None:
    """Apply a full feed the retire guard held: its missing products are retired."""
    from flows.catalog_ingest import catalog_release as release_flow
    from tasks.ingest import ReleaseError, claim_for_release

    try:
        claim_for_release(file_id)
    except ReleaseError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_CONFIG_ERROR) from exc
    entry = release_flow(file_id=file_id)
    print_entry(entry)
    raise typer.Exit(UPLOAD_EXIT.get(str(entry["status"]), 2))


@catalog_app.command("ingest")
def catalog_ingest_now(
    suppliers: Annotated[
        list[str], typer.Argument(help="Supplier codes, each with an SFTP block.")
    ],
    stable_seconds: Annotated[
        float | None,
        typer.Option(
            help="Seconds a file must hold still (default SUPPLYLINE_SFTP_STABLE_SECONDS)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
) -> None:
    """Pick files up from each supplier's SFTP inbox now, through the catalog-sftp-ingest flow.

    One supplier that fails (unreachable, say) never stops the others. Exit 0: every file
    accepted (or a duplicate); 1: rows rejected or a feed held; 2: a supplier or a file failed.
    """
    from flows.sftp_ingest import catalog_sftp_ingest

    outcomes: list[dict[str, object]] = []
    worst = 0
    for code in suppliers:
        try:
            outcome = catalog_sftp_ingest(supplier=code, stable_seconds=stable_seconds)
        except Exception as exc:
            outcomes.append({"supplier": code, "error": str(exc)})
            err_console.print(f"[red]{code}: gave up:[/red] {exc}")
            worst = 2
            continue
        outcomes.append(outcome)
        files = outcome["files"]
        assert isinstance(files, list)
        if not as_json:
            waiting = outcome["waiting"]
            console.print(
                f"[bold]{code}[/bold]: {len(files)} file(s) taken"
                + (f"; still changing: {', '.join(waiting)}" if waiting else "")  # type: ignore[arg-type]
            )
            for entry in files:
                print_entry(entry)
        worst = max([worst, *(UPLOAD_EXIT.get(str(e["status"]), 2) for e in files)])
    if as_json:
        _print_json(outcomes)
    raise typer.Exit(worst)


@catalog_app.command("pickups")
def catalog_pickups(
    supplier: Annotated[str, typer.Option(help="Supplier code.")],
    files: Annotated[
        bool, typer.Option("--files", help="The SFTP ledger's files instead.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The supplier's SFTP pickup runs (or, with --files, what became of each remote file)."""
    from tasks.sftp import pickups, remote_files

    with _store_errors(), session_scope() as session:
        found = get_supplier(session, supplier)
        rows = remote_files(session, found, limit) if files else pickups(session, found, limit)
    if as_json:
        _print_json(rows)
        return
    if files:
        table = Table("id", "file", "state", "bytes", "catalog file", "archived as", "note")
        for r in rows:
            table.add_row(
                str(r["id"]),
                str(r["name"]),
                str(r["state"]),
                f"{r['size_bytes']:,}",
                f"#{r['catalog_file_id']}" if r["catalog_file_id"] else "",
                str(r["archived_path"] or ""),
                str(r["message"] or ""),
            )
    else:
        table = Table("id", "status", "started (UTC)", "listed", "taken", "waiting", "note")
        for r in rows:
            table.add_row(
                str(r["id"]),
                str(r["status"]),
                str(r["started_at"])[:16].replace("T", " "),
                str(r["files_listed"]),
                str(r["files_taken"]),
                str(r["files_waiting"]),
                str(r["message"] or ""),
            )
    console.print(table)


@catalog_app.command("history")
def catalog_history(
    supplier: Annotated[str | None, typer.Option(help="Only this supplier's files.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest files.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The upload history, newest first: file, source, status, counts, when."""
    with _store_errors(), session_scope() as session:
        only = get_supplier(session, supplier) if supplier else None
        rows = history(session, supplier=only, limit=limit)
        entries = [history_entry(row, code) for row, code in rows]
    if as_json:
        _print_json(entries)
    else:
        console.print(
            _history_table(entries, title="Catalog files", with_supplier=supplier is None)
        )


@catalog_app.command("errors")
def catalog_errors(
    file_id: Annotated[int, typer.Argument(help="Id of the file (catalog history).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Copy the error file here.")
    ] = None,
) -> None:
    """The error file of an upload: printed, or copied to OUTPUT."""
    from tasks.ingest import file_entry

    try:
        entry = file_entry(file_id)
    except LookupError as exc:
        err_console.print(f"[red]error:[/red] {exc}; see: supplyline catalog history")
        raise typer.Exit(EXIT_CONFIG_ERROR) from exc
    error_file = entry["error_file"]
    if not error_file:
        reason = entry["message"] or "every row was valid"
        err_console.print(f"file #{file_id} ({entry['file']}) has no error file: {reason}")
        return
    source = Path(str(error_file))
    if not source.is_file():
        err_console.print(f"[red]error:[/red] the error file {source} is gone")
        raise typer.Exit(EXIT_CONFIG_ERROR)
    if output is None:
        sys.stdout.write(source.read_text(encoding="utf-8-sig"))
        return
    shutil.copyfile(source, output)
    console.print(f"error file of #{file_id} ({entry['file']}) written to {output}")


@catalog_app.command("products")
def catalog_products(
    supplier: Annotated[str, typer.Option(help="Supplier code.")],
    status: Annotated[str | None, typer.Option(help="active or discontinued.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A supplier's products, by SKU."""
    with _store_errors(), session_scope() as session:
        products = products_of(session, get_supplier(session, supplier), status=status, limit=limit)
        rows = [p.model_dump(mode="json", exclude={"row_hash", "supplier_id"}) for p in products]
    if as_json:
        _print_json(rows)
        return
    table = Table("sku", "title", "cost", "qty", "status", "changed (UTC)", "by")
    for row in rows:
        table.add_row(
            row["sku"],
            row["title"],
            f"{row['cost']:.2f}",
            str(row["quantity"]),
            row["status"],
            str(row["changed_at"])[:16].replace("T", " "),
            f"{row['changed_by_source']} #{row['changed_by_file_id']}",
        )
    console.print(table)


def print_entry(entry: dict[str, object]) -> None:
    """One ingested file, as a line and its counts."""
    status = str(entry["status"])
    style = {
        "accepted": "green",
        "partially_accepted": "yellow",
        "held": "yellow",
        "duplicate": "cyan",
    }.get(status, "red")
    console.print(
        f"#{entry['id']} [bold]{entry['file']}[/bold] ({entry['source']}): "
        f"[{style}]{status.replace('_', ' ')}[/]"
    )
    if status not in ("duplicate", "failed"):
        console.print(
            f"  rows: {entry['rows_total']:,}   valid: {entry['rows_valid']:,}   "
            f"invalid: {entry['rows_invalid']:,}   inserted: {entry['rows_inserted']:,}   "
            f"updated: {entry['rows_updated']:,}   retired: {entry['rows_retired']:,}"
        )
    if entry.get("message"):
        console.print(f"  {entry['message']}", soft_wrap=True)
    if entry.get("error_file"):
        console.print(f"  error file: {entry['error_file']}", soft_wrap=True)


def _history_table(
    entries: list[dict[str, object]], *, title: str, with_supplier: bool = True
) -> Table:
    columns = ["id", *(["supplier"] if with_supplier else []), "file", "source", "status"]
    table = Table(
        *columns, "rows", "valid", "invalid", "received (UTC)", title=title, title_justify="left"
    )
    for e in entries:
        table.add_row(
            str(e["id"]),
            *([str(e["supplier"])] if with_supplier else []),
            str(e["file"]),
            str(e["source"]),
            str(e["status"]).replace("_", " "),
            f"{e['rows_total']:,}",
            f"{e['rows_valid']:,}",
            f"{e['rows_invalid']:,}",
            str(e["received_at"])[:16].replace("T", " "),
        )
    return table


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@contextmanager
def _store_errors():
    """Turn a bad supplier or contract setting into a message and exit 3."""
    try:
        yield
    except (SupplierError, ContractError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_CONFIG_ERROR) from exc


@app.command()
def demo() -> None:
    """Run the main job on embedded defaults: a supplier sends its catalog files over SFTP.

    SQLite in SUPPLYLINE_HOME (a temporary folder unless it is set), an SFTP server on
    loopback, Prefect's ephemeral API.
    """
    home = os.environ.get("SUPPLYLINE_HOME") or tempfile.mkdtemp(prefix="supplyline-demo-")
    os.environ["SUPPLYLINE_HOME"] = home
    get_settings.cache_clear()
    from blocks.sftp import SftpServer
    from flows.sftp_ingest import catalog_sftp_ingest
    from sandbox.sftp_server import EmbeddedSftpServer
    from tasks.sftp import block_name

    console.rule("[bold]Supplyline demo: supplier ACME sends its catalog over SFTP")
    console.print(f"SUPPLYLINE_HOME: {home}")
    console.print(f"database: {get_settings().resolved_database_url}")
    with session_scope() as session:
        supplier = get_supplier_or_none(session, DEMO_SUPPLIER)
        if supplier is None:
            add_supplier(session, DEMO_SUPPLIER, "ACME Tools", mapping="acme", feed_mode="delta")
    root = Path(tempfile.mkdtemp(prefix="acme-sftp-", dir=home))
    with EmbeddedSftpServer(root, username="acme") as server:
        SftpServer(
            host="127.0.0.1",
            port=server.port,
            username=server.username,
            password=server.password,
            known_hosts=server.known_hosts,
        ).save(block_name(DEMO_SUPPLIER), overwrite=True)
        console.print(
            f"ACME's SFTP server: sftp://acme@127.0.0.1:{server.port} (folder {root}), its "
            f"host key pinned in the block {block_name(DEMO_SUPPLIER)}.\n"
            "Supplier [bold]acme[/bold] (ACME Tools): mapping acme, delta feed. It drops its "
            "catalog, then new products with mistakes in them, then its catalog again.\n"
        )
        inbox = server.folder("inbox")
        sent = time.time() - 120
        for offset, (sample, name) in enumerate(DEMO_FILES):
            shutil.copyfile(SAMPLES_DIR / sample, inbox / name)
            os.utime(inbox / name, (sent + offset, sent + offset))
        outcome = catalog_sftp_ingest(supplier=DEMO_SUPPLIER, stable_seconds=1)
        console.print()
        entries = outcome["files"]
        assert isinstance(entries, list)
        for entry in entries:
            print_entry(entry)
        console.print("\nOn ACME's server now:")
        for folder in ("inbox", "errors", "archive"):
            names = sorted(p.name for p in server.folder(folder).iterdir())
            console.print(f"  /{folder}: {', '.join(names) or '(empty)'}")
    with session_scope() as session:
        summary = summarise_supplier(session, get_supplier(session, DEMO_SUPPLIER))
    counts = ", ".join(f"{n} {s}" for s, n in summary.products_by_status.items())
    console.print(f"\nACME's catalog now holds: {counts}.")
    console.print(
        "ACME finds its error file in /errors: open it in a spreadsheet, each rejected row says "
        "what to fix. Fix the rows and send the file back as it is: the _row and _errors "
        "columns are ignored."
    )
    console.print(
        "Look further: supplyline catalog history --supplier acme, "
        "supplyline catalog pickups --supplier acme --files, "
        "supplyline catalog products --supplier acme (with SUPPLYLINE_HOME set as above)."
    )
    catalog_ok = len(entries) == len(DEMO_FILES) and not any(
        e["status"] in ("failed", "rejected") for e in entries
    )
    from sandbox.retailer_webhook import RetailerWebhookSandbox
    from supplyline.cli_orders import demo_orders
    from supplyline.cli_retailer_push import demo_notifications

    with RetailerWebhookSandbox() as receiver:
        orders_ok = demo_orders(DEMO_SUPPLIER, receiver)
        notified_ok = demo_notifications("shopco", receiver)
    if not (catalog_ok and orders_ok and notified_ok):
        raise typer.Exit(2)


register_relationship_commands(app, supplier_app)
register_order_commands(app, supplier_app)
register_fulfillment_commands(app)
register_push_commands(fulfillment_app, connector_app, sandbox_app)
register_status_command(app)

if __name__ == "__main__":
    app()
