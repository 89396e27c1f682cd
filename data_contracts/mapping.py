"""Supplier mappings: how a supplier's file lines up with a contract.

A mapping is a YAML file in ``data_contracts/mappings/<name>.yaml``::

    contract: catalog_item
    columns:            # canonical column: the supplier's header
      sku: "Item Number"
    values:             # per canonical column: the supplier's value -> the canonical value
      status: {A: active, D: discontinued}
    defaults:           # used where the supplier's value is empty
      status: active
    delimiter: ";"      # optional: used when the delimiter cannot be sniffed
    sheet: Products     # optional: the XLSX sheet to read (default: the first)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data_contracts.contract import CONTRACTS_DIR, Contract, ContractError

MAPPINGS_DIR = CONTRACTS_DIR / "mappings"
MAPPING_KEYS = frozenset({"contract", "columns", "values", "defaults", "delimiter", "sheet"})


@dataclass(frozen=True)
class Mapping:
    name: str
    contract: str
    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    delimiter: str | None = None
    sheet: str | None = None

    def check_against(self, contract: Contract) -> None:
        """Refuse a mapping that names columns the contract does not have."""
        if self.contract != contract.name:
            raise ContractError(
                f"mapping {self.name} is for contract {self.contract}, not {contract.name}"
            )
        for section in ("columns", "values", "defaults"):
            unknown = sorted(set(getattr(self, section)) - set(contract.column_names))
            if unknown:
                raise ContractError(
                    f"mapping {self.name}: {section} names {', '.join(unknown)}, which contract "
                    f"{contract.name} lacks (its columns: {', '.join(contract.column_names)})"
                )


def resolve_mapping_path(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} and candidate.exists():
        return candidate
    named = MAPPINGS_DIR / f"{name_or_path}.yaml"
    if named.exists():
        return named
    known = ", ".join(sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))) or "none"
    raise ContractError(
        f"unknown mapping {str(name_or_path)!r}: give a mapping name ({known}) or a YAML file path"
    )


def load_mapping(name_or_path: str | Path) -> Mapping:
    path = resolve_mapping_path(name_or_path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    return parse_mapping(document, name=path.stem, where=str(path))


def parse_mapping(document: Any, *, name: str, where: str | None = None) -> Mapping:
    where = where or f"mapping {name}"
    if not isinstance(document, dict) or not document.get("contract"):
        raise ContractError(f"{where}: a mapping needs `contract:` and usually `columns:`")
    unknown = sorted(set(document) - MAPPING_KEYS)
    if unknown:
        raise ContractError(
            f"{where}: unknown keys {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(MAPPING_KEYS))})"
        )
    columns = _string_dict(document.get("columns"), where, "columns")
    defaults = _string_dict(document.get("defaults"), where, "defaults")
    values_section = document.get("values") or {}
    if not isinstance(values_section, dict):
        raise ContractError(f"{where}: values must map a column to {{supplier value: value}}")
    values = {
        str(column): _string_dict(table, where, f"values.{column}")
        for column, table in values_section.items()
    }
    delimiter = document.get("delimiter")
    if delimiter is not None and len(str(delimiter)) != 1:
        raise ContractError(f"{where}: delimiter must be one character, got {delimiter!r}")
    return Mapping(
        name=name,
        contract=str(document["contract"]),
        columns=columns,
        values=values,
        defaults=defaults,
        delimiter=None if delimiter is None else str(delimiter),
        sheet=None if document.get("sheet") is None else str(document["sheet"]),
    )


def _string_dict(section: Any, where: str, label: str) -> dict[str, str]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ContractError(f"{where}: {label} must be a mapping of names to values")
    # YAML reads `A: active` fine but `Y: yes` as a boolean key/value: keep the text.
    return {_yaml_text(k): _yaml_text(v) for k, v in section.items()}


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
