"""The ``supplyline`` command line."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from data_contracts.contract import ContractError, available_contracts, load_contract
from data_contracts.suite import compile_contract
from supplyline.settings import get_settings
from tasks.check import CheckOutcome, check_catalog_file

app = typer.Typer(
    help="Supplyline: supplier catalogs in, validated against data contracts; orders out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(
    help="Catalog files: check them against a contract.", no_args_is_help=True
)
contract_app = typer.Typer(
    help="Data contracts: list them and the rules they hold.", no_args_is_help=True
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(contract_app, name="contract")

console = Console()
err_console = Console(stderr=True)

EXIT_CONFIG_ERROR = 3
PROGRESS_FROM_BYTES = 5 * 1024 * 1024
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


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


@app.command()
def demo() -> None:
    """Run the main job on embedded defaults: check the bundled sample files.

    Uses SUPPLYLINE_HOME when it is set, otherwise a temporary folder.
    """
    home = os.environ.get("SUPPLYLINE_HOME") or tempfile.mkdtemp(prefix="supplyline-demo-")
    os.environ["SUPPLYLINE_HOME"] = home
    get_settings.cache_clear()
    errors_dir = get_settings().errors_dir / "demo"
    console.rule("[bold]Supplyline demo: supplier ACME sends its catalog")
    console.print(f"SUPPLYLINE_HOME: {home}\n")
    worst = 0
    for sample in ("acme_catalog.csv", "acme_catalog_with_errors.csv"):
        outcome = check_catalog_file(SAMPLES_DIR / sample, mapping="acme", errors_dir=errors_dir)
        print_outcome(outcome)
        console.print()
        worst = max(worst, outcome.exit_code)
    console.print(
        "Open the error file in a spreadsheet: each rejected row says what to fix. "
        "Fix the rows and send the file back as it is: the _row and _errors columns are ignored."
    )
    if worst > 1:
        raise typer.Exit(worst)


if __name__ == "__main__":
    app()
