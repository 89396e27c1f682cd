"""Checking one catalog file against a contract: read, map, validate, write the error file.

``check_catalog_file`` needs no database and no Prefect server (``supplyline catalog check``);
``check_catalog_file_task`` is the same step as a Prefect task, one run per file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from data_contracts.contract import load_contract
from data_contracts.mapping import load_mapping
from data_contracts.suite import compile_contract
from tasks.error_files import SUMMARY_SUFFIX, error_file_paths, write_error_files
from tasks.validate import FileValidation, validate_file

DEFAULT_CONTRACT = "catalog_item"

EXIT_VALID, EXIT_ROWS_REJECTED, EXIT_FILE_REJECTED = 0, 1, 2


@dataclass
class CheckOutcome:
    validation: FileValidation
    error_file: Path | None
    summary_file: Path

    @property
    def exit_code(self) -> int:
        if self.validation.file_errors:
            return EXIT_FILE_REJECTED
        return EXIT_VALID if self.validation.status == "accepted" else EXIT_ROWS_REJECTED

    def summary(self) -> dict[str, object]:
        return self.validation.summary() | {
            "error_file": str(self.error_file) if self.error_file else None,
            "summary_file": str(self.summary_file),
        }


def check_catalog_file(
    path: Path,
    *,
    contract: str | None = None,
    mapping: str | None = None,
    errors_out: Path | None = None,
    errors_dir: Path,
    on_stage: Callable[[str], None] | None = None,
) -> CheckOutcome:
    """Validate ``path`` and write its error file (``errors_out``, or into ``errors_dir``).

    The contract defaults to the mapping's, then to ``catalog_item``. Raises ContractError for
    an unknown or invalid contract or mapping.
    """
    loaded_mapping = load_mapping(mapping) if mapping else None
    contract_name = contract or (loaded_mapping.contract if loaded_mapping else DEFAULT_CONTRACT)
    loaded_contract = load_contract(contract_name)
    if loaded_mapping:
        loaded_mapping.check_against(loaded_contract)
    compiled = compile_contract(loaded_contract)
    validation = validate_file(path, compiled, loaded_mapping, on_stage=on_stage)
    if on_stage:
        on_stage("writing the error file")
    if errors_out is not None:
        csv_path = errors_out
        json_path = errors_out.with_name(errors_out.name.removesuffix(".csv") + ".json")
        if json_path == csv_path:
            json_path = errors_out.with_suffix(SUMMARY_SUFFIX)
    else:
        csv_path, json_path = error_file_paths(path.name, errors_dir)
    error_file, summary_file = write_error_files(validation, csv_path, json_path)
    return CheckOutcome(validation, error_file, summary_file)


@task(name="check-catalog-file", cache_policy=NO_CACHE, task_run_name="check-{path.name}")
def check_catalog_file_task(
    path: Path,
    *,
    contract: str | None = None,
    mapping: str | None = None,
    errors_dir: Path,
) -> dict[str, object]:
    """One file, one task run; returns the summary (what the error file's JSON holds)."""
    outcome = check_catalog_file(path, contract=contract, mapping=mapping, errors_dir=errors_dir)
    return outcome.summary()
